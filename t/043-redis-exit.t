# Workers close their Redis connection cleanly: on a reload (the old
# worker exits) and on quit, nginx logs no "open socket ... left" alert.
# Runs nginx with a master process, which the data-driven runner does not.

use strict;
use warnings;
use Test::More;
use Test::Classify::Redis;
use Test::Classify::Nginx;

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 100;
my $rport = redis_port();

my $ngx = Test::Classify::Nginx->start(port => $port, conf => <<"_EOC_");
    classifier a { pass /_c/a; protocol json; context 2; reply "A"; }
    server {
        listen 127.0.0.1:$port;
        location = /chat {
            classify a; classify_pass /_gen;
            classify_redis 127.0.0.1:$rport;
        }
        location = /_gen { internal; return 200 "passed\n"; }
        location /_c/a { internal; return 200 '{"verdict":false}'; }
    }
_EOC_

my $body = '{"user_query":"q","session_id":"s1"}';
my $chat = "POST /chat HTTP/1.0\r\nContent-Length: " . length($body)
           . "\r\n\r\n$body";

like($ngx->http($chat), qr/passed/, 'a request through the gate');

$ngx->reload;
like($ngx->http($chat), qr/passed/, 'a request after the reload, on a new worker');

$ngx->quit;

my $log = $ngx->error_log;
like($log, qr/worker process \d+ exited with code 0/, 'workers exited cleanly');
unlike($log, qr/open socket #\d+ left/, 'no Redis socket left open');
unlike($log, qr/\[alert\]|\[crit\]|exited on signal/, 'no alert, no crash');

done_testing();
