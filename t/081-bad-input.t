# The rest of the bad-input table: a body in many small TCP writes, broken
# UTF-8, NUL characters, a 1 MB query, an oversize body answered in JSON.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
_EOC_
    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
    location = /_gen { internal; return 200 "passed\n"; }
    location = /chat { classify a; classify_pass /_gen; }
    location = /413.json {
        internal;
        default_type application/json;
        return 200 '{"error":{"message":"request body too large","type":"invalid_request_error","code":413}}\n';
    }
_EOC_
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a body arriving in 8 writes, 30 ms apart
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b1; }
--- request eval
my $body = '{"user_query":"split across many packets"}';
[["POST /chat\n",
  map { { value => $_, delay_before => 0.03 } } unpack("(A6)*", $body)]]
--- response_body
passed



=== TEST 2: ... and the classifier got the whole query
--- request
GET /mock/body?tag=b1&wait=1
--- response_body_like: "content":"split across many packets"\}\]\}$



=== TEST 3: broken UTF-8: 400, named
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b3; }
--- request eval
"POST /chat\n{\"user_query\":\"caf\xc3\x28 \xff\"}"
--- error_code: 400
--- response_body
{"error":{"message":"request body is not valid UTF-8","type":"invalid_request_error","code":400}}



=== TEST 3b: UTF-8 a lenient decoder would take: overlong, surrogate, above U+10FFFF, a lead byte as continuation, a cut sequence
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b3b; }
--- request eval
[map { "POST /chat\n{\"user_query\":\"a${_}b\"}" }
     "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
     "\xc3\xc3", "\xe2\x82"]
--- error_code eval
[(400) x 6]
--- response_body eval
[('{"error":{"message":"request body is not valid UTF-8","type":"invalid_request_error","code":400}}' . "\n") x 6]



=== TEST 3c: a raw NUL byte inside the query: 400, like an escaped one
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b3c; }
--- request eval
"POST /chat\n{\"user_query\":\"abc\x00def\"}"
--- error_code: 400
--- response_body
{"error":{"message":"NUL characters (\\u0000) are not allowed","type":"invalid_request_error","code":400}}



=== TEST 4: an escaped NUL would cut the query short: 400, named
--- request
POST /chat
{"user_query":"abc\u0000def"}
--- error_code: 400
--- response_body
{"error":{"message":"NUL characters (\\u0000) are not allowed","type":"invalid_request_error","code":400}}



=== TEST 5: an escaped backslash before "u0000" is text, not a NUL
--- request
POST /chat
{"user_query":"path\\u0000x"}
--- response_body
passed



=== TEST 6: valid UTF-8 in every length passes
--- request
POST /chat
{"user_query":"é ش 中 😀"}
--- response_body
passed



=== TEST 7: a 1 MB query goes to the classifier whole
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b7; }
--- request eval
["POST /chat\n{\"user_query\":\"" . ("x" x 1048576) . "\"}", "GET /mock/log?tag=b7&wait=1"]
--- response_body_like eval
["^passed\n\$", "^200 "]



=== TEST 7b: the classifier location's client_max_body_size does not refuse the body the gate builds
--- config
    location /_c/a {
        internal;
        client_max_body_size 1k;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b7b&verdict=yes;
    }
--- request eval
["POST /chat\n{\"user_query\":\"" . ("y" x 4000) . "\"}", "GET /mock/log?tag=b7b&wait=1"]
--- response_body_like eval
['^A blocks', "^200 "]
--- no_error_log
too large body



=== TEST 8: a body over client_max_body_size: 413 (nginx's own, before any content handler)
--- config
    location = /small { classify a; classify_pass /_gen; client_max_body_size 1k; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b8; }
--- request eval
"POST /small\n{\"user_query\":\"" . ("x" x 2000) . "\"}"
--- error_code: 413



=== TEST 9: a chunked body over client_max_body_size: 413 in JSON from the gate
--- config
    location = /small { classify a; classify_pass /_gen; client_max_body_size 100; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b9; }
--- raw_request eval
my $body = '{"user_query":"' . ("x" x 300) . '"}';
"POST /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Transfer-Encoding: chunked\r\n\r\n"
. sprintf("%x", length $body) . "\r\n$body\r\n0\r\n\r\n"
--- error_code: 413
--- response_body
{"error":{"message":"request body over client_max_body_size","type":"invalid_request_error","code":413}}



=== TEST 9a: ... on a keep-alive connection the 413 closes it: the unread rest of the body is never parsed as a next request
--- config
    location = /small { classify a; classify_pass /_gen; client_max_body_size 100; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b9a; }
--- raw_request eval
my $body = '{"user_query":"' . ("x" x 300) . '"}';
"POST /small HTTP/1.1\r\nHost: localhost\r\n"
. "Transfer-Encoding: chunked\r\n\r\n"
. sprintf("%x", length $body) . "\r\n$body\r\n0\r\n\r\n"
--- timeout: 3
--- error_code: 413
--- raw_response_headers_like: \r\nConnection: close\r\n
--- response_body
{"error":{"message":"request body over client_max_body_size","type":"invalid_request_error","code":413}}
--- no_error_log
client sent invalid method
[alert]



=== TEST 9b: a chunked body that grows past the limit only after the gate's first read: nginx's own 413 page, connection closed
--- config
    location = /small { classify a; classify_pass /_gen; client_max_body_size 100; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b9b; }
--- more_headers
Transfer-Encoding: chunked
Connection: keep-alive
--- request eval
[["POST /small\nf\r\n{\"user_query\":\"\r\n",
  { value => sprintf("%x", 300) . "\r\n" . ("x" x 300) . "\r\n", delay_before => 0.2 },
  "2\r\n\"}\r\n0\r\n\r\n"]]
--- timeout: 3
--- error_code: 413
--- raw_response_headers_like: \r\nConnection: close\r\n
--- response_body_like: <title>413 Request Entity Too Large</title>
--- error_log
client intended to send too large chunked body



=== TEST 9c: error_page 413 gives JSON when Content-Length announces too much
--- config
    location = /small {
        classify a; classify_pass /_gen; client_max_body_size 100;
        error_page 413 /413.json;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b9c; }
--- raw_request eval
"POST /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 400\r\n\r\n"
. ("x" x 400)
--- timeout: 3
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body
{"error":{"message":"request body too large","type":"invalid_request_error","code":413}}



=== TEST 9d: ... and when a chunked body grows past the limit late
--- config
    location = /small {
        classify a; classify_pass /_gen; client_max_body_size 100;
        error_page 413 /413.json;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b9d; }
--- more_headers
Transfer-Encoding: chunked
Connection: keep-alive
--- request eval
[["POST /small\nf\r\n{\"user_query\":\"\r\n",
  { value => sprintf("%x", 300) . "\r\n" . ("x" x 300) . "\r\n", delay_before => 0.2 },
  "2\r\n\"}\r\n0\r\n\r\n"]]
--- timeout: 3
--- error_code: 413
--- raw_response_headers_like: \r\nConnection: close\r\n
--- response_headers
Content-Type: application/json
--- response_body
{"error":{"message":"request body too large","type":"invalid_request_error","code":413}}
