# classify_speculate: the generation starts beside the classifiers and is
# held until the verdict.  A pass releases it (the first token arrives at
# the backend's own time to first token, not after the decision plus it);
# a block closes it at the decision.  Timing windows are ones the
# non-speculative sum could never meet; every block says what the client
# and the mock backend saw.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use JSON::PP ();
use Digest::SHA ();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
_EOC_

    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
_EOC_
    }
});

# the mock's records of the last request, by tag: "tag:start:finish" in
# seconds from the first record's start, for a filter to compare
sub main::spans {
    my %r = map { $_->{tag} => $_ } @{ JSON::PP::decode_json($_[0]) };
    return \%r;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the first token at the backend's TTFT (0.3 s), not after the 0.2 s decision plus it
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s1g&delay=0.3&chunks=2&gap=0.3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Verdict $classify_verdict;
        add_header X-Elapsed $request_time;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s1a&verdict=no&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s1b&verdict=no&delay=0.2; }
--- request
POST /chat
{"model":"m","messages":[{"role":"user","content":"how do I pray?"}],"stream":true}
--- response_headers_like
X-Verdict: pass
X-Elapsed: 0\.(29\d|3\d\d|4[0-6]\d)
Content-Type: text/event-stream
--- response_headers
Transfer-Encoding: chunked
! Content-Length
--- response_body_like: ^data: \{.*"content":"chunk1 ".*"content":"chunk2 ".*data: \[DONE\]\n\n$
--- error_log eval
qr/\[info\] .*classify: verdict pass in \d+\.\d{3}ms, a:negative\/\d+\.\d{3}ms b:negative\/\d+\.\d{3}ms, generation released after \d+\.\d{3}ms, 0 bytes held/
--- no_error_log
[error]
[alert]



=== TEST 2: the same without classify_speculate: decision plus TTFT (0.5 s and more)
--- config
    location = /chat { classify a b; classify_pass @gen; }
    location @gen {
        rewrite ^ /v1/generate?tag=s2g&delay=0.3&chunks=2&gap=0.3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Elapsed $request_time;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s2a&verdict=no&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s2b&verdict=no&delay=0.2; }
--- request
POST /chat
{"model":"m","messages":[{"role":"user","content":"how do I pray?"}],"stream":true}
--- response_headers_like
X-Elapsed: (0\.(49\d|[5-9]\d\d)|[1-9]\.\d+)
--- no_error_log
[error]



=== TEST 3: nothing before the verdict: a generation done at once is held whole until the 0.4 s decision
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_speculate on; }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=s3g&chunks=3;
        proxy_buffering off;
        add_header X-Verdict $classify_verdict;
        add_header X-Time $classify_time;
        add_header X-Elapsed $request_time;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s3a&verdict=no&delay=0.4; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s3b&verdict=no&delay=0.1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_headers_like
X-Verdict: pass
X-Time: (39\d|[4-9]\d\d)\.\d{3}
X-Elapsed: (0\.(39\d|[4-9]\d\d)|[1-9]\.\d+)
--- response_body_like: ^data: .*"content":"chunk1 ".*"content":"chunk3 ".*data: \[DONE\]\n\n$
--- error_log eval
qr/generation released after \d+\.\d{3}ms, [1-9]\d+ bytes held \(ended\)/
--- no_error_log
[error]



=== TEST 3b: ... the mock had answered the whole generation long before the classifier that decided
--- request
GET /mock/records?tag=*
--- response_body_filters eval
sub { my $r = main::spans($_[0]);
      $r->{s3g}{finish} < $r->{s3a}{finish} - 0.2
      ? "the generation had ended before the verdict\n"
      : "generation $r->{s3g}{finish}, a $r->{s3a}{finish}\n" }
--- response_body
the generation had ended before the verdict



=== TEST 4: a block closes a streaming generation at the decision; none of it reaches the client
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s4g&chunks=50&gap=0.1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s4a&verdict=yes&delay=0.25; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s4b&verdict=no&delay=3; }
--- request
POST /chat
{"messages":[{"role":"user","content":"best pizza?"}]}
--- response_headers
X-Classify-Verdict: a
--- response_body_like: ^(?!.*chunk\d)\{"id":"chatcmpl-classify-.*"content":"A blocks\."
--- error_log eval
qr/\[info\] .*classify: verdict a in \d+\.\d{3}ms, .*, generation aborted after \d+\.\d{3}ms, [1-9]\d* bytes thrown away/
--- no_error_log
[error]
[alert]



=== TEST 4b: ... the backend saw its client go at the decision (499 at 0.25 s), not after the 5 s stream
--- request
GET /mock/log?tag=s4g&wait=2
--- response_body_like: ^499 0\.(2[0-9]|3[0-9]|4[0-9])\d* /v1/generate\?tag=s4g



=== TEST 5: a block before the generation's first byte closes it too (the backend sees 499 at 0.2 s, not 3 s)
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_speculate on; }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=s5g&delay=3;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s5a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s5b&verdict=yes&delay=0.2; }
--- request
POST /chat
{"messages":[{"role":"user","content":"is music allowed?"}],"stream":true}
--- response_headers
X-Classify-Verdict: b
Content-Type: text/event-stream
--- response_body_like: ^data: \{"id":"chatcmpl-classify-.*"content":"B blocks\.".*data: \[DONE\]\n\n$
--- error_log eval
qr/generation aborted after \d+\.\d{3}ms, 0 bytes thrown away/
--- no_error_log
[error]



=== TEST 5b: ... at 0.2 s, while it waited for its first byte
--- request
GET /mock/log?tag=s5g&wait=2
--- response_body_like: ^499 0\.(1[5-9]|[2-4]\d)\d* 



=== TEST 6: a generation far bigger than classify_speculate_buffer arrives whole; nginx stopped reading it meanwhile
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; classify_speculate_buffer 8k; }
    location @gen {
        rewrite ^ /v1/generate?tag=s6g&chunks=4000? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        proxy_buffer_size 4k;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s6a&verdict=no&delay=0.3; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s6b&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
sub { my @n = $_[0] =~ /"content":"chunk(\d+) "/g;
      my $in_order = CORE::join(',', @n) eq CORE::join(',', 1 .. 4000);
      scalar(@n) . " chunks" . ($in_order ? " in order" : "")
      . ($_[0] =~ /"finish_reason":"stop".*\n\ndata: \[DONE\]\n\n\z/s ? ", done\n" : ", no end\n") }
--- response_body
4000 chunks in order, done
--- error_log eval
qr/generation released after \d+\.\d{3}ms, ([0-9]{1,4}|1[01][0-9]{3}|12[0-2][0-9]{2}) bytes held\D/
--- no_error_log
[error]
[alert]



=== TEST 7: the client going away during the decision closes both classifiers and the generation
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s7g&delay=3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s7a&delay=3; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s7b&delay=3; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 0.2
--- error_log
client prematurely closed connection
--- no_error_log
[error]
[alert]



=== TEST 8: ... all three upstreams saw the client go at once (499 in under 1 s, not 3)
--- request eval
["GET /mock/log?tag=s7a&wait=2", "GET /mock/log?tag=s7b&wait=2", "GET /mock/log?tag=s7g&wait=2"]
--- response_body_like eval
['^499 0\.\d+ ', '^499 0\.\d+ ', '^499 0\.\d+ /v1/generate']



=== TEST 9: the client going away while the released generation streams closes it
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s9g&chunks=5&gap=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s9a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s9b&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 0.3
--- no_error_log
[error]
[alert]



=== TEST 10: ... its backend saw 499 well before the 4 s the stream takes
--- request
GET /mock/log?tag=s9g&wait=3
--- response_body_like: ^499 [0-2]\.\d+ /v1/generate



=== TEST 11: classify_timeout: the pending classifiers fail open at the deadline and the held generation goes out
# (nginx 1.22 arms the deadline from its cached time, which a slow start
# under valgrind leaves tens of ms behind: 550 ms is the window's floor)
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; classify_timeout 600ms; }
    location @gen {
        rewrite ^ /v1/generate?tag=s11g&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Time $classify_time;
        add_header X-Results $classify_results;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s11a&mode=hang; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s11b&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_headers_like
X-Time: (5[5-9]\d|[6-9]\d\d)\.\d{3}
X-Results: a:timeout:\d+\.\d{3},b:negative:\d+\.\d{3}
--- response_body_like: "content":"chunk2 ".*data: \[DONE\]
--- error_log
classifier "a" failed: classify_timeout expired, passing (on_error pass)



=== TEST 12: a shadow classifier neither delays the release nor changes it
--- http_config
    classifier s { pass /_c/s; prompt "s?"; shadow on; }
--- config
    location = /chat { classify a s; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s12g&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Verdict $classify_verdict;
        add_header X-Elapsed $request_time;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s12a&verdict=no&delay=0.1; }
    location /_c/s { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s12s&verdict=yes&delay=1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_headers_like
X-Verdict: pass
X-Elapsed: 0\.[0-7]\d\d
Connection: close
--- response_body_like: "content":"chunk2 ".*data: \[DONE\]
--- wait: 0.5
--- error_log eval
qr/classify: shadow classifier "s" answered positive in \d+\.\d{3}ms/
--- no_error_log
[error]



=== TEST 13: sequential mode is speculated too: the generation's TTFT hides behind the sum (0.8 s, not 1.4 s)
--- config
    location = /chat { classify a b; classify_mode sequential; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s13g&delay=0.6&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Elapsed $request_time;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s13a&verdict=no&delay=0.4; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s13b&verdict=no&delay=0.4; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_headers_like
X-Elapsed: (0\.(79\d|[89]\d\d)|1\.[0-2]\d\d)
--- response_body_like: "content":"chunk2 ".*data: \[DONE\]
--- no_error_log
[error]



=== TEST 14: sequential mode: a block by the second classifier closes the generation at that decision
--- config
    location = /chat { classify a b; classify_mode sequential; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s14g&delay=3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s14a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s14b&verdict=yes&delay=0.1; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /mock/log?tag=s14g&wait=2"]
--- response_headers eval
["X-Classify-Verdict: b", ""]
--- response_body_like eval
['"content":"B blocks\."', '^499 0\.(1[5-9]|[2-5]\d)\d* ']



=== TEST 15: a generation that fails before the verdict (503) is held whole and is the answer of a pass
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s15g&status=503? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s15a&verdict=no&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s15b&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- error_code: 503
--- response_body_like: ^\{"error":\{"message":"mock error 503"
--- no_error_log
[error]



=== TEST 16: a generation backend that refuses the connection: nginx's 502, held, is the answer of a pass
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_speculate on; }
    location = /_gen { internal; proxy_pass http://127.0.0.1:1/; proxy_buffering off; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s16a&verdict=no&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s16b&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- error_code: 502
--- response_body_like: 502 Bad Gateway
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
--- no_error_log
[alert]



=== TEST 17: ... and dropped on a block: the client gets the reply only
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_speculate on; }
    location = /_gen { internal; proxy_pass http://127.0.0.1:1/; proxy_buffering off; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s17a&verdict=yes&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s17b&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Classify-Verdict: a
--- response_body_like: ^\{"id":"chatcmpl-classify-.*"content":"A blocks\."
--- no_error_log
[alert]



=== TEST 18: a generation cut off before the verdict: a pass sends what came, then the connection closes, as a pass would
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s18g&chunks=3&mode=reset? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s18a&verdict=no&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s18b&verdict=no; }
--- request
POST /chat HTTP/1.0
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_headers
Connection: close
--- response_body_like: ^data: \{[^\n]*"content":"chunk1 "[^\n]*\}\n\n$
--- no_error_log
[alert]



=== TEST 19: the generation's own request is made before the decision: $classify_verdict is empty there
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s19g&chunks=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        proxy_set_header X-Verdict "v=$classify_verdict";
        add_header X-Verdict $classify_verdict;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s19a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s19b&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /mock/headers?tag=s19g&wait=1"]
--- response_headers eval
["X-Verdict: pass", ""]
--- response_body_like eval
['chunk1', '(?i)x-verdict: v=\r?\n']



=== TEST 20: the generation gets the client's method, headers and body, byte for byte
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s20g&chunks=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s20a&verdict=no; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s20b&verdict=no; }
--- more_headers
X-Client: c20
--- request eval
["POST /chat?q=1
{\"messages\":[{\"role\":\"user\",\"content\":\"body of the client, \\u00e9\"}],\"stream\":true}",
"GET /mock/body?tag=s20g&wait=1", "GET /mock/headers?tag=s20g&wait=1"]
--- response_body_like eval
['chunk1',
 '^\{"messages":\[\{"role":"user","content":"body of the client, \\\\u00e9"\}\],"stream":true\}$',
 '(?i)(^|\n)host: [^\n]*\n(?s:.*)x-client: c20\r?\n']



=== TEST 21: metrics: speculations, generations aborted, the bytes and time thrown away, the time saved
--- http_config
    classify_metrics_zone spec 1m;
    classifier c { pass /_c/c; prompt "c?"; reply "C blocks."; }
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location = /chat-c { classify c; classify_pass @gen; classify_speculate on; }
    location = /metrics { classify_status; }
    location @gen {
        rewrite ^ /v1/generate?tag=s21g&delay=0.2&chunks=20&gap=0.05? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s21a&verdict=no&delay=0.3; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s21c&verdict=yes&delay=0.3; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s21b&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"POST /chat-c
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /metrics", "GET /metrics?format=json"]
--- response_body_filters eval
[[], [],
 [sub { CORE::join '', map { "$_\n" } grep { /^classify_speculat/ } split /\n/, $_[0] }],
 [sub { my $j = JSON::PP::decode_json($_[0]);
        CORE::join ' ', map { "$_=" . ($j->{$_} > 0 ? "+" : $j->{$_}) }
            qw(speculations speculations_aborted speculation_wasted_bytes
               speculation_wasted_ms speculation_saved_ms) }]]
--- response_body_like eval
['chunk20', '"content":"C blocks\."',
 "^classify_speculations_total 2\nclassify_speculations_aborted_total 1\nclassify_speculation_wasted_bytes_total [1-9]\\d+\nclassify_speculation_wasted_seconds_total 0\\.[2-9]\\d{5}\nclassify_speculation_saved_seconds_total 0\\.(1[5-9]|[2-9]\\d)\\d{4}\n\$",
 '^speculations=\+ speculations_aborted=\+ speculation_wasted_bytes=\+ speculation_wasted_ms=\+ speculation_saved_ms=\+$']



=== TEST 22: bad settings fail nginx -t, naming the directive
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate_buffer lots; }
    location @gen { return 200; }
--- must_die
--- error_log
"classify_speculate_buffer" directive invalid value



=== TEST 23: ... and classify_speculate takes on or off
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate always; }
    location @gen { return 200; }
--- must_die
--- error_log
invalid value "always" in "classify_speculate" directive, it must be "on" or "off"



=== TEST 24: keep-alive: after a released generation the connection serves the pipelined request
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location = /ping { return 200 "pong\n"; }
    location @gen {
        rewrite ^ /v1/generate?tag=s24g&delay=0.2&chunks=3&gap=0.05? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s24a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s24b&verdict=no; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"content":"chunk3 ".*data: \[DONE\]\n\n$', "^pong\n\$"]
--- no_error_log
[error]
[alert]



=== TEST 25: keep-alive: after a block that closed a streaming generation, too
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; classify_reply_format text; }
    location = /ping { return 200 "pong\n"; }
    location @gen {
        rewrite ^ /v1/generate?tag=s25g&chunks=30&gap=0.05? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s25a&verdict=yes&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s25b&verdict=no; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body eval
["A blocks.", "pong\n"]
--- no_error_log
[error]
[alert]



=== TEST 26: the released response is logged as a pass's: the generation location's access_log, with $upstream_*
--- http_config
    log_format gen '$uri $status $upstream_status $upstream_bytes_received $classify_verdict';
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; access_log off; }
    location = /genlog { access_log off; alias $TEST_NGINX_SERVER_ROOT/logs/gen.log; }
    location @gen {
        rewrite ^ /v1/generate?tag=s26g&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        access_log $TEST_NGINX_SERVER_ROOT/logs/gen.log gen;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s26a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s26b&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /genlog"]
--- response_body_like eval
['chunk2', "^/chat 200 200 [1-9]\\d+ pass\n\$"]



=== TEST 27: a client body nginx wrote to a temporary file reaches the generation whole
--- config
    location = /chat {
        classify a b; classify_pass @gen; classify_speculate on;
        client_body_buffer_size 8k;
    }
    location @gen {
        rewrite ^ /v1/generate?tag=s27g&chunks=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s27a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s27b&verdict=no; }
--- request eval
["POST /chat\n" . '{"messages":[{"role":"user","content":"' . ("x" x 100000) . '"}],"stream":true}',
 "GET /mock/body?tag=s27g&wait=1"]
--- response_headers eval
["X-Mock-Body-Length: " . length('{"messages":[{"role":"user","content":"' . ("x" x 100000) . '"}],"stream":true}'), ""]
--- response_body_filters eval
[[], ["sha1_hex"]]
--- response_body_like eval
["chunk1", "^" . Digest::SHA::sha1_hex('{"messages":[{"role":"user","content":"' . ("x" x 100000) . '"}],"stream":true}') . "\$"]
--- no_error_log
[error]



=== TEST 28: the generation location's body filters run once, on the released response (gzip)
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        rewrite ^ /v1/generate?tag=s28g&chunks=3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        gzip on;
        gzip_types text/event-stream;
        gzip_min_length 1;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s28a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s28b&verdict=no; }
--- more_headers
Accept-Encoding: gzip
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_headers
Content-Encoding: gzip
--- response_body_filters eval
sub { require IO::Uncompress::Gunzip; my $out;
      IO::Uncompress::Gunzip::gunzip(\$_[0] => \$out) or return "not gzip\n";
      my @n = $out =~ /"content":"chunk(\d) "/g; "@n" . ($out =~ /data: \[DONE\]\n\n\z/ ? " done\n" : "\n") }
--- response_body
1 2 3 done
--- no_error_log
[error]



=== TEST 29: a limit_req delay in the classify_pass location: the delayed generation goes on once released
--- http_config
    limit_req_zone $server_name zone=gen29:1m rate=1r/s;
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
    location @gen {
        limit_req zone=gen29 burst=5;
        rewrite ^ /v1/generate?tag=s29g&chunks=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s29a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s29b&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}"]
--- response_body_like eval
['"content":"chunk1 ".*data: \[DONE\]', '"content":"chunk1 ".*data: \[DONE\]']
--- timeout: 5
--- no_error_log
[error]
[alert]



=== TEST 30: ... and a block drops it before it reaches the backend: the reply goes out, the connection is not held
--- http_config
    limit_req_zone $server_name zone=gen30:1m rate=1r/s;
--- config
    location = /chat { classify a b; classify_pass @gen; classify_speculate on; classify_reply_format text; }
    location @gen {
        limit_req zone=gen30 burst=5;
        rewrite ^ /v1/generate?tag=s30g&chunks=1&delay=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s30a&verdict=yes&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s30b&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /mock/count?tag=s30g"]
--- response_body eval
["A blocks.", "A blocks.", "1\n"]
--- timeout: 5
--- no_error_log
[error]
[alert]
