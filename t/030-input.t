# What the classifiers and the generation receive: the JSON the gate builds
# for each classifier (its own last-k slice of the context), the client's
# exact body at the generation, and the answer to bad input.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: openai input: each classifier gets its prompt, its last-k context and the query
--- http_config
    classifier a { pass /_c/a; model cm; prompt "Is it off-topic?"; context 2; reply "A"; }
    classifier b { pass /_c/b; prompt "Is it fiqh?"; context 6; max_tokens 3; reply "B"; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in1a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in1b; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
['POST /chat
{"model":"gpt","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"u2 \"quoted\"\nline"},{"role":"assistant","content":[{"type":"text","text":"a2"}]},{"role":"user","content":"u3?"}]}',
"GET /mock/body?tag=in1a&wait=1",
"GET /mock/body?tag=in1b&wait=1"]
--- response_body eval
["passed\n",
'{"model":"cm","temperature":0,"max_tokens":5,"messages":[{"role":"system","content":"Is it off-topic?"},{"role":"user","content":"u2 \"quoted\"\nline"},{"role":"assistant","content":"a2"},{"role":"user","content":"u3?"}]}',
'{"temperature":0,"max_tokens":3,"messages":[{"role":"system","content":"Is it fiqh?"},{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"u2 \"quoted\"\nline"},{"role":"assistant","content":"a2"},{"role":"user","content":"u3?"}]}']
--- no_error_log
[error]



=== TEST 2: the classifier request carries JSON and no client header
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in2; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- more_headers
Cookie: secret=1
Authorization: Bearer client-token
--- request eval
['POST /chat
{"user_query":"q"}',
"GET /mock/headers?tag=in2&wait=1"]
--- response_body_like eval
["passed", "(?si)\\A(?!.*cookie)(?!.*client-token).*content-type: application/json.*\\z"]



=== TEST 3: json protocol: query, context slice and session
--- http_config
    classifier j { pass /_c/j; protocol json; context 1; reply "J"; }
--- config
    location = /chat { classify j; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=in3&verdict=false; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
['POST /chat
{"session_id":"sess-9","messages":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"u2"}]}',
"GET /mock/body?tag=in3&wait=1"]
--- response_body eval
["passed\n",
'{"query":"u2","context":[{"role":"assistant","content":"a1"}],"session":"sess-9"}']



=== TEST 4: json protocol: a true verdict blocks
--- http_config
    classifier j { pass /_c/j; protocol json; reply "J blocks"; }
--- config
    location = /chat { classify j; classify_pass /_gen; classify_reply_format text; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=in4&verdict=true; }
--- request
POST /chat
{"user_query":"q"}
--- response_headers
X-Classify-Verdict: j
--- response_body chomp
J blocks



=== TEST 5: fields input with custom field names and classify_session
--- http_config
    classifier j { pass /_c/j; protocol json; reply "J"; }
--- config
    location = /chat {
        classify j; classify_pass /_gen;
        classify_input fields;
        classify_query_field q;
        classify_session_field sid;
        classify_session $http_x_session_id;
    }
    location = /_gen { internal; return 200 "passed $classify_session\n"; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=in5; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- more_headers
X-Session-Id: from-header
--- request eval
['POST /chat
{"q":"what time is it","sid":"from-body","messages":"not used"}',
"GET /mock/body?tag=in5&wait=1"]
--- response_body eval
["passed from-header\n",
'{"query":"what time is it","context":[],"session":"from-header"}']



=== TEST 6: the generation receives the client's exact body, and its stream
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
    location @gen {
        rewrite ^ /v1/generate?tag=in6&chunks=3 break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in6a; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
['POST /chat
{"model":"gpt","stream":true,"messages":[{"role":"user","content":"salaam \u00e9 \ud83d\ude00 \"x\""}],"extra":{"k":[1,2,3]}}',
"GET /mock/body?tag=in6&wait=1"]
--- response_headers_like eval
["Content-Type: text/event-stream", ""]
--- response_body_like eval
['^(data: \{[^\n]*"content":"chunk\d+ "[^\n]*\n\n){3}data: \{[^\n]*"finish_reason":"stop"[^\n]*\n\ndata: \[DONE\]\n\n$',
'^' . quotemeta('{"model":"gpt","stream":true,"messages":[{"role":"user","content":"salaam \u00e9 \ud83d\ude00 \"x\""}],"extra":{"k":[1,2,3]}}') . '$']



=== TEST 7: the generation really streams: 4 events 0.3 s apart, 0.6 s client timeout
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=in7&chunks=4&gap=0.3;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in7a; }
--- request
POST /chat
{"stream":true,"messages":[{"role":"user","content":"u"}]}
--- timeout: 0.6
--- response_headers
Transfer-Encoding: chunked
! Content-Length
--- response_body_like: chunk1 .*chunk2 .*chunk3 .*chunk4 .*\[DONE\]



=== TEST 8: a body nginx buffered to a temporary file is read like one in memory
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    client_body_buffer_size 1k;
    location = /chat { classify a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in8; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
"POST /chat\n{\"user_query\":\"" . ("long " x 2000) . "end\"}"
--- response_body
passed
--- error_log
a client request body is buffered to a temporary file



=== TEST 9: ... and the classifier got the whole query from it
--- request
GET /mock/body?tag=in8&wait=1
--- response_body_like: "content":"(long ){2000}end"\}\]\}$



=== TEST 10: a chunked request body
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in9; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- raw_request eval
"POST /chat HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
c\r
{\"user_query\r
8\r
\":\"hello\r
2\r
\"}\r
0\r
\r
"
--- response_body
passed



=== TEST 11: method other than POST: 405 with a JSON error
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- request
GET /chat
--- error_code: 405
--- response_headers
Content-Type: application/json
Allow: POST
--- response_body
{"error":{"message":"method not allowed: use POST","type":"invalid_request_error","code":405}}



=== TEST 12: bad bodies get a 400 naming the problem, and no classifier runs
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in11; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
["POST /chat\nnot json",
"POST /chat\n[1,2]",
"POST /chat\n{\"user_query\":42}",
"POST /chat\n{\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}",
"POST /chat\n{\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}",
"POST /chat\n",
"GET /mock/count?tag=in11"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 200]
--- response_body eval
[qq({"error":{"message":"request body is not valid JSON","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"request body is not a JSON object","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"no query: the query field is missing, empty or not a string","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"no \\"user\\" message in \\"messages\\"","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"the last \\"user\\" message has no text content","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"empty request body","type":"invalid_request_error","code":400}}\n),
"0\n"]



=== TEST 13: a body over client_max_body_size: 413
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; client_max_body_size 100; }
--- request eval
"POST /chat\n{\"user_query\":\"" . ("x" x 200) . "\"}"
--- error_code: 413



=== TEST 14: bad session ids: 400, never used
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "A"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- request eval
["POST /chat\n{\"user_query\":\"q\",\"session_id\":\"has space\"}",
"POST /chat\n{\"user_query\":\"q\",\"session_id\":\"" . ("s" x 129) . "\"}",
"POST /chat\n{\"user_query\":\"q\",\"session_id\":\"tab\\there\"}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[qq({"error":{"message":"invalid session id: at most 128 printable bytes, no spaces","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"invalid session id: at most 128 printable bytes, no spaces","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"invalid session id: at most 128 printable bytes, no spaces","type":"invalid_request_error","code":400}}\n)]
