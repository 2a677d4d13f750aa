package Test::Classify::Mock;

# Test::Classify::Mock -- start the mock LLM backends for a test file.
#
#   use Test::Nginx::Socket 'no_plan';
#   use Test::Classify::Mock;            # starts the mock now
#   # or: use Test::Classify::Mock qw(mock_log mock_clear);   (helpers)
#   # or: use Test::Classify::Mock ':manual';  (load only, start nothing)
#
# On import it
#   * picks the port: $ENV{TEST_NGINX_MOCK_PORT}, else a random free port
#     when $ENV{TEST_NGINX_RANDOMIZE} is set, else 1990, and exports it as
#     $ENV{TEST_NGINX_MOCK_PORT} (so configs can say $TEST_NGINX_MOCK_PORT);
#   * makes the mock's servroot: $ENV{TEST_NGINX_MOCK_SERVROOT}, else
#     t/servroot_mock (t/servroot_mock_<pid> under RANDOMIZE), with t/ being
#     the directory that holds t/mock/; stops a mock left running there by an
#     earlier TEST_NGINX_NO_CLEAN run (its pid file, checked against /proc);
#   * starts the C mock, $ENV{TEST_NGINX_MOCK_BINARY} || build/bin/mock-llm
#     (built by `make mock`, which `make test` runs), with its pid file in
#     the servroot; nothing but this module is loaded into the nginx under
#     test;
#   * waits (up to 10 s) until GET /_mock/ping answers, else dies with the
#     mock's stderr;
#   * exports $ENV{TEST_NGINX_MOCK_LOG} (its request log, one line per
#     request), $ENV{TEST_NGINX_MOCK_ERROR_LOG} (its stderr),
#     $ENV{TEST_NGINX_MOCK_SERVROOT};
#   * at END (in the process that started it only, never in forked
#     children) stops it with TERM, then KILL after 2 s, unless
#     $ENV{TEST_NGINX_NO_CLEAN} is set; under RANDOMIZE it also removes the
#     per-process servroot when no test failed.
# A busy port makes it die at once with a hint.
# With $ENV{TEST_NGINX_MOCK_EXTERNAL} set, nothing is started or stopped: a
# mock already running on the port is used.
#
# The mock's HTTP contract (endpoints, query arguments, records) is
# documented at the top of t/mock/mock.c.
#
# Helpers (exported on request, or call them fully qualified):
#   mock_port()                         the port
#   mock_request($method, $path_query [, $body])  -> ($status, $body, \%hdr)
#   mock_get($path_query)               body of a GET (dies unless 200)
#   mock_log($tag [, n => N, wait => S])   the /_mock/log text
#   mock_count($tag)                    number of records
#   mock_body($tag [, $i [, $wait]])    raw body of a record (undef if none)
#   mock_records($tag [, n => N, wait => S, body => 1])  array ref of hashes
#                                       (JSON::PP; strings are byte strings)
#   mock_clear([$tag])                  clear one tag or all records
#   mock_start() / mock_stop()          what import / END do

use strict;
use warnings;

use Exporter ();
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use Time::HiRes ();
use Cwd ();
use POSIX ();

our @ISA = qw(Exporter);
our @EXPORT_OK = qw(mock_port mock_request mock_get mock_log mock_count
                    mock_body mock_records mock_clear mock_start mock_stop);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our $MockDir = $ENV{TEST_NGINX_MOCK_DIR}
    || File::Spec->rel2abs(dirname(__FILE__) . '/../../../mock');
$MockDir = Cwd::abs_path($MockDir) // $MockDir;

our $Binary = $ENV{TEST_NGINX_MOCK_BINARY}
    || File::Spec->catfile(dirname(dirname($MockDir)), qw(build bin mock-llm));
our $DefaultPort = 1990;

our ($Port, $ServRoot, $Pid, $Owner, $Started, $External);

sub import {
    my $class = shift;
    my ($start, @syms) = (1);
    for (@_) {
        if ($_ eq ':manual' || $_ eq 'no_start') { $start = 0 }
        else { push @syms, $_ }
    }
    mock_start() if $start;
    $class->export_to_level(1, $class, @syms) if @syms;
}

# ------------------------------------------------------------------ ports

sub port_free {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub pick_port {
    return $ENV{TEST_NGINX_MOCK_PORT} if $ENV{TEST_NGINX_MOCK_PORT};
    return $DefaultPort unless $ENV{TEST_NGINX_RANDOMIZE};
    my %avoid = map { ($_ // '') => 1 }
        @ENV{qw(TEST_NGINX_SERVER_PORT TEST_NGINX_PORT)};
    for (1 .. 200) {
        my $p = 20000 + int(rand(10000));
        next if $avoid{$p};
        return $p if port_free($p);
    }
    die "Test::Classify::Mock: cannot find a free port for the mock\n";
}

# ------------------------------------------------------------------ process

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    my $stat = slurp("/proc/$pid/stat");
    return 0 if $stat =~ /^\d+ \(.*\) Z/s;    # zombie: as good as gone
    return 1;
}

sub terminate {
    my ($pid, $grace) = @_;
    return unless alive($pid);
    kill 'TERM', $pid;
    my $until = Time::HiRes::time() + ($grace // 2);
    while (alive($pid) && Time::HiRes::time() < $until) {
        Time::HiRes::sleep(0.02);
    }
    if (alive($pid)) {
        kill 'KILL', $pid;
        Time::HiRes::sleep(0.05);
    }
    waitpid($pid, POSIX::WNOHANG());    # ours: reap it
}

# a mock left behind in this servroot (TEST_NGINX_NO_CLEAN, crash)
sub stop_stale {
    my ($sr) = @_;
    my $pid = slurp("$sr/mock.pid");
    ($pid) = $pid =~ /(\d+)/ or return;
    my $cmd = slurp("/proc/$pid/cmdline");
    $cmd =~ tr/\0/ /;
    return unless $cmd =~ /mock-llm/ && index($cmd, $sr) >= 0;
    terminate($pid, 2);
}

sub servroot_default {
    if ($ENV{TEST_NGINX_MOCK_SERVROOT}) {
        $ENV{TEST_NGINX_MOCK_SERVROOT_GIVEN} = 1;
        return $ENV{TEST_NGINX_MOCK_SERVROOT};
    }
    my $t = dirname($MockDir);
    return $ENV{TEST_NGINX_RANDOMIZE} ? "$t/servroot_mock_$$" : "$t/servroot_mock";
}

sub mock_port { $Port // $ENV{TEST_NGINX_MOCK_PORT} // $DefaultPort }

sub startup_failure {
    my ($msg) = @_;
    my $err = slurp("$ServRoot/logs/stderr.log");
    $err =~ s/^/    /mg;
    die "Test::Classify::Mock: the mock on port $Port failed to start: "
        . "$msg\n  command: $Binary -p $Port -P $ServRoot/mock.pid\n"
        . "  its stderr:\n$err\n";
}

sub ready {
    my ($status, $body) = eval { mock_request('GET', '/_mock/ping') };
    return defined $status && $status == 200 && $body =~ /^pong/;
}

sub mock_start {
    return if $Started;
    $Port = pick_port();
    $ENV{TEST_NGINX_MOCK_PORT} = $Port;

    if ($ENV{TEST_NGINX_MOCK_EXTERNAL}) {
        $External = $Started = 1;
        my $until = Time::HiRes::time() + 5;
        until (ready()) {
            die "Test::Classify::Mock: TEST_NGINX_MOCK_EXTERNAL is set but no "
              . "mock answers on 127.0.0.1:$Port\n"
                if Time::HiRes::time() > $until;
            Time::HiRes::sleep(0.05);
        }
        return;
    }

    $ServRoot = servroot_default();
    $ENV{TEST_NGINX_MOCK_SERVROOT} = $ServRoot;
    $ENV{TEST_NGINX_MOCK_LOG} = "$ServRoot/logs/mock.log";
    $ENV{TEST_NGINX_MOCK_ERROR_LOG} = "$ServRoot/logs/stderr.log";

    stop_stale($ServRoot);
    die "Test::Classify::Mock: port $Port on 127.0.0.1 is busy (another mock? "
      . "set TEST_NGINX_MOCK_PORT or TEST_NGINX_RANDOMIZE, or "
      . "TEST_NGINX_MOCK_EXTERNAL=1 to use a mock that is already running)\n"
        unless port_free($Port);
    remove_tree($ServRoot) if -d $ServRoot;
    make_path("$ServRoot/logs");

    die "Test::Classify::Mock: $Binary is not executable (run `make mock`, "
      . "or set TEST_NGINX_MOCK_BINARY)\n" unless -x $Binary;

    my @cmd = ($Binary, '-p', $Port, '-P', "$ServRoot/mock.pid",
               '-l', $ENV{TEST_NGINX_MOCK_LOG});
    $Pid = fork();
    die "Test::Classify::Mock: fork: $!\n" unless defined $Pid;
    if ($Pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $ENV{TEST_NGINX_MOCK_ERROR_LOG};
        exec @cmd or POSIX::_exit(127);
    }

    $Owner = $$;
    $Started = 1;
    my $until = Time::HiRes::time() + 10;
    until (-s "$ServRoot/mock.pid" && ready()) {
        if (!alive($Pid)) {
            waitpid($Pid, 0);
            undef $Started;
            startup_failure("it exited with status " . ($? >> 8));
        }
        if (Time::HiRes::time() > $until) {
            terminate($Pid);
            undef $Started;
            startup_failure("no answer to GET /_mock/ping within 10 s");
        }
        Time::HiRes::sleep(0.02);
    }
    return $Port;
}

sub mock_stop {
    return unless $Started && !$External;
    return unless defined $Owner && $Owner == $$;
    terminate($Pid, 2) if $Pid;
    undef $Started;
    # a per-process servroot (RANDOMIZE) goes away unless a test failed
    if ($ENV{TEST_NGINX_RANDOMIZE} && !$ENV{TEST_NGINX_MOCK_SERVROOT_GIVEN}
        && $ServRoot =~ /_mock_\Q$$\E$/)
    {
        my $passing = eval { require Test::Builder;
                             Test::Builder->new->is_passing } // 1;
        remove_tree($ServRoot) if $passing;
    }
}

END {
    local $?;
    mock_stop() unless $ENV{TEST_NGINX_NO_CLEAN};
}

# ------------------------------------------------------------------ client

sub uri_escape {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~*])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub query {
    my (%a) = @_;
    return join '&', map { "$_=" . uri_escape($a{$_}) }
                     grep { defined $a{$_} } sort keys %a;
}

# ($status, $body, \%headers) of one HTTP/1.0 request to the mock
sub mock_request {
    my ($method, $path, $body) = @_;
    $body //= '';
    my $port = mock_port();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "cannot connect to the mock on 127.0.0.1:$port: $!\n";
    binmode $s;
    my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1:$port\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: "
          . length($body) . "\r\n" if length $body || $method eq 'POST';
    print {$s} $req, "\r\n", $body;
    my $resp = do { local $/; <$s> };
    close $s;
    $resp //= '';
    my ($head, $rest) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d+)};
    die "bad response from the mock for $method $path\n" unless $status;
    my %h;
    for (split /\r\n/, $head) {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return ($status, $rest // '', \%h);
}

sub mock_get {
    my ($path) = @_;
    my ($status, $body) = mock_request('GET', $path);
    die "mock: GET $path answered $status: $body\n" unless $status == 200;
    return $body;
}

sub mock_log {
    my ($tag, %o) = @_;
    return mock_get('/_mock/log?' . query(tag => $tag // 'default',
                                          n => $o{n}, wait => $o{wait}));
}

sub mock_count {
    my ($tag) = @_;
    my $n = mock_get('/_mock/count?' . query(tag => $tag // 'default'));
    chomp $n;
    return $n;
}

sub mock_body {
    my ($tag, $i, $wait) = @_;
    my ($status, $body) = mock_request('GET', '/_mock/body?'
        . query(tag => $tag // 'default', i => $i, wait => $wait));
    return $status == 200 ? $body : undef;
}

sub mock_records {
    my ($tag, %o) = @_;
    require JSON::PP;
    my $json = mock_get('/_mock/records?' . query(tag => $tag // 'default',
        n => $o{n}, wait => $o{wait}, body => $o{body} ? 1 : undef));
    return JSON::PP->new->utf8(0)->decode($json);
}

sub mock_clear {
    my ($tag) = @_;
    return mock_get('/_mock/clear' . (defined $tag ? '?' . query(tag => $tag) : ''));
}

1;
