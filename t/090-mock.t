# The mock LLM backend (t/mock/) against its contract (the top of
# t/mock/mock.c): the parts the gate's suites do not reach on their own --
# the records' endpoints, every mode, chunked request bodies, the format
# hook, the abort seen as 499 -- through Test::Classify::Mock's helpers.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET ();
use POSIX ();
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Test::Classify::Mock qw(mock_port mock_request mock_get mock_log
                            mock_count mock_body mock_records mock_clear);

my $json = JSON::PP->new;

sub post {
    my ($path, $body) = @_;
    return mock_request('POST', $path, $body // '{}');
}

# a raw HTTP/1.1 exchange; the whole answer, up to the close
sub raw {
    my ($req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => mock_port(), Timeout => 5)
        or die "connect: $!";
    print {$s} $req;
    local $/;
    my $resp = <$s>;
    close $s;
    return $resp // '';
}

mock_clear();

# ---------------------------------------------------------------- classifier

my $req = '{"model":"gpt-test","messages":[{"role":"user","content":"q"}]}';
my ($st, $body, $h) = post('/v1/chat/completions?tag=c1&verdict=Yes%2E', $req);
my $o = $json->decode($body);
is($st, 200, 'chat: 200');
is($o->{choices}[0]{message}{content}, 'Yes.', 'chat: the verdict, URL-decoded');
is($o->{model}, 'gpt-test', 'chat: the request\'s model');
is(join(' ', @$o{qw(id object)}, $o->{choices}[0]{finish_reason}),
   'chatcmpl-mock chat.completion stop', 'chat: id, object, finish_reason');
is($o->{usage}{total_tokens},
   $o->{usage}{prompt_tokens} + $o->{usage}{completion_tokens},
   'chat: usage adds up');
is($h->{'x-mock-tag'}, 'c1', 'X-Mock-Tag');
is($h->{'x-mock-body-length'}, length $req, 'X-Mock-Body-Length');

($st, $body) = post('/v1/chat/completions?tag=c2&rule=fiqh',
    '{"messages":[{"role":"user","content":"x"},'
    . '{"role":"user","content":"Is music HARAM?"}]}');
is($json->decode($body)->{choices}[0]{message}{content}, 'Yes.',
   'rule=fiqh: a word of the rule in the last user message');
($st, $body) = post('/v1/chat/completions?tag=c2&rule=offtopic',
    '{"messages":[{"role":"user","content":"Is music haram?"}]}');
is($json->decode($body)->{choices}[0]{message}{content}, 'No.',
   'rule=offtopic: none of its words');

($st, $body) = post('/v1/chat/completions?tag=c3&status=503');
is_deeply([$st, $json->decode($body)],
          [503, { error => { message => 'mock error 503', type => 'mock_error',
                             code => 503 } }], 'status=503: the JSON error');
($st, $body) = post('/v1/chat/completions?tag=c3&status=201&verdict=no');
is($st, 201, 'status=201 replaces the status of the normal answer');
($st, $body) = post('/v1/chat/completions?tag=c3&mode=sideways');
is($st, 400, 'an unknown mode: 400');
like($body, qr/unknown mode sideways/, '... saying so');

($st, $body) = post('/v1/chat/completions?tag=c4&mode=garbage');
ok(!eval { $json->decode($body); 1 }, 'mode=garbage: not JSON');
($st, $body) = post('/v1/chat/completions?tag=c4&mode=empty');
is($body, '{"choices":[]}', 'mode=empty');
($st, $body) = post('/v1/chat/completions?tag=c4&mode=noword');
is($json->decode($body)->{choices}[0]{message}{content}, '???', 'mode=noword');
($st, $body) = post('/v1/chat/completions?tag=c4&mode=big&size=1000&verdict=yes');
is($json->decode($body)->{choices}[0]{message}{content},
   'yes ' . substr('padding ' x 125, 0, 1000), 'mode=big&size=1000');

my $resp = raw("POST /v1/chat/completions?tag=c5&mode=reset HTTP/1.1\r\n"
               . "Host: x\r\nContent-Length: 2\r\n\r\n{}");
my ($head, $rest) = split /\r\n\r\n/, $resp, 2;
my ($clen) = $head =~ /Content-Length: (\d+)/;
is(length $rest, int($clen / 2), 'mode=reset: half the announced body, then the close');
is(raw("POST /v1/chat/completions?tag=c5&mode=close HTTP/1.1\r\nHost: x\r\n"
       . "Content-Length: 0\r\n\r\n"), '', 'mode=close: no answer');
is(raw("POST /v1/chat/completions?tag=c5&mode=rst HTTP/1.1\r\nHost: x\r\n"
       . "Content-Length: 0\r\n\r\n"), '', 'mode=rst: no answer');
like(mock_log('c5', n => 3, wait => 2), qr/\A200 [\d.]+ \S+mode=reset\n444 [\d.]+ \S+mode=close\n444 [\d.]+ \S+mode=rst\n\z/,
     'reset logged with its status, close and rst as 444');

# ---------------------------------------------------------------- json

($st, $body) = post('/classify/json?tag=j1&verdict=yes');
is($body, '{"verdict":true}', 'json: verdict=yes');
($st, $body) = post('/classify/json?tag=j1');
is($body, '{"verdict":false}', 'json: the default');
($st, $body) = post('/classify/json?tag=j1&mode=noword');
is($body, '{"verdict":"maybe"}', 'json: mode=noword');

# ---------------------------------------------------------------- generation

($st, $body, $h) = post('/v1/generate?tag=g1&chunks=2&text=ab%C3%A9cd',
                        '{"model":"m1","stream":true}');
my @ev = $body =~ /^data: (.*)$/mg;
is(scalar @ev, 4, 'generate: 2 pieces, the stop event and [DONE]');
is(join('|', map { $json->decode($_)->{choices}[0]{delta}{content} } @ev[0, 1]),
   "ab|\xc3\xa9cd", 'generate: text= split on character boundaries');
is($json->decode($ev[2])->{choices}[0]{finish_reason}, 'stop', 'generate: stop');
is($ev[3], '[DONE]', 'generate: [DONE]');
is($json->decode($ev[0])->{model}, 'm1', 'generate: the request\'s model');
is($h->{'content-type'}, 'text/event-stream', 'generate: text/event-stream');

($st, $body) = post('/v1/generate?tag=g1&strict=1', '{"model":"m1"}');
is($json->decode($body)->{choices}[0]{message}{content}, 'chunk1 chunk2 chunk3 ',
   'strict=1 without "stream": true: one chat.completion');
($st, $body) = post('/v1/generate?tag=g1', '{"stream":false}');
is($json->decode($body)->{object}, 'chat.completion', '"stream": false: whole');
($st, $body) = post('/v1/generate?tag=g1&format=nosuch');
is($st, 400, 'an unknown format= answers 400');

($st, $body) = post('/v1/generate?tag=g1&chunks=1',
                    '{"stream":true,"stream_options":{"include_usage":true}}');
@ev = $body =~ /^data: (.*)$/mg;
is(scalar @ev, 4, 'include_usage: one piece, the stop, the usage chunk, [DONE]');
is(scalar @{$json->decode($ev[2])->{choices}}, 0, 'include_usage: choices []');
ok($json->decode($ev[2])->{usage}{total_tokens} > 0, 'include_usage: the usage');

($st, $body) = post('/v1/generate?tag=g1&chunks=1&role=1', '{"stream":true}');
@ev = $body =~ /^data: (.*)$/mg;
is(scalar @ev, 4, 'role=1: the role chunk, one piece, the stop, [DONE]');
is($json->decode($ev[0])->{choices}[0]{delta}{role}, 'assistant',
   'role=1: the first chunk says the role, as the API does');

($st, $body) = post('/v1/generate?tag=g1&chunks=2&tool=1', '{"stream":true}');
@ev = $body =~ /^data: (.*)$/mg;
is(join('|', map { $_ eq '[DONE]' ? 'done' : do { my $d = $json->decode($_)->{choices}[0]{delta};
                   $d->{tool_calls} ? 'tool:' . $d->{tool_calls}[0]{function}{name}
                   : $d->{content} // 'end' } } @ev),
   'chunk1 |tool:lookup|chunk2 |end|done', 'tool=1: a tool call chunk after the first piece');

# the events of an "event:"/"data:" stream: [type, decoded data] each
sub typed_events {
    my @out;
    for my $ev (split /\n\n/, shift) {
        my ($type) = $ev =~ /^event: (.*)$/m;
        my ($data) = $ev =~ /^data: (.*)$/m;
        push @out, [$type, $json->decode($data)];
    }
    return @out;
}

($st, $body) = post('/v1/generate?tag=g1&format=responses&chunks=2&text=abcd',
                    '{"model":"m1","stream":true}');
@ev = typed_events($body);
is(join(' ', map { $_->[0] eq $_->[1]{type} ? $_->[0] : 'MISMATCH' } @ev),
   'response.created response.output_item.added response.content_part.added '
   . 'response.output_text.delta response.output_text.delta '
   . 'response.output_text.done response.completed',
   'generate format=responses: the events, each named as its type');
is(join(',', map { $_->[1]{sequence_number} } @ev), '0,1,2,3,4,5,6',
   'format=responses: sequence numbers from 0');
is(join('|', map { $_->[1]{delta} } @ev[3, 4]), 'ab|cd',
   'format=responses: the deltas');
is($ev[6][1]{response}{output}[0]{content}[0]{text}, 'abcd',
   'format=responses: the completed response has the whole text');
($st, $body) = post('/v1/generate?tag=g1&format=responses&strict=1',
                    '{"model":"m1"}');
$o = $json->decode($body);
is("$o->{object} $o->{status} $o->{model} $o->{output}[0]{content}[0]{text}",
   'response completed m1 chunk1 chunk2 chunk3 ',
   'format=responses, not streaming: one Response');

($st, $body) = post('/v1/generate?tag=g1&format=anthropic&chunks=2&text=abcd',
                    '{"model":"m1","stream":true}');
@ev = typed_events($body);
is(join(' ', map { $_->[0] eq $_->[1]{type} ? $_->[0] : 'MISMATCH' } @ev),
   'message_start content_block_start ping content_block_delta '
   . 'content_block_delta content_block_stop message_delta message_stop',
   'generate format=anthropic: the events, each named as its type');
is(join('|', map { $_->[1]{delta}{text} } @ev[3, 4]), 'ab|cd',
   'format=anthropic: the text deltas');
is($ev[6][1]{delta}{stop_reason}, 'end_turn', 'format=anthropic: end_turn');
($st, $body) = post('/v1/generate?tag=g1&format=anthropic&chunks=2&text=abcd&tool=1',
                    '{"model":"m1","stream":true}');
@ev = typed_events($body);
is(join(' ', map { $_->[0] . (defined $_->[1]{index} ? ":$_->[1]{index}" : '') } @ev[3 .. 10]),
   'content_block_delta:0 content_block_stop:0 content_block_start:1 '
   . 'content_block_delta:1 content_block_stop:1 content_block_start:2 '
   . 'content_block_delta:2 content_block_stop:2',
   'tool=1, anthropic: a tool_use block between two text blocks');
is($ev[5][1]{content_block}{type}, 'tool_use', 'tool=1, anthropic: tool_use');
($st, $body) = post('/v1/generate?tag=g1&format=anthropic&strict=1',
                    '{"model":"m1"}');
$o = $json->decode($body);
is("$o->{type} $o->{role} $o->{model} $o->{content}[0]{text}",
   'message assistant m1 chunk1 chunk2 chunk3 ',
   'format=anthropic, not streaming: one Message');

$resp = raw("POST /v1/generate?tag=g2&chunks=3&mode=reset HTTP/1.1\r\n"
            . "Host: x\r\nContent-Length: 2\r\n\r\n{}");
is(() = $resp =~ /chunk\d/g, 1, 'generate mode=reset: the first event, then the close');

my $t0 = time;
$resp = raw("POST /v1/generate?tag=g3&chunks=3&gap=0.2 HTTP/1.1\r\n"
            . "Host: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
cmp_ok(time - $t0, '>=', 0.4, 'gap=0.2: three pieces take 0.4 s at least');
like($resp, qr/\r\n0\r\n\r\n\z/, 'HTTP/1.1: chunked, ended');

# ---------------------------------------------------------------- requests

$resp = raw("POST /v1/chat/completions?tag=ch HTTP/1.1\r\nHost: x\r\n"
            . "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            . "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n");
like($resp, qr/^HTTP\/1\.1 200 /, 'a chunked request body');
is(mock_body('ch'), '{"a":1}', '... recorded whole');

# two requests on one keep-alive connection, the second pipelined
$resp = raw("POST /v1/chat/completions?tag=ka HTTP/1.1\r\nHost: x\r\n"
            . "Content-Length: 1\r\n\r\n1"
            . "POST /v1/chat/completions?tag=ka&verdict=second HTTP/1.1\r\n"
            . "Host: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\n2");
is(() = $resp =~ /HTTP\/1\.1 200 /g, 2, 'keep-alive: two answers on one connection');

($st, $body) = post('/nowhere?tag=nw');
is($st, 404, 'an unknown path: 404 ...');
is(mock_count('nw'), 1, '... recorded');

# ---------------------------------------------------------------- records

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => mock_port())
    or die "connect: $!";
print {$s} "POST /v1/chat/completions?tag=ab&delay=5 HTTP/1.0\r\n"
           . "Content-Length: 2\r\n\r\n{}";
sleep 0.2;
close $s;
like(mock_log('ab', wait => 2), qr/\A499 0\.[1-4]\d* \/v1\/chat\/completions\?tag=ab&delay=5\n\z/,
     'the client gone during the delay: 499 at once, with its request_time');

post('/v1/chat/completions?tag=r&verdict=1', 'first');
post('/v1/chat/completions?tag=r&verdict=2', 'second');
is(mock_body('r', 1), 'first', 'body i=1');
is(mock_body('r', -1), 'second', 'body i=-1: the last');
is(mock_body('r'), 'second', 'body: the last by default');
ok(!defined mock_body('r', 3), 'body of a record that is not there: 404');
like(mock_get('/_mock/headers?tag=r&i=2'),
     qr/\APOST \/v1\/chat\/completions\?tag=r&verdict=2 HTTP\/1\.0\r\n.*Content-Length: 6\r\n/s,
     'headers: the request line and headers as received');

my $recs = mock_records('r', body => 1);
is_deeply([map { [@$_{qw(i tag method status body aborted)}] } @$recs],
          [[1, 'r', 'POST', 200, 'first', JSON::PP::false],
           [2, 'r', 'POST', 200, 'second', JSON::PP::false]],
          'records: JSON, with bodies');
cmp_ok($recs->[1]{seq}, '>', $recs->[0]{seq}, 'records: seq in order');

like(mock_get('/_mock/tags'), qr/^r\n/m, 'tags');
my $all = mock_count('*');
cmp_ok($all, '>', 20, 'count tag=*: every record');
mock_clear('r');
is(mock_count('r'), 0, 'clear one tag ...');
is(mock_count('*'), $all - 2, '... and only it');

# a waiter is answered when its record comes, not at its deadline
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    sleep 0.3;
    post('/v1/chat/completions?tag=w');
    POSIX::_exit(0);
}
$t0 = time;
like(mock_log('w', wait => 3), qr/\A200 /, 'log wait=3: the record that came');
my $waited = time - $t0;
waitpid $pid, 0;
cmp_ok($waited, '<', 2.5, "... answered when it came ($waited s), not at 3 s");

like(mock_get('/_mock/stats'), qr/\Aconns=\d+ busy=0 hung=0\n\z/, 'stats');
like(mock_get('/_mock/close-idle'), qr/\Aclosed=\d+\n\z/, 'close-idle');
is(mock_get('/_mock/ping'), "pong\n", 'ping');
($st) = mock_request('GET', '/_mock/nosuch');
is($st, 404, 'an unknown control endpoint: 404');

mock_clear();
is(mock_count('*'), 0, 'clear: everything');

done_testing();
