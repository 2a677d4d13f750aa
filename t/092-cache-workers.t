# The verdict cache across 2 workers and reloads, with a master process
# (which the data-driven runner does not run): a repeat served by either
# worker calls no classifier; the counters (hits, misses, entries) and the
# zone's fill in both status outputs; a reload keeps the entries; a reload
# with a changed prompt misses for that classifier only.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use IO::Socket::INET;
use Test::Classify::Mock qw(mock_count mock_clear);
use Test::Classify::Nginx;

my $port = do {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    $p;
};

my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my ($ta, $tb) = ("w92a$$", "w92b$$");

sub conf {
    my ($prompt) = @_;

    return <<"_EOC_";
    classify_cache_zone verdicts 1m;
    classify_metrics_zone metrics 1m;

    classifier a { pass /_c/a; prompt "$prompt"; context 2; reply "A blocks"; }
    classifier b { pass /_c/b; protocol json; context 2; reply "B blocks"; }

    server {
        listen 127.0.0.1:$port reuseport;

        location = /chat {
            classify a b; classify_pass /_gen; classify_cache verdicts;
        }
        location = /_gen { internal; return 200 "\$pid \$classify_results\\n"; }
        location /_c/a {
            internal;
            proxy_pass http://127.0.0.1:$mock/v1/chat/completions?tag=$ta&delay=0.05;
        }
        location /_c/b {
            internal;
            proxy_pass http://127.0.0.1:$mock/classify/json?tag=$tb;
        }
        location = /status { classify_status; }
    }
_EOC_
}

my $ngx = Test::Classify::Nginx->start(port => $port, workers => 2,
                                       conf => conf('is it off-topic?'));

my $question = '{"messages":[{"role":"user","content":"u1"},'
             . '{"role":"assistant","content":"a1"},'
             . '{"role":"user","content":"how do I pray?"}]}';

sub chat {
    return $ngx->body("POST /chat HTTP/1.0\r\nContent-Length: "
                      . length($question) . "\r\n\r\n$question");
}

sub status {
    my $json = eval {
        JSON::PP::decode_json($ngx->body("GET /status?format=json HTTP/1.0"
                                         . "\r\n\r\n"))
    };
    return $json // {};
}

mock_clear($ta);
mock_clear($tb);

like(chat(), qr/^\d+ a:negative:[\d.]+,b:negative:[\d.]+$/,
     'the first question is a miss: both classifiers called');

# repeats, each on a new connection, until both workers have answered one
my (%pids, $hits, $bad);

for my $i (1 .. 60) {
    my $res = chat();

    if ($res =~ /^(\d+) a:negative\(cached\):[\d.]+,b:negative\(cached\):[\d.]+$/) {
        $pids{$1}++;
        $hits++;
    } else {
        $bad = $res;
    }

    last if keys %pids >= 2 && $i >= 10;
}

ok(!defined $bad, 'every repeat is answered from the cache')
    or diag("answer: $bad");
is(scalar keys %pids, 2, 'repeats answered by both workers')
    or diag(explain \%pids);
is(mock_count($ta), 1, 'classifier "a" was called once, for the first');
is(mock_count($tb), 1, 'classifier "b" was called once, for the first');

my $s = status();
my $ca = $s->{classifiers}{a}{cache}{verdicts} // {};

is($ca->{hits}, $hits, 'JSON: hits of "a" equal the repeats');
is($ca->{misses}, 1, 'JSON: one miss of "a"');
is($ca->{entries}, 1, 'JSON: one entry of "a"');
is($ca->{evictions}, 0, 'JSON: no eviction');
is($s->{classifiers}{b}{cache}{verdicts}{hits}, $hits, 'JSON: hits of "b"');
is($s->{caches}{verdicts}{entries}, 2, 'JSON: the zone holds 2 entries');
is($s->{caches}{verdicts}{size}, 1048576, 'JSON: the zone size');
ok($s->{caches}{verdicts}{pages} > 0
   && $s->{caches}{verdicts}{pages_free} < $s->{caches}{verdicts}{pages},
   'JSON: the zone fill, in pages');
is($s->{classifiers}{a}{verdicts}{negative}, $hits + 1,
   'a cached verdict counts as that verdict');
is($s->{classifiers}{a}{latency_ms}{count}, 1,
   'a cached verdict is not a classifier latency');

my $prom = $ngx->body("GET /status HTTP/1.0\r\n\r\n");
like($prom, qr/^# TYPE classify_cache_hits_total counter$/m,
     'Prometheus: hits are a counter');
like($prom, qr/^# TYPE classify_cache_entries gauge$/m,
     'Prometheus: entries are a gauge');
like($prom, qr/^classify_cache_hits_total\{zone="verdicts",classifier="a"\} $hits$/m,
     'Prometheus: hits of "a"');
like($prom, qr/^classify_cache_misses_total\{zone="verdicts",classifier="b"\} 1$/m,
     'Prometheus: misses of "b"');
like($prom, qr/^classify_cache_evictions_total\{zone="verdicts",classifier="a"\} 0$/m,
     'Prometheus: evictions of "a"');
like($prom, qr/^classify_cache_entries\{zone="verdicts",classifier="b"\} 1$/m,
     'Prometheus: entries of "b"');

# a reload with the same configuration keeps the entries and the counters
$ngx->reload;

like(chat(), qr/^\d+ a:negative\(cached\):[\d.]+,b:negative\(cached\):[\d.]+$/,
     'after a reload the repeat still hits');
is(mock_count($ta) + mock_count($tb), 2, 'no call after the reload');
is(status()->{classifiers}{a}{cache}{verdicts}{hits}, $hits + 1,
   'the counters survive the reload');

# a changed prompt is another identity: "a" misses, "b" still hits
$ngx->reload(conf => conf('is it about something else?'));

like(chat(), qr/^\d+ a:negative:[\d.]+,b:negative\(cached\):[\d.]+$/,
     'a reload with a changed prompt: "a" misses, "b" hits');
is(mock_count($ta), 2, '"a" called again with its new prompt');
is(mock_count($tb), 1, '"b" not called');

like(chat(), qr/^\d+ a:negative\(cached\):[\d.]+,b:negative\(cached\):[\d.]+$/,
     'and the new prompt\'s verdict is cached in turn');

$ngx->quit;

unlike($ngx->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the log');

done_testing();
