# Real-client compatibility: the official OpenAI SDK (npm "openai", pinned
# in t/sdk/package-lock.json, run with Node.js) gets, from the gate, the
# generated text when a question passes and the classifier's reply when it
# is blocked, streaming and not, with no error.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Test::Classify::Mock;
use Test::Classify::Nginx;

my $sdk = $ENV{CLASSIFY_SDK_DIR} || 'build/sdk';

plan skip_all => "the OpenAI SDK is not installed in $sdk (make test does it)"
    unless -d "$sdk/node_modules/openai";

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 103;
my $mock = $ENV{TEST_NGINX_MOCK_PORT};

my $ngx = Test::Classify::Nginx->start(port => $port, conf => <<"_EOC_");
    classifier yes { pass /_c/yes; prompt "p"; reply "Sorry, that is off-topic."; }
    classifier no { pass /_c/no; prompt "p"; reply "never sent"; }
    server {
        listen 127.0.0.1:$port;
        location = /pass/v1/chat/completions { classify no; classify_pass \@gen; }
        location = /block/v1/chat/completions { classify yes; classify_pass \@gen; }
        location \@gen {
            rewrite ^ /v1/generate?text=Five%20times%20a%20day.&chunks=3&strict=1 break;
            proxy_pass http://127.0.0.1:$mock;
            proxy_buffering off;
        }
        location /_c/yes { internal; proxy_pass http://127.0.0.1:$mock/v1/chat/completions?verdict=Yes.; }
        location /_c/no { internal; proxy_pass http://127.0.0.1:$mock/v1/chat/completions?verdict=No; }
    }
_EOC_

system('cp', 't/sdk/sdk-check.mjs', "$sdk/") == 0 or die "cannot copy the script";

my %got;
for my $line (`node $sdk/sdk-check.mjs http://127.0.0.1:$port`) {
    my $r = JSON::PP::decode_json($line);
    $got{$r->{case}} = $r;
}

$ngx->quit;

for my $case (qw(stream-pass plain-pass)) {
    is($got{$case}{error}, undef, "$case: no SDK error");
    is($got{$case}{text}, 'Five times a day.', "$case: the generated text");
}

for my $case (qw(stream-block plain-block)) {
    is($got{$case}{error}, undef, "$case: no SDK error");
    is($got{$case}{text}, 'Sorry, that is off-topic.', "$case: the classifier's reply");
}

done_testing();
