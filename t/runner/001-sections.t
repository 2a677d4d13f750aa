# The runner's own tests: every section against a real nginx (core
# directives and the echo module).  The plan is exact: each block must emit
# as many assertions as the real Test::Nginx would (counts in the titles'
# comments), so a runner that drops or adds checks fails here.

use Test::Nginx::Socket;

my $Echo = '/usr/lib/nginx/modules/ngx_http_echo_module.so';

# every nginx.conf loads the echo module; this also tests preprocessors
add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->config && !defined $block->main_config) {
        $block->set_value(main_config => "load_module $Echo;");
    }
});

plan skip_all => "no echo module at $Echo" unless -f $Echo;
plan tests => 113;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: return, exact body, status, no_error_log
# 3: status, body, 1 pattern
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- error_code: 200
--- response_body
hello
--- no_error_log
[error]



=== TEST 2: a block without config reuses the running nginx
# 2: status (default 200), body
--- request
GET /t
--- response_body
hello



=== TEST 3: more_headers, response_headers (exact, absent, missing as '')
# 6: status, 4 header names, body
--- config
    location = /h {
        add_header X-A 1;
        add_header X-A 2;
        echo "foo=$http_x_foo host=$host";
    }
--- more_headers
X-Foo: bar
# a comment line is skipped
Host: example.com
--- request
GET /h
--- response_headers
Content-Type: text/plain
X-A: 1, 2
! X-Bar
X-Missing:
--- response_body
foo=bar host=example.com



=== TEST 4: request body: trimmed, with a computed Content-Length
# 2: status, body
--- config
    location = /echo {
        echo_read_request_body;
        echo "len=$http_content_length conn=$http_connection";
        echo_request_body;
    }
--- request
# leading comment lines and blank lines are ignored

POST /echo
  hello world

--- response_body chomp
len=11 conn=close
hello world



=== TEST 5: request in pieces with a delay between them
# 2: status, body
--- request eval
[["POST /echo\nhel", { value => "lo", delay_before => 0.1 }]]
--- response_body chomp
len=5 conn=close
hello



=== TEST 6: several requests: ARRAY expectations element by element
# 6: (status + body) x 2, no_error_log after each of the 2 responses
--- config
    location = /a {
        return 200 "a\n";
    }
--- request eval
["GET /a", "GET /nothing-here"]
--- error_code eval
[200, 404]
--- response_body eval
["a\n", qr/404 Not Found/]
--- no_error_log
[alert]



=== TEST 7: pipelined requests on one connection
# 4: (status + body) x 2
--- config
    location = /a {
        return 200 "a\n";
    }
    location = /b {
        echo "b conn=$http_connection";
    }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- response_body eval
["a\n", "b conn=close\n"]



=== TEST 8: raw_request, HTTP/1.0, body delimited by the connection close
# 4: status, 2 headers, body
--- config
    location = /e {
        echo "raw";
    }
--- raw_request eval
"GET /e HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_headers
! Content-Length
! Transfer-Encoding
--- response_body
raw



=== TEST 9: SSE: chunked, flushed pieces with gaps, idle timeout per I/O
# 5: status, 3 headers, body; 3 gaps of 0.3 s exceed the 0.5 s timeout
# in total but never between two reads
--- config
    location = /sse {
        default_type text/event-stream;
        echo "data: 1";
        echo "";
        echo_flush;
        echo_sleep 0.3;
        echo "data: 2";
        echo "";
        echo_flush;
        echo_sleep 0.3;
        echo "data: 3";
        echo "";
        echo_flush;
        echo_sleep 0.3;
        echo "data: [DONE]";
    }
--- request
GET /sse
--- timeout: 0.5
--- response_headers
Content-Type: text/event-stream
Transfer-Encoding: chunked
! Content-Length
--- response_body
data: 1

data: 2

data: 3

data: [DONE]



=== TEST 10: the _like checks
# 6: status, 2 header names, raw like, raw unlike, body
--- config
    location = /like {
        add_header X-Num 12345;
        return 201 "created item 42\n";
    }
--- request
GET /like
--- error_code_like: ^20[01]$
--- response_headers_like
X-Num: \d+
Content-Type: text/.*
--- raw_response_headers_like: ^HTTP/1\.1 201 Created\r\n
--- raw_response_headers_unlike: X-Forbidden
--- response_body_like: item \d+$



=== TEST 11: response_body_unlike, response_body eval qr//
# 4: (status + body) x 2 requests
--- request eval
["GET /like", "GET /like"]
--- error_code eval
[201, 201]
--- response_body eval
[qr/^created/, "created item 42\n"]



=== TEST 12: response_body_unlike
# 2: status, body
--- request
GET /like
--- error_code: 201
--- response_body_unlike: error



=== TEST 13: error_log, grep_error_log, multi-line patterns, qr//
# 5: status, grep_error_log_out, 3 error_log patterns
--- config
    location = /a {
        return 200 "a\n";
    }
--- request
GET /nonexistent.html
--- error_code: 404
--- grep_error_log eval: qr/http uri: "[^"]+"/
--- grep_error_log_out
http uri: "/nonexistent.html"
--- error_log eval
["[error]", qr/open\(\) ".*nonexistent\.html" failed/,
 "No such file or directory"]



=== TEST 14: the error log is read from where the last check stopped
# 3: status, 2 no_error_log patterns (the 404 of TEST 13 is not seen again)
--- request
GET /a
--- no_error_log
[error]
nonexistent



=== TEST 15: log_level
# 3: status, error_log, no_error_log
--- config
    location = /a {
        return 200 "a\n";
    }
--- log_level: error
--- request
GET /missing
--- error_code: 404
--- error_log
[error]
--- no_error_log
[debug]



=== TEST 16: user_files under html/, in subdirectories, with a date
# 5: (status + body) x 2, Last-Modified
--- config
--- user_files
>>> foo.txt
foo content
>>> sub/dir/bar.txt 202001020304.05
bar
content
--- request eval
["GET /foo.txt", "GET /sub/dir/bar.txt"]
--- response_body eval
["foo content\n", "bar\ncontent\n"]
--- response_headers eval
["", "Last-Modified: Thu, 02 Jan 2020 03:04:05 GMT"]



=== TEST 17: $TEST_NGINX_ variables, random ports, http_config
# 2: status, body
--- http_config
    server {
        listen $TEST_NGINX_RAND_PORT_1;
        location / {
            return 200 "inner $server_port\n";
        }
    }
--- config
    location = /p {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    }
--- request
GET /p
--- response_body
inner $TEST_NGINX_RAND_PORT_1



=== TEST 18: $TEST_NGINX_SERVER_PORT in config and expectations
# 3: status, header, body
--- config
    location = /port {
        add_header X-Port $TEST_NGINX_SERVER_PORT;
        return 200 "port $server_port\n";
    }
--- request
GET /port
--- response_headers
X-Port: $ServerPort
--- response_body
port $TEST_NGINX_SERVER_PORT



=== TEST 19: mock TCP upstream: query, query length, reply
# 4: status, body, tcp_query, tcp_query_len
--- config
    location = /up {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- request
GET /up
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_query eval
"GET /up HTTP/1.0\r\nHost: 127.0.0.1:$ENV{TEST_NGINX_RAND_PORT_2}\r\n"
. "Connection: close\r\n\r\n"
--- tcp_query_len: 62
--- tcp_reply eval
"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nhi\n"
--- response_body
hi



=== TEST 20: mock TCP upstream: reply in pieces, after a delay, kept open
# 2: status, body
--- config
    location = /up {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    }
--- request
GET /up
--- tcp_listen: $TEST_NGINX_RAND_PORT_3
--- tcp_reply eval
["HTTP/1.0 200 OK\r\n", "Content-Length: 3\r\n\r\n", "ab\n"]
--- tcp_reply_delay: 0.2
--- tcp_no_close
--- response_body
ab



=== TEST 21: mock TCP upstream on a unix socket, reply computed from the query
# 3: status, body, tcp_query (a regex)
--- config
    location = /up {
        proxy_pass http://unix:$TEST_NGINX_SERVER_ROOT/mock.sock:/x;
    }
--- request
GET /up
--- tcp_listen: $TEST_NGINX_SERVER_ROOT/mock.sock
--- tcp_query eval: qr{^GET /x HTTP/1\.0\r\n}
--- tcp_reply eval
sub {
    my $query = shift;
    my ($line) = $query =~ /^(.*?)\r\n/;
    return "HTTP/1.0 200 OK\r\n\r\ngot: $line\n";
}
--- response_body
got: GET /x HTTP/1.0



=== TEST 22: client timeout with abort: no failure, the log is still read
# 1: no_error_log (ignore_response: no response checks)
--- config
    location = /slow {
        echo_sleep 2;
        echo "late";
    }
--- request
GET /slow
--- timeout: 200ms
--- abort
--- ignore_response
--- no_error_log
[alert]



=== TEST 23: must_die: the error log checks read nginx's stderr
# 2: died, error_log
--- config
    location = /t {
        no_such_directive on;
    }
--- must_die
--- error_log
unknown directive "no_such_directive"



=== TEST 24: must_die with the expected exit status
# 1: died with status 1
--- config
    location = /t {
        return 1000;
    }
--- must_die: 1



=== TEST 25: nginx starts again after must_die; post_main_config; wait
# 2: status, body
--- config
    location = /t {
        return 200 "back\n";
    }
--- post_main_config
worker_shutdown_timeout 1s;
--- request
GET /t
--- wait: 0.05
--- response_body
back



=== TEST 26: skip_eval true: its 2 tests are skipped, the block is not run
# 2 skipped
--- skip_eval: 2: 1 + 1 == 2
--- request
GET /t
--- response_body
not what nginx says



=== TEST 27: skip_eval false: the block runs
# 2: status, body
--- skip_eval: 2: 0
--- request
GET /t
--- response_body
back



=== TEST 28: init runs after nginx starts, before the requests
# 2: status, body
--- config
--- init
open my $fh, '>', "$ENV{TEST_NGINX_HTML_DIR}/init.txt" or die $!;
print $fh "written by init\n";
close $fh;
--- request
GET /init.txt
--- response_body
written by init



=== TEST 29: HEAD: headers only
# 3: status, header, body
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 6
--- response_body eval: ""



=== TEST 30: shutdown: the client half-closes after the request
# 2: status, body
--- config
    location = /t {
        return 200 "hello\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- shutdown: 1
--- response_body
hello



=== TEST 31: a request body sent chunked, as given
# 2: status, body
--- config
    location = /echo {
        echo_read_request_body;
        echo_request_body;
    }
--- more_headers
Transfer-Encoding: chunked
--- request eval
"POST /echo
5\r
hello\r
0\r
\r
"
--- response_body chomp
hello



=== TEST 32: more_headers per request
# 4: (status + body) x 2
--- config
    location = /h {
        echo "foo=$http_x_foo";
    }
--- more_headers eval
["X-Foo: one", "X-Foo: two"]
--- request eval
["GET /h", "GET /h"]
--- response_body eval
["foo=one\n", "foo=two\n"]



=== TEST 33: an error_log pattern per response of a request array
# 6: (status + body) x 2, error_log after each response
--- config
    location = /h {
        return 404;
    }
--- request eval
["GET /h", "GET /missing.html"]
--- error_code eval
[404, 404]
--- response_body_like eval
["404", "404"]
--- error_log
http finalize request



=== TEST 34: response_body_filters by name
# 2: status, body
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body_filters: uc
--- response_body
HELLO



=== TEST 35: response_body_filters: code refs and names in turn
# 2: status, body
--- request
GET /t
--- response_body_filters eval
[sub { $_[0] x 2 }, "length"]
--- response_body: 12



=== TEST 36: response_body_filters per request
# 4: (status + body) x 2
--- request eval
["GET /t", "GET /t"]
--- response_body_filters eval
[["uc"], ["md5_hex"]]
--- response_body eval
["HELLO\n", "b1946ac92492d2347c6235b4d2611184"]
