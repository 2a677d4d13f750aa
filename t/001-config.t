# Configuration: every bad setting stops nginx with an [emerg] naming the
# directive and the value; the SPEC's own example configuration loads.

use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: classify names an unknown classifier
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a nosuch; classify_pass @gen; }
--- must_die
--- error_log
unknown classifier "nosuch" in "classify" directive



=== TEST 2: a classifier without pass
--- http_config
    classifier a { prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
classifier "a" has no "pass"



=== TEST 3: a prompt_file that does not exist
--- http_config
    classifier a { pass /_c/a; prompt_file prompts/missing.txt; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log eval
qr{classifier "a": cannot open ".*/prompts/missing\.txt"}



=== TEST 4: a bad timeout
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; timeout 5parsecs; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid value "5parsecs" in "timeout" of classifier "a"



=== TEST 5: an openai classifier without a prompt
--- http_config
    classifier a { pass /_c/a; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
classifier "a" has no "prompt" or "prompt_file"



=== TEST 6: a blocking classifier without a reply
--- http_config
    classifier a { pass /_c/a; prompt "p"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
classifier "a" has no "reply" or "reply_file"



=== TEST 7: two classifiers with one name
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
    classifier a { pass /_c/b; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
duplicate classifier "a"



=== TEST 8: a bad on_error
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; on_error ignore; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid value "ignore" in "on_error" of classifier "a"



=== TEST 9: a bad protocol
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; protocol grpc; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid value "grpc" in "protocol" of classifier "a"



=== TEST 10: classify without classify_pass
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; }
--- must_die
--- error_log
needs "classify_pass"



=== TEST 11: classify_pass that is neither a named location nor a URI
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass backend; }
--- must_die
--- error_log
invalid "classify_pass" "backend"



=== TEST 12: a bad classify_mode
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; classify_mode fast; }
--- must_die
--- error_log
invalid value "fast" in "classify_mode" directive



=== TEST 13: an unknown setting inside a classifier
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; temperature 1; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
unknown directive "temperature" in classifier "a"



=== TEST 14: a positive word with punctuation
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; positive yes "y.s"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid word "y.s" in "positive" of classifier "a"



=== TEST 15: a bad context
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; context many; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid value "many" in "context" of classifier "a"



=== TEST 16: a bad classify_timeout
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; classify_timeout soon; }
--- must_die
--- error_log
"classify_timeout" directive invalid value



=== TEST 17: pass that is not a location URI
--- http_config
    classifier a { pass http://llm/; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
invalid "pass" "http://llm/" in classifier "a"



=== TEST 18: a classifier listed twice in classify
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a a; classify_pass @gen; }
--- must_die
--- error_log
classifier "a" is listed twice



=== TEST 19: a bad classifier name
--- http_config
    classifier "a-b" { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a-b; classify_pass @gen; }
--- must_die
--- error_log
invalid classifier name "a-b"



=== TEST 20: a prompt given twice (prompt and prompt_file)
--- http_config
    classifier a { pass /_c/a; prompt "p"; prompt_file ../html/p.txt; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; }
--- must_die
--- error_log
"prompt_file" is duplicate in classifier "a": it has a text already



=== TEST 21: a bad classify_redis parameter
--- config
    location = /chat { classify_redis 127.0.0.1:6379 dbx=1; }
--- must_die
--- error_log
invalid parameter "dbx=1" in "classify_redis"



=== TEST 22: a bad classify_redis timeout
--- config
    location = /chat { classify_redis unix:/run/redis.sock timeout=fast; }
--- must_die
--- error_log
invalid parameter "timeout=fast" in "classify_redis"



=== TEST 23: a bad classify_context_order
--- config
    location = /chat { classify_context_order newest; }
--- must_die
--- error_log
invalid value "newest" in "classify_context_order" directive, it must be one of "rpush", "lpush"



=== TEST 24: classify_timeout 0
--- http_config
    classifier a { pass /_c/a; prompt "p"; reply "r"; }
--- config
    location = /chat { classify a; classify_pass @gen; classify_timeout 0; }
--- must_die
--- error_log
"classify_timeout" must be more than 0



=== TEST 25: a classify_context_ttl under a second
--- config
    location = /chat { classify_context_ttl 500ms; }
--- must_die
--- error_log
"classify_context_ttl" must be at least 1s



=== TEST 26: an empty Redis password
--- config
    location = /chat { classify_redis 127.0.0.1:6379 password=; }
--- must_die
--- error_log
invalid parameter "password=" in "classify_redis"



=== TEST 27: the SPEC's example configuration loads, with its files
--- http_config
    classifier non_islamic {
        pass        /_classify/llm;
        protocol    openai;
        model       gpt-4o-mini;
        prompt_file ../html/prompts/non_islamic.txt;
        context     6;
        positive    true yes;
        timeout     5s;
        on_error    pass;
        reply_file  ../html/replies/non_islamic.txt;
        shadow      off;
    }
    classifier fiqh { pass /_classify/llm; prompt_file ../html/prompts/fiqh.txt;
                      context 2; reply "..."; }
    classify_redis  127.0.0.1:1;
    upstream backend { server 127.0.0.1:1; }
--- config
    location = /chat/stream {
        classify         non_islamic fiqh;
        classify_pass    @generate;
        classify_input   auto;
        classify_session $http_x_session_id;
        classify_redis_key chat:$classify_session;
    }
    location @generate  { proxy_pass http://backend; proxy_buffering off; }
    location /_classify/ { internal; proxy_pass http://127.0.0.1:1/v1/chat/completions; }
--- user_files
>>> prompts/non_islamic.txt
Answer yes if the question is not about Islam.
>>> prompts/fiqh.txt
Answer yes if the question asks for a religious ruling.
>>> replies/non_islamic.txt
I can only help with questions about Islam.
--- request
GET /chat/stream
--- error_code: 405
--- response_body_like: method not allowed
