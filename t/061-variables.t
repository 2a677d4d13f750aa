# The $classify_* variables in add_header and log_format, on a blocked
# answer and after the internal redirect of a pass; the info line of each
# decision.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
    log_format classify '$classify_verdict|$classify_session|$classify_a_verdict|$classify_b_verdict|$classify_results';
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: after a pass: every variable, in the generation's headers and in the access log
--- config
    access_log $TEST_NGINX_SERVER_ROOT/logs/classify.log classify;
    location = /chat {
        classify a b; classify_pass /_gen; classify_session $http_x_session;
    }
    location = /_gen {
        internal;
        add_header X-Verdict $classify_verdict;
        add_header X-Time $classify_time;
        add_header X-A "$classify_a_verdict $classify_a_time";
        add_header X-Session $classify_session;
        add_header X-Results $classify_results;
        return 200 "passed\n";
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=v1a&verdict=no&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=v1b&verdict=no; }
    location = /log { access_log off; alias $TEST_NGINX_SERVER_ROOT/logs/classify.log; }
--- more_headers
X-Session: sess-1
--- request eval
["POST /chat\n{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "GET /log"]
--- response_headers_like eval
["X-Verdict: pass\nX-Time: \\d+\\.\\d{3}\nX-A: negative (9\\d|[1-4]\\d\\d)\\.\\d{3}\nX-Session: sess-1\nX-Results: a:negative:\\d+\\.\\d{3},b:negative:\\d+\\.\\d{3}", ""]
--- response_body_like eval
["passed", "^pass\\|sess-1\\|negative\\|negative\\|a:negative:\\d+\\.\\d{3},b:negative:\\d+\\.\\d{3}\$"]



=== TEST 2: a blocked answer: the blocking classifier's name, the aborted one
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        add_header X-Verdict $classify_verdict;
        add_header X-B $classify_b_verdict;
        add_header X-Unknown "[$classify_nosuch_verdict]";
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=v2a&verdict=yes; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=v2b&verdict=no&delay=2; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Verdict: a
X-B: aborted
X-Unknown: []
--- error_log eval
# b's 5 s timeout minus the whole milliseconds it ran: 5000 when the
# decision came within its first millisecond (the mock answers a in well
# under one)
qr/\[info\] .*classify: verdict a in \d+\.\d{3}ms, a:positive\/\d+\.\d{3}ms b:aborted\/\d+\.\d{3}ms, aborts saved up to (?:4\d\d\d|5000)ms of classifier time/



=== TEST 3: a bad request: $classify_verdict is "error"
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        add_header X-Verdict $classify_verdict always;
    }
--- request
POST /chat
not json
--- error_code: 400
--- response_headers
X-Verdict: error
