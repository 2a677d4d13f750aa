# The streaming output guard (classify_output): the passed generation's
# answer judged window by window as it streams, in the chat completions,
# Responses and Anthropic formats and whole.  hold: a window reaches the
# client once judged negative; release: it goes at once and a positive
# verdict cuts the stream at the next event.  A positive verdict ends the
# stream in its own format with the reply and closes the generation (the
# mock's 499).  Each block says what the client and the mock saw.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use JSON::PP ();

our $clean = 'Prayer is observed five times a day: at dawn, at noon, in the '
          . 'afternoon, at sunset and at night.';
our $flagged = 'The moon is bright tonight over the old town. The best pizza '
            . 'is in Naples, they say, and more text follows it here.';

sub uri { my $s = shift; $s =~ s/([^A-Za-z0-9.])/sprintf('%%%02X', ord $1)/ge; $s }

$ENV{TEST_NGINX_TEXT_CLEAN} = uri($clean);
$ENV{TEST_NGINX_TEXT_FLAGGED} = uri($flagged);

# 14 KB of answer in 140 chunks, a flagged word in the 50th, as a chat
# completions stream (a static file: it all comes at once)
our $long_flagged = join '', map { $_ == 50 ? ('x' x 44) . ' pizza ' . ('x' x 49)
                                            : ('x' x 100) } 1 .. 140;

sub main::long_sse {
    my $sse = '';
    for my $i (0 .. 139) {
        my $t = substr($main::long_flagged, 100 * $i, 100);
        $sse .= 'data: {"id":"l","object":"chat.completion.chunk","created":1,'
              . '"model":"m","choices":[{"index":0,"delta":{"content":"' . $t
              . '"},"finish_reason":null}]}' . "\n\n";
    }
    return $sse . 'data: {"id":"l","object":"chat.completion.chunk","created":1,'
         . '"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
         . "\n\ndata: [DONE]\n\n";
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier in { pass /_c/in; prompt "in?"; reply "The question is blocked."; }
    classifier out { pass /_c/out; prompt "Is this answer about food?"; reply "I can't continue this answer."; }
_EOC_

    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
    location /_c/in { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=in&verdict=no; }
_EOC_
    }
});

# the events of a stream, one line each: "text:...", "finish:...", "done"
# (chat completions), "TYPE[:text]" (Responses, Anthropic)
sub main::chat_events {
    my @out;
    for my $data ($_[0] =~ /^data: (.*)$/mg) {
        if ($data eq '[DONE]') { push @out, 'done'; next }
        my $j = JSON::PP::decode_json($data);
        my $c = $j->{choices}[0] or do { push @out, 'usage'; next };
        push @out, "text:$c->{delta}{content}" if defined $c->{delta}{content};
        push @out, "finish:$c->{finish_reason}" if defined $c->{finish_reason};
    }
    return \@out;
}

# the text of a chat stream, and how it ended
sub main::chat_summary {
    my $ev = main::chat_events($_[0]);
    my $text = join '', map { /^text:(.*)/s ? $1 : () } @$ev;
    my @end = grep { !/^text:/ } @$ev;
    return "$text|@end\n";
}

# a cut chat stream: what was sent of the answer before the reply
sub main::chat_cut {
    my ($body, $full, $word) = @_;
    my ($text, $end) = main::chat_summary($body) =~ /^(.*)\|(.*)\n$/s;
    my $reply = "I can't continue this answer.";
    return "no reply at the end: $text\n" unless $text =~ s/\Q$reply\E$//;
    return "not a prefix of the answer: $text\n"
        unless substr($full, 0, length $text) eq $text;
    return ($text =~ /\Q$word\E/ ? "the flagged word was sent, "
                                  : "the flagged word was not sent, ")
           . length($text) . " bytes of text before the reply, $end\n";
}

# the mock's "chunkN " stream: how many came, in order, and its end
sub main::chunks_summary {
    my ($body, $n) = @_;
    my @n = $body =~ /"content":"chunk(\d+) "/g;
    my $in_order = join(',', @n) eq join(',', 1 .. $n);
    return scalar(@n) . " chunks" . ($in_order ? " in order" : "")
         . ($body =~ /"finish_reason":"stop".*\n\ndata: \[DONE\]\n\n\z/s
            ? ", done\n" : ", no end\n");
}

sub main::typed_events {
    my @out;
    for my $data ($_[0] =~ /^data: (.*)$/mg) {
        my $j = JSON::PP::decode_json($data);
        my $t = $j->{delta} // '';
        $t = $t->{text} // $t->{stop_reason} // '' if ref $t;
        push @out, $j->{type} . (length $t ? ":$t" : '');
    }
    return join(',', @out) . "\n";
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: hold: a clean answer arrives whole and in order, judged in several windows, still streaming
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o1g&text=$TEST_NGINX_TEXT_CLEAN&chunks=20&gap=0.1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o1o&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"how often do we pray?"}],"stream":true}
--- timeout: 0.7
--- response_headers
Content-Type: text/event-stream
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"Prayer is observed five times a day: at dawn, at noon, in the afternoon, at sunset and at night.|finish:stop done\n"
--- error_log eval
qr/\[info\] .*classify: output verdict pass, judgements: [5-9] in \d+\.\d{3}ms, out:negative\/\d+\.\d{3}ms, held at most \d+ bytes, the backend waited 0 times/
--- no_error_log
[error]
[alert]



=== TEST 2: ... each judgement saw the answer so far as the query, the user's question as its context
--- request eval
["GET /mock/body?tag=o1o&i=1", "GET /mock/body?tag=o1o&i=-1", "GET /mock/count?tag=o1o"]
--- response_body_like eval
['^\{"temperature":0,"max_tokens":5,"messages":\[\{"role":"system","content":"Is this answer about food\?"\},\{"role":"user","content":"Prayer is observ[a-z ]*"\}\]\}$',
 '^\{"temperature":0,"max_tokens":5,"messages":\[\{"role":"system","content":"Is this answer about food\?"\},\{"role":"user","content":"Prayer is observed five times a day: at dawn, at noon, in the afternoon, at sunset and at night\."\}\]\}$',
 '^[5-9]$']



=== TEST 3: hold: a flagged word never reaches the client; the text judged clean before it does; the stream ends properly
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o3g&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o3o&rule=offtopic; }
--- request
POST /chat
{"messages":[{"role":"user","content":"tell me about the town"}],"stream":true}
--- response_body_filters eval
sub { main::chat_cut($_[0], $main::flagged, 'pizza') }
--- response_body_like: ^the flagged word was not sent, (3\d|4\d|5[0-3]) bytes of text before the reply, finish:content_filter done$
--- error_log eval
qr/\[info\] .*classify: output verdict out, judgements: \d+ in \d+\.\d{3}ms, out:positive\/\d+\.\d{3}ms, held at most \d+ bytes, the backend waited 0 times, cut after \d+ bytes of text of \d+, generation closed after \d+\.\d{3}ms/
--- no_error_log
[error]
[alert]



=== TEST 4: ... the generation's connection closed early: 499 at the mock before its 2 s stream was over
--- request
GET /mock/log?tag=o3g&wait=2
--- response_body_like: ^499 (0\.\d+|1\.[0-7]\d*) /v1/generate



=== TEST 5: release: events go at once, the judgement behind them; a positive cuts the stream at the next event
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 16; classify_output_mode release; }
    location @gen {
        rewrite ^ /v1/generate?tag=o5g&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o5o&rule=offtopic&delay=0.15; }
--- request
POST /chat
{"messages":[{"role":"user","content":"tell me about the town"}],"stream":true}
--- response_body_filters eval
sub { main::chat_cut($_[0], $main::flagged, 'pizza') }
--- response_body_like: ^the flagged word was sent, (5[5-9]|[6-9]\d|10\d) bytes of text before the reply, finish:content_filter done$
--- error_log eval
qr/classify: output verdict out, judgements: \d+ in/
--- no_error_log
[error]
[alert]



=== TEST 6: ... what came after the event the verdict found was never sent, and the generation was closed
--- request eval
["GET /mock/log?tag=o5g&wait=2"]
--- response_body_like eval
['^499 (0\.\d+|1\.[0-7]\d*) /v1/generate']



=== TEST 7: release: a clean answer goes out whole, the message's end only once the last window is judged
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 32; classify_output_mode release; }
    location @gen {
        rewrite ^ /v1/generate?tag=o7g&text=$TEST_NGINX_TEXT_CLEAN&chunks=10&gap=0.02? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o7o&verdict=no&delay=0.3; }
--- request
POST /chat
{"messages":[{"role":"user","content":"how often?"}],"stream":true,"stream_options":{"include_usage":true}}
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"Prayer is observed five times a day: at dawn, at noon, in the afternoon, at sunset and at night.|finish:stop usage done\n"
--- error_log eval
qr/classify: output verdict pass, judgements: [2-4] in/
--- no_error_log
[error]



=== TEST 8: Responses: the cut ends the open text part with the reply, a Response incomplete for content_filter
--- config
    location = /v1/responses { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o8g&format=responses&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.05? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o8o&rule=offtopic; }
--- request
POST /v1/responses
{"model":"gpt-r","input":"tell me about the town","stream":true}
--- response_body_filters eval
\&main::typed_events
--- response_body_like: ^response\.created,response\.output_item\.added,response\.content_part\.added,response\.output_text\.delta:The m(,response\.output_text\.delta:[^,]*)+,response\.output_text\.delta:I can't continue this answer\.,response\.output_text\.done,response\.content_part\.done,response\.output_item\.done,response\.completed$
--- no_error_log
[error]



=== TEST 9: ... byte for byte: the generation's item, indexes and sequence numbers go on; the done events carry the text the client got
--- config
    location = /v1/responses { classify in; classify_pass @gen; classify_output out; classify_output_window 1000; }
    location @gen {
        rewrite ^ /v1/generate?tag=o9g&format=responses&text=Some%20pizza.&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o9o&rule=offtopic; }
--- request
POST /v1/responses
{"model":"gpt-r","input":"tell me","stream":true}
--- response_body_filters eval
sub { my @ev = $_[0] =~ /^data: (.*)$/mg; my $t = CORE::join "\n", @ev[3 .. $#ev], '';
      $t =~ s/"created_at":\d+/"created_at":0/g; $t }
--- response_body eval
'{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_gen","output_index":0,"content_index":0,"delta":"I can\'t continue this answer."}
{"type":"response.output_text.done","sequence_number":4,"item_id":"msg_gen","output_index":0,"content_index":0,"text":"I can\'t continue this answer."}
{"type":"response.content_part.done","sequence_number":5,"item_id":"msg_gen","output_index":0,"content_index":0,"part":{"type":"output_text","text":"I can\'t continue this answer.","annotations":[]}}
{"type":"response.output_item.done","sequence_number":6,"output_index":0,"item":{"id":"msg_gen","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"I can\'t continue this answer.","annotations":[]}]}}
{"type":"response.completed","sequence_number":7,"response":{"id":"resp_gen","object":"response","created_at":0,"status":"incomplete","error":null,"incomplete_details":{"reason":"content_filter"},"instructions":null,"max_output_tokens":null,"model":"gpt-r","output":[{"id":"msg_gen","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"I can\'t continue this answer.","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0},"user":null,"metadata":{}}}
'



=== TEST 10: Anthropic: the cut ends the open text block with the reply, stop_reason refusal, message_stop
--- config
    location = /v1/messages { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o10g&format=anthropic&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.05? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o10o&rule=offtopic; }
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"tell me about the town"}],"stream":true}
--- response_body_filters eval
\&main::typed_events
--- response_body_like: ^message_start,content_block_start,ping,content_block_delta:The m(,content_block_delta:[^,]*)+,content_block_delta:I can't continue this answer\.,content_block_stop,message_delta:refusal,message_stop$
--- no_error_log
[error]



=== TEST 11: a whole (non-streamed) answer is judged whole: a clean one goes out as the backend sent it
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; }
    location @gen {
        rewrite ^ /v1/generate?tag=o11g&text=$TEST_NGINX_TEXT_CLEAN&strict=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Output $classify_output_verdict;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o11o&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"how often?"}]}
--- response_headers_like
Content-Type: application/json
Content-Length: \d+
X-Output: pass
--- response_body_like: ^\{"id":"chatcmpl-gen","object":"chat.completion",.*"content":"Prayer is observed five times a day: at dawn, at noon, in the afternoon, at sunset and at night\."
--- error_log eval
qr/classify: output verdict pass, judgements: 1 in/
--- no_error_log
[error]



=== TEST 12: ... a flagged one is replaced by the reply, in the client's format; the classifier saw the whole text
--- config
    location = /v1/messages { classify in; classify_pass @gen; classify_output out; }
    location @gen {
        rewrite ^ /v1/generate?tag=o12g&format=anthropic&text=$TEST_NGINX_TEXT_FLAGGED&strict=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o12o&rule=offtopic; }
--- more_headers
anthropic-version: 2023-06-01
--- request eval
['POST /v1/messages
{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"tell me about the town"}]}',
"GET /mock/body?tag=o12o"]
--- response_headers eval
["X-Classify-Verdict: out\nContent-Type: application/json", ""]
--- response_body_like eval
['^\{"id":"msg_classify-[^"]*","type":"message","role":"assistant","model":"claude-x","content":\[\{"type":"text","text":"I can\'t continue this answer\."\}\],"stop_reason":"end_turn"',
 '"content":"The moon is bright tonight over the old town\. The best pizza is in Naples, they say, and more text follows it here\."\}\]\}$']
--- no_error_log
[error]



=== TEST 13: an output classifier that fails (500) passes the answer by its on_error pass, logged
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 32; }
    location @gen {
        rewrite ^ /v1/generate?tag=o13g&text=$TEST_NGINX_TEXT_FLAGGED&chunks=8? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o13o&status=500; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"$main::flagged|finish:stop done\n"
--- error_log eval
[qr/classifier "out" failed: classifier answered with a non-2xx status \(status 500\), passing \(on_error pass\)/,
 qr/classify: output verdict pass, judgements: \d+ in \d+\.\d{3}ms, out:error\//]



=== TEST 14: ... with on_error block it cuts the answer at its first window
--- http_config
    classifier strict { pass /_c/strict; prompt "p"; on_error block; reply "Checks are down."; }
--- config
    location = /chat { classify in; classify_pass @gen; classify_output strict; classify_output_window 32; }
    location @gen {
        rewrite ^ /v1/generate?tag=o14g&text=$TEST_NGINX_TEXT_CLEAN&chunks=8&gap=0.05? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/strict { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o14o&mode=garbage; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"Checks are down.|finish:content_filter done\n"
--- error_log eval
qr/classifier "strict" failed: answer is not valid JSON \(status 200\), blocking \(on_error block\)/



=== TEST 15: an output classifier past its timeout fails open: the window goes out once it expires
--- http_config
    classifier slow { pass /_c/slow; prompt "p"; timeout 300ms; reply "S"; }
--- config
    location = /chat { classify in; classify_pass @gen; classify_output slow; classify_output_window 1000; }
    location @gen {
        rewrite ^ /v1/generate?tag=o15g&text=$TEST_NGINX_TEXT_CLEAN&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Elapsed $request_time;
    }
    location /_c/slow { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o15o&mode=hang; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"$main::clean|finish:stop done\n"
--- error_log eval
[qr/classifier "slow" failed: timed out, passing \(on_error pass\)/,
 qr/classify: output verdict pass, judgements: 1 in (2[89]\d|[3-9]\d\d)\.\d{3}ms, slow:timeout\//]



=== TEST 16: ... and classify_timeout bounds a judgement as it bounds the decision
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 1000; classify_timeout 400ms; }
    location @gen {
        rewrite ^ /v1/generate?tag=o16g&text=$TEST_NGINX_TEXT_CLEAN&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o16o&mode=hang; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"$main::clean|finish:stop done\n"
--- error_log eval
qr/classifier "out" failed: classify_timeout expired, passing \(on_error pass\)/



=== TEST 17: the client going away mid-judgement closes the judgement's call and the generation
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o17g&text=$TEST_NGINX_TEXT_CLEAN&chunks=20&gap=0.1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o17o&delay=3; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- timeout: 0.6
--- abort
--- ignore_response
--- wait: 0.2
--- error_log
client prematurely closed connection
--- no_error_log
[error]
[alert]



=== TEST 18: ... both saw their client go at once: 499s well before the call's 3 s and the stream's 2 s
--- request eval
["GET /mock/log?tag=o17o&wait=2", "GET /mock/log?tag=o17g&wait=2"]
--- response_body_like eval
['^499 0\.\d+ /v1/chat/completions', '^499 (0\.\d+|1\.[0-4]\d*) /v1/generate']



=== TEST 19: backpressure: a stream far bigger than classify_output_buffer, judged slowly, arrives whole; the backend waited
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 4k; classify_output_buffer 8k; }
    location @gen {
        rewrite ^ /v1/generate?tag=o19g&chunks=3000? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        proxy_buffer_size 4k;
        proxy_method GET;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o19o&verdict=no&delay=0.02; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
sub { main::chunks_summary($_[0], 3000) }
--- response_body
3000 chunks in order, done
--- error_log eval
qr/classify: output verdict pass, judgements: \d+ in \d+\.\d{3}ms, out:negative\/\d+\.\d{3}ms, held at most ([0-7]\d{3}|8[01]\d\d|819[0-2]|\d{1,3}) bytes, the backend waited [1-9]\d* times/
--- no_error_log
[error]
[alert]



=== TEST 20: counted: judgements, output decisions by verdict, each output classifier's outcomes and time, in both outputs
--- http_config
    classify_metrics_zone out20 1m;
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 1000; }
    location = /metrics { classify_status; }
    location @gen {
        rewrite ^ /v1/generate?tag=o20g&text=$arg_t&chunks=3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o20o&rule=offtopic; }
--- request eval
["POST /chat?t=Hello%20there
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"POST /chat?t=Good%20pizza
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /metrics", "GET /metrics?format=json"]
--- response_body_filters eval
[[], [],
 [sub { CORE::join '', map { "$_\n" } grep { /^classify_output_(judgements_total|decisions_total|classifier_verdicts_total\{classifier="out",verdict="(positive|negative)")|^classify_output_(judgement|classifier)_seconds_count/ } split /\n/, $_[0] }],
 [sub { my $j = JSON::PP::decode_json($_[0]);
        "judgements=$j->{output_judgements} pass=$j->{output_decisions}{pass} out=$j->{output_decisions}{out} "
        . "positive=$j->{classifiers}{out}{output_verdicts}{positive} count=$j->{classifiers}{out}{output_latency_ms}{count} "
        . "in=" . (exists $j->{classifiers}{in}{output_verdicts} ? "listed" : "not listed") . "\n" }]]
--- response_body_like eval
['finish_reason":"stop"', "I can't continue",
quotemeta("classify_output_judgements_total 2
classify_output_decisions_total{verdict=\"pass\"} 1
classify_output_decisions_total{verdict=\"error\"} 0
classify_output_decisions_total{verdict=\"out\"} 1
classify_output_classifier_verdicts_total{classifier=\"out\",verdict=\"positive\",shadow=\"false\"} 1
classify_output_classifier_verdicts_total{classifier=\"out\",verdict=\"negative\",shadow=\"false\"} 1
classify_output_judgement_seconds_count 2
classify_output_classifier_seconds_count{classifier=\"out\"} 2
") . '$',
quotemeta("judgements=2 pass=1 out=1 positive=1 count=2 in=not listed\n") . '$']



=== TEST 21: the variables in the access log, written once the answer has gone: a pass, then a cut
--- http_config
    log_format out21 '$classify_verdict $classify_output_verdict $classify_output_results';
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 1000; access_log $TEST_NGINX_SERVER_ROOT/logs/out21.log out21; }
    location = /log21 { access_log off; alias $TEST_NGINX_SERVER_ROOT/logs/out21.log; }
    location @gen {
        rewrite ^ /v1/generate?tag=o21g&text=$arg_t&chunks=3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        access_log $TEST_NGINX_SERVER_ROOT/logs/out21.log out21;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o21o&rule=offtopic; }
--- request eval
["POST /chat?t=Hello%20there
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"POST /chat?t=Good%20pizza
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /log21"]
--- response_body_like eval
['finish_reason":"stop"', "I can't continue", "^pass pass out:negative:\\d+\\.\\d{3}\npass out out:positive:\\d+\\.\\d{3}\n\$"]



=== TEST 22: bad settings fail nginx -t, naming the directive
--- config
    location = /chat { classify in; classify_pass @gen; classify_output nosuch; }
    location @gen { return 200; }
--- must_die
--- error_log
unknown classifier "nosuch" in "classify_output" directive



=== TEST 23: ... a mode that is not hold or release
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_mode later; }
    location @gen { return 200; }
--- must_die
--- error_log
invalid value "later" in "classify_output_mode" directive, it must be one of "hold", "release"



=== TEST 24: ... a window of 0
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 0; }
    location @gen { return 200; }
--- must_die
--- error_log
"classify_output_window" directive must be more than 0



=== TEST 25: ... a buffer under 1k
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_buffer 512; }
    location @gen { return 200; }
--- must_die
--- error_log
"classify_output_buffer" directive must be at least 1k



=== TEST 26: ... an output guard alone needs classify_pass too
--- config
    location = /chat { classify_output out; }
--- must_die
--- error_log
"classify_output" directive in



=== TEST 27: an output guard alone (no input classifiers) judges the answer
--- config
    location = /chat { classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o27g&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o27o&rule=offtopic; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
sub { main::chat_cut($_[0], $main::flagged, 'pizza') }
--- response_body_like: ^the flagged word was not sent, \d+ bytes of text before the reply, finish:content_filter done$
--- no_error_log
[error]



=== TEST 28: classify_speculate with the guard: the held generation is released through it
--- http_config
    classifier slowin { pass /_c/slowin; prompt "in?"; reply "R"; }
--- config
    location = /chat { classify slowin; classify_pass @gen; classify_speculate on; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o28g&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.02? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/slowin { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o28i&verdict=no&delay=0.2; }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o28o&rule=offtopic; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
sub { main::chat_cut($_[0], $main::flagged, 'pizza') }
--- response_body_like: ^the flagged word was not sent, \d+ bytes of text before the reply, finish:content_filter done$
--- error_log eval
[qr/classify: verdict pass in \d+\.\d{3}ms, slowin:negative\/\d+\.\d{3}ms, generation released after/,
 qr/classify: output verdict out, judgements: \d+ in/]
--- no_error_log
[error]



=== TEST 29: keep-alive: after a cut stream the connection serves the pipelined request
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location = /ping { return 200 "pong\n"; }
    location @gen {
        rewrite ^ /v1/generate?tag=o29g&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.02? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o29o&rule=offtopic; }
--- pipelined_requests eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"GET /ping"]
--- error_code eval
[200, 200]
--- response_body_like eval
['finish_reason":"content_filter".*data: \[DONE\]\n\n$', "^pong\n\$"]
--- no_error_log
[error]
[alert]



=== TEST 30: a generation that answers an error status passes unjudged, as a pass's would
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; }
    location @gen {
        rewrite ^ /v1/generate?tag=o30g&status=503? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Output "v=$classify_output_verdict";
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o30o; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}", "GET /mock/count?tag=o30o"]
--- error_code eval
[503, 200]
--- response_body_like eval
['^\{"error":\{"message":"mock error 503"', "^0\$"]
--- no_error_log
[error]



=== TEST 31: a shadow output classifier is judged beside, never cuts, runs to its end after the answer; its verdicts are logged
--- http_config
    classifier watch { pass /_c/watch; prompt "p"; shadow on; }
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out watch; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o31g&text=$TEST_NGINX_TEXT_CLEAN&chunks=10? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o31o&verdict=no; }
    location /_c/watch { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o31w&verdict=yes&delay=0.3; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"$main::clean|finish:stop done\n"
--- wait: 0.5
--- error_log eval
qr/classify: shadow classifier "watch" answered positive in/
--- no_error_log
[error]



=== TEST 32: a whole answer bigger than classify_output_buffer cannot be judged: on_error pass sends it as it came, once
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_buffer 1k; }
    location @gen {
        rewrite ^ /v1/generate?tag=o32g&chunks=300&strict=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        add_header X-Output $classify_output_verdict;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o32o; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers_like
Content-Type: application/json
--- response_body_filters eval
sub { my $j = JSON::PP::decode_json($_[0]); my @n = $j->{choices}[0]{message}{content} =~ /chunk(\d+) /g;
      scalar(@n) . " pieces, " . $j->{object} . "\n" }
--- response_body
300 pieces, chat.completion
--- error_log eval
qr/\[error\] .*classify: the answer cannot be judged: the answer is bigger than classify_output_buffer, passing \(on_error pass\)/
--- no_error_log
[alert]



=== TEST 33: ... with on_error block it is replaced by the reply
--- http_config
    classifier strict { pass /_c/strict; prompt "p"; on_error block; reply "Too long to check."; }
--- config
    location = /chat { classify in; classify_pass @gen; classify_output strict; classify_output_buffer 1k; }
    location @gen {
        rewrite ^ /v1/generate?tag=o33g&chunks=300&strict=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/strict { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o33o; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}]}
--- response_headers
X-Classify-Verdict: strict
--- response_body_like: ^\{"id":"chatcmpl-classify-[^"]+","object":"chat.completion",.*"content":"Too long to check\."
--- error_log eval
qr/classify: the answer cannot be judged: the answer is bigger than classify_output_buffer, blocking/
--- no_error_log
[alert]



=== TEST 34: a streamed event with more text than classify_output_buffer cannot be judged either: the stream passes, whole and in order
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_buffer 1k; }
    location @gen {
        rewrite ^ /v1/generate?tag=o34g&text=$arg_t&chunks=2? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o34o; }
--- request eval
"POST /chat?t=" . ("word%20" x 400) . "end
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}"
--- response_body_filters eval
sub { my $s = main::chat_summary($_[0]); my ($t, $end) = $s =~ /^(.*)\|(.*)$/s;
      my @w = $t =~ /word /g; scalar(@w) . " words, $end" }
--- response_body eval
"400 words, finish:stop done\n"
--- error_log eval
qr/classify: the answer cannot be judged: an event of the answer is bigger than classify_output_buffer, passing/
--- no_error_log
[alert]



=== TEST 35: hold: a tool call between the text passes in order; the answer arrives whole, byte for byte as without the guard
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location = /plain { classify in; classify_pass @gen; }
    location @gen {
        rewrite ^ /v1/generate?tag=o35g&text=$TEST_NGINX_TEXT_CLEAN&chunks=10&gap=0.02&tool=4&role=1? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o35o&verdict=no; }
--- request eval
["POST /chat
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
"POST /plain
{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}"]
--- response_body_filters eval
[[sub { (my $b = $_[0]) =~ s/"created":\d+/"created":0/g; $main::guarded35 = $b; "" }],
 [sub { (my $b = $_[0]) =~ s/"created":\d+/"created":0/g;
        ($b eq $main::guarded35 ? "the same bytes" : "other bytes")
        . ($b =~ /"tool_calls":\[\{"index":0,"id":"call_mock"/ ? ", with the tool call\n" : "\n") }]]
--- response_body eval
["", "the same bytes, with the tool call\n"]
--- no_error_log
[error]



=== TEST 36: Anthropic: a flagged word after a tool_use block: the cut ends the text block open, every block opened is closed
--- config
    location = /v1/messages { classify in; classify_pass @gen; classify_output out; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o36g&format=anthropic&text=$TEST_NGINX_TEXT_FLAGGED&chunks=20&gap=0.05&tool=3? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o36o&rule=offtopic; }
--- more_headers
anthropic-version: 2023-06-01
--- request
POST /v1/messages
{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"tell me about the town"}],"stream":true}
--- response_body_filters eval
sub {
    my (%open, @seq, $text, $bad);
    for my $d ($_[0] =~ /^data: (.*)$/mg) {
        my $j = JSON::PP::decode_json($d);
        my $t = $j->{type};
        if ($t eq 'content_block_start') { $bad .= "reopened $j->{index} " if $open{$j->{index}}++;
                                           push @seq, "start:$j->{index}:$j->{content_block}{type}" }
        elsif ($t eq 'content_block_stop') { $bad .= "stop of unopened $j->{index} " unless delete $open{$j->{index}};
                                             push @seq, "stop:$j->{index}" }
        elsif ($t eq 'content_block_delta') { $bad .= "delta to unopened $j->{index} " unless $open{$j->{index}};
                                              $text .= $j->{delta}{text} // '' }
        elsif ($t eq 'message_delta') { push @seq, "stop_reason:$j->{delta}{stop_reason}" }
        elsif ($t eq 'message_stop') { push @seq, 'message_stop' }
    }
    $bad .= "left open " . CORE::join(',', keys %open) . " " if %open;
    ($bad // 'well formed') . ", " . ($text =~ /pizza/ ? "pizza sent" : "pizza never sent")
    . ", " . ($text =~ /I can't continue this answer\.$/ ? "the reply last" : "no reply")
    . ", " . CORE::join(' ', @seq) . "\n" }
--- response_body_like: ^well formed, pizza never sent, the reply last, start:0:text stop:0 start:1:tool_use stop:1 start:2:text stop:2 stop_reason:refusal message_stop$
--- no_error_log
[error]



=== TEST 37: output classifiers that are all shadows never hold the answer back
--- http_config
    classifier watch { pass /_c/watch; prompt "p"; shadow on; }
--- config
    location = /chat { classify in; classify_pass @gen; classify_output watch; classify_output_window 16; }
    location @gen {
        rewrite ^ /v1/generate?tag=o37g&text=$TEST_NGINX_TEXT_CLEAN&chunks=6? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/watch { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o37w&verdict=yes&delay=0.2; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- timeout: 3
--- response_body_filters eval
\&main::chat_summary
--- response_body eval
"$main::clean|finish:stop done\n"
--- wait: 0.5
--- error_log eval
qr/classify: output verdict pass, judgements: \d+ in/
--- no_error_log
[error]



=== TEST 38: Responses' done events repeat the whole text: bigger than classify_output_buffer, they stream through unread
--- config
    location = /v1/responses { classify in; classify_pass @gen; classify_output out; classify_output_buffer 1k; classify_output_window 512; }
    location @gen {
        rewrite ^ /v1/generate?tag=o38g&format=responses&text=$arg_t&chunks=40? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o38o&verdict=no; }
--- request eval
"POST /v1/responses?t=" . ("word%20" x 500) . "end
{\"model\":\"gpt-r\",\"input\":\"x\",\"stream\":true}"
--- response_body_filters eval
sub { my (@types, $text);
      for my $d ($_[0] =~ /^data: (.*)$/mg) { my $j = JSON::PP::decode_json($d);
          push @types, $j->{type}; $text .= $j->{delta} if $j->{type} eq 'response.output_text.delta';
          $text .= "|done:" . length($j->{text}) if $j->{type} eq 'response.output_text.done' }
      my @w = $text =~ /word /g;
      scalar(@w) . " words, $types[-1], " . ($text =~ /\|done:(\d+)/ ? "done $1 bytes" : "no done") . "\n" }
--- response_body
500 words, response.completed, done 2503 bytes
--- error_log eval
qr/classify: output verdict pass, judgements: \d+ in/
--- no_error_log
[error]



=== TEST 39: hold: all the text that came during a slow judgement is seen by the next one, however much (a flagged word 9 KiB before the end)
--- user_files eval
">>> long.sse\n" . main::long_sse()
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; }
    location @gen {
        rewrite ^ /long.sse break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
        proxy_buffering off;
        proxy_buffer_size 4k;
        proxy_method GET;
    }
    location = /long.sse { default_type text/event-stream; }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o39o&rule=offtopic&delay=0.5; }
--- request
POST /chat
{"messages":[{"role":"user","content":"tell me"}],"stream":true}
--- response_body_filters eval
sub { main::chat_cut($_[0], $main::long_flagged, 'pizza') }
--- response_body_like: ^the flagged word was not sent, \d+ bytes of text before the reply, finish:content_filter done$
--- error_log eval
qr/classify: output verdict out, judgements: 2 in/
--- no_error_log
[error]



=== TEST 40: an event stream's Content-Length from the backend is not the client's (a cut stream is shorter)
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; }
    location @gen {
        rewrite ^ /lengthy break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
    location = /lengthy {
        default_type text/event-stream;
        return 200 'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"The best pizza is here."},"finish_reason":null}]}

data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: [DONE]

';
    }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o40o&rule=offtopic; }
--- request
POST /chat
{"messages":[{"role":"user","content":"tell me"}],"stream":true}
--- response_headers
Content-Length:
--- response_body_filters eval
sub { main::chat_cut($_[0], "The best pizza is here.", 'pizza') }
--- response_body
the flagged word was not sent, 0 bytes of text before the reply, finish:content_filter done
--- no_error_log
[error]



=== TEST 41: an answer nginx sends from a file (a static or cached generation) cannot be judged: on_error pass applies, whole and at once
--- user_files eval
">>> long.sse\n" . main::long_sse()
--- config
    location = /chat { classify in; classify_pass @gen; classify_output out; }
    location @gen { rewrite ^ /long.sse break; error_page 405 =200 /long.sse; }
    location = /long.sse { default_type text/event-stream; sendfile on; }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o41o&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"tell me"}],"stream":true}
--- timeout: 3
--- response_body eval
main::long_sse()
--- error_log
classify: the answer cannot be judged: the answer is in a file, passing (on_error pass)



=== TEST 42: release mode after a speculative generation held past its buffer that ends right after the pass: arrives whole, the generation's upstream run once more only while it lives
--- http_config
    classifier slow { pass /_c/slow; prompt "slow?"; reply "The question is blocked."; }
--- config
    location = /chat { classify slow; classify_pass @gen; classify_speculate on; classify_speculate_buffer 8k; classify_output out; classify_output_mode release; }
    location @gen {
        rewrite ^ /v1/generate?tag=o42g&chunks=100? break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
        proxy_buffering off;
        proxy_buffer_size 4k;
    }
    location /_c/slow { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o42i&verdict=no&delay=0.3; }
    location /_c/out { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=o42o&verdict=no; }
--- request
POST /chat
{"messages":[{"role":"user","content":"x"}],"stream":true}
--- response_body_filters eval
sub { main::chunks_summary($_[0], 100) }
--- response_body
100 chunks in order, done
--- no_error_log
[error]
[alert]
