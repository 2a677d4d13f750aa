# Real failovers under load, followed by two nginx instances (two workers
# each) that share one Sentinel-managed Redis: a master, a replica and three
# Sentinels on loopback ports (Test::Classify::Redis).
#
#   - the two nodes read each other's stored turns, through one plain
#     classify_redis and through classify_redis_sentinel;
#   - SIGKILL of the master: every request is answered, the stores reach
#     the promoted replica within seconds (the figure is printed), the ones
#     Redis acknowledged but had not replicated are counted (the
#     asynchronous replication's window, printed), the context is read
#     from the new master, the outage is logged once per worker;
#   - the old master restarted as a replica;
#   - SIGSTOP of the master (a hung one): the same;
#   - SENTINEL FAILOVER while the master is up (it stays a writable master
#     for seconds): +switch-master moves both nodes at once;
#   - reload and quit leave no Sentinel or Redis socket open.
# Runs nginx with master processes (Test::Classify::Nginx), not under the
# data-driven runner.

use strict;
use warnings;
use Test::More;
use Test::Classify::Mock qw(mock_records);
use Test::Classify::Redis;
use Test::Classify::Nginx;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

my $n1 = redis_node_start('n1');

# not the turns of an earlier run in this tree (its dump.rdb)
is(redis_at($n1, 'DBSIZE'), 0, 'the master starts empty');

my $n2 = redis_node_start('n2', replicaof => $n1);
my @sentinels = sentinels_start('mm', $n1, 3);

ok(sentinels_ready('mm', 1, 30),
   'three Sentinels that know each other and the replica');

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0) or die $!;
    return $s->sockport;
}

my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $plain = redis_port();
my $set = join ' ', map { "127.0.0.1:$_" } @sentinels;

sub conf {
    my ($port) = @_;
    return <<"_EOC_";
    classify_metrics_zone m 1m;
    classify_redis_sentinel mm $set;
    classifier a { pass /_c/a; protocol json; context 4; reply "A"; }
    classifier c { pass /_c/c; protocol json; context 0; reply "C"; }
    server {
        listen 127.0.0.1:$port;
        location = /chat { classify a; classify_pass /_gen; }
        location = /store {
            classify c; classify_pass /_gen;
            classify_context_store on;
            classify_reply_format text;
        }
        location = /chat-plain {
            classify a; classify_pass /_gen;
            classify_redis 127.0.0.1:$plain;
        }
        location = /store-plain {
            classify c; classify_pass /_gen;
            classify_redis 127.0.0.1:$plain;
            classify_context_store on;
            classify_reply_format text;
        }
        location = /status { classify_status; }
        location = /_gen { internal; return 200 "passed\\n"; }
        location /_c/a {
            internal;
            proxy_pass http://127.0.0.1:$mock/classify/json?tag=ha;
        }
        location /_c/c { internal; return 200 '{"verdict":true}'; }
    }
_EOC_
}

my @ports = (free_port(), free_port());
my @nodes = map { Test::Classify::Nginx->start(port => $_, workers => 2,
                                               conf => conf($_)) } @ports;

sub post {
    my ($node, $uri, $session) = @_;
    my $body = qq({"user_query":"q $session","session_id":"$session"});
    my $res = $node->http("POST $uri HTTP/1.0\r\n"
                          . "Content-Length: " . length($body)
                          . "\r\n\r\n$body");
    my ($status) = $res =~ m{^HTTP/1\.\d (\d+)};
    $res =~ s/^.*?\r\n\r\n//s;
    return ($status // 0, $res);
}

# the context classifier a got last for the query of $session
sub context_seen {
    my ($session) = @_;
    for my $r (reverse @{ mock_records('ha', body => 1) }) {
        next unless $r->{body} =~ /^\{"query":"q \Q$session\E",/;
        return $r->{body} =~ /"context":(\[.*?\]),"session"/ ? $1 : $r->{body};
    }
    return 'none';
}

sub status {
    my ($node) = @_;
    return $node->body("GET /status HTTP/1.0\r\n\r\n");
}

sub wait_for {
    my ($secs, $cond) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return time - $t0 if $cond->();
        sleep 0.02;
    }
    return;
}

sub master_port { sentinel_master('mm') }

# how many workers of a node said they moved from $from to $to
sub moves {
    my ($node, $to, $from) = @_;
    my @m = $node->error_log =~ /classify_redis_sentinel "mm": the master is now 127\.0\.0\.1:$to, was 127\.0\.0\.1:$from\n/g;
    return scalar @m;
}

# until both workers of both nodes moved once more than in @$base
sub all_moved {
    my ($to, $from, $base, $secs) = @_;
    return wait_for($secs, sub {
        !grep { moves($nodes[$_], $to, $from) < $base->[$_] + 2 } 0, 1 });
}

# ---------------------------------------------------------------- nodes

ok(wait_for(5, sub { status($nodes[0]) =~ /address="127\.0\.0\.1:$n1"/
                     && status($nodes[1]) =~ /address="127\.0\.0\.1:$n1"/ }),
   'both nodes found the master');

redis('DEL', 'chat:plain');
is((post($nodes[0], '/store-plain', 'plain'))[1], 'C',
   'node 1 answers and stores a turn in the plain Redis');
ok(wait_for(3, sub { redis('LLEN', 'chat:plain') == 2 }), '... stored');
post($nodes[1], '/chat-plain', 'plain');
is(context_seen('plain'),
   '[{"role":"user","content":"q plain"},{"role":"assistant","content":"C"}]',
   'node 2 reads the turn node 1 stored');

is((post($nodes[1], '/store', 'shared'))[1], 'C',
   'node 2 stores a turn through the Sentinels');
ok(wait_for(3, sub { redis_at($n1, 'LLEN', 'chat:shared') == 2 }),
   '... in the master');
post($nodes[0], '/chat', 'shared');
is(context_seen('shared'),
   '[{"role":"user","content":"q shared"},{"role":"assistant","content":"C"}]',
   'node 1 reads it');

like(status($nodes[0]),
     qr/\nclassify_redis_failovers_total\{master="mm"\} 0\n/,
     'no failover yet');

# ---------------------------------------------------------------- load

# Requests one after another, alternately to both nodes and between a
# store (/store, session <prefix><i>) and a context read (/chat); $fault
# runs once, after $before s; the load goes on until the Sentinels name
# another master and $after s more.  The stores, as [session, answered
# at], the count of wrong answers, and the times of the fault, of the
# switch, and of the first store made after the fault seen in the new
# master.
sub load {
    my (%o) = @_;
    my ($i, $bad, @stores) = (0, 0);
    my ($t_fault, $t_switch, $t_reached, $first, $new);
    my $old = master_port();
    my $t0 = time;

    while (1) {
        my $now = time;

        if (!$t_fault && $now - $t0 >= $o{before}) {
            $t_fault = $o{fault}->();
        }

        if ($t_fault && !$t_switch) {
            $new = master_port();
            $t_switch = time if $new && $new != $old;
        }

        if ($t_switch && $first && !$t_reached
            && redis_at($new, 'EXISTS', "chat:$first"))
        {
            $t_reached = time;
        }

        last if $t_reached && time - $t_switch >= $o{after};
        last if time - $t0 > 40;

        my $node = $nodes[$i % 2];
        my $session = "$o{prefix}$i";

        my ($st, $body) = post($node, '/store', $session);
        if ($st == 200 && $body eq 'C') {
            push @stores, [$session, time];
            $first //= $session if $t_fault;
        } else {
            $bad++;
            diag("store $session: $st $body") if $bad < 5;
        }

        ($st, $body) = post($node, '/chat', "$o{prefix}r$i");
        if ($st != 200 || $body ne "passed\n") {
            $bad++;
            diag("read $o{prefix}r$i: $st $body") if $bad < 5;
        }

        $i++;
        sleep 0.01;
    }

    return (\@stores, $bad, $t_fault, $t_switch, $t_reached);
}

# until every store made after the fault is in the master at $port: the
# time they all were (undef: not within $secs), the stores missing there,
# the stores made after the fault
sub settle {
    my ($port, $stores, $t_fault, $secs) = @_;
    my %seen;
    my @after = grep { $_->[1] > $t_fault } @$stores;

    my $t_all = wait_for($secs, sub {
        for my $s (@after) {
            next if $seen{$s->[0]};
            return 0 unless redis_at($port, 'EXISTS', "chat:$s->[0]");
            $seen{$s->[0]} = 1;
        }
        return 1;
    });

    my @missing = grep { !redis_at($port, 'EXISTS', "chat:$_->[0]") }
                  @$stores;

    return (defined $t_all ? time : undef, \@missing, \@after);
}

sub figures {
    my ($what, $t_fault, $t_switch, $t_reached, $t_all, $after) = @_;
    diag(sprintf("%s: the Sentinels switched %.1f s after it; the first "
                 . "store made after it was in the new master %.1f s after "
                 . "it, all %d of them %.1f s after it", $what,
                 $t_switch - $t_fault, ($t_reached // 0) - $t_fault,
                 scalar @$after, ($t_all // 0) - $t_fault));
}

# ---------------------------------------------------------------- lag

# how long a write acknowledged by the master takes to be in the replica:
# the window in which a master that dies loses what it acknowledged
my @lag;
for my $i (1 .. 200) {
    my $t = time;
    redis_at($n1, 'SET', "lag$i", 1);
    my $w = wait_for(1, sub { redis_at($n2, 'EXISTS', "lag$i") });
    push @lag, defined $w ? time - $t : 1;
}
@lag = sort { $a <=> $b } @lag;
cmp_ok($lag[-1], '<', 1, 'every write was in the replica within 1 s');
diag(sprintf("replication on loopback: a write acknowledged by the master "
             . "is in the replica after %.2f ms (median), %.2f ms (p99), "
             . "%.2f ms (max) of 200, each time including one round trip "
             . "to the replica", $lag[99] * 1000, $lag[197] * 1000,
             $lag[-1] * 1000));

# ---------------------------------------------------------------- SIGKILL

# 40 stores at once, both nodes, the master killed as they are answered:
# what Redis acknowledged and had not yet replicated is lost
my @burst;

sub burst_and_kill {
    my $t = time;
    for my $i (0 .. 39) {
        my $body = qq({"user_query":"q b$i","session_id":"b$i"});
        my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ports[$i % 2]")
            or next;
        print {$c} "POST /store HTTP/1.0\r\nContent-Length: "
                   . length($body) . "\r\n\r\n$body";
        push @burst, ["b$i", $c];
    }
    sleep 0.003;
    my $t_kill = time;
    redis_node_signal('n1', 'KILL');
    diag(sprintf("SIGKILL %.1f ms after the first of 40 stores was sent",
                 ($t_kill - $t) * 1000));
    return $t_kill;
}

my ($stores, $bad, $t_kill, $t_switch, $t_reached) = load(
    prefix => 'k', before => 1.5, after => 1, fault => \&burst_and_kill);

my $burst_ok = grep { local $/; my $c = $_->[1]; (<$c> // '') =~ /\r\n\r\nC\z/ }
               @burst;
is($burst_ok, 40, 'the 40 stores sent as the master was killed were all '
                  . 'answered');

is($bad, 0, 'SIGKILL of the master: every request was answered ('
            . scalar(@$stores) . ' stores and as many reads)');
is(master_port(), $n2, 'the Sentinels promoted the replica');

my ($t_all, $missing, $after) = settle($n2, $stores, $t_kill, 15);
ok(defined $t_all, 'every store made after the SIGKILL reached the '
                   . 'promoted replica');
cmp_ok(($t_reached // 99) - $t_kill, '<', 10, '... the first within 10 s');
figures('SIGKILL', $t_kill, $t_switch, $t_reached, $t_all, $after);

my @lost = @$missing;
my $window = @lost ? $t_kill - (sort { $a <=> $b } map { $_->[1] } @lost)[0]
                   : 0;
ok(!grep({ $_->[1] > $t_kill } @lost),
   'no store made after the SIGKILL is missing');
cmp_ok($window, '<', 1, 'stores lost to the replication window were '
                        . 'answered less than 1 s before the SIGKILL');
diag(sprintf("SIGKILL: %d of the %d stores answered before the kill are "
             . "not in the new master (acknowledged, not yet replicated: "
             . "the oldest was answered %.0f ms before the kill)",
             scalar @lost, scalar(@$stores) - scalar(@$after),
             $window * 1000));

my @burst_lost = grep { !redis_at($n2, 'EXISTS', "chat:$_->[0]") } @burst;
diag(sprintf("SIGKILL: %d of the 40 stores sent as the master was killed "
             . "are not in the new master (acknowledged by the old one and "
             . "not replicated); the others were replicated in time or "
             . "sent again by nginx", scalar @burst_lost));

ok(all_moved($n2, $n1, [0, 0], 5), 'both workers of both nodes moved');

redis_at($n2, 'RPUSH', 'chat:fresh', '{"role":"user","content":"on n2"}');
for my $k (0, 1) {
    post($nodes[$k], '/chat', 'fresh');
    is(context_seen('fresh'), '[{"role":"user","content":"on n2"}]',
       "node " . ($k + 1) . " reads the context from the new master");
    mock_records('ha', body => 1) && Test::Classify::Mock::mock_clear('ha');
}

for my $k (0, 1) {
    my $log = $nodes[$k]->error_log;
    my $lost = () = $log =~ /classify_redis "mm at 127\.0\.0\.1:$n1": connection lost/g;
    my $now = () = $log =~ /classify_redis_sentinel "mm": the master is now 127\.0\.0\.1:$n2, was 127\.0\.0\.1:$n1/g;
    cmp_ok($lost, '<=', 2, "node " . ($k + 1) . ": the outage logged once "
                           . "per worker ($lost)");
    is($now, 2, "node " . ($k + 1) . ": both workers followed the failover");
    like(status($nodes[$k]),
         qr/\nclassify_redis_stores_lost_total 0\n.*\nclassify_redis_failovers_total\{master="mm"\} 1\n.*\nclassify_redis_master\{master="mm",address="127\.0\.0\.1:$n2"\} 1\n/s,
         "node " . ($k + 1) . ": one failover counted for both workers, "
         . "the new master, no store lost");
}

# ---------------------------------------------------------------- back

redis_node_start('n1', replicaof => $n2);
ok(sentinels_ready('mm', 1, 20), 'the old master is back, as a replica');
is(master_port(), $n2, '... and the master stays');

# ---------------------------------------------------------------- SIGSTOP

($stores, $bad, my $t_stop, $t_switch, $t_reached) = load(
    prefix => 'p', before => 1.5, after => 1,
    fault => sub { my $t = time; redis_node_signal('n2', 'STOP'); $t });

is($bad, 0, 'SIGSTOP of the master: every request was answered ('
            . scalar(@$stores) . ' stores and as many reads)');
is(master_port(), $n1, 'the Sentinels promoted the replica');

($t_all, $missing, $after) = settle($n1, $stores, $t_stop, 15);
ok(defined $t_all, 'every store made after the SIGSTOP reached the '
                   . 'promoted replica');
cmp_ok(($t_reached // 99) - $t_stop, '<', 10, '... the first within 10 s');
ok(!grep({ $_->[1] > $t_stop } @$missing),
   'no store made after the SIGSTOP is missing');
figures('SIGSTOP', $t_stop, $t_switch, $t_reached, $t_all, $after);
diag(sprintf("SIGSTOP: %d stores answered before the stop are not in the "
             . "new master", scalar @$missing));

redis_node_signal('n2', 'CONT');
ok(wait_for(20, sub { (eval { redis_at($n2, 'ROLE')->[0] } // '') eq 'slave' }),
   'the stopped master, resumed, is made a replica by the Sentinels');
ok(all_moved($n1, $n2, [0, 0], 5), 'both workers of both nodes moved');
like(status($_), qr/\nclassify_redis_failovers_total\{master="mm"\} 2\n/,
     'two failovers counted') for @nodes;
ok(sentinels_ready('mm', 1, 20), 'the set is whole again');

# ---------------------------------------------------------------- switch

# the old master stays a writable master for seconds after the switch:
# only +switch-master moves the nodes in time
my @base = map { moves($_, $n2, $n1) } @nodes;
my $t_failover = time;
redis_at($sentinels[0], 'SENTINEL', 'FAILOVER', 'mm');
ok(wait_for(10, sub { (master_port() // 0) == $n2 }),
   'SENTINEL FAILOVER: the Sentinels switched to the replica');
my $t_sw = time;
my $old_role = eval { redis_at($n1, 'ROLE')->[0] } // 'gone';

ok(all_moved($n2, $n1, \@base, 2),
   'both workers of both nodes moved within 2 s of the switch');
is((post($nodes[0], '/store', 'after-switch'))[1], 'C', 'a store');
ok(wait_for(2, sub { redis_at($n2, 'EXISTS', 'chat:after-switch') }),
   '... goes to the new master');
is($old_role, 'master', 'while the old one was still a master')
    or diag("the old master's role at the switch: $old_role");
diag(sprintf("SENTINEL FAILOVER: switched %.1f s after it was asked",
             $t_sw - $t_failover));

# ---------------------------------------------------------------- exit

$nodes[0]->reload;
is((post($nodes[0], '/store', 'reloaded'))[1], 'C', 'a store after a reload');
$_->quit for @nodes;

for my $k (0, 1) {
    my $log = $nodes[$k]->error_log;
    unlike($log, qr/open socket #\d+ left/,
           "node " . ($k + 1) . ": no Sentinel or Redis socket left open");
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal/,
           "node " . ($k + 1) . ": no alert, no crash");
}

done_testing();
