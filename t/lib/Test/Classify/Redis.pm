package Test::Classify::Redis;

# A real redis-server for the suites, on its own port and data directory.
#
#     use Test::Classify::Redis;          # starts it, exports the port
#     redis('RPUSH', 'chat:s1', '{"role":"user","content":"hi"}');
#     redis_stop(); redis_start();        # an outage in the middle of a test
#     redis_pause(1500);                  # CLIENT PAUSE: Redis stalls
#     redis_freeze(); redis_thaw();       # SIGSTOP, SIGCONT: a hung Redis
#     redis_auth('pw');                   # the helpers AUTH first from now on
#     redis_stat('total_connections_received')   # a field of INFO
#     wait_error_log(qr/.../, 5)          # until nginx's error log has it
#     post_background('a', '/chat', $body);  # a request that waits for Redis
#     my ($status, $body) = background_result('a');
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

our @EXPORT = qw(redis redis_db redis_start redis_stop redis_port
                 redis_pause redis_freeze redis_thaw redis_auth redis_stat
                 wait_error_log post_background background_result);

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

sub redis_pid {
    open my $fh, '<', $pidfile or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    return $pid;
}

sub redis_stop {
    my $pid = redis_pid() or return;

    kill 'CONT', $pid;
    kill 'TERM', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
    unlink $pidfile;
}

my $password;

# one command, one reply: a string, an integer, undef (nil) or an array ref
sub redis {
    return redis_db(0, @_);
}

# the same in database $db
sub redis_db {
    my ($db, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
        or die "cannot connect to redis on port $port: $!";

    if (defined $password) {
        send_command($s, 'AUTH', $password);
        read_reply($s);
    }

    if ($db) {
        send_command($s, 'SELECT', $db);
        read_reply($s);
    }

    send_command($s, @args);

    my $reply = read_reply($s);
    close $s;
    return $reply;
}

# the password the helpers send from now on (undef: none)
sub redis_auth {
    $password = shift;
}

# every client of Redis stalls for $ms (CLIENT PAUSE ... ALL; Redis 7.0
# pauses even CLIENT UNPAUSE, so a pause always lasts its time)
sub redis_pause {
    my ($ms) = @_;
    return redis('CLIENT', 'PAUSE', $ms, 'ALL');
}

# Redis hangs (SIGSTOP) until redis_thaw() (SIGCONT): connections are
# accepted by the kernel, nothing is answered
sub redis_freeze {
    kill 'STOP', redis_pid();
}

sub redis_thaw {
    kill 'CONT', redis_pid();
}

# one field of INFO, e.g. total_connections_received
sub redis_stat {
    my ($field) = @_;
    my ($value) = redis('INFO', 'everything') =~ /^\Q$field\E:([^\r\n]*)/m;
    return $value;
}

# the nginx under test: its error log (our runner, or upstream Test::Nginx)
sub nginx_file {
    my ($name) = @_;
    no warnings 'once';
    my $root = $ENV{TEST_NGINX_SERVER_ROOT} // $Test::Nginx::Util::ServRoot;
    return "$root/$name";
}

# waits up to $secs until a line of the nginx error log matches $re
sub wait_error_log {
    my ($re, $secs) = @_;
    my $file = nginx_file('logs/error.log');

    for (1 .. ($secs // 5) * 50) {
        if (open my $fh, '<', $file) {
            while (my $line = <$fh>) {
                return 1 if $line =~ $re;
            }
            close $fh;
        }
        sleep 0.02;
    }

    return 0;
}

# a POST to the nginx under test, in the background (curl), so that the
# test goes on while it waits; its answer is read by background_result()
sub post_background {
    my ($name, $uri, $body) = @_;
    my $out = nginx_file("bg-$name");
    my $url = "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$uri";

    unlink "$out.status", "$out.body";

    open my $fh, '>', "$out.request" or die "$out.request: $!";
    print {$fh} $body;
    close $fh;

    system("curl -s -m 30 -o '$out.body' -w '%{http_code}' "
           . "--data-binary '\@$out.request' '$url' > '$out.status.tmp' "
           . "&& mv '$out.status.tmp' '$out.status' &") == 0
        or die "cannot run curl";
}

# (status, body) of a background request, once it ended (up to $secs)
sub background_result {
    my ($name, $secs) = @_;
    my $out = nginx_file("bg-$name");

    for (1 .. ($secs // 30) * 50) {
        if (-e "$out.status") {
            open my $st, '<', "$out.status" or die "$out.status: $!";
            my $status = <$st>;
            open my $b, '<', "$out.body" or return ($status, '');
            local $/;
            return ($status, scalar <$b> // '');
        }
        sleep 0.02;
    }

    return (undef, undef);
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
