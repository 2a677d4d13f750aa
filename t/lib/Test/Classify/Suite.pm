package Test::Classify::Suite;

# Shared block setup of the Redis suites:
#
#     use Test::Classify::Suite;
#     two_json_classifiers();
#
# adds to every block two json-protocol classifiers, "a" (context 2) and
# "b" (context 6), and to every block with a config a /mock/ location that
# reaches the mock's records (/_mock/body, /_mock/log ...).

use strict;
use warnings;

use Exporter 'import';
use Test::Nginx::Socket ();

our @EXPORT = qw(two_json_classifiers);

my $classifiers = <<'_EOC_';
    classifier a { pass /_c/a; protocol json; context 2; reply "A blocks"; }
    classifier b { pass /_c/b; protocol json; context 6; reply "B blocks"; }
_EOC_

my $mock = <<'_EOC_';
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
_EOC_

sub two_json_classifiers {
    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;

        $block->set_value('http_config',
                          $classifiers . ($block->http_config // ''));

        if (defined $block->config) {
            $block->set_value('config', $mock . $block->config);
        }
    });
}

1;
