# classify_timeout bounds the decision from the moment the body is read,
# the context read included.  When it passes while the context is still
# being read from Redis, no classifier is started afterwards: the answer
# comes at the deadline, and the classifier backends never see a call.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;

two_json_classifiers();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: classify_timeout passes during a slow context read: the answer comes at the deadline, every call timed out before it started
--- init
main::redis('CLIENT', 'PAUSE', '1500');
--- config
    location = /chat {
        classify a b; classify_pass /_gen; classify_timeout 500ms;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=3s;
    }
    location = /_gen { internal; return 200 "passed in $classify_time ms: $classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=dl1a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=dl1b; }
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- response_body_like: ^passed in (4[89]\d|[5-7]\d\d)\.\d{3} ms: a:timeout:0\.000,b:timeout:0\.000$
--- error_log
classify_timeout expired while reading the context of "chat:s1" from redis
--- no_error_log
[alert]



=== TEST 2: ... and once Redis answers, still no call reaches a classifier
--- request eval
["GET /mock/count?tag=dl1a", "GET /mock/count?tag=dl1b"]
--- wait: 1.5
--- response_body eval
["0\n", "0\n"]



=== TEST 3: classify_timeout during the calls: the answer comes at the deadline, not at the calls' own timeout
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_timeout 400ms; }
    location = /_gen { internal; return 200 "passed in $classify_time ms: $classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=dl3a&delay=2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=dl3b; }
--- request
POST /chat
{"user_query":"q"}
--- response_body_like: ^passed in (39\d|[4-6]\d\d)\.\d{3} ms: a:timeout:(39\d|[4-6]\d\d)\.\d{3},b:negative:\d+\.\d{3}$



=== TEST 4: a classifier location that delays its requests (limit_req with a burst): a call still waiting when it times out is dropped, and the connection is not held
--- http_config
    limit_req_zone $server_port zone=cls:1m rate=1r/s;
    classifier d { pass /_c/d; protocol json; reply "D blocks"; timeout 300ms; }
--- config
    location = /chat { classify d; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed: $classify_results\n"; }
    location /_c/d {
        internal;
        limit_req zone=cls burst=10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=dl4d;
    }
--- pipelined_requests eval
["POST /chat
{\"user_query\":\"q1\"}",
"POST /chat
{\"user_query\":\"q2\"}"]
--- timeout: 6
--- error_code eval
[200, 200]
--- response_body_like eval
["^passed: d:negative:", "^passed: d:timeout:"]
