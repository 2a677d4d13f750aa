# Classifier faults and client disconnects at every stage: each fault is
# the classifier's on_error, logged once with its name, and the request
# never hangs; a client that goes away closes every upstream connection.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; timeout 1s; }
_EOC_
    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
    location = /_gen { internal; return 200 "passed\n"; }
_EOC_
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an answer cut off mid-body (reset): on_error, logged with the name
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f1&verdict=yes&mode=reset; }
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- error_log eval
qr/classifier "a" failed: answer was cut off \(status 200\), passing/



=== TEST 2: an answer bigger than subrequest_output_buffer_size
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f2&verdict=yes&mode=big; }
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- error_log
classifier "a" failed: answer bigger than subrequest_output_buffer_size (status 200), passing (on_error pass)



=== TEST 3: ... which a bigger subrequest_output_buffer_size accepts
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a {
        internal;
        subrequest_output_buffer_size 256k;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f3&verdict=yes&mode=big;
    }
--- request
POST /chat
{"user_query":"q"}
--- response_body_like: A blocks



=== TEST 4: empty choices
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f4&mode=empty; }
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- error_log
classifier "a" failed: answer has no "choices" (status 200), passing (on_error pass)



=== TEST 5: content that is not a word
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f5&mode=noword; }
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- error_log
classifier "a" failed: answer content is not a word (status 200), passing (on_error pass)



=== TEST 6: the connection closed without an answer
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f6&mode=close; }
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- grep_error_log eval
qr/classifier "a" failed/
--- grep_error_log_out
classifier "a" failed



=== TEST 7: the client goes away during a slow body upload: nothing starts, nothing leaks
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f7; }
--- raw_request eval
["POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"user_query\":"]
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 0.2
--- no_error_log
[error]
[alert]



=== TEST 8: ... and no classifier was called
--- request
GET /mock/count?tag=f7
--- response_body
0



=== TEST 9: the client goes away during the streamed generation: the generation's connection closes
--- config
    location = /chat { classify a; classify_pass /_gen2; }
    location = /_gen2 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=f9g&chunks=6&gap=0.5;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f9; }
--- request
POST /chat
{"stream":true,"messages":[{"role":"user","content":"x"}]}
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1
--- no_error_log
[alert]



=== TEST 10: ... seen at the generation as a 499 well before its 3 s stream ended
--- request
GET /mock/log?tag=f9g&wait=2
--- response_body_like: ^499 [01]\.\d+



=== TEST 11: the client goes away during a slow canned reply (200 KB at limit_rate 20k)
--- http_config
    classifier big { pass /_c/big; prompt "big?"; reply_file ../html/big.txt; }
    classifier slow { pass /_c/slow; prompt "slow?"; reply "S"; timeout 10s; }
    log_format f11 '$request_uri $status $body_bytes_sent $request_time';
--- config
    location = /chat {
        classify big slow;
        classify_pass /_gen;
        limit_rate 20k;
        access_log $TEST_NGINX_SERVER_ROOT/logs/f11.log f11;
    }
    location = /f11log { access_log off; alias $TEST_NGINX_SERVER_ROOT/logs/f11.log; }
    location /_c/big { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f11&verdict=yes&delay=0.2; }
    location /_c/slow { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=f11s&mode=hang; }
--- user_files eval
[["big.txt", ("0123456789abcdef" x 12800) . "\n"]]
--- request
POST /chat
{"user_query":"q"}
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 2.5
--- no_error_log
[alert]
[crit]
open socket
exited on signal



=== TEST 12: ... the reply was cut short and the request finished well before the 10 s a full send takes
--- request
GET /f11log
--- response_body_like: ^/chat 200 \d+ [0-2]\.\d{3}$
--- response_body_filters eval
sub { my ($uri, $st, $bytes, $t) = split ' ', $_[0]; $bytes < 204800 ? $_[0] : "all $bytes bytes sent" }



=== TEST 13: ... and the lower-priority classifier still in flight was closed at the decision (499), not left to hang
--- request
GET /mock/log?tag=f11s&wait=1
--- response_body_like: ^499 0\.[2-4]\d*
