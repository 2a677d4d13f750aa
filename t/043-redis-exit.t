# Workers close their Redis connection cleanly: on a reload (the old
# worker exits) and on quit, nginx logs no "open socket ... left" alert.
# A store that a worker still holds when it exits (Redis down) is not
# dropped silently: the exit says so, and the counter counts it.
# Runs nginx with a master process, which the data-driven runner does not.

use strict;
use warnings;
use Test::More;
use Test::Classify::Redis;
use Test::Classify::Nginx;
use Time::HiRes qw(sleep);

my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 100;
my $rport = redis_port();

my $ngx = Test::Classify::Nginx->start(port => $port, conf => <<"_EOC_");
    classify_metrics_zone m 1m;
    classifier a { pass /_c/a; protocol json; context 2; reply "A"; }
    classifier c { pass /_c/c; protocol json; context 0; reply "C"; }
    server {
        listen 127.0.0.1:$port;
        location = /chat {
            classify a; classify_pass /_gen;
            classify_redis 127.0.0.1:$rport;
        }
        location = /store {
            classify c; classify_pass /_gen;
            classify_redis 127.0.0.1:$rport;
            classify_context_store on;
            classify_reply_format text;
        }
        location = /status { classify_status; }
        location = /_gen { internal; return 200 "passed\\n"; }
        location /_c/a { internal; return 200 '{"verdict":false}'; }
        location /_c/c { internal; return 200 '{"verdict":true}'; }
    }
_EOC_

sub post {
    my ($uri, $body) = @_;
    return "POST $uri HTTP/1.0\r\nContent-Length: " . length($body)
           . "\r\n\r\n$body";
}

my $chat = post('/chat', '{"user_query":"q","session_id":"s1"}');

like($ngx->http($chat), qr/passed/, 'a request through the gate');

$ngx->reload;
like($ngx->http($chat), qr/passed/, 'a request after the reload, on a new worker');

redis_stop();
sleep 0.3;

like($ngx->http(post('/store', '{"user_query":"q","session_id":"s2"}')),
     qr/\r\n\r\nC$/, 'a blocked request while Redis is down');

$ngx->reload;

like($ngx->error_log,
     qr/classify_redis "[^"]+": 1 context store\(s\) lost at exit/,
     'the exiting worker says it lost the store it held');
like($ngx->http("GET /status HTTP/1.0\r\n\r\n"),
     qr/\nclassify_redis_stores_lost_total 1\n/, '... and counts it');

redis_start();

$ngx->quit;

my $log = $ngx->error_log;
like($log, qr/worker process \d+ exited with code 0/, 'workers exited cleanly');
unlike($log, qr/open socket #\d+ left/, 'no Redis socket left open');
unlike($log, qr/\[alert\]|\[crit\]|exited on signal/, 'no alert, no crash');

done_testing();
