# The runner must fail what is wrong, and count as the real Test::Nginx.
#
# Runs each t/runner/fixtures/*.tt (not *.t, so that "prove -r t" leaves
# them alone) with perl and the Test::Nginx::Socket found in @INC, and
# checks its TAP against the "# meta:" lines at the top of the fixture:
#
#   # meta: exit N                  the exit status (failures, 255: bail out)
#   # meta: tests N                 the number of assertions
#   # meta: not ok NAME             a failing assertion; all of them are
#   # meta: not ok ~ REGEX          listed, by exact name or by pattern
#   # meta: count TEST n = N        assertions emitted by block "TEST n"
#   # meta: stdout REGEX            the output matches
#   # meta: stderr REGEX            the diagnostics match
#   # meta: env NAME=VALUE          set for the run
#   # meta: fake_valgrind           a stand-in valgrind that reports an error
#   # meta: needs PROGRAM|/PATH     skipped without it (in PATH, or a file)
#
# Names are compared without the fixture's path that prefixes them.

use strict;
use warnings;

use File::Temp ();
use Test::More;

my @fixtures = sort glob 't/runner/fixtures/*.tt';

plan skip_all => "run from the top directory" unless @fixtures;

# the runner under test: the one this test run would load (prove -I t/lib)
my ($lib) = grep { !ref && -f "$_/Test/Nginx/Socket.pm" } @INC;

plan skip_all => "Test::Nginx::Socket is not in \@INC" unless $lib;

my $tmp = File::Temp->newdir;

for my $fixture (@fixtures) {
    subtest $fixture => sub { check_fixture($fixture) };
}

done_testing();


sub check_fixture {
    my ($fixture) = @_;

    my $meta = read_meta($fixture);

    for my $need (@{ $meta->{needs} }) {
        my $have = $need =~ m{^/} ? -e $need : in_path($need);
        plan skip_all => "no $need" unless $have;
    }

    my ($status, $out, $err) = run_fixture($fixture, $meta);

    # "ok 3 - NAME", "not ok 4 - NAME", "ok 5 # skip NAME"
    my (@results, %count);
    for my $line (split /\n/, $out) {
        my ($not, $name) = $line =~ /^(not )?ok \d+\s*(?:- )?(.*)$/ or next;
        $name =~ s/\Q$fixture\E //g;

        push @results, [$not ? 0 : 1, $name];
        $count{$1}++ if $name =~ /\bTEST (\d+):/;
    }

    is($status, $meta->{exit}, "exit status")
        or diag("stdout:\n$out\nstderr:\n$err");

    if (defined $meta->{tests}) {
        is(scalar @results, $meta->{tests}, "number of assertions");
    }

    my @failed = map { $_->[1] } grep { !$_->[0] } @results;
    my @unmatched = @failed;

    for my $want (@{ $meta->{not_ok} }) {
        my $i = first_index($want, \@unmatched);
        ok(defined $i, "fails: $want->[1]")
            or diag("failures:\n" . join "\n", @failed);
        splice @unmatched, $i, 1 if defined $i;
    }

    is_deeply(\@unmatched, [], "no other failure");

    for my $block (sort keys %{ $meta->{count} }) {
        is($count{$block} // 0, $meta->{count}{$block},
           "assertions of TEST $block");
    }

    for my $re (@{ $meta->{stdout} }) {
        like($out, qr/$re/, "stdout matches $re");
    }

    for my $re (@{ $meta->{stderr} }) {
        like($err, qr/$re/, "stderr matches $re");
    }
}

sub read_meta {
    my ($fixture) = @_;

    my %meta = (not_ok => [], count => {}, stdout => [], stderr => [],
                env => {}, needs => []);

    open my $fh, '<', $fixture or die "$fixture: $!\n";

    while (my $line = <$fh>) {
        last if $line =~ /^__DATA__/;

        my ($key, $arg) = $line =~ /^# meta: (\w+)\s*(.*?)\s*$/ or next;

        if ($key eq 'not' && $arg =~ /^ok ~ (.*)/) {
            push @{ $meta{not_ok} }, ['re', $1];

        } elsif ($key eq 'not' && $arg =~ /^ok (.*)/) {
            push @{ $meta{not_ok} }, ['eq', $1];

        } elsif ($key eq 'count' && $arg =~ /^TEST (\d+) = (\d+)$/) {
            $meta{count}{$1} = $2;

        } elsif ($key eq 'env' && $arg =~ /^(\w+)=(.*)$/) {
            $meta{env}{$1} = $2;

        } elsif ($key eq 'stdout' || $key eq 'stderr') {
            push @{ $meta{$key} }, $arg;

        } elsif ($key eq 'exit' || $key eq 'tests') {
            $meta{$key} = $arg;

        } elsif ($key eq 'fake_valgrind') {
            $meta{fake_valgrind} = 1;

        } elsif ($key eq 'needs') {
            push @{ $meta{needs} }, $arg;

        } else {
            die "$fixture: bad meta line: $line";
        }
    }

    die "$fixture: no \"# meta: exit\" line\n" unless defined $meta{exit};

    return \%meta;
}

# Runs the fixture in a clean environment: a random port and server root
# of its own (the suite may run in parallel), no valgrind unless asked.
sub run_fixture {
    my ($fixture, $meta) = @_;

    my $out = "$tmp/stdout";
    my $err = "$tmp/stderr";

    local %ENV = %ENV;
    delete @ENV{grep { /^TEST_NGINX_/ && $_ ne 'TEST_NGINX_BINARY' }
                keys %ENV};

    $ENV{TEST_NGINX_RANDOMIZE} = 1;
    @ENV{keys %{ $meta->{env} }} = values %{ $meta->{env} };

    if ($meta->{fake_valgrind}) {
        $ENV{PATH} = fake_valgrind() . ":$ENV{PATH}";
    }

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        open STDOUT, '>', $out or die "$out: $!";
        open STDERR, '>', $err or die "$err: $!";
        exec $^X, '-I', $lib, $fixture or die "exec $^X: $!";
    }

    waitpid $pid, 0;

    return ($? >> 8, slurp($out), slurp($err));
}

# a valgrind that writes one error to its --log-file, then runs nginx in
# its place (same pid, as under the real one)
sub fake_valgrind {
    my $dir = "$tmp/bin";
    my $path = "$dir/valgrind";

    return $dir if -x $path;

    mkdir $dir or die "$dir: $!";

    open my $fh, '>', $path or die "$path: $!";
    print $fh <<'_EOS_';
#!/bin/sh
for arg; do
    case $arg in --log-file=*) log=${arg#--log-file=} ;; esac
done
while [ $# -gt 0 ]; do
    case $1 in -*) shift ;; *) break ;; esac
done
printf '==%s== Invalid read of size 4\n==%s==    at 0x1: f (x.c:1)\n' \
    $$ $$ >> "$log"
exec "$@"
_EOS_
    close $fh;
    chmod 0755, $path or die "$path: $!";

    return $dir;
}

sub first_index {
    my ($want, $list) = @_;
    my ($how, $what) = @$want;

    for my $i (0 .. $#$list) {
        return $i if $how eq 'eq' ? $list->[$i] eq $what
                                  : $list->[$i] =~ /$what/;
    }

    return undef;
}

sub in_path {
    my ($prog) = @_;
    return grep { -x "$_/$prog" } split /:/, $ENV{PATH};
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar <$fh>;
}
