# classify_redis_sentinel against scripted Sentinels (Test::Classify::Redis's
# fake one) and real Redis servers: the master is asked of the Sentinels one
# after another; +switch-master moves the connection; a master that became
# a replica is left at its first -READONLY, its store kept and written to
# the next master; a replica the Sentinels still name is refused by ROLE; a
# Sentinel that answers a host name, does not know the master, or wants a
# password is handled and said once; a lost subscription is made again on
# the next Sentinel.  Real failovers are in t/048-redis-failover.t.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use Test::Classify::Log;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

# A is the suite's Redis, B one more master; each has its own s1
my $a = redis_port();
my $b = redis_node_start('b');

# not what B got as A's replica in an earlier run in this tree (dump.rdb)
redis_at($b, 'DBSIZE') == 0 or die "B did not start empty\n";

# a replica of A is in sync at once, not after a diskless sync's 5 s
redis('CONFIG', 'SET', 'repl-diskless-sync-delay', 0);
redis('DEL', 'chat:s1', 'chat:s7', 'chat:s9');
redis('RPUSH', 'chat:s1', '{"role":"user","content":"on a"}');
redis_at($b, 'RPUSH', 'chat:s1', '{"role":"user","content":"on b"}');

# a port where nothing listens: the first Sentinel of TEST 7 is down
my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                              LocalPort => 0) or die $!;
$ENV{TEST_NGINX_DEAD_PORT} = $l->sockport;
close $l;

$ENV{TEST_NGINX_B_PORT} = $b;
$ENV{TEST_NGINX_FAKE_1} = fake_sentinel_start(name => 'm', master => $a);
$ENV{TEST_NGINX_FAKE_2} = fake_sentinel_start(name => 'm', master => $a,
                                              host => 'localhost');
$ENV{TEST_NGINX_FAKE_3} = fake_sentinel_start(name => 'm', master => $a,
                                              password => 'spw');
$ENV{TEST_NGINX_FAKE_4} = fake_sentinel_start(name => 'm', master => $a);
$ENV{TEST_NGINX_FAKE_5} = fake_sentinel_start(name => 'm', master => $a);
$ENV{TEST_NGINX_FAKE_6} = fake_sentinel_start(name => 'm', master => $b);

# until a Redis says it is a replica with its link to the master up
sub wait_replica {
    my ($port) = @_;
    for (1 .. 100) {
        my $info = redis_at($port, 'INFO', 'replication');
        return 1 if $info =~ /master_link_status:up/;
        sleep 0.05;
    }
    return 0;
}

# a block's locations: /chat through classifiers a and b, whose bodies the
# mock records under tag <tag>a, and the error log at /errlog
sub chat_config {
    my ($tag) = @_;
    return <<"_EOC_";
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT/classify/json?tag=${tag}a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT/classify/json?tag=${tag}b; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
_EOC_
}

# what TEST 10b and 11b keep of the whole error log (from TEST 7 on, one
# nginx): TEST 9's switch from A to B and its connection to B, then B's
# -READONLY of TEST 10, each once
sub switch_then_readonly {
    my ($a, $b) = ("127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}",
                   "127.0.0.1:$ENV{TEST_NGINX_B_PORT}");
    return qq([error] classify_redis "m at $a": the Sentinels switched the master to $b, reconnecting\n)
         . qq([notice] classify_redis "m at $b": connected again; 0 context store(s) sent after the outage, 0 lost meanwhile\n)
         . qq([error] classify_redis "m at $b": READONLY You can't write against a read only replica., reconnecting\n);
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config', ($block->http_config // '') . <<'_EOC_')
    classify_metrics_zone m 1m;
    classifier c { pass /_c/c; protocol json; context 0; reply "C"; }
_EOC_
        unless $block->must_die;
});

two_json_classifiers();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: classify_redis_sentinel and classify_redis are not set together
--- http_config
    classify_redis 127.0.0.1:6379;
    classify_redis_sentinel m 127.0.0.1:26379;
--- config
--- must_die
--- error_log
"classify_redis_sentinel" directive is not allowed with "classify_redis"



=== TEST 2: the master's name is one Redis takes
--- http_config
    classify_redis_sentinel "my master" 127.0.0.1:26379;
--- config
--- must_die
--- error_log
invalid master name "my master" in "classify_redis_sentinel"



=== TEST 3: at least one Sentinel
--- http_config
    classify_redis_sentinel m db=1 timeout=1s;
--- config
--- must_die
--- error_log
no Sentinel address in "classify_redis_sentinel"



=== TEST 4: sentinel_password= belongs to classify_redis_sentinel only
--- config
    location = /chat { classify_redis 127.0.0.1:6379 sentinel_password=x; }
--- must_die
--- error_log
invalid parameter "sentinel_password=x" in "classify_redis"



=== TEST 5: Sentinels are reached over TCP
--- http_config
    classify_redis_sentinel m unix:/tmp/sentinel.sock;
--- config
--- must_die
--- error_log
invalid Sentinel address "unix:/tmp/sentinel.sock" in "classify_redis_sentinel"



=== TEST 6: classify_redis_sentinel is an http{} setting
--- config
    location = /chat { classify_redis_sentinel m 127.0.0.1:26379; }
--- must_die
--- error_log
"classify_redis_sentinel" directive is not allowed here



=== TEST 7: the first Sentinel is down: the second gives the master, whose context the classifiers get
--- http_config
    classify_redis_sentinel m 127.0.0.1:$TEST_NGINX_DEAD_PORT 127.0.0.1:$TEST_NGINX_FAKE_1;
--- config
    location = /status { classify_status; }
    location = /chat { classify a b; classify_pass /_gen; }
    location = /store {
        classify c; classify_pass /_gen;
        classify_context_store on;
        classify_reply_format text;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=sn7a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=sn7b; }
    location /_c/c { internal; return 200 '{"verdict":true}'; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn7a&wait=1",
"GET /status"]
--- response_body_like eval
["^passed\n\$",
'^\{"query":"q","context":\[\{"role":"user","content":"on a"\}\],"session":"s1"\}$',
qr/\nclassify_redis_failovers_total\{master="m"\} 0\n.*\nclassify_redis_master\{master="m",address="127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT}"\} 1\n/s]
--- no_error_log
[error]



=== TEST 8: the subscription to +switch-master, refused by the first Sentinel, is made on the second; the JSON status has the master
--- init
main::ok(main::wait_error_log(qr/subscribed to \+switch-master on Sentinel 127\.0\.0\.1:$ENV{TEST_NGINX_FAKE_1} again/, 5),
         "subscribed on the second Sentinel");
--- request
GET /status?format=json
--- response_body_like eval
qr/"redis_masters":\{"m":\{"address":"127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT}","failovers":0\}\},/



=== TEST 9: +switch-master: the worker leaves a master that is still up for the new one at once
--- init
main::is(main::redis_at($ENV{TEST_NGINX_FAKE_1}, 'FAKE-SWITCH', '127.0.0.1', $ENV{TEST_NGINX_B_PORT}),
         1, "the worker is the one subscriber");
main::ok(main::wait_error_log(qr/classify_redis_sentinel "m": the master is now 127\.0\.0\.1:$ENV{TEST_NGINX_B_PORT}, was 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT}/, 3),
         "followed within 3 s");
main::ok(main::wait_error_log(qr/classify_redis "m at 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT}": the Sentinels switched the master to 127\.0\.0\.1:$ENV{TEST_NGINX_B_PORT}, reconnecting/, 1),
         "the switch is the outage's one line");
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn7a&wait=1",
"GET /status"]
--- response_body_like eval
["^passed\n\$",
'^\{"query":"q","context":\[\{"role":"user","content":"on b"\}\],"session":"s1"\}$',
qr/\nclassify_redis_failovers_total\{master="m"\} 1\n.*\nclassify_redis_master\{master="m",address="127\.0\.0\.1:$ENV{TEST_NGINX_B_PORT}"\} 1\n/s]



=== TEST 10: the master became a replica (by hand: no Sentinel closed its clients): the store's -READONLY leaves it, and the Sentinels, who still name it, are not believed (ROLE)
--- init
main::redis_at($ENV{TEST_NGINX_B_PORT}, 'REPLICAOF', '127.0.0.1', $ENV{TEST_NGINX_REDIS_PORT});
main::ok(main::wait_replica($ENV{TEST_NGINX_B_PORT}), "B is a replica of A");
--- request
POST /store
{"user_query":"q7","session_id":"s7"}
--- response_body chomp
C
--- wait: 0.5
--- error_log eval
qr/classify_redis "m at 127\.0\.0\.1:$ENV{TEST_NGINX_B_PORT}": READONLY You can't write against a read only replica\., reconnecting/



=== TEST 10b: ... the whole log so far: TEST 9's switch to B and the connection to it, then B's -READONLY; no store failed or lost, B not connected to again
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/\[error\]|storing "chat:s7" failed|lost|connected again/)
--- response_body eval
main::switch_then_readonly()



=== TEST 11: ... meanwhile requests follow classify_redis_on_error; the replica is never taken for the master again (no flapping), and nothing more is logged (one outage, one line)
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn7a&wait=1"]
--- response_body_like eval
["^passed\n\$",
'^\{"query":"q","context":\[\],"session":"s1"\}$']



=== TEST 11b: ... the whole log so far: still the lines of TEST 9 and TEST 10, no more [error] and no connection again
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/\[error\]|connected again/)
--- response_body eval
main::switch_then_readonly()



=== TEST 12: ... once the Sentinels name A, the worker is back by itself, and the kept store is in A
--- init
main::redis_at($ENV{TEST_NGINX_FAKE_1}, 'FAKE-MASTER', '127.0.0.1', $ENV{TEST_NGINX_REDIS_PORT});
main::ok(main::wait_error_log(qr/classify_redis "m at 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT}": connected again; 1 context store\(s\) sent after the outage, 0 lost meanwhile/, 5),
         "connected again, the store sent");
main::is(main::redis('LLEN', 'chat:s7'), 2, "the turn is in A");
--- request eval
['POST /chat
{"user_query":"q","session_id":"s7"}',
"GET /mock/body?tag=sn7a&wait=1",
"GET /status"]
--- response_body_like eval
["^passed\n\$",
'^\{"query":"q","context":\[\{"role":"user","content":"q7"\},\{"role":"assistant","content":"C"\}\],"session":"s7"\}$',
qr/\nclassify_redis_stores_lost_total 0\n.*\nclassify_redis_failovers_total\{master="m"\} 2\n/s]



=== TEST 13: a Sentinel that does not know the master: logged once, requests classified without context
--- http_config
    classify_redis_sentinel other 127.0.0.1:$TEST_NGINX_FAKE_1;
--- config eval: main::chat_config('sn13')
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
'POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn13a&wait=1",
"GET /errlog"]
--- response_body_filters eval
[[], [], [], [Test::Classify::Log::lines(qr/\[error\]/)]]
--- response_body_like eval
["^passed\n\$", "^passed\n\$", '^\{"query":"q","context":\[\],"session":"s1"\}$',
# the whole error log: one [error] line in all, and it is this one
qr/\A\[error\] classify_redis_sentinel "other": no Sentinel gave the master's address: 127\.0\.0\.1:\d+: does not know master "other"\n\z/]



=== TEST 14: a Sentinel that answers a host name: not resolved by the worker, logged
--- http_config
    classify_redis_sentinel m 127.0.0.1:$TEST_NGINX_FAKE_2;
--- config eval: main::chat_config('sn14')
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn14a&wait=1",
"GET /errlog"]
--- response_body_like eval
["^passed\n\$", '^\{"query":"q","context":\[\],"session":"s1"\}$',
qr/no Sentinel gave the master's address: 127\.0\.0\.1:\d+: answered "localhost" "\d+", not an IP address and port/]



=== TEST 15: the Sentinel names a replica (it has not seen the failover yet): ROLE refuses it, logged once
--- http_config
    classify_redis_sentinel m 127.0.0.1:$TEST_NGINX_FAKE_6;
--- config eval: main::chat_config('sn15')
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn15a&wait=1",
"GET /errlog"]
--- response_body_filters eval
[[], [], [Test::Classify::Log::lines(qr/\[error\]/)]]
--- response_body_like eval
["^passed\n\$", '^\{"query":"q","context":\[\],"session":"s1"\}$',
# the whole error log: one [error] line in all, and it is this one
qr/\A\[error\] classify_redis "m at 127\.0\.0\.1:$ENV{TEST_NGINX_B_PORT}": not the master, its ROLE is "slave", reconnecting\n\z/]



=== TEST 16: sentinel_password= is sent to the Sentinels (and never logged)
--- http_config
    classify_redis_sentinel m 127.0.0.1:$TEST_NGINX_FAKE_3 sentinel_password=spw;
--- config eval: main::chat_config('sn16')
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn16a&wait=1"]
--- response_body_like eval
["^passed\n\$", '^\{"query":"q","context":\[\{"role":"user","content":"on a"\}\],"session":"s1"\}$']
--- no_error_log
[error]
[warn]
spw



=== TEST 17: a wrong sentinel_password= is said, for the ask and for the subscription
--- http_config
    classify_redis_sentinel m 127.0.0.1:$TEST_NGINX_FAKE_3 sentinel_password=bad;
--- config eval: main::chat_config('sn17')
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /errlog"]
--- response_body_like eval
["^passed\n\$",
# the whole error log: both said, the password never
qr/\A(?=.*\[error\][^\n]*no Sentinel gave the master's address: 127\.0\.0\.1:\d+: AUTH failed: WRONGPASS)(?=.*\[warn\][^\n]*classify_redis_sentinel "m": AUTH failed on Sentinel 127\.0\.0\.1:\d+: WRONGPASS)(?!.*=bad)/s]



=== TEST 18: the Sentinel of the subscription goes away ...
--- http_config
    classify_redis_sentinel m 127.0.0.1:$TEST_NGINX_FAKE_4 127.0.0.1:$TEST_NGINX_FAKE_5;
--- config eval: main::chat_config('sn18')
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=sn18a&wait=1"]
--- response_body_like eval
["^passed\n\$", '^\{"query":"q","context":\[\{"role":"user","content":"on a"\}\],"session":"s1"\}$']
--- no_error_log
[error]



=== TEST 19: ... the next one is subscribed to, and its +switch-master followed
--- init
main::redis_at($ENV{TEST_NGINX_B_PORT}, 'REPLICAOF', 'NO', 'ONE');
main::redis_at($ENV{TEST_NGINX_B_PORT}, 'RPUSH', 'chat:s9', '{"role":"user","content":"s9 on b"}');
main::is(main::redis_at($ENV{TEST_NGINX_FAKE_4}, 'FAKE-STATS')->[2], 1, "subscribed on the first Sentinel");
main::fake_sentinel_stop($ENV{TEST_NGINX_FAKE_4});
main::ok(main::wait_error_log(qr/\[warn\].*classify_redis_sentinel "m": no subscription to \+switch-master on Sentinel 127\.0\.0\.1:$ENV{TEST_NGINX_FAKE_4}: /, 5),
         "the lost subscription is said");
main::ok(main::wait_error_log(qr/subscribed to \+switch-master on Sentinel 127\.0\.0\.1:$ENV{TEST_NGINX_FAKE_5} again/, 5),
         "subscribed on the second Sentinel");
main::is(main::redis_at($ENV{TEST_NGINX_FAKE_5}, 'FAKE-SWITCH', '127.0.0.1', $ENV{TEST_NGINX_B_PORT}),
         1, "... which announces the switch to the worker");
main::ok(main::wait_error_log(qr/the master is now 127\.0\.0\.1:$ENV{TEST_NGINX_B_PORT}, was 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT}/, 3),
         "followed");
--- request eval
['POST /chat
{"user_query":"q","session_id":"s9"}',
"GET /mock/body?tag=sn18a&wait=1"]
--- response_body_like eval
["^passed\n\$", '^\{"query":"q","context":\[\{"role":"user","content":"s9 on b"\}\],"session":"s9"\}$']
