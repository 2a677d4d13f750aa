# A refused password or database is a failed connection: logged once, not
# once per request; retried with backoff until Redis accepts it (here: its
# password changed at run time); nothing read from or written to db 0.
# db= is checked by nginx -t where it can be.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;
use Test::Classify::Log;
use Time::HiRes qw(sleep);

our $connections;

redis('DEL', 'chat:s1', 'chat:s5', 'chat:s6');
redis('RPUSH', 'chat:s1', '{"role":"user","content":"u1"}');

# nginx says "secret"; Redis wants another password until TEST 7
redis('CONFIG', 'SET', 'requirepass', 'old-secret');
redis_auth('old-secret');

two_json_classifiers();

no_shuffle();
run_tests();

ok(defined $connections && $connections >= 2 && $connections <= 6,
   "refused, it tried again with backoff: " . ($connections // 'no')
   . " connections in 3 s");

is(redis('EXISTS', 'chat:s5'), 0, "a refused SELECT wrote nothing into db 0");

redis('CONFIG', 'SET', 'requirepass', '');


# the connections Redis received during 3 s, but the helper's own
sub attempts_in_3s {
    my $c0 = redis_stat('total_connections_received');
    sleep 3;
    $connections = redis_stat('total_connections_received') - $c0 - 1;
}

__DATA__

=== TEST 1: db= must be a number
--- config
    location = /chat { classify_redis 127.0.0.1:6379 db=one; }
--- must_die
--- error_log
invalid parameter "db=one" in "classify_redis"



=== TEST 2: db= is not negative
--- config
    location = /chat { classify_redis 127.0.0.1:6379 db=-1; }
--- must_die
--- error_log
invalid parameter "db=-1" in "classify_redis"



=== TEST 3: db= is a database number SELECT can take
--- config
    location = /chat { classify_redis 127.0.0.1:6379 db=2147483647; }
--- must_die
--- error_log
invalid parameter "db=2147483647" in "classify_redis"



=== TEST 4: db= at most once
--- config
    location = /chat { classify_redis 127.0.0.1:6379 db=1 db=2; }
--- must_die
--- error_log
invalid parameter "db=2" in "classify_redis"



=== TEST 5: a wrong password is logged once ...
--- config
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=secret;
        classify_redis_on_error block;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=au5a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=au5b; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
--- request
POST /chat
{"user_query":"q","session_id":"s1"}
--- error_code: 503
--- grep_error_log eval
qr/classify_redis "[^"]+": AUTH failed: WRONGPASS[^,]*, reconnecting/
--- grep_error_log_out eval
qr/^classify_redis "127\.0\.0\.1:\d+ password=\.\.\.": AUTH failed: WRONGPASS[^\n]*\n$/
--- no_error_log
secret



=== TEST 6: ... not once per request: nine more requests follow classify_redis_on_error, silently
--- request eval
[map { "POST /chat\n{\"user_query\":\"q\",\"session_id\":\"s1\"}" } 1 .. 9]
--- error_code eval
[(503) x 9]



=== TEST 6b: ... the whole log so far: one [error] or [warn] line, TEST 5's
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/\[(?:error|warn)\]/)
--- response_body_like eval
qr/\A\[error\] classify_redis "127\.0\.0\.1:\d+ password=\.\.\.": AUTH failed: WRONGPASS[^\n]*\n\z/



=== TEST 7: ... retried with backoff; once Redis takes the password, the worker is back by itself
--- init
main::attempts_in_3s();
main::redis('CONFIG', 'SET', 'requirepass', 'secret');
main::redis_auth('secret');
main::ok(main::wait_error_log(qr/classify_redis "[^"]+": connected again/, 5),
         "the worker connects again by itself");
--- request eval
['POST /chat
{"user_query":"q","session_id":"s1"}',
"GET /mock/body?tag=au5b&wait=1"]
--- response_body eval
["passed\n", '{"query":"q","context":[{"role":"user","content":"u1"}],"session":"s1"}']



=== TEST 8: db= past the server's "databases": logged once, and nothing goes to db 0
--- http_config
    classifier c { pass /_c/c; protocol json; context 0; reply "C blocks"; }
--- config
    location = /store {
        classify c; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=secret db=99;
        classify_context_store on;
        classify_reply_format text;
    }
    location = /chat {
        classify a b; classify_pass /_gen;
        classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=secret db=99;
    }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=au8a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=au8b; }
    location /_c/c { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=au8c&verdict=true; }
    location = /errlog { default_type text/plain; alias logs/error.log; }
--- init
main::redis('RPUSH', 'chat:s6', '{"role":"user","content":"in db 0"}');
--- request
POST /store
{"user_query":"q5","session_id":"s5"}
--- response_body chomp
C blocks
--- grep_error_log eval
qr/classify_redis "[^"]+": SELECT 99 failed: [^,]*/
--- grep_error_log_out eval
'classify_redis "127.0.0.1:' . $ENV{TEST_NGINX_REDIS_PORT} . ' password=... db=99": SELECT 99 failed: ERR DB index is out of range
'



=== TEST 9: ... not once per request, and db 0's list is not read
--- request eval
['POST /chat
{"user_query":"q6","session_id":"s6"}',
"GET /mock/body?tag=au8b&wait=1",
'POST /chat
{"user_query":"q6","session_id":"s6"}']
--- response_body eval
["passed\n", '{"query":"q6","context":[],"session":"s6"}', "passed\n"]



=== TEST 9b: ... the whole log so far: SELECT said once, TEST 8's
--- request
GET /errlog
--- response_body_filters eval
Test::Classify::Log::lines(qr/SELECT/)
--- response_body eval
'[error] classify_redis "127.0.0.1:' . $ENV{TEST_NGINX_REDIS_PORT} . ' password=... db=99": SELECT 99 failed: ERR DB index is out of range, reconnecting
'
