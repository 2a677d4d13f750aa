# The canned reply of a blocking classifier, in every classify_reply_format.
# OpenAI replies are checked event by event: each "data:" event must parse
# as JSON, and the filter prints what a chat client would see.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use JSON::PP ();

# "object content finish_reason" per event, "[DONE]" for the end
sub main::openai_events {
    my $body = shift;
    my $out = '';
    if ($body =~ /^\{/) {
        $body = "data: $body";   # one chat.completion object
    }
    for my $ev (split /\n\n/, $body) {
        $ev =~ s/^data: // or return "not an SSE event: $ev";
        if ($ev eq '[DONE]') { $out .= "[DONE]\n"; next; }
        my $j = eval { JSON::PP::decode_json($ev) } or return "bad JSON: $ev";
        my $c = $j->{choices}[0];
        my $d = $c->{delta} // $c->{message};
        $out .= join(' ', $j->{object}, $d->{role} // '-',
                     defined $d->{content} ? "'$d->{content}'" : '-',
                     $c->{finish_reason} // 'null') . "\n";
    }
    return $out;
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<"EOF" . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "Sorry, I only\\nanswer \\"on-topic\\" questions."; }
EOF
    $block->set_value('config', <<"EOF" . ($block->config // ''));
    location /_c/a { internal; proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=reply&verdict=yes; }
    location = /_gen { internal; return 500; }
EOF
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: openai client asking to stream: chat.completion.chunk events and [DONE]
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- request
POST /chat
{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_headers
Content-Type: text/event-stream
X-Classify-Verdict: a
Cache-Control: no-cache
! Content-Length
--- response_body_filters eval
\&main::openai_events
--- response_body
chat.completion.chunk assistant '' null
chat.completion.chunk - 'Sorry, I only
answer "on-topic" questions.' null
chat.completion.chunk - - stop
[DONE]



=== TEST 2: the events carry the client's model and one id
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- request
POST /chat
{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_body_like: ^(data: \{"id":"(chatcmpl-classify-\d+-\d+)","object":"chat.completion.chunk","created":\d+,"model":"gpt-x",[^\n]*\n\n){3}data: \[DONE\]\n\n$



=== TEST 3: openai client not streaming: one chat.completion object
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- request
POST /chat
{"model":"gpt-x","messages":[{"role":"user","content":"pizza?"}]}
--- response_headers
Content-Type: application/json
X-Classify-Verdict: a
--- response_body_filters eval
sub { my $j = JSON::PP::decode_json(shift); "$j->{object} $j->{model} $j->{choices}[0]{message}{role}: $j->{choices}[0]{message}{content} ($j->{choices}[0]{finish_reason})\n" }
--- response_body
chat.completion gpt-x assistant: Sorry, I only
answer "on-topic" questions. (stop)



=== TEST 4: fields client accepting SSE gets one event with a data line per line
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- more_headers
Accept: text/event-stream
--- request
POST /chat
{"user_query":"pizza?","session_id":"s1"}
--- response_headers
Content-Type: text/event-stream
X-Classify-Verdict: a
--- response_body eval
"data: Sorry, I only\ndata: answer \"on-topic\" questions.\n\n"



=== TEST 5: fields client without Accept gets the text
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- request
POST /chat
{"user_query":"pizza?"}
--- response_headers
Content-Type: text/plain; charset=utf-8
X-Classify-Verdict: a
--- response_body eval
"Sorry, I only\nanswer \"on-topic\" questions."



=== TEST 6: fields client accepting JSON gets {"verdict","reply"}
--- config
    location = /chat { classify a; classify_pass /_gen; }
--- more_headers
Accept: application/json
--- request
POST /chat
{"user_query":"pizza?"}
--- response_headers
Content-Type: application/json
--- response_body_filters eval
sub { my $j = JSON::PP::decode_json(shift); "$j->{verdict}|$j->{reply}" }
--- response_body eval
"a|Sorry, I only\nanswer \"on-topic\" questions."



=== TEST 7: classify_reply_format json overrides what the client asked for
--- config
    location = /chat { classify a; classify_pass /_gen; classify_reply_format json; }
--- request
POST /chat
{"stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_body chomp
{"verdict":"a","reply":"Sorry, I only\nanswer \"on-topic\" questions."}



=== TEST 8: classify_reply_format text
--- config
    location = /chat { classify a; classify_pass /_gen; classify_reply_format text; }
--- request
POST /chat
{"stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_headers
Content-Type: text/plain; charset=utf-8
--- response_body eval
"Sorry, I only\nanswer \"on-topic\" questions."



=== TEST 9: classify_reply_format sse for an openai body
--- config
    location = /chat { classify a; classify_pass /_gen; classify_reply_format sse; }
--- request
POST /chat
{"messages":[{"role":"user","content":"pizza?"}]}
--- response_body eval
"data: Sorry, I only\ndata: answer \"on-topic\" questions.\n\n"



=== TEST 9b: sse from a reply_file saved with CRLF and a lone CR: every line end is a "data:" line
--- http_config
    classifier f { pass /_c/a; prompt "p"; reply_file ../html/crlf.txt; }
--- config
    location = /chat { classify f; classify_pass /_gen; classify_reply_format sse; }
--- user_files eval
[["crlf.txt", "first line\r\nsecond\rthird\r\n"]]
--- request
POST /chat
{"user_query":"pizza?"}
--- response_body eval
"data: first line\ndata: second\ndata: third\n\n"



=== TEST 10: classify_reply_format openai for a fields body, not streaming
--- config
    location = /chat { classify a; classify_pass /_gen; classify_reply_format openai; }
--- request
POST /chat
{"user_query":"pizza?"}
--- response_body_filters eval
\&main::openai_events
--- response_body
chat.completion assistant 'Sorry, I only
answer "on-topic" questions.' stop



=== TEST 11: reply_file, relative to the configuration directory
--- http_config
    classifier f { pass /_c/a; prompt "p"; reply_file ../html/reply.txt; }
--- config
    location = /chat { classify f; classify_pass /_gen; classify_reply_format text; }
--- user_files
>>> reply.txt
A reply from a file.
--- request
POST /chat
{"user_query":"pizza?"}
--- response_headers
X-Classify-Verdict: f
--- response_body chomp
A reply from a file.
