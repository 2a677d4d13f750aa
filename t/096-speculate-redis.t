# classify_speculate with the conversation context in Redis: the
# generation starts at once, before the context read (it is sent the
# client's body, never the context); classify_context_store stores the
# released answer as it stores a pass's; a Redis outage that refuses the
# request closes the generation.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use JSON::PP ();
use Time::HiRes qw(sleep);

redis('DEL', 'chat:p1', 'chat:p2', 'chat:p3', 'chat:p4');
redis('RPUSH', 'chat:p1', '{"role":"user","content":"u1"}',
      '{"role":"assistant","content":"a1"}');

two_json_classifiers();

no_shuffle();
run_tests();

is_deeply(redis('LRANGE', 'chat:p2', 0, -1),
          ['{"role":"user","content":"q1"}',
           '{"role":"assistant","content":"Hello, world!"}',
           '{"role":"user","content":"q2"}',
           '{"role":"assistant","content":"Y blocks"}'],
          "stored turns: the released stream as the client saw it, then "
          . "the reply of a block");

is_deeply(redis('LRANGE', 'chat:p4', 0, -1), [],
          "a released stream cut off stores nothing");


__DATA__

=== TEST 1: the generation starts at once, while Redis still sleeps on the context read; the classifiers after it
--- init
system("redis-cli -p $ENV{TEST_NGINX_REDIS_PORT} DEBUG SLEEP 0.5 >/dev/null 2>&1 &"); Time::HiRes::sleep(0.1);
--- config
    location = /chat {
        classify a b; classify_pass /_gen; classify_speculate on;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=3s;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=p1g&chunks=2;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p1a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p1b; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"p1"}',
"GET /mock/records?tag=*",
"GET /mock/body?tag=p1a&wait=1"]
--- response_body_filters eval
[[], [sub { my %r = map { $_->{tag} => $_ } @{ JSON::PP::decode_json($_[0]) };
            $r{p1g}{start} < $r{p1a}{start} - 0.25
            ? "generation first\n"
            : "generation at $r{p1g}{start}, classifier at $r{p1a}{start}\n" }],
 []]
--- response_body_like eval
['"content":"chunk2 ".*data: \[DONE\]', "^generation first\n\$",
 '^\{"query":"q","context":\[\{"role":"user","content":"u1"\},\{"role":"assistant","content":"a1"\}\],"session":"p1"\}$']
--- no_error_log
[error]



=== TEST 2: context_store: the released stream is stored as a pass's, the next turn's block as a reply
--- http_config
    classifier y { pass /_c/y; protocol json; reply "Y blocks"; }
--- config
    location /chat {
        classify a b; classify_pass /_gen; classify_speculate on;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
        classify_context_ttl 60s;
        classify_reply_format text;
        location = /chat/y { classify a y; }
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=p2g&text=Hello,%20world!&chunks=3&gap=0.05;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p2a&verdict=false&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p2b&verdict=false; }
    location /_c/y { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p2y&verdict=true; }
--- request
POST /chat
{"user_query":"q1","session_id":"p2"}
--- response_body_like: Hell.*o, w.*orld!.*\[DONE\]
--- wait: 0.2
--- no_error_log
[error]
answer not stored



=== TEST 3: ... (the block of the next turn)
--- request
POST /chat/y
{"user_query":"q2","session_id":"p2"}
--- response_body: Y blocks
--- wait: 0.2
--- no_error_log
[error]



=== TEST 4: Redis too slow with classify_redis_on_error block: the 503 closes the generation too
--- init
system("redis-cli -p $ENV{TEST_NGINX_REDIS_PORT} DEBUG SLEEP 0.6 >/dev/null 2>&1 &"); Time::HiRes::sleep(0.1);
--- config
    location = /chat {
        classify a b; classify_pass /_gen; classify_speculate on;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=200ms;
        classify_redis_on_error block;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=p4g&delay=3;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p4a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p4b; }
--- request
POST /chat
{"user_query":"q","session_id":"p3"}
--- error_code: 503
--- response_body_like: the conversation context is unavailable
--- error_log eval
qr/classify_redis "[^"]+": reading "chat:p3" timed out/



=== TEST 5: ... its backend saw 499 at the refusal (0.2 s), not after 3 s
--- request
GET /mock/log?tag=p4g&wait=2
--- response_body_like: ^499 0\.[1-5]\d* /v1/generate



=== TEST 6: context_store: a released stream cut off stores nothing, and says why
--- config
    location = /chat {
        classify a b; classify_pass /_gen; classify_speculate on;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=p6g&mode=reset;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p6a&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=p6b; }
--- request
POST /chat HTTP/1.0
{"user_query":"q","session_id":"p4"}
--- response_body_like: ^data: .*"content":"chunk1 "
--- error_log eval
qr/classify: answer not stored in "chat:p4": the (response was interrupted|stream ended without "data: \[DONE\]")/
