# LRU eviction in a tiny verdict cache zone: once the zone is full, each
# new verdict evicts the least recently used one (a hit makes an entry
# recent again), and the evictions are counted.  The zone's capacity is
# found by filling it, so the test does not depend on slab sizes.

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
my $tag = "lru93$$";

my $ngx = Test::Classify::Nginx->start(port => $port, conf => <<"_EOC_");
    classify_cache_zone tiny 32k;
    classify_metrics_zone metrics 1m;

    classifier a { pass /_c/a; protocol json; reply "A blocks"; }

    server {
        listen 127.0.0.1:$port;

        location = /chat {
            classify a; classify_pass /_gen; classify_cache tiny;
        }
        location = /_gen { internal; return 200 "\$classify_results\\n"; }
        location /_c/a {
            internal;
            proxy_pass http://127.0.0.1:$mock/classify/json?tag=$tag;
        }
        location = /status { classify_status; }
    }
_EOC_

my $pad = 'x' x 1500;

sub ask {
    my ($i) = @_;
    my $body = qq({"user_query":"question $i $pad"});
    my $res = $ngx->body("POST /chat HTTP/1.0\r\nContent-Length: "
                         . length($body) . "\r\n\r\n$body");
    return $res =~ /^a:negative\(cached\):/ ? 'hit'
         : $res =~ /^a:negative:/ ? 'miss' : "bad: $res";
}

sub cache {
    my $json = eval {
        JSON::PP::decode_json($ngx->body("GET /status?format=json HTTP/1.0"
                                         . "\r\n\r\n"))
    } // {};
    return ($json->{classifiers}{a}{cache}{tiny} // {},
            $json->{caches}{tiny} // {});
}

mock_clear($tag);

# fill the zone until the first eviction: question 1 goes then
my ($n, $bad);

for my $i (1 .. 200) {
    my $r = ask($i);
    $bad //= $r if $r ne 'miss';
    my ($c) = cache();
    if (($c->{evictions} // 0) > 0) {
        $n = $i;
        last;
    }
}

ok(!defined $bad, 'every new question misses') or diag($bad);
ok(defined $n && $n > 2, "the zone fills up, then evicts (at question "
                         . ($n // '-') . ")");

my ($c, $zone) = cache();
is($c->{evictions}, 1, 'one eviction counted');
is($c->{entries}, $n - 1, 'the zone holds the other questions');
is($zone->{entries}, $n - 1, 'the zone\'s own count agrees');

# question 2 is now the least recently used; a hit makes it recent
is(ask(2), 'hit', 'question 2 is still cached');

# the next new question evicts question 3, not question 2
is(ask($n + 1), 'miss', 'a new question');
($c) = cache();
is($c->{evictions}, 2, 'a second eviction');

is(ask(2), 'hit', 'question 2, used recently, was kept');
is(ask(3), 'miss', 'question 3, the least recently used, was evicted');
is(ask(1), 'miss', 'question 1, the first evicted, misses');

($c, $zone) = cache();
is($c->{entries}, $n - 1, 'a full zone keeps the same number of entries');
is($c->{hits}, 2, 'two hits counted');
is($c->{misses}, $n + 3, 'every other lookup a miss');
is(mock_count($tag), $n + 3, 'the mock saw one call per miss');

$ngx->quit;

unlike($ngx->error_log, qr/\[(alert|crit|emerg)\]|no memory/,
       'no alert, no "no memory" in the log');

done_testing();
