# The Redis context and classify_context_store in the Responses and
# Anthropic formats: the answer text captured from each format's stream
# and whole answer, read back at the next turn; previous_response_id with
# the context from Redis; decisions counted by format.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;

redis('DEL', map { "chat:fs$_" } 1 .. 6);
redis('RPUSH', 'chat:fs6', '{"role":"user","content":"r1"}',
      '{"role":"assistant","content":"r2"}');

two_json_classifiers();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a Responses stream's text is stored, and the next turn reads it
--- config
    location = /v1/responses {
        classify a; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=fc1g&format=responses&text=Hello,%20world!&chunks=3;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc1; }
--- request eval
['POST /v1/responses
{"model":"r","stream":true,"input":"q1","session_id":"fs1"}',
'POST /v1/responses
{"model":"r","stream":true,"input":"q2","session_id":"fs1"}',
"GET /mock/body?tag=fc1&i=2&wait=1"]
--- response_body_like eval
["response.completed", "response.completed",
'^\{"query":"q2","context":\[\{"role":"user","content":"q1"\},\{"role":"assistant","content":"Hello, world!"\}\],"session":"fs1"\}$']
--- no_error_log
[warn]



=== TEST 2: a Responses object's text is stored
--- config
    location = /v1/responses {
        classify a; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=fc2g&format=responses&text=Whole%20answer.&strict=1;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc2; }
--- request eval
['POST /v1/responses
{"model":"r","input":"q1","session_id":"fs2"}',
'POST /v1/responses
{"model":"r","input":"q2","session_id":"fs2"}',
"GET /mock/body?tag=fc2&i=2&wait=1"]
--- response_body_like eval
['"object":"response"', '"object":"response"',
'^\{"query":"q2","context":\[\{"role":"user","content":"q1"\},\{"role":"assistant","content":"Whole answer."\}\],"session":"fs2"\}$']
--- no_error_log
[warn]



=== TEST 3: an Anthropic stream's text is stored
--- config
    location = /v1/messages {
        classify a; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=fc3g&format=anthropic&text=Hello,%20world!&chunks=3;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc3; }
--- more_headers
anthropic-version: 2023-06-01
--- request eval
['POST /v1/messages
{"model":"c","stream":true,"messages":[{"role":"user","content":"q1"}],"session_id":"fs3"}',
'POST /v1/messages
{"model":"c","stream":true,"messages":[{"role":"user","content":"q2"}],"session_id":"fs3"}',
"GET /mock/body?tag=fc3&i=2&wait=1"]
--- response_body_like eval
["message_stop", "message_stop",
'^\{"query":"q2","context":\[\{"role":"user","content":"q1"\},\{"role":"assistant","content":"Hello, world!"\}\],"session":"fs3"\}$']
--- no_error_log
[warn]



=== TEST 4: an Anthropic Message's text is stored; a blocked turn stores the reply
--- config
    location = /v1/messages {
        classify a; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /block { classify b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; classify_context_store on; }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=fc4g&format=anthropic&text=Whole%20answer.&strict=1;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc4; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc4b&verdict=true; }
--- more_headers
anthropic-version: 2023-06-01
--- request eval
['POST /block
{"model":"c","messages":[{"role":"user","content":"q1"}],"session_id":"fs4"}',
'POST /v1/messages
{"model":"c","messages":[{"role":"user","content":"q2"}],"session_id":"fs4"}',
'POST /v1/messages
{"model":"c","messages":[{"role":"user","content":"q3"}],"session_id":"fs4"}',
"GET /mock/body?tag=fc4&i=1&wait=1",
"GET /mock/body?tag=fc4&i=2&wait=1"]
--- response_body_like eval
['"text":"B blocks"', '"type":"message"', '"type":"message"',
'^\{"query":"q2","context":\[\{"role":"user","content":"q1"\},\{"role":"assistant","content":"B blocks"\}\],"session":"fs4"\}$',
'^\{"query":"q3","context":\[\{"role":"user","content":"q2"\},\{"role":"assistant","content":"Whole answer."\}\],"session":"fs4"\}$']
--- no_error_log
[warn]



=== TEST 5: an Anthropic stream cut before message_stop stores nothing, and says why
--- config
    location = /v1/messages {
        classify a; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_store on;
    }
    location = /_gen {
        internal;
        return 200 'event: message_start\ndata: {"type":"message_start","message":{}}\n\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"half"}}\n\n';
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc5; }
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"model":"c","stream":true,"messages":[{"role":"user","content":"q1"}],"session_id":"fs5"}
--- response_body_like: half
--- error_log
classify: answer not stored in "chat:fs5": the stream ended without "data: [DONE]", response.completed or message_stop



=== TEST 6: previous_response_id, no history in the body: the context comes from Redis
--- config
    location = /v1/responses { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc6; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc6b; }
--- request eval
['POST /v1/responses
{"model":"r","previous_response_id":"resp_abc","input":"and then?","session_id":"fs6"}',
"GET /mock/body?tag=fc6&wait=1"]
--- response_body eval
["passed\n",
'{"query":"and then?","context":[{"role":"user","content":"r1"},{"role":"assistant","content":"r2"}],"session":"fs6"}']



=== TEST 7: decisions counted by the client's wire format
--- http_config
    classify_metrics_zone formats033 1m;
--- config
    location = /v1 { classify a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location = /status { classify_status; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=fc7; }
--- request eval
['POST /v1
{"messages":[{"role":"user","content":"q"}]}',
'POST /v1
{"input":"q"}',
'POST /v1
{"input":"q"}',
'POST /v1
{"user_query":"q"}',
"GET /status",
"GET /status?format=json"]
--- response_body_like eval
["passed", "passed", "passed", "passed",
'classify_format_decisions_total\{format="openai"\} 1\nclassify_format_decisions_total\{format="fields"\} 1\nclassify_format_decisions_total\{format="responses"\} 2\nclassify_format_decisions_total\{format="anthropic"\} 0\n',
'"formats":\{"openai":1,"fields":1,"responses":2,"anthropic":0\}']
