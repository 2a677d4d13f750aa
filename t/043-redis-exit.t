# Workers close their Redis connection cleanly: on a reload (the old
# worker exits) and on quit, nginx logs no "open socket ... left" alert.
# Runs nginx with a master process, which the data-driven runner does not.

use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use Test::Classify::Redis;

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my @modules = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 100;
my $rport = redis_port();

my $dir = tempdir(CLEANUP => 1);
make_path("$dir/conf", "$dir/logs");

open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
print {$fh} "load_module $_;\n" for @modules;
print {$fh} <<"_EOC_";
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    classifier a { pass /_c/a; protocol json; context 2; reply "A"; }
    server {
        listen 127.0.0.1:$port;
        location = /chat {
            classify a; classify_pass /_gen;
            classify_redis 127.0.0.1:$rport;
        }
        location = /_gen { internal; return 200 "passed\\n"; }
        location /_c/a { internal; return 200 '{"verdict":false}'; }
    }
}
_EOC_
close $fh;

sub request {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or return '';
    my $body = '{"user_query":"q","session_id":"s1"}';
    print {$s} "POST /chat HTTP/1.0\r\nContent-Length: " . length($body)
               . "\r\n\r\n$body";
    local $/;
    my $res = <$s>;
    return $res // '';
}

sub log_text {
    open my $l, '<', "$dir/logs/error.log" or return '';
    local $/;
    return <$l>;
}

sub pid {
    open my $p, '<', "$dir/logs/nginx.pid" or return;
    my $pid = <$p>;
    chomp $pid;
    return $pid;
}

system($nginx, '-p', "$dir/", '-c', "$dir/conf/nginx.conf") == 0
    or BAIL_OUT("cannot start nginx");
sleep 0.5;

like(request(), qr/passed/, 'a request through the gate');

kill 'HUP', pid();
sleep 1;
like(request(), qr/passed/, 'a request after the reload, on a new worker');

my $pid = pid();
kill 'QUIT', $pid;
for (1 .. 50) {
    last unless kill 0, $pid;
    sleep 0.1;
}
sleep 0.2;

my $log = log_text();
like($log, qr/worker process \d+ exited with code 0/, 'workers exited cleanly');
unlike($log, qr/open socket #\d+ left/, 'no Redis socket left open');
unlike($log, qr/\[alert\]|\[crit\]|exited on signal/, 'no alert, no crash');

done_testing();
