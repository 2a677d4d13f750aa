# Conversation context from a real redis-server: fetched once per request,
# sliced per classifier, in both list orders; stored back (canned reply and
# streamed answer) with a cap and a TTL; Redis down, killed and back.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use Time::HiRes qw(sleep);

my $u1 = '{"role":"user","content":"u1"}';
my $a1 = '{"role":"assistant","content":"a1"}';
my $u2 = '{"role":"user","content":"u2"}';
my $a2 = '{"role":"assistant","content":"a2"}';

# the list of session s1, written oldest first (RPUSH) and newest first
redis('DEL', 'chat:s1', 'lp:s1', 'chat:s3', 'chat:s4');
redis('RPUSH', 'chat:s1', $u1, $a1, 'not json', $u2, $a2);
redis('LPUSH', 'lp:s1', $u1, $a1, $u2, $a2);

two_json_classifiers();

no_shuffle();
run_tests();

# what the blocks above stored
is_deeply(redis('LRANGE', 'chat:s3', 0, -1),
          ['{"role":"user","content":"q3"}',
           '{"role":"assistant","content":"Hello, world!"}',
           '{"role":"user","content":"q4"}',
           '{"role":"assistant","content":"Hello, world!"}'],
          "stored turns: capped at 4, the streamed answer as the client saw it");

my $ttl = redis('TTL', 'chat:s3');
ok($ttl > 0 && $ttl <= 60, "stored list expires (TTL $ttl)");

is_deeply(redis('LRANGE', 'chat:s4', 0, -1), [],
          "an interrupted stream stores nothing");


__DATA__

=== TEST 1: fields input: one LRANGE, each classifier its own last-k slice, oldest first
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; }
    location = /_gen { internal; return 200 "passed $classify_session\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r1a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r1b; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=r1a&wait=1",
"GET /mock/body?tag=r1b&wait=1"]
--- response_body eval
["passed s1\n",
'{"query":"q","context":[{"role":"user","content":"u2"},{"role":"assistant","content":"a2"}],"session":"s1"}',
'{"query":"q","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"u2"},{"role":"assistant","content":"a2"}],"session":"s1"}']



=== TEST 2: an element that is not JSON is skipped and logged
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; }
    location = /_gen { internal; return 200 "passed $classify_session\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r2a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r2b; }
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- response_body
passed s1
--- error_log
classify: skipped 1 element(s) of "chat:s1" that are not {"role","content"} JSON



=== TEST 3: a newest-first list (LPUSH) with classify_context_order lpush and a key of its own
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_redis_key lp:$classify_session;
        classify_context_order lpush;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r3a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r3b; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=r3a&wait=1",
"GET /mock/body?tag=r3b&wait=1"]
--- response_body eval
["passed\n",
'{"query":"q","context":[{"role":"user","content":"u2"},{"role":"assistant","content":"a2"}],"session":"s1"}',
'{"query":"q","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"u2"},{"role":"assistant","content":"a2"}],"session":"s1"}']



=== TEST 4: an openai body with its own history does not read Redis
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r4a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r4b; }
--- request eval
['POST /chat
{"session_id":"s1","messages":[{"role":"user","content":"x1"},{"role":"assistant","content":"y1"},{"role":"user","content":"q"}]}',
"GET /mock/body?tag=r4a&wait=1"]
--- response_body eval
["passed\n",
'{"query":"q","context":[{"role":"user","content":"x1"},{"role":"assistant","content":"y1"}],"session":"s1"}']



=== TEST 5: store: a canned reply is stored with the user turn
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
        classify_context_max 4;
        classify_context_ttl 60s;
        classify_reply_format text;
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r5a&verdict=false; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r5b&verdict=true; }
--- request eval
['POST /chat
{"user_query":"q1","session_id":"s3"}',
'POST /chat
{"user_query":"q2","session_id":"s3"}']
--- response_body eval
["B blocks", "B blocks"]



=== TEST 6: store: the streamed answer is stored as the client saw it; the next turn reads it back
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
        classify_context_max 4;
        classify_context_ttl 60s;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=r6g&text=Hello,%20world!&chunks=3&gap=0.05;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r6a&verdict=false; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r6b&verdict=false; }
--- request eval
['POST /chat
{"user_query":"q3","session_id":"s3"}',
'POST /chat
{"user_query":"q4","session_id":"s3"}',
"GET /mock/body?tag=r6b&i=2&wait=1"]
--- response_body_like eval
["Hell.*o, w.*orld!.*\\[DONE\\]", "Hell.*o, w.*orld!",
'^\{"query":"q4","context":\[\{"role":"user","content":"q2"\},\{"role":"assistant","content":"B blocks"\},\{"role":"user","content":"q3"\},\{"role":"assistant","content":"Hello, world!"\}\],"session":"s3"\}$']



=== TEST 7: an interrupted generation stores nothing, and says why
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=r6g&mode=reset;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r6a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r6b; }
--- request
POST /chat
{"user_query":"q","session_id":"s4"}
--- ignore_response
--- error_log eval
qr/classify: answer not stored in "chat:s4": the (response was interrupted|stream ended without "data: \[DONE\]")/



=== TEST 8: a Redis slower than its timeout: the request goes on without context
--- init
main::wait_error_log(qr/classify_redis "[^"]+": script -> ready/, 10);
system("redis-cli -p $ENV{TEST_NGINX_REDIS_PORT} DEBUG SLEEP 0.6 >/dev/null 2>&1 &"); Time::HiRes::sleep(0.1);
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=200ms; }
    location = /_gen { internal; return 200 "passed after $classify_time ms\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r12a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r12b; }
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- response_body_like: ^passed after
--- error_log eval
qr/classify_redis "[^"]+": reading "chat:s1" timed out/



=== TEST 9: a slow Redis never blocks the worker: another request is answered meanwhile
--- init
system("redis-cli -p $ENV{TEST_NGINX_REDIS_PORT} DEBUG SLEEP 0.8 >/dev/null 2>&1 &"); Time::HiRes::sleep(0.1);
system("curl -s -m 3 -o /dev/null -d '{\"user_query\":\"q\",\"session_id\":\"s1\"}' http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/chat &"); Time::HiRes::sleep(0.1);
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s; }
    location = /_gen { internal; return 200 "passed\n"; }
    location = /other { return 200 "answered while Redis sleeps\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r13a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r13b; }
--- request
GET /other
--- timeout: 0.3
--- response_body
answered while Redis sleeps



=== TEST 10: a unix socket, and db= selects the database on connect
--- init
main::redis_db(3, 'DEL', 'chat:s9');
main::redis_db(3, 'RPUSH', 'chat:s9', '{"role":"user","content":"in db 3"}');
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis unix:$TEST_NGINX_REDIS_SOCKET db=3; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r10a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r10b; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"s9"}',
"GET /mock/body?tag=r10a&wait=1"]
--- response_body eval
["passed\n", '{"query":"q","context":[{"role":"user","content":"in db 3"}],"session":"s9"}']



=== TEST 11: password= is sent with AUTH on connect (this Redis has none: the refusal is logged)
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=secret; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r11a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r11b; }
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- response_body
passed
--- error_log eval
qr/classify_redis "127\.0\.0\.1:\d+ password=\.\.\.": AUTH failed: ERR AUTH/
--- no_error_log
secret

