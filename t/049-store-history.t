# classify_context_store when the client's body carries its own history
# (an OpenAI chat body with earlier turns): nothing is read from Redis,
# but the turn is still stored under the session's key, so that a client
# that sends only its new turn next time gets the context.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;

redis('DEL', 'chat:h1');

two_json_classifiers();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a body with history stores its turn; the next turn, without history, reads it back
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
        classify_reply_format text;
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=h1a&verdict=false; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=h1b&verdict=true; }
--- request eval
['POST /chat
{"session_id":"h1","messages":[{"role":"user","content":"u0"},{"role":"assistant","content":"a0"},{"role":"user","content":"q1"}]}',
'POST /chat
{"user_query":"q2","session_id":"h1"}',
"GET /mock/body?tag=h1b&i=2&wait=1"]
--- response_body eval
["B blocks", "B blocks",
'{"query":"q2","context":[{"role":"user","content":"q1"},{"role":"assistant","content":"B blocks"}],"session":"h1"}']
--- no_error_log
[error]
