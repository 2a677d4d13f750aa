# Bodies shaped to make a JSON parser slow: huge arrays before the user
# turn, tens of thousands of messages, deep nesting, long strings of
# escapes.  Each is answered right and in time, and a light request sent
# beside it on the same worker (worker_processes 1) is answered at once:
# the heavy body never holds the worker.  The classifiers still get
# exactly the query and the context window they got before.
#
# The heavy request is sent by a child process from --- init (heavy_send)
# and the block's own request is the light one; the next block waits for
# the child (heavy_wait) and reads what it saw from html/heavy-NAME.txt:
# its status, "in time" or how late it was, and the body.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

# a heavy body's answer comes within a second (more under valgrind)
our $Limit = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;
our %Heavy;

sub heavy_send {
    my ($name, $body) = @_;

    pipe(my $r, my $w) or die "pipe: $!";

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        close $r;

        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => server_port(),
                                      Timeout => 5)
            or POSIX::_exit(1);

        print $s "POST /chat HTTP/1.0\r\nHost: localhost\r\n"
                 . "Content-Length: " . length($body) . "\r\n\r\n$body";

        my $start = Time::HiRes::time();
        syswrite $w, "sent\n";
        close $w;

        my ($resp, $late) = ('', '');

        # a parser that takes minutes: do not wait for it
        local $SIG{ALRM} = sub { $late = "late: no answer in 30 s"; };
        alarm 30;
        1 while !$late && sysread($s, $resp, 65536, length $resp);
        alarm 0;

        my $took = Time::HiRes::time() - $start;
        my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
        my ($rbody) = $resp =~ m{\r\n\r\n(.*)\z}s;

        $late ||= $took < $Limit ? "in time" : sprintf("late: %.2f s", $took);

        open my $f, '>', html_dir() . "/heavy-$name.txt" or POSIX::_exit(1);
        print $f ($status // 'none') . " $late\n" . ($rbody // '');
        close $f;

        POSIX::_exit(0);
    }

    close $w;
    my $sent = <$r>;
    close $r;

    # the worker has the whole body now: the light request comes while it
    # parses (for as long as a slow parser would)
    Time::HiRes::sleep(0.1);

    $Heavy{$name} = $pid;
}

sub heavy_wait {
    my ($name) = @_;
    waitpid($Heavy{$name}, 0) if $Heavy{$name};
}

sub turn {
    my ($role, $content) = @_;
    return qq({"role":"$role","content":$content});
}

# a conversation of n user/assistant pairs, a system and a tool message
# and a content array near its end, then the newest user turn
sub conversation {
    my ($n) = @_;
    return '{"model":"m","messages":['
           . turn("system", '"be brief"') . ","
           . join("", map { turn("user", qq("q$_")) . ","
                            . turn("assistant", qq("a$_")) . "," } 1 .. $n)
           . turn("tool", '"tool output"') . ","
           . turn("assistant", '[{"type":"text","text":"p1"},'
                  . '{"type":"image_url","image_url":{"url":"u"}},'
                  . '{"type":"text","text":"p\"2\u00e9"}]') . ","
           . turn("user", '"the \"newest\" question"') . ","
           . turn("assistant", '"after the turn"')
           . ']}';
}

# what the json classifier with context k gets from conversation(n)
sub window {
    my ($n, $k) = @_;
    my @ctx = map { (qq({"role":"user","content":"q$_"}),
                     qq({"role":"assistant","content":"a$_"})) } 1 .. $n;
    push @ctx, qq({"role":"assistant","content":"p1\\np\\"2\xc3\xa9"});
    @ctx = @ctx[-$k .. -1] if @ctx > $k;
    return '{"query":"the \"newest\" question","context":['
           . join(",", @ctx) . '],"session":""}';
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier a { pass /_c/a; protocol json; context 2; reply "A blocks"; }
    classifier b { pass /_c/b; protocol json; context 6; reply "B blocks"; }
    classifier l { pass /_c/l; protocol json; reply "L blocks"; }
_EOC_
    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
    location = /chat { classify a b; classify_pass /_gen; }
    location = /light { classify l; classify_pass /_gen; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/l { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=light; }
_EOC_
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 60k numbers before the user turn (117 KiB): a light request beside it is answered at once
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d1a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d1b; }
--- init
main::heavy_send("d1", '{"messages":[' . ('0,' x 60000) . '{"role":"user","content":"x"}]}');
--- request
POST /light
{"user_query":"light"}
--- timeout eval
$main::Limit
--- response_body
passed



=== TEST 1b: ... and the heavy one got its 400 in time, naming the problem
--- init
main::heavy_wait("d1");
--- request
GET /heavy-d1.txt
--- response_body
400 in time
{"error":{"message":"a message in \"messages\" has no \"role\"","type":"invalid_request_error","code":400}}



=== TEST 2: 30k tool messages before the user turn (880 KiB): a light request beside it is answered at once
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d2a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d2b; }
--- init
main::heavy_send("d2", '{"messages":[' . ('{"role":"tool","content":"x"},' x 30000) . '{"role":"user","content":"the question"}]}');
--- request
POST /light
{"user_query":"light"}
--- timeout eval
$main::Limit
--- response_body
passed



=== TEST 2b: ... and the heavy one passed in time
--- init
main::heavy_wait("d2");
--- request
GET /heavy-d2.txt
--- response_body
200 in time
passed



=== TEST 2c: ... its classifiers got the query and no context (tool messages are not conversation)
--- request eval
["GET /mock/body?tag=d2a&wait=1", "GET /mock/body?tag=d2b&wait=1"]
--- response_body eval
['{"query":"the question","context":[],"session":""}',
 '{"query":"the question","context":[],"session":""}']



=== TEST 3: 30k user and assistant turns (1.2 MiB): a light request beside it is answered at once
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d3a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d3b; }
--- init
main::heavy_send("d3", main::conversation(15000));
--- request
POST /light
{"user_query":"light"}
--- timeout eval
$main::Limit
--- response_body
passed



=== TEST 3b: ... and the heavy one passed in time
--- init
main::heavy_wait("d3");
--- request
GET /heavy-d3.txt
--- response_body
200 in time
passed



=== TEST 3c: ... each classifier got the newest turn and its own last-k window of user and assistant messages
--- request eval
["GET /mock/body?tag=d3a&wait=1", "GET /mock/body?tag=d3b&wait=1"]
--- response_body eval
[main::window(15000, 2), main::window(15000, 6)]



=== TEST 4: the same conversation, short: the same window (what the parser before the pull reader sent, too)
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d4a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d4b; }
--- request eval
["POST /chat\n" . main::conversation(2),
 "GET /mock/body?tag=d4a&wait=1", "GET /mock/body?tag=d4b&wait=1"]
--- response_body eval
["passed\n", main::window(2, 2), main::window(2, 6)]



=== TEST 5: a 1 MiB "messages" array of numbers: a light request beside it is answered at once
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d5a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d5b; }
--- init
main::heavy_send("d5", '{"messages":[' . ('0,' x 524000) . '{"role":"user","content":"x"}]}');
--- request
POST /light
{"user_query":"light"}
--- timeout eval
$main::Limit
--- response_body
passed



=== TEST 5b: ... and the heavy one got its 400 in time
--- init
main::heavy_wait("d5");
--- request eval
["GET /heavy-d5.txt", "GET /mock/count?tag=d5a"]
--- response_body eval
[qq(400 in time\n{"error":{"message":"a message in \\"messages\\" has no \\"role\\"","type":"invalid_request_error","code":400}}\n),
 "0\n"]



=== TEST 6: a 1 MiB array of numbers beside the query: a light request beside it is answered at once
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d6a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d6b; }
--- init
main::heavy_send("d6", '{"user_query":"x","pad":[' . ('0,' x 524000) . '0]}');
--- request
POST /light
{"user_query":"light"}
--- timeout eval
$main::Limit
--- response_body
passed



=== TEST 6b: ... and the heavy one passed in time, with its query
--- init
main::heavy_wait("d6");
--- request eval
["GET /heavy-d6.txt", "GET /mock/body?tag=d6a&wait=1"]
--- response_body eval
["200 in time\npassed\n", '{"query":"x","context":[],"session":""}']



=== TEST 7: a 1 MiB query of escapes: a light request beside it is answered at once
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d7a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d7b; }
--- init
main::heavy_send("d7", '{"user_query":"' . ('\u00e9\n\"\\\\\ud83d\ude00' x 40000) . '"}');
--- request
POST /light
{"user_query":"light"}
--- timeout eval
$main::Limit
--- response_body
passed



=== TEST 7b: ... and the heavy one passed in time, its query decoded whole
--- init
main::heavy_wait("d7");
--- request eval
["GET /heavy-d7.txt", "GET /mock/body?tag=d7a&wait=1"]
--- response_body eval
["200 in time\npassed\n",
 '{"query":"' . ("\xc3\xa9\\n\\\"\\\\\xf0\x9f\x98\x80" x 40000) . '","context":[],"session":""}']



=== TEST 8: nesting up to the limit (1000 levels) is read
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d8a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d8b; }
--- request eval
["POST /chat\n" . '{"user_query":"deep","d":' . ('[' x 999) . (']' x 999) . '}',
 "GET /mock/body?tag=d8a&wait=1"]
--- response_body eval
["passed\n", '{"query":"deep","context":[],"session":""}']



=== TEST 9: one level past the limit, and 1 MiB of "[": 400 naming the problem, no classifier called
--- config
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d9a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=d9b; }
--- request eval
["POST /chat\n" . '{"user_query":"deep","d":' . ('[' x 1000) . (']' x 1000) . '}',
 "POST /chat\n" . '{"user_query":"deep","d":' . ('[' x 1048000),
 "POST /chat\n" . ('[' x 1001) . (']' x 1001),
 "GET /mock/count?tag=d9a"]
--- error_code eval
[400, 400, 400, 200]
--- response_body eval
[('{"error":{"message":"request body is nested deeper than 1000 levels","type":"invalid_request_error","code":400}}' . "\n") x 3,
 "0\n"]
