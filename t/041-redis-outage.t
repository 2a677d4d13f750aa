# Redis outages: down at start, killed mid-run, back again.  Requests keep
# being answered (classify_redis_on_error), each outage is logged once, and
# the connection comes back by itself.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use Test::Classify::Log;
use Time::HiRes qw(sleep);

redis('DEL', 'chat:s1', 'chat:s4');
redis('RPUSH', 'chat:s1', '{"role":"user","content":"u2"}',
      '{"role":"assistant","content":"a2"}');

two_json_classifiers();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: Redis goes down
--- init
main::redis_stop();
--- config
    location = /x { return 200 "stopped\n"; }
--- request
GET /x
--- response_body
stopped



=== TEST 2: Redis down at start: requests are answered without context, the outage logged once, not once per request (the second request logs no error, and had no context)
--- http_config
    classify_metrics_zone m 1m;
--- config
    location = /status { classify_status; }
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r7a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r7b; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
'POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=r7a&wait=1",
"GET /status",
"GET /errlog"]
--- response_body_filters eval
# the whole error log (read through nginx, the same under every runner):
# its [error] lines
[[], [], [], [], [Test::Classify::Log::lines(qr/\[error\]/)]]
--- response_body_like eval
["^passed\n\$", "^passed\n\$", '^\{"query":"q","context":\[\],"session":"s1"\}$',
"\nclassify_redis_errors_total 2\n",
# one in all, and it is the outage
qr/\A\[error\] classify_redis "127\.0\.0\.1:\d+": cannot connect[^\n]*\n\z/]



=== TEST 3: Redis back: the connection returns
--- init
main::redis_start();
main::redis('RPUSH', 'chat:s1', '{"role":"user","content":"u9"}');
Time::HiRes::sleep(1.5);
--- request
POST /chat
{"user_query":"q9","session_id":"s1"}
--- response_body
passed
--- error_log
connected again



=== TEST 4: ... and the context with it
--- request
GET /mock/body?tag=r7a&wait=1
--- response_body chomp
{"query":"q9","context":[{"role":"user","content":"u9"}],"session":"s1"}



=== TEST 5: Redis killed mid-run: classify_redis_on_error block answers 503, then recovers
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_redis_on_error block;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r9a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r9b; }
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- response_body
passed



=== TEST 6: ... killed
--- init
main::redis_stop(); Time::HiRes::sleep(0.2);
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- error_code: 503
--- response_body
{"error":{"message":"the conversation context is unavailable","type":"server_error","code":503}}
--- error_log eval
qr/classify_redis "[^"]+": connection lost/



=== TEST 7: ... restarted
--- init
main::redis_start(); Time::HiRes::sleep(1.5);
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- response_body
passed
--- error_log
connected again
