# The gate's decisions: the seed's scenarios (4.6.1) with two classifiers,
# "a" (priority 1, like non_islamic) and "b" (priority 2, like fiqh), each
# a real proxied subrequest to the mock LLM with its own verdict and delay.
# Timing windows are ones that sequential execution could never meet.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: both negative: passes to the generation
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A says no."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B says no."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=g1&chunks=2;
        proxy_buffering off;
        add_header X-Verdict $classify_verdict;
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a1&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b1&verdict=No.&delay=0.2; }
--- request
POST /chat
{"model":"m","messages":[{"role":"user","content":"how do I pray?"}],"stream":true}
--- response_headers
X-Verdict: pass
! X-Classify-Verdict
Content-Type: text/event-stream
--- response_body_like: chunk1 .*chunk2 .*data: \[DONE\]
--- no_error_log
[error]
[alert]



=== TEST 2: a positive first: answers with a's reply, b aborted at once
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; add_header X-Time $classify_time; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a2&verdict=Yes.&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b2&verdict=no&delay=3; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"best pizza?\"}]}",
"GET /mock/log?tag=b2&wait=2"]
--- error_code eval
[200, 200]
--- response_headers_like eval
["X-Classify-Verdict: a\nX-Time: (9\\d|[1-4]\\d\\d)\\.\\d{3}", ""]
--- response_body_like eval
['"content":"A blocks\."', '^499 0\.(0\d|[1-4]\d)\d* ']
--- no_error_log
[error]
[alert]



=== TEST 3: b positive first, a negative later: b answers once a ended negative
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; add_header X-Time $classify_time; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a3&verdict=no&delay=0.4; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b3&verdict=yes&delay=0.1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"is music allowed?"}]}
--- response_headers_like
X-Classify-Verdict: b
X-Time: (3[89]\d|[45]\d\d)\.\d{3}
--- response_body_like: "content":"B blocks\."
--- no_error_log
[error]



=== TEST 4: both positive, b first: a (higher priority) wins when it answers
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; add_header X-Time $classify_time; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a4&verdict=TRUE&delay=0.3; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b4&verdict=yes&delay=0.1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers_like
X-Classify-Verdict: a
X-Time: (2[89]\d|[34]\d\d)\.\d{3}
--- response_body_like: "content":"A blocks\."
--- no_error_log
[error]



=== TEST 5: both positive, a first: a answers at once, b aborted
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; add_header X-Time $classify_time; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a5&verdict=yes&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b5&verdict=yes&delay=1.5; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /mock/log?tag=b5&wait=2"]
--- response_headers_like eval
["X-Classify-Verdict: a\nX-Time: (9\\d|[1-4]\\d\\d)\\.\\d{3}", ""]
--- response_body_like eval
['"content":"A blocks\."', '^499 0\.(0\d|[1-4]\d)\d* ']
--- no_error_log
[error]



=== TEST 6: a errors (500), on_error pass: b decides; the error is logged once
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a6&status=500; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b6&verdict=yes&delay=0.1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Classify-Verdict: b
--- response_body_like: "content":"B blocks\."
--- grep_error_log eval: qr/classifier "\w+" failed[^,]*/
--- grep_error_log_out
classifier "a" failed: classifier answered with a non-2xx status (status 500)



=== TEST 7: a errors, on_error block: a's reply at once
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; on_error block; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a7&mode=garbage; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b7&verdict=no&delay=0.5; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Classify-Verdict: a
--- response_body_like: "content":"A blocks\."
--- error_log
classifier "a" failed: answer is not valid JSON (status 200), blocking (on_error block)



=== TEST 8: both error (connection refused, 502 from the mock): fail open
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated: $classify_verdict\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:1/; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b8&status=502; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_body
generated: pass
--- error_log
classifier "a" failed: no answer from the classifier (status 502), passing (on_error pass)
classifier "b" failed: classifier answered with a non-2xx status (status 502), passing (on_error pass)



=== TEST 9: a classifier past its timeout is aborted and follows on_error
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; timeout 300ms; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated in $classify_time ms: $classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a9&verdict=yes&delay=5; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b9&verdict=no&delay=0.1; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_body_like: ^generated in (29\d|3\d\d)\.\d{3} ms: a:timeout:(29\d|3\d\d)\.\d{3},b:negative:\d+\.\d{3}$
--- error_log
classifier "a" failed: timed out, passing (on_error pass)



=== TEST 10: the timed-out classifier's connection was closed at the timeout
--- request
GET /mock/log?tag=a9&wait=2
--- response_body_like: ^499 0\.[23]\d* 



=== TEST 11: classify_timeout bounds the whole decision
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; on_error block; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_timeout 250ms; add_header X-Results $classify_results; }
    location = /_gen { internal; return 200 "generated\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a10&verdict=no&mode=hang; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b10&verdict=no&mode=hang; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers_like
X-Classify-Verdict: a
X-Results: a:timeout:(2[4-9]\d|3\d\d)\.\d{3},b:timeout:(2[4-9]\d|3\d\d)\.\d{3}
--- response_body_like: "content":"A blocks\."
--- error_log
classifier "a" failed: classify_timeout expired, blocking (on_error block)
classifier "b" failed: classify_timeout expired, passing (on_error pass)



=== TEST 11b: ... and both hanging classifiers' connections were closed at the deadline: a 499 at the mock within 0.4 s, not at their own 1 s timeout (the mock's clock starts when a call reaches it, so a slow worker, as under valgrind, shows less than 0.25 s)
--- request eval
["GET /mock/log?tag=a10&wait=2", "GET /mock/log?tag=b10&wait=2"]
--- response_body_like eval
['^499 0\.[0-3]\d* ', '^499 0\.[0-3]\d* ']



=== TEST 12: concurrency: two 0.4 s classifiers decide in well under 0.8 s
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "decided in $classify_time ms\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a11&verdict=no&delay=0.4; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b11&verdict=no&delay=0.4; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_body_like: ^decided in (39\d|[4-6]\d\d)\.\d{3} ms$
--- no_error_log
[error]



=== TEST 13: sequential mode takes the sum: about 0.8 s for the same two
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_mode sequential; classify_pass /_gen; }
    location = /_gen { internal; return 200 "decided in $classify_time ms\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a12&verdict=no&delay=0.4; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b12&verdict=no&delay=0.4; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_body_like: ^decided in (79\d|[89]\d\d|1[01]\d\d)\.\d{3} ms$
--- no_error_log
[error]



=== TEST 14: sequential mode stops at the first positive: b is never called
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_mode sequential; classify_pass /_gen; add_header X-Results $classify_results; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a13&verdict=yes&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b13&verdict=yes; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /mock/count?tag=b13"]
--- response_headers_like eval
["X-Classify-Verdict: a\nX-Results: a:positive:\\d+\\.\\d{3},b:skipped:0\\.000", ""]
--- response_body_like eval
['"content":"A blocks\."', '^0\s*$']



=== TEST 15: classify_resolve first: the first positive to arrive wins
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_resolve first; classify_pass /_gen; add_header X-Time $classify_time; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a14&verdict=yes&delay=1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b14&verdict=yes&delay=0.1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers_like
X-Classify-Verdict: b
X-Time: (9\d|[1-4]\d\d)\.\d{3}
--- response_body_like: "content":"B blocks\."
--- no_error_log
[error]



=== TEST 16: a shadow classifier never blocks; its verdict is logged
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier s { pass /_c/s; prompt "new rule?"; shadow on; }
--- config
    location = /chat { classify s a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "decided $classify_verdict in $classify_time ms\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a15&verdict=no&delay=0.1; }
    location /_c/s { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s15&verdict=yes&delay=1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_body_like: ^decided pass in (9\d|[1-4]\d\d)\.\d{3} ms$
--- error_log eval
qr/classify: shadow classifier "s" answered positive in (99\d|1\d\d\d)\.\d{3}ms/
--- no_error_log
[error]



=== TEST 17: the client going away mid-decision aborts every classifier
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a16&delay=3; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b16&delay=3; }
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



=== TEST 18: after a client abort, both classifier upstreams saw 499 early (under 1 s, not 3)
--- config
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
["GET /mock/log?tag=a16&wait=2", "GET /mock/log?tag=b16&wait=2"]
--- response_body_like eval
['^499 0\.\d+ ', '^499 0\.\d+ ']



=== TEST 19: classify_resolve first: a blocking classifier that times out blocks
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; timeout 300ms; on_error block; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_resolve first; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a19&delay=2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b19&verdict=no&delay=0.1; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Classify-Verdict: a
--- response_body_like: "content":"A blocks\."



=== TEST 20: classify_resolve first: classify_timeout on a blocking classifier blocks too
--- http_config
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "A blocks."; on_error block; }
    classifier b { pass /_c/b; prompt "is it fiqh?"; reply "B blocks."; }
--- config
    location = /chat { classify a b; classify_resolve first; classify_timeout 300ms; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a20&mode=hang; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b20&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Classify-Verdict: a



=== TEST 21: priority: once b is positive, c (listed after it) is aborted at once, while a still runs
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
    classifier c { pass /_c/c; prompt "c?"; reply "C blocks."; }
--- config
    location = /chat { classify a b c; classify_pass /_gen; add_header X-Time $classify_time; }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a21&verdict=no&delay=0.6; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=b21&verdict=yes&delay=0.1; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c21&verdict=no&delay=3; }
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /mock/log?tag=c21&wait=2"]
--- response_headers_like eval
["X-Classify-Verdict: b\nX-Time: (59\\d|[6-9]\\d\\d)\\.\\d{3}", ""]
--- response_body_like eval
['"content":"B blocks\."', '^499 0\.(0\d|[1-4]\d)\d* ']



=== TEST 22: a shadow still running after the answer: the connection is not kept alive
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier s { pass /_c/s; prompt "s?"; shadow on; }
--- config
    keepalive_timeout 30s;
    location = /chat { classify s a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=a22&verdict=no; }
    location /_c/s { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=s22&verdict=no&delay=0.5; }
--- more_headers
Connection: keep-alive
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
Connection: close
--- response_body
passed

