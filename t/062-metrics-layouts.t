# The metrics zone across reloads: a layout per set of classifiers, taken
# up again when a reload comes back to a set seen before (A, B, A: no new
# allocation, A's counters go on); classifier names of any length in the
# Prometheus text; and a zone too full for a new layout says so, while
# requests are still answered.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use IO::Socket::INET;
use Test::Classify::Nginx;

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0) or die "no free port: $!";
    return $s->sockport;
}

my $port = free_port();
my $back = free_port();
my $long = 'c' x 300;

sub conf {
    my ($zone, @names) = @_;
    my $conf = "    classify_metrics_zone m $zone;\n";
    $conf .= "    classifier $_ { pass /_c; protocol json; reply \"$_\"; }\n"
        for @names;
    return $conf . <<"_EOC_";
    server {
        listen 127.0.0.1:$back;
        location = /no { return 200 '{"verdict":false}'; }
    }
    server {
        listen 127.0.0.1:$port;
        location = /chat { classify @names; classify_pass /_gen; }
        location = /_gen { internal; return 200 "passed\\n"; }
        location /_c { internal; proxy_pass http://127.0.0.1:$back/no; }
        location = /status { classify_status; }
    }
_EOC_
}

my $ngx = Test::Classify::Nginx->start(port => $port, conf => conf('1m', 'x', 'y'));

sub chat {
    my $body = '{"user_query":"q"}';
    return $ngx->body("POST /chat HTTP/1.0\r\nContent-Length: "
                      . length($body) . "\r\n\r\n$body");
}

sub status {
    return eval {
        JSON::PP::decode_json($ngx->body("GET /status?format=json HTTP/1.0\r\n\r\n"))
    } || {};
}

chat() for 1 .. 3;
my $s = status();
is($s->{requests}, 3, 'A: three requests');
is($s->{zone}{layouts}, 1, 'A: one layout');

$ngx->reload(conf => conf('1m', 'x', 'z'));
chat() for 1 .. 2;
$s = status();
is($s->{requests}, 2, 'B: its own counters');
is($s->{zone}{layouts}, 2, 'B: a second layout');
my $free = $s->{zone}{pages_free};

$ngx->reload(conf => conf('1m', 'x', 'y'));
chat();
$s = status();
is($s->{requests}, 4, 'back to A: A\'s counters go on');
is($s->{zone}{layouts}, 2, 'back to A: no new layout');
is($s->{zone}{pages_free}, $free, 'back to A: nothing allocated');

# a classifier name longer than any fixed label buffer
$ngx->reload(conf => conf('1m', 'x', $long));
chat();
my $prom = $ngx->body("GET /status HTTP/1.0\r\n\r\n");
my @bad = grep { !/^# (HELP|TYPE) / && !/^[a-z_]+(\{[^}]*\})? [0-9.]+$/ }
          split /\n/, $prom;
is(scalar @bad, 0, 'every line parses as Prometheus text') or diag($bad[0]);
like($prom, qr/^classify_classifier_seconds_count\{classifier="$long"\} 1$/m,
     'the long name whole, in the histogram');
like($prom, qr/^classify_classifier_verdicts_total\{classifier="$long",verdict="negative",shadow="false"\} 1$/m,
     'the long name whole, in the verdicts');

# a zone too small for a new layout: said once, requests still answered
my @many = map { "k$_" } 1 .. 150;
$ngx->reload(conf => conf('32k', @many));
is(chat(), "passed\n", 'a full zone: the request is still answered');
like($ngx->body("GET /status HTTP/1.0\r\n\r\n"), qr/^<html>.*503/s,
     'a full zone: the status page says 503');
like($ngx->error_log, qr/\[error\] .*classify_metrics_zone "m" is full/,
     'a full zone: the error log says so');
unlike($ngx->error_log, qr/\[(crit|alert|emerg)\]/, 'nothing louder');

$ngx->quit;

done_testing();
