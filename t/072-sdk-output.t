# The output guard through the official SDKs (npm "openai" for chat
# completions and Responses, "@anthropic-ai/sdk" for Messages; pinned in
# t/sdk/package-lock.json, run with Node.js): raw events, the stream
# helpers that rebuild the answer, and whole answers, in every format; an
# answer that passes arrives whole, one the output classifier cuts ends
# with the text judged clean and the reply, as each SDK reads a content
# filter (finish_reason content_filter, a Response incomplete for
# content_filter, stop_reason refusal), with no SDK error.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Test::Classify::Mock;
use Test::Classify::Nginx;

my $sdk = $ENV{CLASSIFY_SDK_DIR} || 'build/sdk';

plan skip_all => "the SDKs are not installed in $sdk (make test does it)"
    unless -d "$sdk/node_modules/openai"
           && -d "$sdk/node_modules/\@anthropic-ai/sdk";

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 105;
my $mock = $ENV{TEST_NGINX_MOCK_PORT};

my $clean = 'Prayer is observed five times a day, at set times.';
my $flagged = 'The old town has a market. The best pizza is in Naples.';
my $reply = "I can't continue this answer.";

sub uri { my $s = shift; $s =~ s/([^A-Za-z0-9.])/sprintf('%%%02X', ord $1)/ge; $s }

my $gen = "chunks=12&gap=0.02&strict=1&role=1";
my ($tc, $tf) = (uri($clean), uri($flagged));

my $ngx = Test::Classify::Nginx->start(port => $port, conf => <<"_EOC_");
    classifier in { pass /_c/in; prompt "p"; reply "never sent"; }
    classifier out { pass /_c/out; prompt "food?"; reply "$reply"; }
    server {
        listen 127.0.0.1:$port;
        location /clean/v1/ { classify in; classify_pass \@clean; classify_output out; classify_output_window 16; }
        location /flagged/v1/ { classify in; classify_pass \@flagged; classify_output out; classify_output_window 16; }
        location \@clean {
            rewrite ^/[a-z]+/v1/responses\$ /v1/generate?format=responses&text=$tc&$gen break;
            rewrite ^/[a-z]+/v1/messages\$ /v1/generate?format=anthropic&text=$tc&$gen break;
            rewrite ^ /v1/generate?text=$tc&$gen break;
            proxy_pass http://127.0.0.1:$mock;
            proxy_buffering off;
        }
        location \@flagged {
            rewrite ^/[a-z]+/v1/responses\$ /v1/generate?format=responses&text=$tf&$gen break;
            rewrite ^/[a-z]+/v1/messages\$ /v1/generate?format=anthropic&text=$tf&$gen break;
            rewrite ^ /v1/generate?text=$tf&$gen break;
            proxy_pass http://127.0.0.1:$mock;
            proxy_buffering off;
        }
        location /_c/in { internal; proxy_pass http://127.0.0.1:$mock/v1/chat/completions?verdict=no; }
        location /_c/out { internal; proxy_pass http://127.0.0.1:$mock/v1/chat/completions?rule=offtopic; }
    }
_EOC_

system('cp', 't/sdk/sdk-output.mjs', 't/sdk/clients.mjs', "$sdk/") == 0
    or die "cannot copy the scripts";

my %got;
for my $line (`node $sdk/sdk-output.mjs http://127.0.0.1:$port`) {
    my $r = JSON::PP::decode_json($line);
    $got{$r->{case}} = $r;
}

$ngx->quit;

# how each answer ends, streamed (events, helper) and whole (create)
my %end = (
    'chat-clean'              => 'stop',
    'chat-flagged'            => 'content_filter',
    'chat-create-flagged'     => 'stop',
    'responses-clean'         => 'completed -',
    'responses-flagged'       => 'incomplete content_filter',
    'responses-create-clean'  => 'completed',
    'responses-create-flagged' => 'completed',
    'messages-clean'          => 'end_turn',
    'messages-flagged'        => 'refusal',
    'messages-create-flagged' => 'end_turn',
);

for my $f (qw(chat responses messages)) {
    for my $how (qw(events helper create)) {
        for my $v (qw(clean flagged)) {
            my $case = "$f-$how-$v";
            my $r = $got{$case} // {};
            is($r->{error}, undef, "$case: no SDK error");

            my $want = $end{"$f-$how-$v"} // $end{"$f-$v"};
            is($r->{end}, $want, "$case: ends $want");

            if ($v eq 'clean') {
                is($r->{text}, $clean, "$case: the answer, whole");
                next;
            }

            if ($how eq 'create') {
                is($r->{text}, $reply, "$case: the reply instead of the answer");
                next;
            }

            my $text = $r->{text} // '';
            ok($text =~ s/\Q$reply\E$//, "$case: the reply last");
            is(substr($flagged, 0, length $text), $text,
               "$case: before it, the answer as far as it was judged clean");
            unlike($text, qr/pizza/, "$case: never the flagged word");
        }
    }
}

done_testing();
