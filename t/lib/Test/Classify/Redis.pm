package Test::Classify::Redis;

# A real redis-server for the suites, on its own port and data directory.
#
#     use Test::Classify::Redis;          # starts it, exports the port
#     redis('RPUSH', 'chat:s1', '{"role":"user","content":"hi"}');
#     redis_stop(); redis_start();        # an outage in the middle of a test
#
# Its data directory is $ENV{TEST_NGINX_REDIS_DIR} or t/servroot_redis; it
# also listens on the unix socket $ENV{TEST_NGINX_REDIS_SOCKET} there.
# The port is $ENV{TEST_NGINX_REDIS_PORT} (default 1991, a free random one
# under TEST_NGINX_RANDOMIZE) and is exported back into %ENV, so that
# configurations can write $TEST_NGINX_REDIS_PORT.  redis() speaks RESP
# itself over a socket: nothing but Perl is needed.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use Cwd qw(getcwd);

our @EXPORT = qw(redis redis_db redis_start redis_stop redis_port);

my $port = $ENV{TEST_NGINX_REDIS_PORT};

if (!$port) {
    if ($ENV{TEST_NGINX_RANDOMIZE}) {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                      LocalPort => 0, ReuseAddr => 1)
            or die "no free port: $!";
        $port = $s->sockport;
        close $s;
    } else {
        $port = 1991;
    }
}

$ENV{TEST_NGINX_REDIS_PORT} = $port;

my $dir = $ENV{TEST_NGINX_REDIS_DIR}
          || getcwd() . "/t/servroot_redis" . ($ENV{TEST_NGINX_RANDOMIZE} ? "_$$" : "");
my $pidfile = "$dir/redis.pid";
my $socket = "$dir/redis.sock";

$ENV{TEST_NGINX_REDIS_SOCKET} = $socket;
my $owner = $$;

sub redis_port { $port }

sub redis_start {
    make_path($dir);
    system('redis-server', '--port', $port, '--bind', '127.0.0.1',
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--enable-debug-command', 'local',
           '--unixsocket', $socket, '--unixsocketperm', '777',
           '--dir', $dir, '--pidfile', $pidfile,
           '--logfile', "$dir/redis.log") == 0
        or die "cannot start redis-server on port $port";

    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
        if ($s) {
            close $s;
            return;
        }
        sleep 0.05;
    }

    die "redis-server did not come up on port $port";
}

sub redis_stop {
    open my $fh, '<', $pidfile or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    return unless $pid;

    kill 'TERM', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
    unlink $pidfile;
}

# one command, one reply: a string, an integer, undef (nil) or an array ref
sub redis {
    return redis_db(0, @_);
}

# the same in database $db
sub redis_db {
    my ($db, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
        or die "cannot connect to redis on port $port: $!";

    if ($db) {
        send_command($s, 'SELECT', $db);
        read_reply($s);
    }

    send_command($s, @args);

    my $reply = read_reply($s);
    close $s;
    return $reply;
}

sub send_command {
    my ($s, @args) = @_;
    my $cmd = '*' . @args . "\r\n";
    for my $a (@args) {
        $cmd .= '$' . length($a) . "\r\n$a\r\n";
    }
    print $s $cmd;
}

sub read_reply {
    my $s = shift;
    my $line = <$s>;
    die "redis closed the connection" unless defined $line;
    $line =~ s/\r\n$//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    die "redis error: $rest" if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            read($s, $buf, $rest + 2 - length($buf), length($buf)) or last;
        }
        return substr($buf, 0, $rest);
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { read_reply($s) } 1 .. $rest ];
    }

    die "bad redis reply: $line";
}

# a redis-server left by an earlier run on our port is stopped first
redis_stop();
redis_start();

END {
    redis_stop() if $$ == $owner && !$ENV{TEST_NGINX_NO_CLEAN};
}

1;
