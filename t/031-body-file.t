# A body nginx buffers to a temporary file reaches the classifiers whole,
# without the gate reading the file back: the module keeps a copy as the
# body arrives, so the worker never blocks on a file read (nginx's debug
# line "read: fd, ..." of ngx_read_file() never shows).

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a 64 KiB body over client_body_buffer_size: in a temporary file, classified from memory
--- http_config
    classifier a { pass /_c/a; protocol json; reply "A blocks"; }
--- config
    client_body_buffer_size 1k;
    location = /chat { classify a; classify_pass /_gen; classify_reply_format text; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=bf1&verdict=true; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
'POST /chat
{"user_query":"' . ('x' x 65536) . '"}'
--- response_body: A blocks
--- error_log
a client request body is buffered to a temporary file
--- no_error_log eval
[qr/\bread: \d+, /, "[alert]"]



=== TEST 1b: ... and the classifier got the whole query
--- request
GET /mock/body?tag=bf1&wait=1
--- response_body eval
'{"query":"' . ('x' x 65536) . '","context":[],"session":""}'



=== TEST 2: a chunked body, in two chunks over client_body_buffer_size, also kept
--- http_config
    classifier a { pass /_c/a; protocol json; reply "A blocks"; }
--- config
    client_body_buffer_size 1k;
    location = /chat { classify a; classify_pass /_gen; classify_reply_format text; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=bf2&verdict=true; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- raw_request eval
my $body = '{"user_query":"' . ("y" x 20000) . '"}';
my $half = int(length($body) / 2);
"POST /chat HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Transfer-Encoding: chunked\r\n\r\n"
. sprintf("%x", $half) . "\r\n" . substr($body, 0, $half) . "\r\n"
. sprintf("%x", length($body) - $half) . "\r\n" . substr($body, $half)
. "\r\n0\r\n\r\n"
--- response_body: A blocks
--- no_error_log eval
[qr/\bread: \d+, /, "[alert]"]



=== TEST 2b: ... and the classifier got the whole query
--- request
GET /mock/body?tag=bf2&wait=1
--- response_body eval
'{"query":"' . ('y' x 20000) . '","context":[],"session":""}'
