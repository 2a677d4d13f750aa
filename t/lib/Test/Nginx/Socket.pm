package Test::Nginx::Socket;

# A data-driven test scaffold for nginx modules that reads the .t format of
# OpenResty's Test::Nginx::Socket (written from scratch for this project; see
# the POD at the end for the supported sections and environment variables).
#
# Note for readers: "use Test::Base -Base" runs Spiffy's source filter over
# this file, which turns "sub name {" into a method taking $self.  Every sub
# here is therefore written with a signature, e.g. "sub name ($x) {", or
# with "()" for no arguments, which the filter turns into "sub name {" with
# no $self.  Block accessors return a list in list context: pass them to a
# function as "scalar $block->section".

use v5.36;
use Test::Base -Base;

use Cwd ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use List::Util qw(shuffle);
use POSIX qw(WNOHANG);
use Scalar::Util qw(looks_like_number);
use Socket qw(SOCK_STREAM);
use Test::LongString ();
use Text::Diff ();
use Time::HiRes qw(sleep time);

our $VERSION = '0.01';

our @EXPORT = qw(
    run_tests repeat_each no_shuffle log_level no_long_string
    no_root_location worker_connections add_block_preprocessor
    master_on master_off workers timeout
    server_port server_root html_dir bail_out
);

# nginx's exit code under valgrind when valgrind found memory errors (leaks
# are not counted there: see valgrind_errors)
use constant VALGRIND_ERROR_EXIT => 97;

# the first line of a valgrind error record that must fail the test
my $ValgrindErrorRe = do {
    my $any = join '|', map { quotemeta } (
        'Invalid read', 'Invalid write', 'Invalid free', 'Mismatched free',
        'uninitialised', 'Conditional jump', 'Syscall param',
        'Source and destination overlap', 'are definitely lost');
    qr/$any/;
};

# error log lines that deserve to be shown even when no check asks for them
my $LoudLineRe = do {
    my $any = join '|', map { quotemeta } (
        '[alert]', '[crit]', '[emerg]', 'exited on signal');
    qr/$any|open socket #\d+ left|\bAssertion\b.*\bfailed/;
};

# sections in which $TEST_NGINX_* variables are replaced
my @ExpandedSections = qw(
    config http_config main_config post_main_config user_files
    request raw_request pipelined_requests more_headers
    response_body response_body_like response_body_unlike
    response_headers response_headers_like
    raw_response_headers_like raw_response_headers_unlike
    error_log no_error_log grep_error_log grep_error_log_out
    tcp_listen tcp_query tcp_reply
);


# settings: the environment, then the functions called from a .t prologue

our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $NoLongString      = 0;
our $NoRootLocation    = 0;
our $WorkerConnections = 64;
our $Workers           = 1;
our $MasterProcess     = on_off($ENV{TEST_NGINX_MASTER_PROCESS});
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep             = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $Verbose           = $ENV{TEST_NGINX_VERBOSE} || 0;
our $NoClean           = $ENV{TEST_NGINX_NO_CLEAN} || 0;
our $Randomize         = $ENV{TEST_NGINX_RANDOMIZE} || 0;
our $UseValgrind       = $ENV{TEST_NGINX_USE_VALGRIND} || 0;
our $NginxBinary       = $ENV{TEST_NGINX_BINARY} || default_binary();
our @LoadModules       = split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
our @BlockPreprocessors;

# nginx under valgrind runs about 20 times slower: every wait is stretched
our $SlowFactor = $UseValgrind ? 10 : 1;

our $ServerAddr = '127.0.0.1';
our $ServerPort = $Randomize
    ? free_port({})
    : $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;

our $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || 't/servroot');

# with random ports several test files may run at once (prove -j):
# each gets a server root of its own
$ServRoot .= "_$ServerPort" if $Randomize;

our $ConfDir    = "$ServRoot/conf";
our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $StderrFile = "$LogDir/stderr.log";
our $ValgrindLogFile = "$LogDir/valgrind.log";

$ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
$ENV{TEST_NGINX_PORT}        = $ServerPort;
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
$ENV{TEST_NGINX_HTML_DIR}    = $HtmlDir;

# run-time state

my $MainPid = $$;       # forked helpers must not clean up on exit
my $Nginx;              # the running nginx: { pid, child, blocks }
my $NginxConfigured;    # a block with --- config has run
my @WatchedLogs;        # { path, pos }: files read by the error log checks
my $ValgrindLogPos = 0;
my $TcpServer;          # the mock TCP server of the current block
my $NginxVersion;


sub repeat_each ($n = undef) {
    $RepeatEach = $n if defined $n;
    return $RepeatEach;
}

sub no_shuffle () {
    $NoShuffle = 1;
}

sub log_level ($level = undef) {
    $LogLevel = $level if defined $level;
    return $LogLevel;
}

sub no_long_string () {
    $NoLongString = 1;
}

sub no_root_location () {
    $NoRootLocation = 1;
}

sub worker_connections ($n = undef) {
    $WorkerConnections = $n if defined $n;
    return $WorkerConnections;
}

sub workers ($n = undef) {
    $Workers = $n if defined $n;
    return $Workers;
}

sub master_on () {
    $MasterProcess = 'on';
}

sub master_off () {
    $MasterProcess = 'off';
}

sub timeout ($secs = undef) {
    $Timeout = $secs if defined $secs;
    return $Timeout;
}

sub server_port () {
    return $ServerPort;
}

sub server_root () {
    return $ServRoot;
}

sub html_dir () {
    return $HtmlDir;
}

# as in Test::Nginx, the preprocessor added last runs first
sub add_block_preprocessor :prototype(&) ($code) {
    unshift @BlockPreprocessors, $code;
}

sub bail_out ($msg) {
    cleanup();
    Test::More::BAIL_OUT($msg);
}


# the main loop

sub run_tests () {
    if (!-x $NginxBinary) {
        bail_out("nginx binary \"$NginxBinary\" is not executable "
                 . "(set TEST_NGINX_BINARY)");
    }

    # section filters (eval) run block by block, once the block's
    # $TEST_NGINX_RAND_PORT_n ports are in %ENV
    Test::Base::filters_delay();

    my @blocks = Test::Base::blocks();
    @blocks = shuffle(@blocks) unless $NoShuffle;

    for my $block (@blocks) {
        prepare_block($block);
        run_block($block);
    }

    if ($UseValgrind || !$NoClean) {
        stop_nginx();
    }
}

sub prepare_block ($block) {
    allocate_rand_ports($block);

    if (!$block->is_filtered) {
        $block->run_filters;
    }

    check_eval_sections($block);

    for my $pre (@BlockPreprocessors) {
        $pre->($block);
    }

    $block->set_value(name => "$0 " . $block->name);

    for my $section (@ExpandedSections) {
        my $value = $block->$section;
        next unless defined $value;

        $value = expand_env($block->name, $value);

        if ($section =~ /^(?:response_|raw_response_)/) {
            $value = expand_server_port($value);
        }

        $block->set_value($section, $value);
    }
}

sub allocate_rand_ports ($block) {
    delete @ENV{grep { /^TEST_NGINX_RAND_PORT_\d+$/ } keys %ENV};

    # look at the raw section text, before eval filters run
    my $text = join "\n", grep { defined && !ref }
                          map { $block->{$_} ? @{ $block->{$_} } : () }
                          @{ $block->{_section_order}[0] || [] };

    my %used = ($ServerPort => 1);
    my %seen;

    for my $n (grep { !$seen{$_}++ } $text =~ /TEST_NGINX_RAND_PORT_(\d+)/g) {
        $ENV{"TEST_NGINX_RAND_PORT_$n"} = free_port(\%used);
    }
}

# Test::Base's eval filter returns the error message as the section's value;
# a typo in an eval section must not turn into a pattern that never matches
sub check_eval_sections ($block) {
    my $map = $block->{_section_map}[0] || {};

    for my $section (keys %$map) {
        next unless ($map->{$section}{filters} // '') =~ /\beval\b/;

        my $value = $block->$section;
        if (defined $value && !ref $value
            && $value =~ / at \(eval \d+\) line \d+/)
        {
            bail_out($block->name . " - --- $section eval failed: $value");
        }
    }
}

sub run_block ($block) {
    my $name = $block->name;

    my ($skip_tests, $skip_reason) = block_skip($block);
    if (defined $skip_tests) {
        for (1 .. $RepeatEach) {
            SKIP: {
                Test::More::skip("$name - $skip_reason", $skip_tests);
            }
        }
        return;
    }

    if (defined $block->must_die) {
        run_must_die($block);
        return;
    }

    if (defined $block->config) {
        restart_nginx($block);

    } elsif (!$NginxConfigured) {
        bail_out("$name - no --- config section, and no earlier block "
                 . "started nginx");
    }

    push @{ $Nginx->{blocks} }, $name if $Nginx;

    run_init($block);

    for my $rep (0 .. $RepeatEach - 1) {
        start_tcp_server($block);

        write_user_files($block) if $rep > 0;

        run_requests($block, $rep);
        check_tcp_server($block);
    }

    check_nginx_alive($block);

    if ($UseValgrind) {
        check_valgrind_log($name);
    }
}

# "--- skip_eval: N: perl code" and "--- skip_nginx: N: < 1.21.0"
sub block_skip ($block) {
    my $name = $block->name;

    if (defined(my $spec = $block->skip_eval)) {
        my ($n, $code) = $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - invalid --- skip_eval: $spec");

        my $skip = eval "package main; $code";
        bail_out("$name - --- skip_eval failed: $@") if $@;

        return ($n, "skip_eval") if $skip;
    }

    if (defined(my $spec = $block->skip_nginx)) {
        my ($n, $op, $ver, $reason) =
            $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+\.\d+\.\d+)
                      (?:\s*:\s*(.*?))?\s*$/x
            or bail_out("$name - invalid --- skip_nginx: $spec");

        my $have = canon_version(nginx_version());
        my $want = canon_version($ver);

        my $skip = $op eq '<'  ? $have <  $want
                 : $op eq '<=' ? $have <= $want
                 : $op eq '>'  ? $have >  $want
                 :               $have >= $want;

        return ($n, $reason || "nginx version $op $ver") if $skip;
    }

    return;
}

sub run_init ($block) {
    my $init = $block->init;
    return unless defined $init;

    if (ref $init eq 'CODE') {
        $init->();
        return;
    }

    eval "package main; $init; 1"
        or bail_out($block->name . " - --- init failed: $@");
}


# servroot and nginx.conf

sub setup_server_root () {
    # remove only what this module creates, in case TEST_NGINX_SERVROOT
    # points somewhere unexpected
    if (-d $ServRoot) {
        remove_tree($ConfDir, $LogDir, $HtmlDir, glob("$ServRoot/*_temp"));
    }

    for my $dir ($ServRoot, $ConfDir, $LogDir, $HtmlDir,
                 map { "$ServRoot/${_}_temp" }
                     qw(client_body proxy fastcgi uwsgi scgi))
    {
        next if -d $dir;
        make_path($dir) or bail_out("cannot create directory $dir: $!");
    }

    write_file("$HtmlDir/index.html",
               "<html><head><title>It works!</title></head>"
               . "<body>It works!</body></html>");
}

# "--- user_files": ">>> relpath [date]" lines, each followed by the body
sub write_user_files ($block) {
    my $name = $block->name;
    my $files = $block->user_files;
    return unless defined $files;

    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+?))?\s*$/) {
                push @list, [$1, '', $2];

            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;

    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - --- user_files must be a string or an ARRAY");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";

        if ($path =~ m{^(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - cannot create directory $1");
        }

        write_file($path, $body // '');

        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - cannot set the date \"$date\" on $path");
        }
    }
}

sub write_config_file ($block, $daemon) {
    my $level  = $block->log_level || $LogLevel;
    my $master = $UseValgrind ? 'off' : $MasterProcess;

    my $main   = $block->main_config // '';
    my $http   = $block->http_config // '';
    my $config = $block->config // '';
    my $post   = $block->post_main_config // '';

    my $modules = join '', map { "load_module $_;\n" } @LoadModules;
    my $user = $> == 0 ? "user root;\n" : '';

    my $root = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    write_file($ConfFile, <<"_EOC_");
worker_processes  $Workers;
daemon $daemon;
master_process $master;
error_log $ErrLogFile $level;
pid $PidFile;
$user$modules
$main

http {
    access_log $AccLogFile;

    client_body_temp_path $ServRoot/client_body_temp;
    proxy_temp_path $ServRoot/proxy_temp;
    fastcgi_temp_path $ServRoot/fastcgi_temp;
    uwsgi_temp_path $ServRoot/uwsgi_temp;
    scgi_temp_path $ServRoot/scgi_temp;

    default_type text/plain;
    keepalive_timeout 68;

$http

    server {
        listen $ServerPort;
        server_name 'localhost';

        client_max_body_size 30M;

$config

$root    }
}

$post

events {
    accept_mutex off;
    worker_connections $WorkerConnections;
}
_EOC_
}


# the nginx process

sub restart_nginx ($block) {
    my $name = $block->name;

    stop_nginx();
    stop_leftover_nginx();
    setup_server_root();
    write_user_files($block);
    write_config_file($block, $UseValgrind ? 'off' : 'on');

    my ($ok, $status) = start_nginx($name);
    if (!$ok) {
        bail_out("$name - cannot start nginx (status $status): "
                 . slurp($StderrFile) . valgrind_tail());
    }

    $NginxConfigured = 1;
}

# Starts nginx on the current conf; returns (1) once it listens, or
# (0, $status) when it fails: an exit code, "signal N" or "timeout".
sub start_nginx ($name) {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    unshift @cmd, valgrind_command() if $UseValgrind;

    diag("$name - starting: @cmd") if $Verbose;

    @WatchedLogs = ({ path => $StderrFile, pos => 0 },
                    { path => $ErrLogFile, pos => 0 });
    $ValgrindLogPos = 0;

    my $deadline = time + ($UseValgrind ? 30 : 5);

    while (1) {
        my ($ok, $status) = $UseValgrind
                            ? launch_foreground(\@cmd, $deadline)
                            : launch_daemon(\@cmd, $deadline);
        return (1) if $ok;

        # the port may still be held for a moment by an nginx just stopped
        if (time > $deadline
            || slurp($StderrFile) !~ /Address already in use/)
        {
            return (0, $status);
        }

        sleep 0.1;
    }
}

# daemon on: the launcher exits once nginx has bound its sockets
sub launch_daemon ($cmd, $deadline) {
    my $pid = spawn($cmd);
    waitpid $pid, 0;

    return (0, exit_status($?)) if $? != 0;

    my $npid = wait_pid_file($deadline);
    return (0, "timeout") unless $npid;

    $Nginx = { pid => $npid, child => 0, blocks => [] };
    return (1);
}

# daemon off (valgrind): up when the pid file appears, which nginx writes
# after opening its sockets; probing the port would log a closed connection
sub launch_foreground ($cmd, $deadline) {
    my $pid = spawn($cmd);

    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            return (0, exit_status($?));
        }

        if (slurp($PidFile) =~ /^$pid\s*$/) {
            $Nginx = { pid => $pid, child => 1, blocks => [] };
            return (1);
        }

        sleep $Sleep;
    }

    kill KILL => $pid;
    waitpid $pid, 0;

    return (0, "timeout");
}

sub exit_status ($status) {
    return $status & 127 ? "signal " . ($status & 127) : $status >> 8;
}

sub valgrind_command () {
    my @opts = ('--tool=memcheck', '--leak-check=full',
                '--show-possibly-lost=no', '--errors-for-leak-kinds=none',
                '--num-callers=30', '--gen-suppressions=all',
                '--error-exitcode=' . VALGRIND_ERROR_EXIT,
                "--log-file=$ValgrindLogFile");

    if (-f 'valgrind.suppress') {
        push @opts, '--suppressions='
                    . File::Spec->rel2abs('valgrind.suppress');
    }

    # a non-numeric TEST_NGINX_USE_VALGRIND adds options of its own
    if (!looks_like_number($UseValgrind)) {
        push @opts, split ' ', $UseValgrind;
    }

    return ('valgrind', @opts);
}

# fork and exec with stdout discarded and stderr saved for the log checks
sub spawn ($cmd) {
    STDOUT->flush;
    STDERR->flush;

    my $pid = fork // bail_out("fork() failed: $!");

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', $StderrFile;

        no warnings 'exec';
        exec { $cmd->[0] } @$cmd;
        print STDERR "cannot exec $cmd->[0]: $!\n";
        POSIX::_exit(127);
    }

    return $pid;
}

sub wait_pid_file ($deadline) {
    while (time < $deadline) {
        my $pid = slurp($PidFile);
        if ($pid =~ /^(\d+)\s*$/) {
            return $1 if process_alive($1);
        }

        sleep $Sleep;
    }

    return undef;
}

# QUIT, wait (under valgrind until the leak report is written), then KILL
sub stop_nginx () {
    return unless $Nginx;

    my ($pid, $child) = @$Nginx{qw(pid child)};
    my $who = join(', ', @{ $Nginx->{blocks} }) || 'nginx startup';
    undef $Nginx;

    diag("stopping nginx $pid") if $Verbose;

    kill QUIT => $pid;

    if (!defined wait_exit($pid, $child, 5 * $SlowFactor)) {
        diag("WARNING: nginx $pid did not exit on QUIT; killing it");
        kill KILL => $pid;
        wait_exit($pid, $child, 5);
    }

    # alerts logged on the way out (e.g. "open socket ... left")
    for my $line (@{ new_log_lines(0) }) {
        diag("WARNING: $who - " . show_bytes($line)) if $line =~ $LoudLineRe;
    }

    if ($UseValgrind) {
        check_valgrind_log($who);
    }
}

# an nginx left running in this server root by an earlier run
# (TEST_NGINX_NO_CLEAN) would hold the port
sub stop_leftover_nginx () {
    my ($pid) = slurp($PidFile) =~ /^(\d+)\s*$/ or return;
    return unless process_alive($pid);

    kill QUIT => $pid;
    return if defined wait_exit($pid, 0, 5);

    kill KILL => $pid;
    wait_exit($pid, 0, 5);
}

# the exit status once $pid is gone (our child), 0 (a daemon), or undef
sub wait_exit ($pid, $child, $secs) {
    my $deadline = time + $secs;

    while (time < $deadline) {
        if ($child) {
            return exit_status($?) if waitpid($pid, WNOHANG) == $pid;

        } elsif (!process_alive($pid)) {
            return 0;
        }

        sleep 0.01;
    }

    return undef;
}

# a daemonized nginx is reparented; where nobody reaps it, it stays a zombie
sub process_alive ($pid) {
    return 0 unless kill 0 => $pid;

    my $stat = slurp("/proc/$pid/stat");
    return $stat !~ /^\d+ \(.*\) [ZX]/s;
}

sub check_nginx_alive ($block) {
    return if !$Nginx;

    my $dead = $Nginx->{child}
               ? waitpid($Nginx->{pid}, WNOHANG) == $Nginx->{pid}
               : !process_alive($Nginx->{pid});
    return unless $dead;

    my $name = $block->name;
    my $pid = $Nginx->{pid};

    Test::More::fail("$name - nginx (pid $pid) died during the test");
    diag(join '', @{ new_log_lines(0) }, valgrind_tail());

    undef $Nginx;
}

# Each valgrind report fails one extra test named after the blocks that ran
# on this nginx (valgrind's exit code is no verdict: see valgrind_errors).
sub check_valgrind_log ($who) {
    my $report = '';

    if (open my $fh, '<', $ValgrindLogFile) {
        seek $fh, $ValgrindLogPos, 0;
        $report = do { local $/; <$fh> } // '';
        $ValgrindLogPos = tell $fh;
    }

    my @errors = valgrind_errors($report);
    return unless @errors;

    Test::More::fail("$who - valgrind reported errors: $errors[0]");
    diag("valgrind report ($ValgrindLogFile):\n$report");
}

# The error records of a valgrind log.  nginx itself leaks a little in
# single-process mode (ngx_set_environment, the event module's connection
# arrays, the init cycle's pool when the config is bad): a leak whose whole
# stack lies in the nginx binary and system libraries is not counted.
sub valgrind_errors ($report) {
    my @lines = split /\n/, $report;
    my @errors;

    for (my $i = 0; $i < @lines; $i++) {
        my ($msg) = $lines[$i] =~ /^==\d+== (\S.*)/ or next;
        next unless $msg =~ $ValgrindErrorRe;

        my @frames;
        while ($i + 1 < @lines && $lines[$i + 1] =~ /^==\d+==\s+(?:at|by) /) {
            push @frames, $lines[++$i];
        }

        next if $msg =~ /definitely lost/ && !grep { !core_frame($_) } @frames;

        push @errors, $msg;
    }

    return @errors;
}

sub core_frame ($frame) {
    my ($obj) = $frame =~ /\(in (\S+)\)$/ or return 0;

    return $obj eq $NginxBinary || $obj eq (Cwd::abs_path($NginxBinary) // '')
           || $obj =~ m{^/(?:usr/)?lib(?:exec/valgrind|/[^/]+-linux-gnu)/};
}

sub valgrind_tail () {
    return '' unless $UseValgrind;
    return "\nvalgrind: " . substr(slurp($ValgrindLogFile), -4000);
}

# "--- must_die": nginx must refuse to start; its messages are on stderr
sub run_must_die ($block) {
    my $name = $block->name;
    my $expect = $block->must_die;

    if (!defined $block->config) {
        bail_out("$name - --- must_die needs a --- config section");
    }

    stop_nginx();
    stop_leftover_nginx();

    for my $rep (0 .. $RepeatEach - 1) {
        setup_server_root();
        write_user_files($block);
        write_config_file($block, $UseValgrind ? 'off' : 'on');

        my ($started, $status) = start_nginx($name);

        if ($started) {
            Test::More::fail("$name - nginx must die but it started");
            push @{ $Nginx->{blocks} }, $name;

        } elsif ($status =~ /^(?:signal|timeout)/) {
            Test::More::fail("$name - nginx did not die cleanly: $status");

        } elsif (looks_like_number($expect)) {
            Test::More::is($status, $expect,
                           "$name - die with the expected exit code");

        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        check_error_log($block, $rep, 1);

        if ($started) {
            stop_nginx();

        } elsif ($UseValgrind) {
            check_valgrind_log($name);
        }
    }

    # the next block without --- config has nothing to talk to
    undef $NginxConfigured;
}


# requests

sub run_requests ($block, $rep) {
    my $name = $block->name;
    my $requests = build_requests($block);
    my $pipelined = $block->pipelined_requests;

    # several responses: every expectation must then be an ARRAY
    my $n_responses = $pipelined ? @$pipelined : @$requests;
    my $need_array = $pipelined ? 1 : @$requests > 1;

    my $timeout = parse_time(scalar $block->timeout) // $Timeout;
    $timeout *= $SlowFactor unless defined $block->abort;

    my $wait = parse_time(scalar $block->wait);
    my $idx = 0;

    for my $req (@$requests) {
        my $raw = send_request($block, $req->{packets}, $timeout);
        my $responses = $pipelined ? $n_responses : 1;

        for my $k (1 .. $responses) {
            if (!defined $block->ignore_response) {
                my $res = parse_response($block, \$raw, $req->{head},
                                         $k == $responses);

                check_error_code($block, $res, $idx, $need_array);
                check_raw_response_headers($block, $res, $idx, $need_array);
                check_response_headers($block, $res, $idx, $need_array);
                filter_response_body($block, $res, $idx);
                check_response_body($block, $res, $rep, $idx, $need_array);
            }

            # the error log is read after every response
            if (++$idx < $n_responses) {
                sleep $wait if $wait;
                check_error_log($block, $rep);
            }
        }
    }

    sleep $wait if $wait;
    check_error_log($block, $rep);
}

# Returns [{ packets => [{ value, delay_before }], head => bool }]: one
# entry per connection.
sub build_requests ($block) {
    my $name = $block->name;
    my $more = $block->more_headers // '';

    if (defined(my $raw = $block->raw_request)) {
        my @parts = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        my $text = join '', map { ref $_ ? $_->{value} : $_ } @parts;

        return [{
            packets => [map { ref $_ ? $_ : { value => $_ } } @parts],
            head => $text =~ /^\s*HEAD\s/ ? 1 : 0,
        }];
    }

    if (defined(my $reqs = $block->pipelined_requests)) {
        if (ref $reqs ne 'ARRAY') {
            bail_out("$name - --- pipelined_requests must be an ARRAY");
        }

        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            my $req = build_request($name, $reqs->[$i],
                                    headers_for($name, $more, $i), $conn);
            $all .= join '', map { $_->{value} } @{ $req->{packets} };
        }

        return [{ packets => [{ value => $all }], head => 0 }];
    }

    my $request = $block->request;
    if (!defined $request) {
        bail_out("$name - no --- request, --- raw_request or "
                 . "--- pipelined_requests section");
    }

    my @list = ref $request eq 'ARRAY' ? @$request : ($request);

    return [map {
        build_request($name, $list[$_], headers_for($name, $more, $_), 'close')
    } 0 .. $#list];
}

sub headers_for ($name, $more, $i) {
    return $more unless ref $more eq 'ARRAY';

    my $h = $more->[$i];
    bail_out("$name - --- more_headers has no entry for request $i")
        unless defined $h;

    return $h;
}

# One request written as "METHOD [URI [VERSION]]\nbody", possibly split in
# pieces (an ARRAY of strings or { value, delay_before }) that are sent in
# separate writes.  Host, Connection and Content-Length are added unless
# more_headers has them; a Content-Length body is trimmed of white space.
sub build_request ($name, $req, $more, $conn) {
    my @pieces = map { ref $_ ? { %$_ } : { value => $_ } }
                 ref $req eq 'ARRAY' ? @$req : ($req);

    if (grep { ref $_->{value} } @pieces) {
        bail_out("$name - a request piece must be a string or "
                 . "{ value => ..., delay_before => ... }");
    }

    my $text = join '', map { $_->{value} } @pieces;

    # leading blank and "#" comment lines are not part of the request
    $text =~ /\A(?:\s*#[^\n]*\n|\s+)*/;
    my $start = $+[0];

    my $eol = index $text, "\n", $start;
    $eol = length $text if $eol < 0;

    my @words = split ' ', substr($text, $start, $eol - $start);
    if (@words < 1 || @words > 3) {
        bail_out("$name - bad request line \""
                 . substr($text, $start, $eol - $start)
                 . "\": want \"METHOD [URI [VERSION]]\"");
    }

    my ($method, $uri, $version) = @words;
    $uri //= '/';
    $version //= 'HTTP/1.1';

    my ($headers, $chunked) = format_headers($more);

    my ($body_start, $body_end) = ($eol + 1, length $text);
    $body_start = $body_end if $body_start > $body_end;

    my $length_header = '';
    if (!$chunked && $body_end > $body_start
        && $headers !~ /^Content-Length\s*:/mi)
    {
        my $body = substr $text, $body_start, $body_end - $body_start;
        $body =~ /\A\s*/;
        $body_start += $+[0];
        $body =~ /\s*\z/;
        $body_end -= length($body) - $-[0];
        $body_end = $body_start if $body_end < $body_start;

        $length_header = "Content-Length: " . ($body_end - $body_start)
                         . "\r\n";
    }

    my $head = "$method $uri $version\r\n";
    $head .= "Host: localhost\r\n" if $headers !~ /^Host\s*:/mi;
    $head .= "Connection: $conn\r\n" if $headers !~ /^Connection\s*:/mi;
    $head .= "$headers$length_header\r\n";

    # map each piece onto the rewritten request: the head goes with the
    # piece holding the end of the request line, the body keeps its cuts
    my @packets;
    my $offset = 0;

    for my $piece (@pieces) {
        my ($from, $to) = ($offset, $offset + length $piece->{value});
        $offset = $to;

        my $value = '';
        if (defined $head && ($eol < $to || $to == length $text)) {
            $value = $head;
            undef $head;
        }

        my ($b0, $b1) = (max($from, $body_start), min($to, $body_end));
        $value .= substr($text, $b0, $b1 - $b0) if $b1 > $b0;

        next if $value eq '';

        push @packets, { %$piece, value => $value };
    }

    return { packets => \@packets, head => $method eq 'HEAD' };
}

sub format_headers ($text) {
    my ($out, $chunked) = ('', 0);

    for my $line (split /\n+/, $text) {
        next if $line =~ /^\s*#/ || $line !~ /\S/;

        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';

        $chunked = 1 if lc $key eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }

    return ($out, $chunked);
}

# Sends the packets on a new connection and reads until the server closes;
# the timeout is the idle time allowed between two I/O events.
sub send_request ($block, $packets, $timeout) {
    my $name = $block->name;

    local $SIG{PIPE} = 'IGNORE';

    if ($Verbose) {
        diag("$name - request:\n" . join '', map { $_->{value} } @$packets);
    }

    my $sock = connect_server($name, $timeout);
    return '' unless $sock;

    $sock->blocking(0);

    my $middle_delay = parse_time(scalar $block->raw_request_middle_delay);
    my $next = 0;
    my ($buf, $off);
    my $writing = 1;
    my $resp = '';
    my $deadline = time + $timeout;

    while (1) {
        if ($writing && !defined $buf) {
            if ($next < @$packets) {
                my $packet = $packets->[$next++];

                if ($next > 1) {
                    my $delay = $packet->{delay_before} // $middle_delay;
                    sleep $delay if $delay;
                }

                ($buf, $off) = ($packet->{value}, 0);
                $deadline = time + $timeout;

            } else {
                $writing = 0;

                if (defined(my $how = $block->shutdown)) {
                    shutdown $sock, $how =~ /^\d$/ ? $how : 1;
                }
            }
        }

        my $left = $deadline - time;
        my $rsel = IO::Select->new($sock);
        my $wsel = $writing ? IO::Select->new($sock) : undef;

        my ($readable, $writable) =
            $left > 0 ? IO::Select->select($rsel, $wsel, undef, $left) : ();

        if (!$readable && !$writable) {
            next if $!{EINTR} && time < $deadline;

            if (!defined $block->abort) {
                Test::More::fail("ERROR: client socket timed out - $name");
            }

            last;
        }

        if ($writable && @$writable) {
            my $n = syswrite $sock, $buf, length($buf) - $off, $off;

            if (defined $n) {
                $off += $n;
                undef $buf if $off >= length $buf;
                $deadline = time + $timeout;

            } elsif (!$!{EAGAIN} && !$!{EINTR}) {
                # the server closed early (e.g. 413): read what it said
                $writing = 0;
            }
        }

        if ($readable && @$readable) {
            my $n = sysread $sock, my $data, 65536;

            if (!defined $n) {
                next if $!{EAGAIN} || $!{EINTR};
                last;
            }

            last if $n == 0;

            $resp .= $data;
            $deadline = time + $timeout;
        }
    }

    close $sock;

    diag("$name - response:\n$resp") if $Verbose;

    return $resp;
}

sub connect_server ($name, $timeout) {
    my $deadline = time + $SlowFactor;

    while (1) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                         PeerPort => $ServerPort,
                                         Proto    => 'tcp',
                                         Timeout  => $timeout);
        return $sock if $sock;

        my $err = $!;

        if (time > $deadline) {
            Test::More::fail("$name - cannot connect to "
                             . "$ServerAddr:$ServerPort: $err");
            return undef;
        }

        sleep $Sleep;
    }
}

# Parses one response from the front of $$raw (leaving what follows, for
# pipelined requests); returns { code, raw_headers, headers, body }, or
# undef when nothing was received.
sub parse_response ($block, $raw, $head_req, $last) {
    my $name = $block->name;

    return undef if !defined $$raw || $$raw eq '';

    my $res = { code => '', raw_headers => '', headers => {}, body => '' };

    my $hdr_end = index $$raw, "\r\n\r\n";
    my $head = $hdr_end < 0 ? $$raw : substr $$raw, 0, $hdr_end + 2;
    my $rest = $hdr_end < 0 ? '' : substr $$raw, $hdr_end + 4;

    $res->{raw_headers} = $hdr_end < 0 ? '' : $head;

    my ($status, @lines) = split /\r\n/, $head;

    if ($status !~ m{^HTTP/\d\.\d\s+(\d{3})\b}) {
        # not HTTP: hand the bytes over as the body
        $res->{body} = $$raw;
        $$raw = '';
        return $res;
    }

    $res->{code} = $1;

    for my $line (@lines) {
        my ($key, $val) = $line =~ /^([^:]+?)\s*:\s*(.*?)\s*$/ or next;
        push @{ $res->{headers}{lc $key} }, $val;
    }

    my $te = header($res, 'Transfer-Encoding');
    my $len = header($res, 'Content-Length');
    my $code = $res->{code};
    my $left = '';

    if ($head_req || $code =~ /^1|^204$|^304$/) {
        $left = $rest;

    } elsif ($te =~ /\bchunked\b/i) {
        my ($body, $err);
        ($body, $left, $err) = decode_chunked($rest);
        $res->{body} = $body;

        Test::More::fail("$name - $err") if $err;

    } elsif ($len =~ /^\d+$/) {
        if (length $rest < $len) {
            diag("WARNING: $name - response body truncated: $len expected, "
                 . "got " . length $rest);
        }

        $res->{body} = substr $rest, 0, $len;
        $left = length $rest > $len ? substr $rest, $len : '';

    } else {
        $res->{body} = $rest;
    }

    if ($last && $left ne '') {
        diag("WARNING: $name - unexpected extra bytes after the response: "
             . show_bytes($left));
    }

    $$raw = $left;

    return $res;
}

# Returns (decoded body, bytes after the last chunk, error or undef).
sub decode_chunked ($data) {
    my $body = '';

    while (1) {
        if ($data !~ /\G([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
            my $pos = pos($data) // 0;
            return ($body, '', "no last chunk found in the chunked body")
                if $pos >= length $data;

            return ($body, '', "invalid chunked body: "
                               . show_bytes(substr $data, $pos, 40));
        }

        my $size = hex $1;
        my $pos = pos $data;

        if ($size == 0) {
            # optional trailer fields, then the final CRLF
            if ($data =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc) {
                return ($body, substr($data, pos $data), undef);
            }

            return ($body, '', "incomplete last chunk in the chunked body");
        }

        if (length($data) - $pos < $size + 2) {
            $body .= substr $data, $pos;
            return ($body, '', "no last chunk found in the chunked body "
                               . "(truncated chunk data)");
        }

        $body .= substr $data, $pos, $size;

        if (substr($data, $pos + $size, 2) ne "\r\n") {
            return ($body, '', "invalid chunked body: no CRLF after "
                               . "the chunk data");
        }

        pos($data) = $pos + $size + 2;
    }
}

# a header's value, repeats joined with ", "; '' when missing
sub header ($res, $key) {
    return join ', ', @{ $res->{headers}{lc $key} || [] };
}


# response checks: one TAP assertion per check, named as Test::Nginx does

# the expectation for response $idx: an ARRAY when the block has several
sub indexed_value ($block, $section, $idx, $need_array) {
    my $value = $block->$section;

    if ($need_array) {
        if (ref $value ne 'ARRAY') {
            bail_out($block->name . " - several requests are sent, so "
                     . "--- $section must be an ARRAY (use \"eval\")");
        }

        return $value->[$idx];
    }

    return ref $value eq 'ARRAY' ? $value->[0] : $value;
}

sub check_error_code ($block, $res, $idx, $need_array) {
    my $name = $block->name;
    my $code = $res ? $res->{code} : '';

    if (defined $block->error_code_like) {
        my $pat = indexed_value($block, 'error_code_like', $idx, $need_array);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");

    } elsif (defined $block->error_code) {
        my $want = indexed_value($block, 'error_code', $idx, $need_array);
        Test::More::is($code, $want, "$name - status code ok");

    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers ($block, $res, $idx, $need_array) {
    my $name = $block->name;
    my $raw = $res ? $res->{raw_headers} : '';

    if (defined $block->raw_response_headers_like) {
        my $pat = indexed_value($block, 'raw_response_headers_like', $idx,
                                $need_array);
        Test::More::like($raw, qr/$pat/s, "$name - raw resp headers like");
    }

    if (defined $block->raw_response_headers_unlike) {
        my $pat = indexed_value($block, 'raw_response_headers_unlike', $idx,
                                $need_array);
        Test::More::unlike($raw, qr/$pat/s,
                           "$name - raw resp headers unlike");
    }
}

# "Name: value" must be exact (a missing header reads as ''), "!Name" must
# be absent; response_headers_like is used only without response_headers,
# as in Test::Nginx
sub check_response_headers ($block, $res, $idx, $need_array) {
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $spec = indexed_value($block, 'response_headers', $idx,
                                 $need_array);

        for my $h (parse_header_spec($spec)) {
            my ($key, $val) = @$h;

            if (!defined $val) {
                Test::More::unlike($res ? $res->{raw_headers} : '',
                                   qr/^\s*\Q$key\E\s*:/mi,
                                   "$name - header $key not present "
                                   . "in the raw headers");
                next;
            }

            Test::More::is($res ? header($res, $key) : '', $val,
                           "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $spec = indexed_value($block, 'response_headers_like', $idx,
                                 $need_array);

        for my $h (parse_header_spec($spec)) {
            my ($key, $pat) = @$h;
            $pat //= '';

            Test::More::like($res ? header($res, $key) : '', qr/^$pat$/,
                             "$name - header $key like ok");
        }
    }
}

# [[name, value or undef for "absent"]], one per distinct name, in order
sub parse_header_spec ($spec) {
    my (@list, %at);

    for my $line (split /\n/, $spec // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';

        my ($key, $val);
        if ($line =~ s/^!\s*//) {
            $key = $line;

        } else {
            ($key, $val) = split /\s*:\s*/, $line, 2;
        }

        if (exists $at{$key}) {
            $list[$at{$key}][1] = $val;

        } else {
            $at{$key} = @list;
            push @list, [$key, $val];
        }
    }

    return @list;
}

# "--- response_body_filters": names (uc lc ucfirst lcfirst length md5_hex
# sha1_hex), CODE refs, an ARRAY of them applied in turn, or an ARRAY of
# such ARRAYs, one per request
sub filter_response_body ($block, $res, $idx) {
    my $filters = $block->response_body_filters;
    return unless defined $filters && $res;

    if (!ref $filters) {
        $filters = [split ' ', $filters];

    } elsif (ref $filters eq 'ARRAY' && ref $filters->[0] eq 'ARRAY') {
        $filters = $filters->[$idx]
            or bail_out($block->name . " - --- response_body_filters has "
                        . "no entry for request $idx");

    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }

    for my $f (@$filters) {
        $res->{body} = apply_body_filter($block->name, $f, $res->{body});
    }
}

my %BodyFilters = (
    uc       => sub ($s) { uc $s },
    lc       => sub ($s) { lc $s },
    ucfirst  => sub ($s) { ucfirst $s },
    lcfirst  => sub ($s) { lcfirst $s },
    length   => sub ($s) { length $s },
    md5_hex  => sub ($s) { require Digest::MD5; Digest::MD5::md5_hex($s) },
    sha1_hex => sub ($s) { require Digest::SHA; Digest::SHA::sha1_hex($s) },
);

sub apply_body_filter ($name, $filter, $body) {
    return $filter->($body) if ref $filter eq 'CODE';

    my $code = $BodyFilters{$filter // ''}
        or bail_out("$name - unknown response_body_filters entry \""
                    . ($filter // 'undef') . "\"");

    return $code->($body);
}

# response_body wins over response_body_like, which wins over
# response_body_unlike, as in Test::Nginx
sub check_response_body ($block, $res, $rep, $idx, $need_array) {
    my $name = $block->name;
    my $body = $res ? $res->{body} : undef;

    if (defined $block->response_body) {
        my $want = indexed_value($block, 'response_body', $idx, $need_array);

        if (ref $want eq 'Regexp') {
            Test::More::like($body, $want, "$name - response_body - like "
                             . "(repeated req $rep, req $idx)");

        } else {
            is_body($body, $want, "$name - response_body - response is "
                    . "expected (repeated req $rep, req $idx)");
        }

        warn_ignored($block, 'response_body_like', 'response_body_unlike');

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pat = indexed_value($block, "response_body_$type", $idx,
                                $need_array);

        my $summary = $body // '';
        $summary =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        $summary = substr($summary, 0, 200) . '...' if length $summary > 200;

        my $desc = "$name - response_body_$type - response is expected "
                   . "($summary)";

        if ($type eq 'like') {
            Test::More::like($body, qr/$pat/s, $desc);
            warn_ignored($block, 'response_body_unlike');

        } else {
            Test::More::unlike($body, qr/$pat/s, $desc);
        }
    }
}

sub warn_ignored ($block, @sections) {
    for my $section (grep { defined $block->$_ } @sections) {
        diag("WARNING: " . $block->name . " - --- $section is ignored "
             . "next to a stronger body check (as in Test::Nginx)");
    }
}

# exact comparison with a readable report: where the strings part, and a
# line diff for multi-line bodies
sub is_body ($got, $want, $desc) {
    my $ok = $NoLongString
             ? Test::More::is($got, $want, $desc)
             : Test::LongString::is_string($got, $want, $desc);

    if (!$ok && defined $got && defined $want && "$got$want" =~ /\n./) {
        diag(Text::Diff::diff(\$want, \$got, { STYLE => 'Unified',
                                               FILENAME_A => 'expected',
                                               FILENAME_B => 'got' }));
    }

    return $ok;
}


# error log checks

# Lines logged since the previous read (stderr of the nginx launch
# included), after a short sleep for log-phase lines.
sub new_log_lines ($settle = 1) {
    sleep $Sleep * 3 * $SlowFactor if $settle;

    my @lines;
    for my $log (@WatchedLogs) {
        open my $fh, '<', $log->{path} or next;
        seek $fh, $log->{pos}, 0;
        push @lines, <$fh>;
        $log->{pos} = tell $fh;
    }

    return \@lines;
}

sub log_patterns ($value) {
    return () unless defined $value;
    return ($value) if ref $value eq 'Regexp';
    return @$value if ref $value eq 'ARRAY';

    return grep { $_ ne '' } split /\n+/, $value;
}

sub line_matches ($line, $pat) {
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

# $must_die: nginx's [emerg] is then the expected outcome, not news
sub check_error_log ($block, $rep, $must_die = 0) {
    my $name = $block->name;
    my $lines = new_log_lines();

    if (defined(my $grep = $block->grep_error_log)) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';

        my $want = $block->grep_error_log_out;
        bail_out("$name - --- grep_error_log needs --- grep_error_log_out")
            unless defined $want;
        $want = $want->[$rep] if ref $want eq 'ARRAY';

        my $got = '';
        for my $line (@$lines) {
            my $match = ref $grep ? ($line =~ $grep ? $& : undef)
                      : index($line, $grep) >= 0 ? $grep : undef;
            $got .= "$match\n" if defined $match && $match !~ /\n/;
        }

        if (ref $want eq 'Regexp') {
            Test::More::like($got, $want,
                             "$name - grep_error_log_out (req $rep)");

        } else {
            is_body($got, $want, "$name - grep_error_log_out (req $rep)");
        }

    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - --- grep_error_log_out needs --- grep_error_log");
    }

    my @expected = log_patterns(scalar $block->error_log);
    my @forbidden = log_patterns(scalar $block->no_error_log);

    for my $pat (@expected) {
        my $p = show_bytes("$pat");

        if (grep { line_matches($_, $pat) } @$lines) {
            Test::More::pass("$name - pattern \"$p\" matches a line in "
                             . "error.log (req $rep)");

        } else {
            Test::More::fail("$name - pattern \"$p\" should match a line "
                             . "in error.log (req $rep)");
        }
    }

    for my $pat (@forbidden) {
        my $p = show_bytes("$pat");
        my @hits = grep { line_matches($_, $pat) } @$lines;

        for my $line (@hits) {
            Test::More::fail("$name - pattern \"$p\" should not match any "
                             . "line in error.log but matches line \""
                             . show_bytes($line) . "\" (req $rep)");
        }

        if (!@hits) {
            Test::More::pass("$name - pattern \"$p\" does not match a line "
                             . "in error.log (req $rep)");
        }
    }

    # alerts, crashes and assertions are shown unless a check covers them
    for my $line (@$lines) {
        next unless $line =~ $LoudLineRe;
        next if $must_die && $line =~ /\[emerg\]/;
        next if grep { line_matches($line, $_) } @expected, @forbidden;

        diag("WARNING: $name - " . show_bytes($line));
    }
}


# the mock TCP server: "--- tcp_listen" and friends

sub start_tcp_server ($block) {
    my $target = $block->tcp_listen;
    return unless defined $target;

    my $name = $block->name;
    my $reply = $block->tcp_reply;
    if (!defined $reply) {
        bail_out("$name - --- tcp_listen needs --- tcp_reply");
    }

    my $want_len = $block->tcp_query_len;
    if (!defined $want_len && defined $block->tcp_query
        && !ref $block->tcp_query)
    {
        $want_len = length $block->tcp_query;
    }

    my ($listener, $path);
    my $deadline = time + 3;

    while (!$listener) {
        if ($target =~ /^\d+$/) {
            $listener = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                              LocalPort => $target,
                                              Proto     => 'tcp',
                                              Listen    => 5,
                                              ReuseAddr => 1);

        } elsif ($target =~ /\.sock$/) {
            $path = $target;
            unlink $path;
            $listener = IO::Socket::UNIX->new(Local  => $path,
                                              Type   => SOCK_STREAM,
                                              Listen => 5);

        } else {
            bail_out("$name - bad --- tcp_listen: $target "
                     . "(want a port or a *.sock path)");
        }

        last if $listener || time > $deadline;
        sleep 0.1;
    }

    bail_out("$name - cannot listen on $target: $!") unless $listener;

    my $query = File::Temp->new(TEMPLATE => 'tcp_query_XXXXXX', TMPDIR => 1);

    STDOUT->flush;
    STDERR->flush;

    my $pid = fork // bail_out("fork() failed: $!");

    if ($pid == 0) {
        eval {
            serve_tcp_once($block, $listener, $query->filename, $want_len,
                           $reply);
        };
        print STDERR "WARNING: $name - mock TCP server: $@" if $@;
        POSIX::_exit(0);
    }

    $TcpServer = { pid => $pid, listener => $listener, path => $path,
                   query => $query };
}

# in the forked child: one connection, one reply
sub serve_tcp_once ($block, $listener, $query_file, $want_len, $reply) {
    my $client = $listener->accept or die "accept() failed: $!\n";
    my $buf = '';

    while (1) {
        my $n = sysread $client, my $data, 65536;
        last unless $n;

        $buf .= $data;

        # saved as it comes, for the parent's tcp_query checks
        open my $fh, '>', $query_file or die "cannot write $query_file: $!\n";
        print $fh $buf;
        close $fh;

        last if !$want_len || length $buf >= $want_len;
    }

    if (my $delay = parse_time(scalar $block->tcp_reply_delay)) {
        sleep $delay;
    }

    $reply = $reply->($buf) if ref $reply eq 'CODE';

    for my $piece (ref $reply eq 'ARRAY' ? @$reply : ($reply)) {
        syswrite $client, $piece;
    }

    if (defined $block->tcp_no_close) {
        sleep 3600;
    }

    close $client;
}

sub check_tcp_server ($block) {
    return unless $TcpServer;

    my $name = $block->name;
    my $got = slurp($TcpServer->{query}->filename);

    if (defined(my $want = $block->tcp_query)) {
        if (ref $want eq 'Regexp') {
            Test::More::like($got, $want, "$name - tcp_query ok");

        } else {
            is_body($got, $want, "$name - tcp_query ok");
        }
    }

    if (defined(my $len = $block->tcp_query_len)) {
        Test::More::is(length $got, $len, "$name - TCP query length ok");
    }

    stop_tcp_server();
}

sub stop_tcp_server () {
    return unless $TcpServer;

    kill KILL => $TcpServer->{pid};
    waitpid $TcpServer->{pid}, 0;

    close $TcpServer->{listener};
    unlink $TcpServer->{path} if defined $TcpServer->{path};

    undef $TcpServer;
}


# helpers

sub cleanup () {
    return if $$ != $MainPid;

    stop_tcp_server();

    if ($UseValgrind || !$NoClean) {
        stop_nginx();
    }
}

sub expand_env ($name, $value) {
    if (ref $value eq 'ARRAY') {
        return [map { expand_env($name, $_) } @$value];
    }

    if (ref $value eq 'HASH') {
        return { %$value, value => expand_env($name, $value->{value}) };
    }

    return $value if ref $value || !defined $value;

    $value =~ s{\$(TEST_NGINX_[A-Z0-9_]+)}{env_value($name, $1)}ge;
    return $value;
}

sub env_value ($name, $var) {
    if (!defined $ENV{$var} && $var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
        my %used = ($ServerPort => 1,
                    map { $ENV{$_} => 1 } grep { /^TEST_NGINX_RAND_PORT_/ }
                                          keys %ENV);
        $ENV{$var} = free_port(\%used);
    }

    bail_out("$name - environment variable $var is not defined")
        unless defined $ENV{$var};

    return $ENV{$var};
}

# Test::Nginx also replaces "$ServerPort" in expected responses
sub expand_server_port ($value) {
    if (ref $value eq 'ARRAY') {
        return [map { expand_server_port($_) } @$value];
    }

    return $value if ref $value || !defined $value;

    $value =~ s/\$ServerPort\b/$ServerPort/g;
    return $value;
}

# a port nobody listens on, avoiding the kernel's ephemeral range
sub free_port ($used) {
    for (1 .. 1000) {
        my $port = 10000 + int rand 22000;
        next if $used->{$port};

        my $sock = IO::Socket::INET->new(LocalAddr => '0.0.0.0',
                                         LocalPort => $port,
                                         Proto     => 'tcp',
                                         Listen    => 1);
        next unless $sock;

        close $sock;
        $used->{$port} = 1;
        return $port;
    }

    bail_out("cannot find a free port");
}

sub port_accepts ($port) {
    my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                     PeerPort => $port,
                                     Proto    => 'tcp',
                                     Timeout  => 1);
    return 0 unless $sock;

    close $sock;
    return 1;
}

# "1.5", "50ms", "2s" -> seconds
sub parse_time ($t) {
    return undef unless defined $t;

    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^([\d.]+)ms$/;
    return $1 if $t =~ /^([\d.]+)s?$/;

    bail_out("bad time value \"$t\"");
}

sub nginx_version () {
    if (!defined $NginxVersion) {
        my $out = `$NginxBinary -v 2>&1`;
        ($NginxVersion) = $out =~ m{/(\d+\.\d+\.\d+)}
            or bail_out("cannot get the nginx version from: $out");
    }

    return $NginxVersion;
}

sub canon_version ($v) {
    return sprintf "%d%03d%03d", split /\./, $v;
}

sub default_binary () {
    for my $dir (split /:/, $ENV{PATH} // '') {
        return "$dir/nginx" if $dir ne '' && -x "$dir/nginx" && !-d _;
    }

    return '/usr/sbin/nginx';
}

sub on_off ($v) {
    return defined $v && $v =~ /^(?:on|1|yes)$/i ? 'on' : 'off';
}

sub min ($x, $y) { $x < $y ? $x : $y }
sub max ($x, $y) { $x > $y ? $x : $y }

sub show_bytes ($s) {
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub slurp ($path) {
    open my $fh, '<', $path or return '';
    local $/;
    return scalar(<$fh>) // '';
}

sub write_file ($path, $data) {
    open my $fh, '>', $path or bail_out("cannot write $path: $!");
    binmode $fh;
    print $fh $data;
    close $fh or bail_out("cannot write $path: $!");
}

END {
    local $?;

    cleanup();

    if ($Randomize && !$NoClean && $$ == $MainPid && -d $ServRoot) {
        remove_tree($ServRoot);
    }
}

1;
__END__

=encoding utf-8

=head1 NAME

Test::Nginx::Socket - data-driven nginx tests in the Test::Nginx format

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';

    no_shuffle();
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location = /t {
            return 200 "hello\n";
        }
    --- request
    GET /t
    --- response_body
    hello
    --- no_error_log
    [error]

Run with C<prove -I t/lib -r t>.

=head1 DESCRIPTION

A from-scratch runner for the C<.t> format of OpenResty's
Test::Nginx::Socket, for machines where that one is not installed.  It is a
L<Test::Base> subclass: C<__DATA__> parsing, filters (C<chomp>, C<eval>),
C<--- ONLY>, C<--- SKIP>, C<--- LAST>, C<plan>, C<blocks()> and Test::More's
functions come from there.  Each block emits as many TAP assertions as the
real Test::Nginx would, so hard-coded plans hold under both.  Test names
are those of Test::Nginx too: C<"$0 TEST n: title - status code ok">.

Blocks run in a random order unless C<no_shuffle()> or
C<TEST_NGINX_NO_SHUFFLE=1>.  Extra failing tests, outside any count, are
emitted when something is wrong beyond the block's checks: a client
timeout (without C<abort>), a chunked body without its last chunk, a
refused connection, nginx dying during the block, a valgrind report.

=head1 SECTIONS

=over

=item config, http_config, main_config, post_main_config

Placed in the generated F<conf/nginx.conf>: C<config> in the C<server {}>
block, C<http_config> in C<http {}>, C<main_config> at the top (after the
C<load_module> lines from C<TEST_NGINX_LOAD_MODULES>), C<post_main_config>
after C<http {}>.  Every block with C<config> restarts nginx on a rebuilt
server root; a block without one reuses the running nginx.

=item log_level, user_files

C<log_level> overrides the C<error_log> level.  C<user_files> holds
C<< >>> relpath [date] >> lines, each followed by the file's content,
written under F<html/> (an absolute path is used as is).

=item request, more_headers, raw_request, pipelined_requests

C<request> is C<METHOD [URI [VERSION]]> then the body.  The client adds
C<Host: localhost>, C<Connection: close> and C<Content-Length> (the body
then trimmed) unless C<more_headers> has them.  C<request eval> may give an
ARRAY: one request per connection, in order; an element may itself be an
ARRAY of pieces (strings or C<< { value => ..., delay_before => secs } >>)
sent in separate writes.  C<more_headers> may be an ARRAY, one entry per
request.  C<raw_request> is sent verbatim (an ARRAY: in pieces, see also
C<raw_request_middle_delay>).  C<pipelined_requests> (ARRAY) go on one
keep-alive connection.

=item timeout, abort, shutdown, wait, ignore_response

C<timeout> (C<1.5>, C<50ms>, C<2s>; default C<TEST_NGINX_TIMEOUT> or 3) is
the idle time allowed between two I/O events; at expiry the socket is
closed and, without C<abort>, an extra failing test "ERROR: client socket
timed out" is emitted.  C<shutdown> half-closes the client socket (C<1> by
default) once the request is written.  C<wait> sleeps before the error log
is read.  C<ignore_response> skips the status, header and body checks.

=item error_code, error_code_like, response_headers, response_headers_like,
raw_response_headers_like, raw_response_headers_unlike, response_body,
response_body_like, response_body_unlike

One assertion each; C<response_headers> and C<response_headers_like> one
per header name (C<!Name> asserts absence; a missing header reads as C<''>;
repeated headers are joined with C<", ">).  C<response_body_filters>
(C<uc lc ucfirst lcfirst length md5_hex sha1_hex>, CODE refs, an ARRAY of
them, or an ARRAY of such ARRAYs, one per request) transform the body
before the body checks.
As in Test::Nginx, C<response_headers> shadows C<response_headers_like>, and
C<response_body> shadows C<response_body_like>, which shadows
C<response_body_unlike> (a warning is printed for the shadowed section).

When a block sends several requests (C<request> ARRAY, or
C<pipelined_requests>), every one of these expectations must be an ARRAY
(through C<eval>) and element I<i> is checked against response I<i>; a
scalar expectation then bails out, as in Test::Nginx.  Missing
C<error_code> means 200 for every response.

=item error_log, no_error_log, grep_error_log, grep_error_log_out

Read only the log lines written since the previous read (for the first read
after a start: nginx's stderr too), after sleeping 3 x C<TEST_NGINX_SLEEP>.
A block without C<config> goes on from where the previous block stopped
reading (the real Test::Nginx rereads the running nginx's whole log
there).
The log is read after every response, so with several responses these
checks run once per response.  C<error_log>: one assertion per pattern
(line strings, or an ARRAY of strings and C<qr//>).  C<no_error_log>: one
pass per pattern that matches nothing, one failure per matching line.
C<grep_error_log> collects the matched text of each line, joined by
newlines, compared with C<grep_error_log_out> (either may be an ARRAY
indexed by the C<repeat_each> round).  C<[alert]>, C<[crit]>, C<[emerg]>,
"open socket ... left", "exited on signal" and "Assertion ... failed"
lines are printed as warnings unless a pattern of the block covers them; to
fail on them, add a C<no_error_log> with C<add_block_preprocessor>:

    add_block_preprocessor(sub {
        my $block = shift;
        if (!defined $block->no_error_log) {
            $block->set_value("no_error_log", "[alert]\n[crit]\n[emerg]");
        }
    });

=item tcp_listen, tcp_query, tcp_query_len, tcp_reply, tcp_reply_delay,
tcp_no_close

A forked mock server on C<tcp_listen> (a port or a F<*.sock> path) accepts
one connection, reads C<tcp_query_len> bytes (or the length of
C<tcp_query>, or one read), sleeps C<tcp_reply_delay>, sends C<tcp_reply>
(a string, an ARRAY of pieces, or a CODE ref given the query) and closes
unless C<tcp_no_close>.  C<tcp_query> and C<tcp_query_len> are one
assertion each.

=item must_die, init, skip_eval, skip_nginx

C<must_die>: nginx must fail to start (one assertion; a number is the
expected exit status; a crash fails); the error log checks then read
nginx's stderr and error log.  A block without C<config> after it bails
out: nothing is running.  C<init>: Perl code run once after nginx starts.
C<skip_eval: N: code> and C<skip_nginx: N: E<lt> 1.23.0> skip N
assertions per C<repeat_each> round.

=back

C<$TEST_NGINX_[A-Z0-9_]+> variables are replaced from the environment in
all the sections above (an undefined one bails out); the runner exports
C<TEST_NGINX_SERVER_PORT>, C<TEST_NGINX_PORT>, C<TEST_NGINX_SERVER_ROOT>
and C<TEST_NGINX_HTML_DIR>.
C<$TEST_NGINX_RAND_PORT_n> is a distinct free port per C<n> for each block,
set in C<%ENV> before the block's C<eval> sections run.  Expected
responses also get C<$ServerPort> replaced.

=head1 FUNCTIONS

C<run_tests>, C<repeat_each(N)>, C<no_shuffle>, C<log_level(L)>,
C<no_long_string>, C<no_root_location>, C<worker_connections(N)>,
C<workers(N)>, C<master_on>, C<master_off>, C<timeout(S)>,
C<add_block_preprocessor(CODE)>, C<server_port>, C<server_root>,
C<html_dir>, C<bail_out>.  C<$Test::Nginx::Socket::RepeatEach> is the
repeat count.

=head1 ENVIRONMENT

=over

=item TEST_NGINX_BINARY

nginx to run (default: C<nginx> in C<PATH>, else F</usr/sbin/nginx>).

=item TEST_NGINX_LOAD_MODULES

Space-separated F<.so> paths, one C<load_module> line each.

=item TEST_NGINX_SERVER_PORT, TEST_NGINX_PORT

Listening port (default 1984); exported so C<$TEST_NGINX_SERVER_PORT>
works in configs.

=item TEST_NGINX_RANDOMIZE

A random free port, and a server root of its own (the server root with
C<_PORT> appended, removed at the end unless C<TEST_NGINX_NO_CLEAN>): for
C<prove -j>.  Without it, test files share F<t/servroot> and port 1984 and
must run one at a time.

=item TEST_NGINX_SERVROOT

Server root (default F<t/servroot>).

=item TEST_NGINX_NO_SHUFFLE, TEST_NGINX_TIMEOUT, TEST_NGINX_SLEEP,
TEST_NGINX_LOG_LEVEL, TEST_NGINX_VERBOSE, TEST_NGINX_MASTER_PROCESS

Block order, client idle timeout (3 s), base sleep (0.015 s; the error
log is read 3 sleeps after a response), C<error_log> level (C<debug>),
printing of commands, requests and responses, C<master_process on>.

=item TEST_NGINX_NO_CLEAN

Leave nginx running and the server root in place at the end (the next run
stops an nginx it finds there).

=item TEST_NGINX_USE_VALGRIND

Run nginx in the foreground (C<daemon off>, C<master_process off>) under
C<valgrind --tool=memcheck --leak-check=full --show-possibly-lost=no>,
with F<valgrind.suppress> from the current directory when present (a
non-numeric value adds options); C<must_die> blocks too.  Waits and client
timeouts (but those of blocks with C<abort>) are 10 times longer.  nginx is
stopped with QUIT and waited for, so that the leak report is written.  The
report (F<logs/valgrind.log>) is read at the end of each block and when
nginx stops: any error record (invalid read, write or free, uninitialised
value, definite leak, ...) fails one extra test named after the blocks
that ran on that nginx.  Definite leaks whose whole stack lies in the nginx
binary and system libraries are nginx's own in single-process mode and are
not counted; suppressions are needed for a self-built nginx with debug
symbols.

=back

=cut
