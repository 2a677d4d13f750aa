# bench/BenchReport.pm -- what the three benchmarks' reports share
# (bench/report, bench/cache/report, bench/speculate/report): reading what
# the runners recorded (bench/lib.sh), percentiles, number formats, the
# peers' names, the machine table, and writing the markdown.
#
#   use FindBin; use lib "$FindBin::Bin/..";  (or $FindBin::Bin)
#   use BenchReport;
#
# Percentiles are nearest rank: the smallest value with at least p of the
# sample at or below it.
package BenchReport;

use strict;
use warnings;
use Exporter 'import';
use List::Util qw(sum);
use POSIX qw(ceil);

our @EXPORT = qw(@PEERS read_kv read_runs read_log read_mock slurp
                 pct mean f fs fr ratio machine_rows w md_write);

# the peers (bench/peers/), as the runners label their runs, and by name
our @PEERS = (['lua', 'OpenResty'], ['njs', 'njs']);

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    return <$fh>;
}

# key=value lines (params.txt, memory.txt); undef when FILE is missing and
# $optional
sub read_kv {
    my ($file, $optional) = @_;
    open my $f, '<', $file or do { return undef if $optional; die "$file: $!\n" };
    return { map { chomp; /^(\w+)=(.*)$/ ? ($1, $2) : () } <$f> };
}

# runs.tsv: one hash a run, by its header; the load client's summary line
# parsed into {s}
sub read_runs {
    my ($file) = @_;
    open my $f, '<', $file or die "$file: $!\n";
    my @h = split /\t/, scalar(<$f>) =~ s/\n//r;
    my @runs;
    while (<$f>) {
        chomp;
        my %r;
        @r{@h} = split /\t/;
        $r{s} = { map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split ' ', $r{summary} // '' };
        push @runs, \%r;
    }
    return @runs;
}

# the gates' access logs (bench/lib.sh's format bench): one hash a line,
# the warm-up left out
sub read_log {
    my @lines;
    for my $file (@_) {
        for (slurp($file)) {
            my %x = map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split ' ';
            next if !$x{run} || ($x{warm} // '-') eq '1';
            push @lines, \%x;
        }
    }
    return @lines;
}

# the mock's log: [end_us, first_us, status, time_ms, tag, rid, path,
# served_ms] a request
sub read_mock {
    my ($file) = @_;
    return grep { defined $_->[7] } map { [split ' '] } slurp($file);
}

sub pct {
    my ($v, $p) = @_;
    return undef unless $v && @$v;
    my @s = sort { $a <=> $b } @$v;
    my $k = ceil($p * @s);
    $k = 1 if $k < 1;
    return $s[$k - 1];
}

sub mean { my ($v) = @_; return undef unless $v && @$v; return sum(@$v) / @$v; }

# a number with d decimals (3), signed (fs); n/a when missing
sub f { my ($v, $d) = @_; return 'n/a' unless defined $v; return sprintf("%.${\($d // 3)}f", $v); }
sub fs { my ($v, $d) = @_; return 'n/a' unless defined $v; return sprintf("%+.${\($d // 3)}f", $v); }

# a / b, undef where either is missing or not above zero (a tick count too
# small to read); fr: as 2 (or d) decimals
sub ratio {
    my ($a, $b) = @_;
    return (defined $a && defined $b && $a > 0 && $b > 0) ? $a / $b : undef;
}
sub fr { my ($v, $d) = @_; return defined $v ? sprintf("%.${\($d // 2)}f", $v) : 'n/a'; }

# the machine and the software, from params.txt (bench_params)
sub machine_rows {
    my ($P) = @_;
    my @r = ("| | |", "|---|---|",
             "| CPU | $P->{cpu}, $P->{nproc} cores (`nproc`) |",
             "| memory | $P->{mem} |",
             "| kernel | $P->{kernel} |",
             "| OS | $P->{os} |",
             "| nginx | $P->{nginx} (Debian), 2 worker processes per gate |",
             "| module | `" . ($P->{module} =~ s{^.*/build/}{build/}r) . "` |",
             "| peers | libnginx-mod-http-lua $P->{lua_module} (LuaJIT $P->{luajit}, "
             . "lua-cjson), libnginx-mod-http-js $P->{njs_module} |",
             "| libcurl | $P->{libcurl} |",
             "| load average before the run | $P->{loadavg} |");
    push @r, "| a system call (getppid) | $P->{syscall_ns} ns |" if $P->{syscall_ns};
    push @r, "| a wake-up round trip between two processes (pipe ping-pong) "
             . "| $P->{wakeup_rtt_us} µs |" if $P->{wakeup_rtt_us};
    return @r;
}

# the markdown, each argument a line, then written whole
my $md = '';
sub w { $md .= "$_\n" for @_; }

sub md_write {
    my ($file) = @_;
    open my $f, '>', $file or die "$file: $!\n";
    print $f $md;
    close $f;
    print "report: $file\n";
}

1;
