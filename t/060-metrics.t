# Metrics in shared memory, served by classify_status: counters exactly
# equal to the requests made across 2 workers, cumulative histograms whose
# _count is the number of decisions, Prometheus text that parses, JSON that
# parses.  Runs nginx with a master and 2 workers, which the data-driven
# runner does not.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Time::HiRes qw(sleep);
use Test::Classify::Nginx;

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 101;
my $back = $port + 1;

my $ngx = Test::Classify::Nginx->start(port => $port, workers => 2,
                                       conf => <<"_EOC_");
    classify_metrics_zone classify 1m;

    classifier yes { pass /_c/yes; protocol json; reply "YES blocks"; }
    classifier no { pass /_c/no; protocol json; reply "NO blocks"; }
    classifier b { pass /_c/b; protocol json; reply "B blocks"; on_error pass; }
    classifier s { pass /_c/s; protocol json; shadow on; }

    server {
        listen 127.0.0.1:$back;
        location = /verdict/true { return 200 '{"verdict":true}'; }
        location = /verdict/false { return 200 '{"verdict":false}'; }
        location = /verdict/fail { return 500; }
    }

    server {
        listen 127.0.0.1:$port;
        location = /pass { classify no b s; classify_pass /_gen; }
        location = /block { classify yes b s; classify_pass /_gen; }
        location = /_gen { internal; return 200 "passed\\n"; }
        location /_c/yes { internal; proxy_pass http://127.0.0.1:$back/verdict/true; }
        location /_c/no { internal; proxy_pass http://127.0.0.1:$back/verdict/false; }
        location /_c/b { internal; proxy_pass http://127.0.0.1:$back/verdict/fail; }
        location /_c/s { internal; proxy_pass http://127.0.0.1:$back/verdict/true; }
        location = /status { classify_status; }
    }
_EOC_

sub chat {
    my ($uri) = @_;
    my $body = '{"user_query":"q"}';
    return $ngx->http("POST $uri HTTP/1.0\r\nContent-Length: "
                      . length($body) . "\r\n\r\n$body");
}

my ($pass, $block) = (0, 0);

for my $i (1 .. 30) {
    my $res = chat($i % 3 ? '/pass' : '/block');
    $pass++ if $res =~ /passed/;
    $block++ if $res =~ /YES blocks/;
}

$ngx->http("GET /pass HTTP/1.0\r\n\r\n");   # one error answer (405)

sleep 0.3;   # the last shadows finish

my $prom = $ngx->body("GET /status HTTP/1.0\r\n\r\n");

# a small Prometheus text parser: name{labels} value
my (%metric, $bad);
for my $line (split /\n/, $prom) {
    next if $line =~ /^# (HELP|TYPE) /;
    if ($line =~ /^([a-z_]+)(\{([^}]*)\})? ([0-9.]+|\+Inf)$/) {
        my ($name, $labels, $value) = ($1, $3 // '', $4);
        my %l = $labels =~ /(\w+)="([^"]*)"/g;
        my $key = join ',', $name, map { "$_=$l{$_}" } sort keys %l;
        $metric{$key} = $value;
    } else {
        $bad = $line;
    }
}

ok(!defined $bad, 'every line parses as Prometheus text')
    or diag("bad line: $bad");

is($pass, 20, 'passed requests');
is($block, 10, 'blocked requests');
is($metric{'classify_requests_total'}, 31, 'requests_total counts every request');
is($metric{'classify_decisions_total,verdict=pass'}, $pass, 'pass decisions');
is($metric{'classify_decisions_total,verdict=yes'}, $block, 'decisions blocked by "yes"');
is($metric{'classify_decisions_total,verdict=no'}, 0, 'none blocked by "no"');
is($metric{'classify_decisions_total,verdict=error'}, 1, 'error answers');
is($metric{'classify_classifier_verdicts_total,classifier=yes,shadow=false,verdict=positive'},
   $block, '"yes" positive');
is($metric{'classify_classifier_verdicts_total,classifier=no,shadow=false,verdict=negative'},
   $pass, '"no" negative');
is($metric{'classify_classifier_verdicts_total,classifier=b,shadow=false,verdict=error'}
   + $metric{'classify_classifier_verdicts_total,classifier=b,shadow=false,verdict=aborted'},
   30, 'b failed, or was aborted once "yes" had decided');
is($metric{'classify_classifier_verdicts_total,classifier=s,shadow=true,verdict=positive'},
   30, 'shadow verdicts are counted, never decisive');

# histograms: cumulative, _count equals the number of decisions
my @le = map { /le=(.*)$/ ? $1 : () }
         grep { /^classify_decision_seconds_bucket,/ } keys %metric;
my @sorted = sort { ($a eq '+Inf' ? 1e9 : $a) <=> ($b eq '+Inf' ? 1e9 : $b) } @le;
my $prev = 0;
my $monotonic = 1;
for my $le (@sorted) {
    my $v = $metric{"classify_decision_seconds_bucket,le=$le"};
    $monotonic = 0 if $v < $prev;
    $prev = $v;
}
ok($monotonic && @sorted == 12, 'decision buckets are cumulative');
is($metric{'classify_decision_seconds_bucket,le=+Inf'},
   $metric{'classify_decision_seconds_count'}, '+Inf bucket equals _count');
is($metric{'classify_decision_seconds_count'}, 30, '_count is the number of decisions');
ok($metric{'classify_decision_seconds_sum'} > 0
   && $metric{'classify_decision_seconds_sum'} < 30, '_sum is plausible');

my $json = eval { JSON::PP::decode_json($ngx->body("GET /status?format=json HTTP/1.0\r\n\r\n")) };
ok($json, 'the JSON parses') or diag($@);
is($json->{requests}, 31, 'JSON requests (a status request is not one)')
    if $json;
is($json->{classifiers}{yes}{verdicts}{positive}, $block, 'JSON "yes" positive')
    if $json;

# a reload with the same classifiers keeps the counters
$ngx->reload;
$json = eval { JSON::PP::decode_json($ngx->body("GET /status?format=json HTTP/1.0\r\n\r\n")) };
is($json && $json->{requests}, 31, 'counters survive a reload');

$ngx->quit;

done_testing();
