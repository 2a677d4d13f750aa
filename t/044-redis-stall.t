# A Redis that stalls (SIGSTOP, CLIENT PAUSE) while requests read and store:
# one request's deadline lets go of that request only, and the stores
# in flight when the connection is dropped are sent again afterwards;
# a store made while Redis is down waits for it, in a bounded queue.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use Test::Classify::Log;
use Time::HiRes qw(sleep);

our ($status_a, $status_b);

redis('DEL', 'chat:sA', 'chat:sB', 'chat:sC', 'chat:sD');
redis('RPUSH', 'chat:sB', '{"role":"user","content":"uB"}',
      '{"role":"assistant","content":"aB"}');

two_json_classifiers();

no_shuffle();
run_tests();

# TEST 5: what the store left in the Redis started again (TEST 6 stops it
# again, and TEST 7 starts it empty)


# the blocked turn of session s<X>, stored with its expiry
sub turn_stored {
    my ($x, $when) = @_;

    is_deeply(redis('LRANGE', "chat:s$x", 0, -1),
              ["{\"role\":\"user\",\"content\":\"q$x\"}",
               '{"role":"assistant","content":"C blocks"}'],
              "the turn stored $when is in the list");
    my $ttl = redis('TTL', "chat:s$x");
    ok($ttl > 0 && $ttl <= 60, "... with its expiry (TTL $ttl)");
}

sub connected {
    wait_error_log(qr/classify_redis "[^"]+": script -> ready/, 5);
}

# A's read is sent, then B's; Redis answers neither until A's deadline
# has passed, then answers both before B's (each wait is also a bound:
# a read is sent within a few milliseconds of its request)
sub stall_two_reads {
    connected();
    redis_freeze();

    post_background('a', '/chat', '{"user_query":"qA","session_id":"sA"}');
    wait_error_log(qr/reading "chat:sA" \(evalsha\)/, 0.3);
    sleep 0.3;

    post_background('b', '/chat', '{"user_query":"qB","session_id":"sB"}');
    wait_error_log(qr/reading "chat:sB" \(evalsha\)/, 0.3);

    wait_error_log(qr/"chat:sA" timed out/, 10);
    redis_thaw();

    ($status_a) = background_result('a');
    ($status_b) = background_result('b');
}

__DATA__

=== TEST 1: one read times out: only its request is affected, the read sent after it is answered
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
        classify_redis_on_error block;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=st1a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=st1b; }
--- init
main::stall_two_reads();
main::is($main::status_a, 503, "A, whose read timed out, follows classify_redis_on_error");
main::is($main::status_b, 200, "B, on another connection, is classified");
--- request
GET /mock/body?tag=st1b&wait=1
--- response_body chomp
{"query":"qB","context":[{"role":"user","content":"uB"},{"role":"assistant","content":"aB"}],"session":"sB"}
--- error_log eval
qr/classify_redis "[^"]+": reading "chat:sA" timed out/
--- no_error_log eval
["reconnecting", qr/connection (lost|closed)/]



=== TEST 2: CLIENT PAUSE 1500 while A stores its turn and B reads: B follows classify_redis_on_error
--- http_config
    classify_metrics_zone m 1m;
    classifier c { pass /_c/c; protocol json; context 0; reply "C blocks"; }
--- config
    location = /status { classify_status; }
    location = /store {
        classify c; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=300ms;
        classify_context_store on;
        classify_context_ttl 60s;
        classify_reply_format text;
    }
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=300ms;
        classify_redis_on_error block;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=st2a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=st2b; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=st2c&verdict=true; }
--- init
main::connected();
main::redis_pause(1500);
main::post_background('a', '/store', '{"user_query":"qA","session_id":"sA"}');
my ($status, $body) = main::background_result('a');
main::is("$status $body", "200 C blocks", "A is blocked, and stores its turn");
--- request
POST /chat
{"user_query":"qB","session_id":"sB"}
--- error_code: 503
--- response_body
{"error":{"message":"the conversation context is unavailable","type":"server_error","code":503}}
--- error_log eval
qr/classify_redis "[^"]+": reading "chat:sB" timed out/



=== TEST 3: ... after the pause A's turn is sent again, and nothing was lost
--- init
main::wait_error_log(qr/connected again; 1 context store\(s\) sent after the outage, 0 lost/, 15);
main::wait_error_log(qr/stored "chat:sA"/, 5);
main::turn_stored('A', 'while Redis stalled');   # before TEST 4 empties it
--- request
GET /status
--- response_body_like eval
"\nclassify_redis_stores_lost_total 0\n"
--- error_log eval
qr/connected again; 1 context store\(s\) sent after the outage, 0 lost meanwhile/
--- no_error_log
lost:



=== TEST 4: a store made while Redis is down is queued ...
--- http_config
    classifier c { pass /_c/c; protocol json; context 0; reply "C blocks"; }
--- config
    location = /store {
        classify c; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
        classify_context_ttl 60s;
        classify_reply_format text;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=st4c&verdict=true; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
--- init
main::connected();
main::redis_stop();
main::wait_error_log(qr/classify_redis "[^"]+": connection lost/, 10);
--- request
POST /store
{"user_query":"qD","session_id":"sD"}
--- response_body chomp
C blocks
--- error_log eval
qr/store of "chat:sD" queued, 1 waiting/



=== TEST 5: ... and written once Redis is back
--- init
main::redis_start();
main::wait_error_log(qr/connected again; 1 context store\(s\) sent after the outage, 0 lost/, 15);
main::wait_error_log(qr/stored "chat:sD"/, 5);
main::turn_stored('D', 'while Redis was down');
--- request
GET /mock/log?tag=st4c
--- response_body_like: ^200 [\d.]+ /classify/json



=== TEST 5b: ... the whole log so far: one "lost:" line, TEST 4's outage; no store lost, the connection not lost again
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/lost:/)
--- response_body_like eval
qr/\A\[error\] classify_redis "[^"]+": connection lost: [^\n]*\n\z/



=== TEST 6: the queue of stores is bounded: past 16 MiB a store is lost, logged and counted ...
--- http_config
    classify_metrics_zone m 1m;
    classifier c { pass /_c/c; protocol json; context 0; reply "C blocks"; }
--- config
    location = /status { classify_status; }
    location = /store {
        classify c; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
        classify_context_ttl 60s;
        classify_reply_format text;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/c { internal; return 200 '{"verdict":true}'; }
--- init
main::connected();
main::redis_stop();
main::wait_error_log(qr/classify_redis "[^"]+": connection lost/, 10);
--- request eval
[map { "POST /store\n{\"user_query\":\"$_ " . ('x' x 1000000) . "\",\"session_id\":\"sF\"}" } 1 .. 17]
--- response_body eval
[("C blocks") x 17]
--- timeout: 10



=== TEST 7: ... and the stores that fitted are written once Redis is back
--- init
main::ok(main::wait_error_log(qr/classify_redis "[^"]+": context of "chat:sF" lost: the queue of stores is full \(16 stores, 160\d{5} bytes waiting\)/, 1),
         "the lost store is logged, with its key");
main::redis_start();
main::ok(main::wait_error_log(qr/connected again; 16 context store\(s\) sent after the outage, 1 lost meanwhile/, 15),
         "the 16 others are written");
--- request eval
["GET /status", "GET /status?format=json"]
--- response_body_like eval
["\nclassify_redis_stores_lost_total 1\n", '"redis_stores_lost":1,']
