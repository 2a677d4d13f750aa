# A decision slower than lingering_timeout must not cost the client its
# keep-alive connection.  Classifier subrequests carry discard_body (so that
# the classifier location's client_max_body_size does not refuse the body
# the gate built); nginx arms the client connection's read timer with
# lingering_timeout when such a subrequest ends while the main request lives
# on.  If that timer fires during the decision, the next request on the
# connection is closed unanswered (a pipelined one gets 408).  Each block:
# lingering_timeout 1s, one classifier that ends at once and one that takes
# 1.5 s, then a second request on the same connection.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: pass after a 1.5 s decision: the pipelined request is answered
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
--- config
    lingering_timeout 1s;
    location = /chat { classify a b; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated\n"; }
    location = /ping { return 200 "pong\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=ka1&verdict=no; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=kb1&verdict=no&delay=1.5; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body eval
["generated\n", "pong\n"]
--- no_error_log
[error]
client timed out



=== TEST 2: block after a 1.5 s decision: the pipelined request is answered
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
--- config
    lingering_timeout 1s;
    location = /chat { classify a b; classify_pass /_gen; classify_reply_format text; }
    location = /_gen { internal; return 200 "generated\n"; }
    location = /ping { return 200 "pong\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=ka2&verdict=no&delay=1.5; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=kb2&verdict=yes; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body eval
["B blocks.", "pong\n"]
--- no_error_log
[error]
client timed out



=== TEST 3: a shadow that ended at once, a 1.5 s decision: the pipelined request is answered
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier s { pass /_c/s; prompt "s?"; reply "S blocks."; shadow on; }
--- config
    lingering_timeout 1s;
    location = /chat { classify a s; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated\n"; }
    location = /ping { return 200 "pong\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=ka3&verdict=no&delay=1.5; }
    location /_c/s { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=ks3&verdict=yes; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body eval
["generated\n", "pong\n"]
--- no_error_log
[error]
client timed out



=== TEST 4: classify_timeout at 1.5 s with a call that ended at once: the pipelined request is answered
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
--- config
    lingering_timeout 1s;
    location = /chat { classify a b; classify_pass /_gen; classify_timeout 1500ms; }
    location = /_gen { internal; return 200 "generated\n"; }
    location = /ping { return 200 "pong\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=ka4&verdict=no; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=kb4&mode=hang; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body eval
["generated\n", "pong\n"]
--- no_error_log
client timed out



=== TEST 5: a classifier location that answers in its rewrite phase (return), listed after a slow one: the pipelined request is answered
--- http_config
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
--- config
    lingering_timeout 1s;
    location = /chat { classify b a; classify_pass /_gen; }
    location = /_gen { internal; return 200 "generated\n"; }
    location = /ping { return 200 "pong\n"; }
    location /_c/a { internal; return 200 '{"choices":[{"message":{"content":"no"}}]}'; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=kb5&verdict=no&delay=1.5; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body eval
["generated\n", "pong\n"]
--- no_error_log
[error]
client timed out
