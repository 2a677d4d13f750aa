# Real-client compatibility in every wire format: the official SDKs (npm
# "openai" for Responses and chat completions, "@anthropic-ai/sdk" for
# Messages; pinned in t/sdk/package-lock.json, run with Node.js) get from
# the gate the generated text when a question passes and the classifier's
# reply when it is blocked, streamed and not, through each SDK's raw
# events and its stream helpers that rebuild the whole answer, with no
# error; and bad input as a 400 error the SDK reports with the gate's
# message.

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

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 104;
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $gen = "text=Five%20times%20a%20day.&chunks=3&strict=1";

my $ngx = Test::Classify::Nginx->start(port => $port, conf => <<"_EOC_");
    classifier yes { pass /_c/yes; prompt "p"; reply "Sorry, that is off-topic."; }
    classifier no { pass /_c/no; prompt "p"; reply "never sent"; }
    server {
        listen 127.0.0.1:$port;
        location /pass/v1/ { classify no; classify_pass \@gen; }
        location /block/v1/ { classify yes; classify_pass \@gen; }
        location \@gen {
            rewrite ^/[a-z]+/v1/responses\$ /v1/generate?format=responses&$gen break;
            rewrite ^/[a-z]+/v1/messages\$ /v1/generate?format=anthropic&$gen break;
            rewrite ^ /v1/generate?$gen break;
            proxy_pass http://127.0.0.1:$mock;
            proxy_buffering off;
        }
        location /_c/yes { internal; proxy_pass http://127.0.0.1:$mock/v1/chat/completions?verdict=Yes.; }
        location /_c/no { internal; proxy_pass http://127.0.0.1:$mock/v1/chat/completions?verdict=No; }
    }
_EOC_

system('cp', 't/sdk/sdk-formats.mjs', 't/sdk/clients.mjs', "$sdk/") == 0
    or die "cannot copy the scripts";

my %got;
for my $line (`node $sdk/sdk-formats.mjs http://127.0.0.1:$port`) {
    my $r = JSON::PP::decode_json($line);
    $got{$r->{case}} = $r;
}

$ngx->quit;

my %extra = (
    'responses-create-pass'  => 'response completed gpt-r',
    'responses-create-block' => 'response completed gpt-r',
    'responses-events'       => 'completed',
    'responses-helper'       => 'completed',
    'messages-create-pass'   => 'message assistant end_turn claude-x',
    'messages-create-block'  => 'message assistant end_turn claude-x',
    'messages-events'        => 'end_turn',
    'messages-helper-pass'   => 'end_turn 5',
    'messages-helper-block'  => 'end_turn 0',
    'chat-usage'             => 'usage',
);

for my $f (qw(responses-create responses-events responses-helper
              messages-create messages-events messages-helper chat-usage))
{
    for my $v (qw(pass block)) {
        my $case = "$f-$v";
        my $r = $got{$case};
        is($r->{error}, undef, "$case: no SDK error");
        is($r->{text}, $v eq 'pass' ? 'Five times a day.'
                                    : 'Sorry, that is off-topic.',
           $v eq 'pass' ? "$case: the generated text"
                        : "$case: the classifier's reply");
        my $want = $extra{$case} // $extra{$f};
        is($r->{extra}, $want, "$case: $want") if defined $want;
    }
}

is($got{'responses-bad'}{status}, 400, 'responses, bad input: a 400');
like($got{'responses-bad'}{error}, qr/"input" is an empty string/,
     'responses, bad input: the SDK reports the gate\'s message');
is($got{'messages-bad'}{status}, 400, 'messages, bad input: a 400');
like($got{'messages-bad'}{error},
     qr/invalid_request_error.*no \\"user\\" message in \\"messages\\"/,
     'messages, bad input: the SDK reports the type and the gate\'s message');

done_testing();
