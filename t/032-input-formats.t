# What the classifiers judge in each wire format: the newest user turn's
# text (text parts joined, images and files skipped), the conversation
# before it as context, never the application's system prompt; the same
# query and context at every step of an agent's tool loop; and bad input
# refused with a 400 in the format's own error shape.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<"_EOC_" . ($block->http_config // ''));
    classifier j { pass /_c/j; protocol json; context 6; reply "J"; }
_EOC_
    $block->set_value('config', <<"_EOC_" . ($block->config // ''));
    location /mock/ { proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT/_mock/; }
    location = /_gen { internal; return 200 "passed \$classify_format\\n"; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: responses, "input" a string: the query, no context, $classify_format
--- config
    location = /v1/responses { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f1; }
--- request eval
['POST /v1/responses
{"model":"gpt-r","instructions":"You are a pirate.","input":"How many prayers?"}',
"GET /mock/body?tag=f1&wait=1"]
--- response_body eval
["passed responses\n",
'{"query":"How many prayers?","context":[],"session":""}']
--- no_error_log
[error]



=== TEST 2: responses, "input" items: roles, text parts joined, images skipped, no instructions or developer words
--- config
    location = /v1/responses { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f2; }
--- request eval
['POST /v1/responses
{"model":"gpt-r","instructions":"secret instructions","input":[{"role":"developer","content":"developer words"},{"role":"user","content":"u1"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"a1","annotations":[]}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"look at"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"},{"type":"input_file","file_id":"f"},{"type":"input_text","text":"this"}]}]}',
"GET /mock/body?tag=f2&wait=1"]
--- response_body eval
["passed responses\n",
'{"query":"look at\nthis","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}']



=== TEST 3: anthropic: top-level system unseen, text blocks joined, image skipped
--- config
    location = /v1/messages { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f3; }
--- more_headers
anthropic-version: 2023-06-01
--- request eval
['POST /v1/messages
{"model":"claude-x","max_tokens":10,"system":[{"type":"text","text":"secret system"}],"messages":[{"role":"user","content":"u1"},{"role":"assistant","content":[{"type":"text","text":"a1"}]},{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"text","text":"what is"},{"type":"document","source":{"type":"text","data":"doc"}},{"type":"text","text":"this?"}]}]}',
"GET /mock/body?tag=f3&wait=1"]
--- response_body eval
["passed anthropic\n",
'{"query":"what is\nthis?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}']



=== TEST 4: an openai classifier sees its own prompt, never the client's system prompt
--- http_config
    classifier o { pass /_c/o; prompt "Is it off-topic?"; context 6; reply "O"; }
--- config
    location = /v1/messages { classify o; classify_pass /_gen; classify_input anthropic; }
    location /_c/o { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f4; }
--- request eval
['POST /v1/messages
{"model":"claude-x","system":"secret system","messages":[{"role":"user","content":"q"}]}',
"GET /mock/body?tag=f4&wait=1"]
--- response_body eval
["passed anthropic\n",
'{"temperature":0,"max_tokens":5,"messages":[{"role":"system","content":"Is it off-topic?"},{"role":"user","content":"q"}]}']



=== TEST 5: an Anthropic tool loop: every step shows the classifier the same query and context
--- config
    location = /v1/messages { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f5; }
--- more_headers
anthropic-version: 2023-06-01
--- request eval
['POST /v1/messages
{"model":"c","messages":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"}]}',
'POST /v1/messages
{"model":"c","messages":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"t1","name":"weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"rain"}]}]}',
'POST /v1/messages
{"model":"c","messages":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"rain"}]},{"type":"text","text":"(system reminder)"}]},{"role":"assistant","content":[{"type":"tool_use","id":"t2","name":"forecast","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"sun"}]}]}',
"GET /mock/body?tag=f5&i=1&wait=1",
"GET /mock/body?tag=f5&i=2&wait=1",
"GET /mock/body?tag=f5&i=3&wait=1"]
--- response_body eval
["passed anthropic\n", "passed anthropic\n", "passed anthropic\n",
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}',
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}',
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}']



=== TEST 6: a Responses tool loop: function calls and their outputs change nothing
--- config
    location = /v1/responses { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f6; }
--- request eval
['POST /v1/responses
{"model":"r","input":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"}]}',
'POST /v1/responses
{"model":"r","input":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"},{"type":"reasoning","id":"rs1","summary":[]},{"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call_output","call_id":"c1","output":"rain"}]}',
'POST /v1/responses
{"model":"r","input":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"},{"type":"function_call","call_id":"c1","name":"weather","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"rain"},{"type":"function_call","call_id":"c2","name":"forecast","arguments":"{}"},{"type":"function_call_output","call_id":"c2","output":"sun"}]}',
"GET /mock/body?tag=f6&i=1&wait=1",
"GET /mock/body?tag=f6&i=2&wait=1",
"GET /mock/body?tag=f6&i=3&wait=1"]
--- response_body eval
["passed responses\n", "passed responses\n", "passed responses\n",
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}',
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}',
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}']



=== TEST 7: a chat completions tool loop: assistant tool_calls and tool messages change nothing
--- config
    location = /v1/chat/completions { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f7; }
--- request eval
['POST /v1/chat/completions
{"model":"g","messages":[{"role":"system","content":"s"},{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"}]}',
'POST /v1/chat/completions
{"model":"g","messages":[{"role":"system","content":"s"},{"role":"user","content":"u1"},{"role":"assistant","content":"a1"},{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"rain"}]}',
"GET /mock/body?tag=f7&i=1&wait=1",
"GET /mock/body?tag=f7&i=2&wait=1"]
--- response_body eval
["passed openai\n", "passed openai\n",
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}',
'{"query":"weather in Paris?","context":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"session":""}']



=== TEST 8: previous_response_id: the history is the backend's, the body has none
--- config
    location = /v1/responses { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f8; }
--- request eval
['POST /v1/responses
{"model":"r","previous_response_id":"resp_1","input":[{"type":"function_call_output","call_id":"c1","output":"rain"},{"role":"user","content":"and tomorrow?"}]}',
"GET /mock/body?tag=f8&wait=1"]
--- response_body eval
["passed responses\n",
'{"query":"and tomorrow?","context":[],"session":""}']



=== TEST 9: classify_input responses takes "input" even beside "messages"
--- config
    location = /x { classify j; classify_pass /_gen; classify_input responses; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f9; }
--- request eval
['POST /x
{"messages":[{"role":"user","content":"not this"}],"input":"this"}',
"GET /mock/body?tag=f9&wait=1"]
--- response_body eval
["passed responses\n",
'{"query":"this","context":[],"session":""}']



=== TEST 10: bad Anthropic input: a 400 in Anthropic's error shape
--- config
    location = /v1/messages { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f10; }
--- more_headers
anthropic-version: 2023-06-01
--- request eval
["POST /v1/messages\nnot json",
"POST /v1/messages\n{\"model\":\"c\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}]}",
"POST /v1/messages\n{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{}}]}]}",
"POST /v1/messages\n{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":\"x\"}]}]}",
"POST /v1/messages\n{\"model\":\"c\"}",
"GET /mock/count?tag=f10"]
--- error_code eval
[400, 400, 400, 400, 400, 200]
--- response_body eval
[qq({"type":"error","error":{"type":"invalid_request_error","message":"request body is not valid JSON"}}\n),
qq({"type":"error","error":{"type":"invalid_request_error","message":"no \\"user\\" message in \\"messages\\""}}\n),
qq({"type":"error","error":{"type":"invalid_request_error","message":"the last \\"user\\" message has no text content"}}\n),
qq({"type":"error","error":{"type":"invalid_request_error","message":"no \\"user\\" message in \\"messages\\""}}\n),
qq({"type":"error","error":{"type":"invalid_request_error","message":"no query: the query field is missing, empty or not a string"}}\n),
"0\n"]



=== TEST 11: an Anthropic client's 405 in Anthropic's shape too
--- config
    location = /v1/messages { classify j; classify_pass /_gen; }
--- more_headers
anthropic-version: 2023-06-01
--- request
GET /v1/messages
--- error_code: 405
--- response_body
{"type":"error","error":{"type":"invalid_request_error","message":"method not allowed: use POST"}}



=== TEST 11a: ... and its chunked body over client_max_body_size: request_too_large
--- config
    location = /v1/messages { classify j; classify_pass /_gen; client_max_body_size 100; }
--- raw_request eval
my $body = '{"messages":[{"role":"user","content":"' . ("x" x 300) . '"}]}';
"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "anthropic-version: 2023-06-01\r\nTransfer-Encoding: chunked\r\n\r\n"
. sprintf("%x", length $body) . "\r\n$body\r\n0\r\n\r\n"
--- error_code: 413
--- response_body
{"type":"error","error":{"type":"request_too_large","message":"request body over client_max_body_size"}}



=== TEST 12: classify_input anthropic: Anthropic's shape without the header
--- config
    location = /v1/messages { classify j; classify_pass /_gen; classify_input anthropic; }
--- request eval
["POST /v1/messages\n{\"model\":\"c\"}",
"POST /v1/messages\n[]"]
--- error_code eval
[400, 400]
--- response_body eval
[qq({"type":"error","error":{"type":"invalid_request_error","message":"no \\"messages\\" array in the request body"}}\n),
qq({"type":"error","error":{"type":"invalid_request_error","message":"request body is not a JSON object"}}\n)]



=== TEST 13: bad Responses input: a 400 in OpenAI's error shape
--- config
    location = /v1/responses { classify j; classify_pass /_gen; }
    location = /strict { classify j; classify_pass /_gen; classify_input responses; }
--- request eval
["POST /v1/responses\n{\"input\":\"\"}",
"POST /v1/responses\n{\"input\":42}",
"POST /v1/responses\n{\"input\":[{\"role\":\"assistant\",\"content\":\"a\"},{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":\"o\"}]}",
"POST /v1/responses\n{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"x\"}]}]}",
"POST /strict\n{\"messages\":[]}"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[qq({"error":{"message":"\\"input\\" is an empty string","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"no \\"input\\" string or array in the request body","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"no \\"user\\" message in \\"input\\"","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"the last \\"user\\" message in \\"input\\" has no text content","type":"invalid_request_error","code":400}}\n),
qq({"error":{"message":"no \\"input\\" string or array in the request body","type":"invalid_request_error","code":400}}\n)]



=== TEST 14: the skipped parts are counted in a debug line
--- config
    location = /v1/responses { classify j; classify_pass /_gen; }
    location /_c/j { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=f14; }
--- request
POST /v1/responses
{"input":[{"role":"user","content":[{"type":"input_text","text":"q"},{"type":"input_image","image_url":"x"},{"type":"input_audio","input_audio":{}}]}]}
--- response_body
passed responses
--- error_log
classify: responses body, 0 context messages, 2 non-text parts skipped
