package Test::Classify::Nginx;

# nginx with a master process, for the few suites the data-driven runner
# cannot express (reloads, several workers):
#
#     my $ngx = Test::Classify::Nginx->start(port => $port, conf => $http);
#     my $res = $ngx->http("GET /status HTTP/1.0\r\n\r\n");
#     $ngx->reload; $ngx->quit; my $log = $ngx->error_log;
#     $ngx->reload(conf => $other_http);     # a reload with another http{}
#
# conf is the text of the http{} block (the module is loaded from
# TEST_NGINX_LOAD_MODULES); the prefix is a temporary directory, removed at
# the end.

use strict;
use warnings;

use File::Temp qw(tempdir);
use File::Path qw(make_path);
use IO::Socket::INET;
use Time::HiRes qw(sleep);

sub start {
    my ($class, %args) = @_;

    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $dir = tempdir(CLEANUP => 1);
    make_path("$dir/conf", "$dir/logs");

    write_conf($dir, %args);

    system($nginx, '-p', "$dir/", '-c', "$dir/conf/nginx.conf") == 0
        or die "cannot start nginx in $dir";

    my $self = bless { dir => $dir, port => $args{port}, args => \%args },
                     $class;

    for (1 .. 50) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$args{port}");
        last if $s;
        sleep 0.1;
    }

    return $self;
}

# one request on its own connection; the whole raw response
sub http {
    my ($self, $req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}")
        or return '';
    print {$s} $req;
    local $/;
    my $res = <$s>;
    return $res // '';
}

sub body {
    my ($self, $req) = @_;
    my $res = $self->http($req);
    $res =~ s/^.*?\r\n\r\n//s;
    return $res;
}

sub pid {
    my ($self) = @_;
    open my $p, '<', "$self->{dir}/logs/nginx.pid" or return;
    my $pid = <$p>;
    chomp $pid;
    return $pid;
}

sub reload {
    my ($self, %args) = @_;
    write_conf($self->{dir}, %{ $self->{args} }, %args) if $args{conf};
    kill 'HUP', $self->pid;
    sleep 1;
}

sub write_conf {
    my ($dir, %args) = @_;

    open my $fh, '>', "$dir/conf/nginx.conf" or die "$dir: $!";
    print {$fh} "load_module $_;\n"
        for split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
    print {$fh} "worker_processes " . ($args{workers} // 1) . ";\n"
                . "error_log logs/error.log info;\n"
                . "pid logs/nginx.pid;\n"
                . "events { worker_connections 256; accept_mutex off; }\n"
                . "http {\n"
                . "    access_log off;\n"
                . "    client_body_temp_path $dir/body;\n"
                . "    proxy_temp_path $dir/proxy;\n"
                . $args{conf}
                . "}\n";
    close $fh;
}

# QUIT, and wait until the master is gone (or has become a zombie: PID 1
# may not reap it here) and the workers have logged their exit
sub quit {
    my ($self) = @_;
    my $pid = $self->pid or return;
    kill 'QUIT', $pid;
    for (1 .. 50) {
        last if $self->error_log =~ /exiting$/m && !kill(0, $pid);
        last if $self->error_log =~ /\[notice\] \d+#\d+: exit$/m;
        sleep 0.1;
    }
    sleep 0.2;
}

sub error_log {
    my ($self) = @_;
    open my $l, '<', "$self->{dir}/logs/error.log" or return '';
    local $/;
    return <$l> // '';
}

1;
