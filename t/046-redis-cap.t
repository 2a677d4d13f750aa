# classify_context_max_size: a request keeps at most that many bytes of
# context, the newest turns first, and (by the script loaded at connect)
# only those bytes cross the wire.  A server that lost the script
# (NOSCRIPT) gets it again; one that refuses scripts is read by LRANGE,
# and the cap is applied to its reply.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use Test::Classify::Log;

our ($net_before, $net_after);

# five turns of about 20 KB each, m1 the oldest; a cap of 50k holds two
our @turns = map {
    '{"role":"' . ($_ % 2 ? 'user' : 'assistant') . '","content":"m' . $_
    . ' ' . ('x' x 20000) . '"}'
} 1 .. 5;

our $newest_two = '{"query":"q","context":[' . join(',', @turns[3, 4])
                  . '],"session":"big"}';

redis('DEL', 'chat:big', 'lp:big');
redis('RPUSH', 'chat:big', @turns);
redis('LPUSH', 'lp:big', @turns);

two_json_classifiers();

no_shuffle();
run_tests();

ok($net_after - $net_before < 60000,
   "the script sent only what fits: " . ($net_after - $net_before)
   . " bytes for a 100 KB list");

redis('ACL', 'SETUSER', 'default', '+@all');


sub net_out { redis_stat('total_net_output_bytes') }

__DATA__

=== TEST 0: classify_context_max_size is more than 0
--- config
    location = /chat { classify_context_max_size 0; }
--- must_die
--- error_log
"classify_context_max_size" directive must be more than 0



=== TEST 1: the newest turns within classify_context_max_size, oldest first
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_context_max_size 50k;
    }
    location = /lp {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        classify_redis_key lp:$classify_session;
        classify_context_order lpush;
        classify_context_max_size 50k;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=capa; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=capb; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
--- init
main::wait_error_log(qr/script -> ready/, 5);
$main::net_before = main::net_out();
--- request eval
["GET /mock/clear",
'POST /chat
{"user_query":"q","session_id":"big"}',
"GET /mock/body?tag=capb&wait=1",
"GET /mock/body?tag=capa&wait=1"]
--- response_body eval
["ok\n", "passed\n", $main::newest_two, $main::newest_two]



=== TEST 2: ... only those bytes crossed the wire; the same from a newest-first list
--- init
$main::net_after = main::net_out();
--- request eval
["GET /mock/clear",
'POST /lp
{"user_query":"q","session_id":"big"}',
"GET /mock/body?tag=capb&wait=1"]
--- response_body eval
["ok\n", "passed\n", $main::newest_two]



=== TEST 3: a server that lost the script (NOSCRIPT) is sent it again, in full
--- init
main::redis('SCRIPT', 'FLUSH');
main::redis('CONFIG', 'RESETSTAT');
--- request eval
["GET /mock/clear",
'POST /chat
{"user_query":"q","session_id":"big"}',
"GET /mock/body?tag=capb&wait=1"]
--- response_body eval
["ok\n", "passed\n", $main::newest_two]
--- no_error_log eval
[qr/\[(error|warn)\]/]



=== TEST 4: scripts refused while connected (ACL): LRANGE, cut to the cap here
--- init
main::like(main::redis('INFO', 'commandstats'), qr/cmdstat_eval:calls=1,/,
           "NOSCRIPT: the script was sent once in full");
main::redis('ACL', 'SETUSER', 'default', '-@scripting');
--- request eval
["GET /mock/clear",
'POST /chat
{"user_query":"q","session_id":"big"}',
"GET /mock/body?tag=capb&wait=1"]
--- response_body eval
["ok\n", "passed\n", $main::newest_two]



=== TEST 5: ... said once
--- init
main::ok(main::wait_error_log(qr/\[warn\] .*classify_redis "[^"]+": scripts refused \(NOPERM/, 1),
         "scripts refused: said at warn");
--- request
POST /chat
{"user_query":"q","session_id":"big"}
--- response_body
passed



=== TEST 5b: ... the whole log so far: said once, in TEST 4, not again for TEST 5's request
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/scripts refused/)
--- response_body_like eval
qr/\A\[warn\] classify_redis "[^"]+": scripts refused \(NOPERM[^\n]*\n\z/



=== TEST 6: scripts refused on connect: said once, reads by LRANGE
--- init
main::redis('CLIENT', 'KILL', 'TYPE', 'normal');
main::ok(main::wait_error_log(qr/\[warn\] .*classify_redis "[^"]+": SCRIPT LOAD failed: NOPERM/, 5),
         "SCRIPT LOAD refused: said at warn");
main::wait_error_log(qr/connected again/, 5);
--- request eval
["GET /mock/clear",
'POST /chat
{"user_query":"q","session_id":"big"}',
"GET /mock/body?tag=capb&wait=1"]
--- response_body eval
["ok\n", "passed\n", $main::newest_two]



=== TEST 6b: ... the whole log so far: SCRIPT LOAD refused once, and no read by EVALSHA after it
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/SCRIPT LOAD failed|\(evalsha\)/)
--- response_body_like eval
qr/\A(?:\[debug\] [^\n]*\(evalsha\)\n)*\[warn\] classify_redis "[^"]+": SCRIPT LOAD failed: NOPERM[^\n]*\n\z/
