# The output guard and the conversation in Redis: classify_context_store
# stores what the client actually received (the text before a cut and the
# reply, a whole answer's replacement), and an output classifier with
# context gets the conversation read from Redis and the user's question.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;

redis('DEL', 'chat:s1', 'chat:s2', 'chat:s3', 'chat:s4');
redis('RPUSH', 'chat:s4', '{"role":"user","content":"u0"}',
      '{"role":"assistant","content":"a0"}');

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier in { pass /_c/in; prompt "in?"; reply "The question is blocked."; }
    classifier out { pass /_c/out; prompt "food?"; context 3; reply "I can't continue this answer."; }
    classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
    location /_c/in { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in&verdict=no; }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=out&rule=offtopic; }
_EOC_
    }
});

no_shuffle();
run_tests();

sleep 0.5;

is_deeply(redis('LRANGE', 'chat:s1', 0, -1),
          ['{"role":"user","content":"q1"}',
           '{"role":"assistant","content":"Hello there, friend."}'],
          "a clean answer is stored whole");

my $s2 = redis('LRANGE', 'chat:s2', 0, -1);
is(scalar @$s2, 2, "a cut answer is stored");
like($s2->[1] // '', qr/^\{"role":"assistant","content":"The best (p|pi|piz|pizz)?I can't continue this answer\."\}$/,
     "... as the client got it: the text judged clean, then the reply");

is_deeply(redis('LRANGE', 'chat:s3', 0, -1),
          ['{"role":"user","content":"q3"}',
           '{"role":"assistant","content":"I can\'t continue this answer."}'],
          "a whole answer replaced: the reply is stored, once");

__DATA__

=== TEST 1: a clean answer, stored as it went
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 8; classify_context_store on; }
    location @gen {
        rewrite ^ /v1/generate?tag=g1&text=Hello%20there,%20friend.&chunks=5? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
--- request
POST /chat
{"messages":[{"role":"user","content":"q1"}],"session_id":"s1","stream":true}
--- response_body_like: "content":"end\."
--- no_error_log
[error]



=== TEST 2: a cut answer: what the client received is stored
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 8; classify_context_store on; }
    location @gen {
        rewrite ^ /v1/generate?tag=g2&text=The%20best%20pizza%20is%20in%20Naples.&chunks=12&gap=0.02? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
--- request
POST /chat
{"messages":[{"role":"user","content":"q2"}],"session_id":"s2","stream":true}
--- response_body_like: content_filter
--- no_error_log
[error]



=== TEST 3: a whole answer replaced by the reply: the reply is stored
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_context_store on; }
    location @gen {
        rewrite ^ /v1/generate?tag=g3&text=Have%20some%20pizza.&strict=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
--- request
POST /chat
{"messages":[{"role":"user","content":"q3"}],"session_id":"s3"}
--- response_headers
X-Classify-Verdict: out
--- response_body_like: "content":"I can't continue this answer\."
--- no_error_log
[error]



=== TEST 4: an output classifier's context: the conversation read from Redis, then the user's question
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 1000; }
    location @gen {
        rewrite ^ /v1/generate?tag=g4&text=Fine.&chunks=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
--- request eval
['POST /chat
{"user_query":"q4","session_id":"s4"}', "GET /mock/body?tag=out&i=-1"]
--- response_body_like eval
["Fine", '^\{"temperature":0,"max_tokens":5,"messages":\[\{"role":"system","content":"food\?"\},\{"role":"user","content":"u0"\},\{"role":"assistant","content":"a0"\},\{"role":"user","content":"q4"\},\{"role":"user","content":"Fine\."\}\]\}$']
