# Exactly one read per classified request, counted by Redis itself (INFO
# commandstats): one EVALSHA of the script loaded at connect (EVAL or
# LRANGE only where it cannot run); none for a bad session id or a body
# with history.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;
use Test::Classify::Redis;
use Test::Classify::Suite;

redis('DEL', 'chat:s1', 'chat:s4');
redis('RPUSH', 'chat:s1', '{"role":"user","content":"u2"}',
      '{"role":"assistant","content":"a2"}');

two_json_classifiers();

redis('CONFIG', 'RESETSTAT');

no_shuffle();
run_tests();

my $stats = redis('INFO', 'commandstats');
my %calls = map { $_ => ($stats =~ /cmdstat_$_:calls=(\d+)/ ? $1 : 0) }
            qw(evalsha eval lrange);

is($calls{evalsha} + $calls{eval} + $calls{lrange}, 2,
   "exactly one read per classified request");
is($calls{evalsha}, 2, "... the script, by its digest");

__DATA__

=== TEST 1: a bad session id never reaches Redis
--- config
    location = /chat { classify a b; classify_pass /_gen; classify_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT; }
    location = /_gen { internal; return 200 "passed\n"; }
    location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r14a; }
    location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/classify/json?tag=r14b; }
--- request eval
['POST /chat
{"user_query":"q","session_id":"bad id"}',
'POST /chat
{"user_query":"q","session_id":"s1"}',
'POST /chat
{"user_query":"q","session_id":"s1"}',
'POST /chat
{"session_id":"s1","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"},{"role":"user","content":"q"}]}']
--- error_code eval
[400, 200, 200, 200]
--- response_body_like eval
["invalid session id", "passed", "passed", "passed"]
