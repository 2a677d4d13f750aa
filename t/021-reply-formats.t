# The canned reply in the Responses and Anthropic formats, and the chat
# completions usage chunk: the exact bytes (ids and clocks aside) and the
# SSE framing each official SDK reads, streamed and not.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use JSON::PP ();

# the reply with its unique id and its clock made constant
sub main::canon {
    my $body = shift;
    $body =~ s/classify-\d+-\d+/classify-ID/g;
    $body =~ s/"(created|created_at)":\d+/"$1":T/g;
    return $body;
}

# "event: T\ndata: {...}\n\n" events: each named as its JSON "type", one
# line of each, nothing else; "seq type" per event (seq "-" without one)
sub main::typed_events {
    my $body = shift;
    my $out = '';
    $body =~ s/\n\n\z// or return "no blank line at the end\n";
    for my $ev (split /\n\n/, $body, -1) {
        my @lines = split /\n/, $ev, -1;
        return "not two lines: $ev\n" unless @lines == 2;
        my ($name) = $lines[0] =~ /^event: (\S+)$/ or return "no event: $ev\n";
        my ($data) = $lines[1] =~ /^data: (.*)$/ or return "no data: $ev\n";
        my $j = eval { JSON::PP::decode_json($data) } or return "bad JSON: $ev\n";
        return "event $name of type $j->{type}\n" unless $j->{type} eq $name;
        $out .= ($j->{sequence_number} // '-') . " $name\n";
    }
    return $out;
}

# "new" for an id not seen before in this file, "again" for one seen
my %seen;
sub main::id_once {
    my ($id) = shift =~ /"id":"([^"]+)"/ or return "no id\n";
    return $seen{$id}++ ? "again\n" : "new\n";
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<"EOF" . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "is it off-topic?"; reply "Sorry, I only\\nanswer \\"on-topic\\" questions."; }
EOF
    $block->set_value('config', <<"EOF" . ($block->config // ''));
    location /_c/a { internal; proxy_pass http://127.0.0.1:\$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=reply2&verdict=yes; }
    location = /_gen { internal; return 500; }
EOF
    $block->set_value('config', $block->config . <<"EOF") unless $block->config =~ /location = \/v1/;
    location = /v1/messages { classify a; classify_pass /_gen; }
    location = /v1/responses { classify a; classify_pass /_gen; }
    location = /v1/chat/completions { classify a; classify_pass /_gen; }
EOF
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: anthropic client asking to stream: the Messages events, byte for byte
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"model":"claude-x","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_headers
Content-Type: text/event-stream
X-Classify-Verdict: a
Cache-Control: no-cache
! Content-Length
--- response_body_filters eval
\&main::canon
--- response_body eval
<<'_END_'
event: message_start
data: {"type":"message_start","message":{"id":"msg_classify-ID","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sorry, I only\nanswer \"on-topic\" questions."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":0}}

event: message_stop
data: {"type":"message_stop"}

_END_
--- no_error_log
[error]



=== TEST 2: anthropic client not streaming: one Message object, byte for byte
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"pizza?"}]}
--- response_headers
Content-Type: application/json
X-Classify-Verdict: a
--- response_body_filters eval
\&main::canon
--- response_body chomp
{"id":"msg_classify-ID","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Sorry, I only\nanswer \"on-topic\" questions."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}



=== TEST 3: the Anthropic stream's framing: each event named as its type, one data line
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_body_filters eval
\&main::typed_events
--- response_body
- message_start
- content_block_start
- content_block_delta
- content_block_stop
- message_delta
- message_stop



=== TEST 4: responses client asking to stream: the Responses events, byte for byte
--- request
POST /v1/responses
{"model":"gpt-r","stream":true,"input":"pizza?"}
--- response_headers
Content-Type: text/event-stream
X-Classify-Verdict: a
Cache-Control: no-cache
! Content-Length
--- response_body_filters eval
\&main::canon
--- response_body eval
<<'_END_'
event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_classify-ID","object":"response","created_at":T,"status":"in_progress","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-r","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","usage":null,"user":null,"metadata":{}}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_classify-ID","object":"response","created_at":T,"status":"in_progress","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-r","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","usage":null,"user":null,"metadata":{}}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_classify-ID","type":"message","status":"in_progress","role":"assistant","content":[]}}

event: response.content_part.added
data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_classify-ID","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_classify-ID","output_index":0,"content_index":0,"delta":"Sorry, I only\nanswer \"on-topic\" questions."}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_classify-ID","output_index":0,"content_index":0,"text":"Sorry, I only\nanswer \"on-topic\" questions."}

event: response.content_part.done
data: {"type":"response.content_part.done","sequence_number":6,"item_id":"msg_classify-ID","output_index":0,"content_index":0,"part":{"type":"output_text","text":"Sorry, I only\nanswer \"on-topic\" questions.","annotations":[]}}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"msg_classify-ID","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Sorry, I only\nanswer \"on-topic\" questions.","annotations":[]}]}}

event: response.completed
data: {"type":"response.completed","sequence_number":8,"response":{"id":"resp_classify-ID","object":"response","created_at":T,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-r","output":[{"id":"msg_classify-ID","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Sorry, I only\nanswer \"on-topic\" questions.","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0},"user":null,"metadata":{}}}

_END_
--- no_error_log
[error]



=== TEST 5: responses client not streaming: one Response object, byte for byte
--- request
POST /v1/responses
{"model":"gpt-r","input":[{"role":"user","content":[{"type":"input_text","text":"pizza?"}]}]}
--- response_headers
Content-Type: application/json
X-Classify-Verdict: a
--- response_body_filters eval
\&main::canon
--- response_body chomp
{"id":"resp_classify-ID","object":"response","created_at":T,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-r","output":[{"id":"msg_classify-ID","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Sorry, I only\nanswer \"on-topic\" questions.","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0},"user":null,"metadata":{}}



=== TEST 6: the Responses stream's framing: named events, sequence numbers 0, 1, 2, ...
--- request
POST /v1/responses
{"model":"gpt-r","stream":true,"input":"pizza?"}
--- response_body_filters eval
\&main::typed_events
--- response_body
0 response.created
1 response.in_progress
2 response.output_item.added
3 response.content_part.added
4 response.output_text.delta
5 response.output_text.done
6 response.content_part.done
7 response.output_item.done
8 response.completed



=== TEST 7: chat completions with stream_options.include_usage: the usage chunk, choices [], before [DONE]
--- request
POST /v1/chat/completions
{"model":"gpt-x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"pizza?"}]}
--- response_body_filters eval
\&main::canon
--- response_body eval
<<'_END_'
data: {"id":"chatcmpl-classify-ID","object":"chat.completion.chunk","created":T,"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

data: {"id":"chatcmpl-classify-ID","object":"chat.completion.chunk","created":T,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"Sorry, I only\nanswer \"on-topic\" questions."},"finish_reason":null}]}

data: {"id":"chatcmpl-classify-ID","object":"chat.completion.chunk","created":T,"model":"gpt-x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"id":"chatcmpl-classify-ID","object":"chat.completion.chunk","created":T,"model":"gpt-x","choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}

data: [DONE]

_END_



=== TEST 8: ... and without include_usage no usage chunk
--- request
POST /v1/chat/completions
{"model":"gpt-x","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"pizza?"}]}
--- response_body_unlike: "usage"



=== TEST 9: every reply has an id of its own, in every format
--- more_headers
anthropic-version: 2023-06-01
--- request eval
["POST /v1/messages\n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
"POST /v1/messages\n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
"POST /v1/responses\n{\"model\":\"m\",\"input\":\"q\"}",
"POST /v1/responses\n{\"model\":\"m\",\"input\":\"q\"}"]
--- response_body_filters eval
\&main::id_once
--- response_body eval
["new\n", "new\n", "new\n", "new\n"]



=== TEST 10: classify_input anthropic: an Anthropic reply without the anthropic-version header
--- config
    location = /v1/messages { classify a; classify_pass /_gen; classify_input anthropic; }
--- request
POST /v1/messages
{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"pizza?"}]}
--- response_body_filters eval
\&main::typed_events
--- response_body
- message_start
- content_block_start
- content_block_delta
- content_block_stop
- message_delta
- message_stop



=== TEST 11: without the header and classify_input auto, a messages body is chat completions
--- config
    location = /v1/messages { classify a; classify_pass /_gen; }
--- request
POST /v1/messages
{"model":"claude-x","messages":[{"role":"user","content":"pizza?"}]}
--- response_body_like: ^\{"id":"chatcmpl-classify-\d+-\d+","object":"chat.completion",



=== TEST 12: classify_reply_format anthropic for a fields body, streamed as the body asks
--- config
    location = /chat { classify a; classify_pass /_gen; classify_reply_format anthropic; }
--- request
POST /chat
{"user_query":"pizza?","stream":true}
--- response_body_filters eval
\&main::typed_events
--- response_body
- message_start
- content_block_start
- content_block_delta
- content_block_stop
- message_delta
- message_stop



=== TEST 13: classify_reply_format responses for a chat body: one Response, the model echoed
--- config
    location = /chat { classify a; classify_pass /_gen; classify_reply_format responses; }
--- request
POST /chat
{"model":"gpt-x","messages":[{"role":"user","content":"pizza?"}]}
--- response_body_filters eval
sub { my $j = JSON::PP::decode_json(shift); "$j->{object} $j->{status} $j->{model} $j->{output}[0]{content}[0]{text}\n" }
--- response_body
response completed gpt-x Sorry, I only
answer "on-topic" questions.



=== TEST 14: without a model in the body, "classify" stands for it
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"messages":[{"role":"user","content":"pizza?"}]}
--- response_body_like: "model":"classify"
