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
# More servers, for the high-availability suites (t/047, t/048):
#
#     my $m = redis_node_start('m');                   # one more, its port
#     my $r = redis_node_start('r', replicaof => $m);  # a replica of it
#     redis_node_signal('m', 'KILL');                  # SIGKILL, STOP, CONT
#     redis_at($port, 'ROLE');                         # any server, any port
#     my @s = sentinels_start('mm', $m, 3);   # 3 Sentinels of master "mm"
#     sentinels_ready('mm', 1, 20);           # ... that know 1 replica
#     my $port = sentinel_master('mm');       # the master they give now
#     my $f = fake_sentinel_start(name => 'mm', master => $port,
#                                 [password => 'pw']);
#     redis_at($f, 'FAKE-SWITCH', '127.0.0.1', $other);  # +switch-master
#
# A node keeps its port and directory across restarts: 1992, 1993, ... in
# the order they are first started (free random ones under
# TEST_NGINX_RANDOMIZE).  It keeps its data across a restart too, but the
# first time a test process starts it, it starts empty: a replica writes
# what its master sent to dump.rdb in its directory, which the next run
# in the same directory would load (CI runs the suite three times in one
# tree).  A server that answers on the port but is not the one started
# (a daemonized redis-server that cannot bind exits 0) is an error.
# Everything started here is stopped at the end, by the pid it was
# started with.  The fake Sentinel is a forked Perl server that speaks
# just enough of the protocol: AUTH, PING,
# SENTINEL get-master-addr-by-name (the master it was given, or a nil for
# another name), SUBSCRIBE; and for the test FAKE-MASTER host port (what
# it answers from now on), FAKE-SWITCH host port (the same, announced to
# its subscribers as +switch-master) and FAKE-STATS ([asks, subscriptions
# ever, subscribers now]).
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
use IO::Select;
use POSIX ();
use Time::HiRes qw(sleep);
use Cwd qw(getcwd);

our @EXPORT = qw(redis redis_db redis_start redis_stop redis_port
                 redis_pause redis_freeze redis_thaw redis_auth redis_stat
                 wait_error_log post_background background_result
                 redis_at redis_node_start redis_node_signal redis_node_port
                 sentinels_start sentinels_ready sentinel_master
                 fake_sentinel_start fake_sentinel_stop);

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

# where a background request's body, status and answer go: a directory of
# this module's, not nginx's servroot, which OpenResty's Test::Nginx
# removes with rmdir() when the next block restarts nginx (it empties only
# the directories it made there: "Can't remove t/servroot (not empty?)")
sub background_file {
    my ($name) = @_;
    make_path("$dir/background");
    return "$dir/background/$name";
}

# a POST to the nginx under test, in the background (curl), so that the
# test goes on while it waits; its answer is read by background_result()
sub post_background {
    my ($name, $uri, $body) = @_;
    my $out = background_file($name);
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
    my $out = background_file($name);

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

# ---------------------------------------------------------------- nodes

my (%node_port, @node_order, %fake_pid, %node_started);
my $next_port = 1992;

# a port of its own for each name, kept across restarts
sub node_port_for {
    my ($name) = @_;
    return $node_port{$name} if $node_port{$name};

    my $p;
    if ($ENV{TEST_NGINX_RANDOMIZE}) {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                      LocalPort => 0, ReuseAddr => 1)
            or die "no free port: $!";
        $p = $s->sockport;
        close $s;
    } else {
        $p = $next_port++;
    }

    push @node_order, $name;
    return $node_port{$name} = $p;
}

sub redis_node_port { $node_port{$_[0]} }

sub node_pid {
    my ($name) = @_;
    open my $fh, '<', "$dir/$name/redis.pid" or return;
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    return $pid;
}

sub wait_port {
    my ($p, $what) = @_;
    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p");
        if ($s) {
            close $s;
            return;
        }
        sleep 0.05;
    }
    die "$what did not come up on port $p";
}

# the server on port $p is node $name's, whose pid file it wrote, and not
# one that another run has there
sub node_own {
    my ($name, $p, $what) = @_;
    my $pid;

    for (1 .. 100) {
        last if $pid = node_pid($name);
        sleep 0.02;
    }

    my ($id) = (redis_at($p, 'INFO', 'server') // '') =~ /^process_id:(\d+)/m;

    die "$what: port $p is another server's (pid " . ($id // '?')
        . "), not the one started in $dir/$name\n"
        unless $pid && $id && $id == $pid;
}

# a redis-server of its own name: redis_node_start('r', replicaof => $port)
sub redis_node_start {
    my ($name, %o) = @_;
    my $p = node_port_for($name);
    my $d = "$dir/$name";

    make_path($d);
    unlink "$d/redis.pid";

    # a restart within this run keeps the data, as a real one does
    unlink "$d/dump.rdb", glob("$d/temp-*.rdb") unless $node_started{$name}++;

    system('redis-server', '--port', $p, '--bind', '127.0.0.1',
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--dir', $d, '--pidfile', "$d/redis.pid",
           '--logfile', "$d/redis.log", '--repl-diskless-sync-delay', 0,
           $o{replicaof} ? ('--replicaof', '127.0.0.1', $o{replicaof}) : (),
           @{ $o{args} // [] }) == 0
        or die "cannot start redis-server $name on port $p";

    wait_port($p, "redis-server $name");
    node_own($name, $p, "redis-server $name");
    return $p;
}

# a signal to a node; after KILL or TERM, until it is gone
sub redis_node_signal {
    my ($name, $sig) = @_;
    my $pid = node_pid($name) or return;

    kill 'CONT', $pid if $sig eq 'TERM';
    kill $sig, $pid;
    return unless $sig eq 'KILL' || $sig eq 'TERM';

    # gone, or a zombie (a daemon's parent is PID 1, which may not reap)
    for (1 .. 200) {
        last unless kill 0, $pid;
        open my $st, '<', "/proc/$pid/stat" or last;
        last if (<$st> // '') =~ /^\d+ \(.*\) Z /;
        sleep 0.025;
    }
    unlink "$dir/$name/redis.pid";
}

# one command to the server on $port, no AUTH
sub redis_at {
    my ($p, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p")
        or die "cannot connect to port $p: $!";
    send_command($s, @args);
    my $reply = read_reply($s);
    close $s;
    return $reply;
}

# $n Sentinels of master $mname at $mport, quorum 2 (or 1 for one), with
# short timeouts: a dead master is failed over within a few seconds
sub sentinels_start {
    my ($mname, $mport, $n, %o) = @_;
    my @ports;

    for my $i (1 .. $n) {
        my $name = "sentinel-$i";
        my $p = node_port_for($name);
        my $d = "$dir/$name";

        make_path($d);
        unlink "$d/redis.pid";
        open my $fh, '>', "$d/sentinel.conf" or die "$d: $!";
        print {$fh} "port $p\nbind 127.0.0.1\ndaemonize yes\n"
            . "pidfile $d/redis.pid\nlogfile $d/sentinel.log\ndir $d\n"
            . "sentinel monitor $mname 127.0.0.1 $mport "
            . ($n > 1 ? 2 : 1) . "\n"
            . "sentinel down-after-milliseconds $mname "
            . ($o{down_after} // 1000) . "\n"
            . "sentinel failover-timeout $mname "
            . ($o{failover_timeout} // 2000) . "\n";
        close $fh;

        system('redis-server', "$d/sentinel.conf", '--sentinel') == 0
            or die "cannot start Sentinel $i on port $p";
        wait_port($p, "Sentinel $i");
        node_own($name, $p, "Sentinel $i");
        push @ports, $p;
    }

    return @ports;
}

# until every Sentinel knows the others and $replicas replicas in sync
sub sentinels_ready {
    my ($mname, $replicas, $secs) = @_;
    my @s = grep { /^sentinel-/ && node_pid($_) } @node_order;

    for (1 .. ($secs // 20) * 10) {
        my $ok = 1;
        for my $name (@s) {
            my $p = $node_port{$name};
            my $others = eval { redis_at($p, 'SENTINEL', 'sentinels', $mname) };
            my $reps = eval { redis_at($p, 'SENTINEL', 'replicas', $mname) };
            $ok = 0 unless $others && @$others == @s - 1
                           && $reps && grep({ flags_ok($_) } @$reps)
                                       == $replicas;
        }
        return 1 if $ok;
        sleep 0.1;
    }
    return 0;
}

sub flags_ok {
    my %h = @{ $_[0] };
    return $h{flags} eq 'slave' && ($h{'master-link-status'} // '') eq 'ok';
}

# the port of the master the first running Sentinel gives
sub sentinel_master {
    my ($mname) = @_;
    for my $name (grep { /^sentinel-/ && node_pid($_) } @node_order) {
        my $a = eval { redis_at($node_port{$name}, 'SENTINEL',
                                'get-master-addr-by-name', $mname) };
        return $a->[1] if $a;
    }
    return;
}

sub nodes_stop {
    for my $name (reverse @node_order) {
        redis_node_signal($name, 'TERM');
    }
}

# ---------------------------------------------------------------- fake

sub fake_sentinel_start {
    my (%o) = @_;
    my $id = 'fake-' . (keys(%fake_pid) + 1);
    my $p = node_port_for($id);
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => $p, ReuseAddr => 1)
        or die "fake Sentinel: port $p: $!";

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        # not the test's output: prove waits for every holder of its pipe
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        fake_sentinel_serve($l, %o);
        POSIX::_exit(0);
    }

    close $l;
    $fake_pid{$p} = $pid;
    return $p;
}

sub fake_sentinel_stop {
    my ($p) = @_;
    my $pid = delete $fake_pid{$p} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

sub fake_sentinel_serve {
    my ($l, %o) = @_;
    my $sel = IO::Select->new($l);
    my (%buf, %authed, %subscribed);
    my ($asks, $subs) = (0, 0);
    my @master = ($o{host} // '127.0.0.1', $o{master});

    $SIG{TERM} = sub { POSIX::_exit(0) };
    # a reply to a client that has gone (nginx closed it) is not fatal
    $SIG{PIPE} = 'IGNORE';

    while (1) {
        for my $fh ($sel->can_read) {
            if ($fh == $l) {
                my $c = $l->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                next;
            }

            my $n = sysread($fh, my $data, 65536);
            if (!$n) {
                $sel->remove($fh);
                delete $buf{$fh};
                delete $authed{$fh};
                delete $subscribed{$fh};
                close $fh;
                next;
            }

            $buf{$fh} .= $data;

            while (my $cmd = take_command(\$buf{$fh})) {
                my ($c, @a) = @$cmd;
                $c = uc $c;
                my $out;

                if ($c eq 'FAKE-MASTER') {
                    @master = @a;
                    $out = "+OK\r\n";
                } elsif ($c eq 'FAKE-SWITCH') {
                    my $msg = "$o{name} $master[0] $master[1] $a[0] $a[1]";
                    @master = @a;
                    for my $s (values %subscribed) {
                        print {$s} resp(['message', '+switch-master', $msg]);
                    }
                    $out = ':' . keys(%subscribed) . "\r\n";
                } elsif ($c eq 'FAKE-STATS') {
                    $out = resp([$asks, $subs, scalar keys %subscribed]);
                } elsif ($c eq 'AUTH') {
                    if (!defined $o{password}) {
                        $out = "-ERR AUTH called without any password "
                               . "configured\r\n";
                    } elsif ($a[-1] eq $o{password}) {
                        $authed{$fh} = 1;
                        $out = "+OK\r\n";
                    } else {
                        $out = "-WRONGPASS invalid username-password pair\r\n";
                    }
                } elsif (defined $o{password} && !$authed{$fh}) {
                    $out = "-NOAUTH Authentication required.\r\n";
                } elsif ($c eq 'PING') {
                    $out = "+PONG\r\n";
                } elsif ($c eq 'SENTINEL'
                         && lc($a[0]) eq 'get-master-addr-by-name') {
                    $asks++;
                    $out = $a[1] eq $o{name} && defined $master[1]
                           ? resp([@master]) : "*-1\r\n";
                } elsif ($c eq 'SUBSCRIBE') {
                    $subs++;
                    $subscribed{$fh} = $fh;
                    $out = "*3\r\n" . resp('subscribe') . resp($a[0])
                           . ":1\r\n";
                } else {
                    $out = "-ERR unknown command '$c'\r\n";
                }

                print {$fh} $out;
            }
        }
    }
}

# a whole command array off the front of $$b, or undef
sub take_command {
    my ($b) = @_;
    return unless $$b =~ /\A\*(\d+)\r\n/;
    my ($n, $pos) = ($1, length($&));
    my @args;
    for (1 .. $n) {
        return unless substr($$b, $pos) =~ /\A\$(\d+)\r\n/;
        my $len = $1;
        $pos += length($&);
        return if length($$b) < $pos + $len + 2;
        push @args, substr($$b, $pos, $len);
        $pos += $len + 2;
    }
    substr($$b, 0, $pos) = '';
    return \@args;
}

sub resp {
    my ($v) = @_;
    return '*' . @$v . "\r\n" . join('', map { resp($_) } @$v)
        if ref $v;
    return '$' . length($v) . "\r\n$v\r\n";
}

# a redis-server left by an earlier run on our port is stopped first;
# the suite's server starts empty too
redis_stop();
unlink "$dir/dump.rdb";
redis_start();

END {
    # waitpid() below sets $?, which is then the test's exit status
    local $?;

    if ($$ == $owner) {
        # the fakes are this process's children: never left behind
        fake_sentinel_stop($_) for keys %fake_pid;

        if (!$ENV{TEST_NGINX_NO_CLEAN}) {
            nodes_stop();
            redis_stop();
        }
    }
}

1;
