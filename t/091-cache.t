# The verdict cache (classify_cache_zone, classify_cache, cache_valid): a
# repeat calls no classifier (the mock's records prove it), each classifier
# keyed by its own context slice, only answered verdicts stored, expiry,
# priority, sequential and "first" resolution unchanged, the cached verdict
# marked in the variables; every bad setting stops nginx -t.
#
# Each block runs a fresh nginx, so a fresh zone: the first request of a
# block always misses.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

my $mock = 'http://127.0.0.1:$TEST_NGINX_MOCK_PORT';

add_block_preprocessor(sub {
    my $block = shift;

    return unless defined $block->config;

    $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
_EOC_
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a repeat calls no classifier: both verdicts cached, the decision at once
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; context 2; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; context 6; reply "B blocks"; }
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen {
        internal;
        return 200 "passed in $classify_time ms: $classify_results $classify_a_verdict\n";
    }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c1a&verdict=no&delay=0.3; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c1b&verdict=no&delay=0.3; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"how do I pray?\"}]}",
"POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"how do I pray?\"}]}",
"GET /mock/log?tag=c1a&n=1&wait=1",
"GET /mock/log?tag=c1b&n=1&wait=1"]
--- response_body_like eval
["^passed in (29\\d|[3-9]\\d\\d)\\.\\d{3} ms: a:negative:\\d+\\.\\d{3},b:negative:\\d+\\.\\d{3} negative\n\$",
"^passed in \\d{1,2}\\.\\d{3} ms: a:negative\\(cached\\):\\d+\\.\\d{3},b:negative\\(cached\\):\\d+\\.\\d{3} negative\\(cached\\)\n\$",
"^200 [\\d.]+ \\S+\\n\$",
"^200 [\\d.]+ \\S+\\n\$"]
--- no_error_log
[error]



=== TEST 2: the decision's info line: a verdict from a call ...
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
--- config
    location = /chat { classify a; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c2a&verdict=no; }
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- error_log eval
qr/\[info\] .*classify: verdict pass in \d+\.\d{3}ms, a:negative\/\d+\.\d{3}ms/



=== TEST 2a: ... and the same again on the same nginx: marked cached
--- request
POST /chat
{"user_query":"q"}
--- response_body
passed
--- error_log eval
qr/\[info\] .*classify: verdict pass in \d+\.\d{3}ms, a:negative\(cached\)\/\d+\.\d{3}ms/



=== TEST 3: each classifier its own slice: older history changes only the one that sees it
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; context 2; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; context 6; reply "B blocks"; }
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen { internal; return 200 "$classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c3a&verdict=no; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c3b&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"assistant\",\"content\":\"a2\"},{\"role\":\"user\",\"content\":\"q\"}]}",
"POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"OTHER\"},{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"assistant\",\"content\":\"a2\"},{\"role\":\"user\",\"content\":\"q\"}]}",
"POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"assistant\",\"content\":\"a2 \"},{\"role\":\"user\",\"content\":\"q\"}]}",
"POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"assistant\",\"content\":\"a2\"},{\"role\":\"user\",\"content\":\"q\"}]}",
"GET /mock/count?tag=c3a",
"GET /mock/count?tag=c3b"]
--- response_body_like eval
["^a:negative:[\\d.]+,b:negative:[\\d.]+\$",
"^a:negative\\(cached\\):[\\d.]+,b:negative:[\\d.]+\$",
"^a:negative:[\\d.]+,b:negative:[\\d.]+\$",
"^a:negative\\(cached\\):[\\d.]+,b:negative\\(cached\\):[\\d.]+\$",
"^2\$",
"^3\$"]



=== TEST 4: a cached positive from the top classifier answers with no call at all
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
--- config
    location = /chat {
        classify a b; classify_pass /_gen; classify_cache verdicts;
        add_header X-Results $classify_results;
        add_header X-Time $classify_time;
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c4a&verdict=yes&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c4b&verdict=no&delay=2; }
--- request eval
["POST /chat
{\"user_query\":\"pizza?\"}",
"POST /chat
{\"user_query\":\"pizza?\"}",
"GET /mock/log?tag=c4a&n=1&wait=1",
"GET /mock/log?tag=c4b&n=1&wait=2"]
--- response_headers_like eval
["X-Classify-Verdict: a\nX-Results: a:positive:[\\d.]+,b:aborted:[\\d.]+",
"X-Classify-Verdict: a\nX-Results: a:positive\\(cached\\):[\\d.]+,b:skipped:0\\.000\nX-Time: \\d{1,2}\\.\\d{3}",
"", ""]
--- response_body_like eval
["A blocks", "A blocks", "^200 [\\d.]+ \\S+\\n\$", "^499 [\\d.]+ \\S+\\n\$"]



=== TEST 5: a cached negative and a miss: only the miss is called, and it decides
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; context 2; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; context 6; reply "B blocks"; }
--- config
    location = /warm { classify a; classify_pass /_gen; classify_cache verdicts; }
    location = /chat {
        classify a b; classify_pass /_gen; classify_cache verdicts;
        add_header X-Results $classify_results;
    }
    location = /_gen { internal; return 200 "passed $classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c5a&verdict=no; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c5b&verdict=yes; }
--- request eval
["POST /warm
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c5a",
"GET /mock/count?tag=c5b"]
--- response_headers_like eval
["",
"X-Classify-Verdict: b\nX-Results: a:negative\\(cached\\):[\\d.]+,b:positive:[\\d.]+",
"", ""]
--- response_body_like eval
["^passed a:negative:[\\d.]+\$", "B blocks", "^1\$", "^1\$"]



=== TEST 5a: a cached positive in the middle: the one before it is called, the one after never starts
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
    classifier c { pass /_c/c; prompt "c?"; reply "C blocks"; }
--- config
    location = /warm { classify b; classify_pass /_gen; classify_cache verdicts; }
    location = /chat {
        classify a b c; classify_pass /_gen; classify_cache verdicts;
        add_header X-Results $classify_results;
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c5xa&verdict=no&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c5xb&verdict=yes; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c5xc&verdict=no&delay=0.1; }
--- request eval
["POST /warm
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/log?tag=c5xa&n=1&wait=1",
"GET /mock/count?tag=c5xb",
"GET /mock/count?tag=c5xc"]
--- response_headers_like eval
["",
"X-Classify-Verdict: b\nX-Results: a:negative:(19\\d|[2-9]\\d\\d)\\.\\d{3},b:positive\\(cached\\):[\\d.]+,c:skipped:0\\.000",
"", "", ""]
--- response_body_like eval
["B blocks", "B blocks", "^200 [\\d.]+ \\S+\\n\$", "^1\$", "^0\$"]



=== TEST 6: errors, timeouts, aborts and shadows are never cached
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
    classifier t { pass /_c/t; prompt "t?"; reply "T blocks"; timeout 200ms; }
    classifier s { pass /_c/s; prompt "s?"; shadow on; }
--- config
    location = /chat { classify a b t s; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen { internal; return 200 "passed $classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c6a&status=500; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c6b&mode=garbage; }
    location /_c/t { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c6t&delay=1; }
    location /_c/s { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c6s&verdict=yes; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/log?tag=c6a&n=2&wait=1",
"GET /mock/log?tag=c6b&n=2&wait=1",
"GET /mock/log?tag=c6t&n=2&wait=2",
"GET /mock/log?tag=c6s&n=2&wait=1"]
--- response_body_like eval
["^passed a:error:[\\d.]+,b:error:[\\d.]+,t:timeout:[\\d.]+,s:\\w+:[\\d.]+\$",
"^passed a:error:[\\d.]+,b:error:[\\d.]+,t:timeout:[\\d.]+,s:\\w+:[\\d.]+\$",
"^(500 [\\d.]+ \\S+\\n){2}\$",
"^(200 [\\d.]+ \\S+\\n){2}\$",
"^(499 [\\d.]+ \\S+\\n){2}\$",
"^(200 [\\d.]+ \\S+\\n){2}\$"]



=== TEST 7: an on_error block verdict is not cached, nor the call it aborted
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; on_error block; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c7a&mode=garbage&delay=0.1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c7b&delay=1; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c7a",
"GET /mock/log?tag=c7b&n=2&wait=2"]
--- response_body_like eval
["A blocks", "A blocks", "^2\$", "^(499 [\\d.]+ \\S+\\n){2}\$"]



=== TEST 8: expiry: a classifier's own cache_valid 1s, the location's 1h for the other
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; cache_valid 1s; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_cache verdicts; classify_cache_valid 1h;
    }
    location = /_gen { internal; return 200 "$classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c8a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c8b; }
    location = /sleep { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/generate?tag=c8sleep&delay=1.3&chunks=0; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /sleep",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c8a",
"GET /mock/count?tag=c8b"]
--- response_body_like eval
["^a:negative:[\\d.]+,b:negative:[\\d.]+\$",
"^a:negative\\(cached\\):[\\d.]+,b:negative\\(cached\\):[\\d.]+\$",
"",
"^a:negative:[\\d.]+,b:negative\\(cached\\):[\\d.]+\$",
"^2\$",
"^1\$"]



=== TEST 9: cache_valid off: that classifier is always called, the other cached
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; cache_valid off; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen { internal; return 200 "$classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c9a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c9b; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c9a",
"GET /mock/count?tag=c9b"]
--- response_body_like eval
["^a:negative:[\\d.]+,b:negative:[\\d.]+\$",
"^a:negative:[\\d.]+,b:negative\\(cached\\):[\\d.]+\$",
"^2\$",
"^1\$"]



=== TEST 10: an agent step after a tool call hits the user turn's entry
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; context 6; reply "A blocks"; }
--- config
    location = /chat { classify a; classify_pass /_gen; classify_cache verdicts; }
    location = /_gen { internal; return 200 "$classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c10a; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"weather in Mecca?\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}]}",
"POST /chat
{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"weather in Mecca?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"41 C, sunny\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}]}",
"GET /mock/count?tag=c10a"]
--- response_body_like eval
["^a:negative:[\\d.]+\$",
"^a:negative\\(cached\\):[\\d.]+\$",
"^1\$"]



=== TEST 11: sequential mode: each classifier looked up at its turn; the failed one called again
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
    classifier c { pass /_c/c; prompt "c?"; reply "C blocks"; }
--- config
    location = /chat {
        classify a b c; classify_mode sequential; classify_pass /_gen;
        classify_cache verdicts;
    }
    location = /_gen { internal; return 200 "$classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c11a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c11b&status=503; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c11c; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c11a",
"GET /mock/count?tag=c11b",
"GET /mock/count?tag=c11c"]
--- response_body_like eval
["^a:negative:[\\d.]+,b:error:[\\d.]+,c:negative:[\\d.]+\$",
"^a:negative\\(cached\\):[\\d.]+,b:error:[\\d.]+,c:negative\\(cached\\):[\\d.]+\$",
"^1\$", "^2\$", "^1\$"]



=== TEST 12: sequential mode, every verdict cached: decided without a call
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
--- config
    location = /chat {
        classify a b; classify_mode sequential; classify_pass /_gen;
        classify_cache verdicts;
        add_header X-Time $classify_time;
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c12a&delay=0.2; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c12b&verdict=yes&delay=0.2; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c12a",
"GET /mock/count?tag=c12b"]
--- response_headers_like eval
["X-Classify-Verdict: b\nX-Time: (39\\d|[4-9]\\d\\d)\\.\\d{3}",
"X-Classify-Verdict: b\nX-Time: \\d{1,2}\\.\\d{3}",
"", ""]
--- response_body_like eval
["B blocks", "B blocks", "^1\$", "^1\$"]



=== TEST 13: classify_resolve first: a cached positive decides, the slower one never starts
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks"; }
--- config
    location = /chat {
        classify a b; classify_resolve first; classify_pass /_gen;
        classify_cache verdicts;
        add_header X-Results $classify_results;
    }
    location = /_gen { internal; return 500; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c13a&delay=1; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c13b&verdict=yes&delay=0.1; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/log?tag=c13a&n=1&wait=2",
"GET /mock/count?tag=c13b"]
--- response_headers_like eval
["X-Classify-Verdict: b\nX-Results: a:aborted:[\\d.]+,b:positive:[\\d.]+",
"X-Classify-Verdict: b\nX-Results: a:skipped:0\\.000,b:positive\\(cached\\):[\\d.]+",
"", ""]
--- response_body_like eval
["B blocks", "B blocks", "^499 [\\d.]+ \\S+\\n\$", "^1\$"]



=== TEST 14: classify_cache off in one location, the zone set for the server
--- http_config
    classify_cache_zone verdicts 1m;
    classify_cache verdicts;
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
--- config
    location = /chat { classify a; classify_pass /_gen; }
    location = /nocache { classify a; classify_pass /_gen; classify_cache off; }
    location = /_gen { internal; return 200 "$classify_results\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c14a; }
--- request eval
["POST /nocache
{\"user_query\":\"q\"}",
"POST /nocache
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}",
"GET /mock/count?tag=c14a"]
--- response_body_like eval
["^a:negative:[\\d.]+\$",
"^a:negative:[\\d.]+\$",
"^a:negative:[\\d.]+\$",
"^a:negative\\(cached\\):[\\d.]+\$",
"^3\$"]



=== TEST 15: classify_cache names an unknown zone
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; classify_cache nosuch; }
--- must_die
--- error_log eval
qr/unknown classify_cache_zone "nosuch" in "classify_cache" directive in \S+nginx\.conf:\d+/



=== TEST 16: a zone too small
--- http_config
    classify_cache_zone verdicts 8k;
--- config
--- must_die
--- error_log eval
qr/invalid size "8k" in "classify_cache_zone": at least \d+/



=== TEST 17: classify_cache_valid without a zone
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; classify_cache_valid 5m; }
--- must_die
--- error_log eval
qr/"classify_cache_valid" without a "classify_cache_zone" in \S+nginx\.conf:\d+/



=== TEST 18: a classifier's cache_valid without a zone
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; cache_valid 1h; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
"cache_valid" of classifier "a" without a "classify_cache_zone"



=== TEST 19: a bad cache_valid
--- http_config
    classify_cache_zone verdicts 1m;
    classifier a { pass /_c/a; prompt "p"; reply "r"; cache_valid never; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid value "never" in "cache_valid" of classifier "a"



=== TEST 20: a zero classify_cache_valid
--- http_config
    classify_cache_zone verdicts 1m;
--- config
    location = /chat { classify_cache verdicts; classify_cache_valid 0; }
--- must_die
--- error_log
"classify_cache_valid" directive must be more than 0



=== TEST 21: one zone declared twice
--- http_config
    classify_cache_zone verdicts 1m;
    classify_cache_zone verdicts 1m;
--- config
--- must_die
--- error_log
duplicate "classify_cache_zone" "verdicts"



=== TEST 22: the zone may be declared after the server that uses it
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks"; }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /chat { classify a; classify_pass /_gen; classify_cache late; }
        location = /_gen { internal; return 200 "$classify_results\n"; }
        location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=c22a; }
    }
    classify_cache_zone late 64k;
--- config
    location = /chat { proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- request eval
["POST /chat
{\"user_query\":\"q\"}",
"POST /chat
{\"user_query\":\"q\"}"]
--- response_body_like eval
["^a:negative:[\\d.]+\$", "^a:negative\\(cached\\):[\\d.]+\$"]
