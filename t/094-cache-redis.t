# The verdict cache with the context read from Redis: the key holds the
# slice each classifier gets from the list, so a session whose list gives
# the same last-k messages hits, and one whose list differs misses.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;

my @turn = map { qq({"role":"$_->[0]","content":"$_->[1]"}) }
           ['user', 'u1'], ['assistant', 'a1'], ['user', 'u2'],
           ['assistant', 'a2'];

# c1 and c2 share their last two messages, not the two before
redis('DEL', 'chat:c1', 'chat:c2');
redis('RPUSH', 'chat:c1', @turn);
redis('RPUSH', 'chat:c2', '{"role":"user","content":"other"}', @turn[1 .. 3]);

two_json_classifiers();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the slice read from Redis is in the key: oa (last 2) hits across the sessions, ob (last 6) does not
--- http_config
    classify_cache_zone verdicts 1m;
    classifier oa { pass /_c/oa; prompt "a?"; context 2; reply "OA blocks"; }
    classifier ob { pass /_c/ob; prompt "b?"; context 6; reply "OB blocks"; }
--- config
    location = /chat {
        classify oa ob; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_cache verdicts;
    }
    location = /_gen { internal; return 200 "$classify_session $classify_results\n"; }
    location /_c/oa { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=r94a; }
    location /_c/ob { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=r94b; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"c1"}',
'POST /chat
{"user_query":"q","session_id":"c1"}',
'POST /chat
{"user_query":"q","session_id":"c2"}',
'POST /chat
{"user_query":"q","session_id":"c2"}',
"GET /mock/count?tag=r94a",
"GET /mock/count?tag=r94b",
"GET /mock/body?tag=r94b&i=2"]
--- response_body_like eval
["^c1 oa:negative:[\\d.]+,ob:negative:[\\d.]+\$",
"^c1 oa:negative\\(cached\\):[\\d.]+,ob:negative\\(cached\\):[\\d.]+\$",
"^c2 oa:negative\\(cached\\):[\\d.]+,ob:negative:[\\d.]+\$",
"^c2 oa:negative\\(cached\\):[\\d.]+,ob:negative\\(cached\\):[\\d.]+\$",
"^1\$",
"^2\$",
'\{"role":"user","content":"other"\},\{"role":"assistant","content":"a1"\},'
 . '\{"role":"user","content":"u2"\},\{"role":"assistant","content":"a2"\},\{"role":"user","content":"q"\}\]']
--- no_error_log
[error]



=== TEST 1b: a json classifier is sent the session, so the session is in its key: the same slice in another session misses
--- http_config
    classify_cache_zone verdicts 1m;
--- config
    location = /chat {
        classify a; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_cache verdicts;
    }
    location = /_gen { internal; return 200 "$classify_session $classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r94j; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"c1"}',
'POST /chat
{"user_query":"q","session_id":"c1"}',
'POST /chat
{"user_query":"q","session_id":"c2"}',
"GET /mock/count?tag=r94j"]
--- response_body_like eval
["^c1 a:negative:[\\d.]+\$",
"^c1 a:negative\\(cached\\):[\\d.]+\$",
"^c2 a:negative:[\\d.]+\$",
"^2\$"]
--- no_error_log
[error]
