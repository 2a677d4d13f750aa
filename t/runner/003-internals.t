# The runner's pure helpers, called directly: chunked decoding, request
# building, header specs, times, valgrind reports.  No nginx is started.

use Test::Nginx::Socket tests => 27;

my $decode = \&Test::Nginx::Socket::decode_chunked;
my $build = \&Test::Nginx::Socket::build_request;
my $headers = \&Test::Nginx::Socket::parse_header_spec;
my $time = \&Test::Nginx::Socket::parse_time;
my $valgrind = \&Test::Nginx::Socket::valgrind_errors;


# chunked bodies

is_deeply([$decode->("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")],
          ["hello world", "", undef], "chunked: two chunks");

is_deeply([$decode->("5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nnext")],
          ["hello", "next", undef],
          "chunked: extension, trailer, bytes after the last chunk");

my @r = $decode->("5\r\nhello\r\n");
is($r[0], "hello", "chunked: no last chunk: what came is kept");
like($r[2], qr/^no last chunk found/, "chunked: no last chunk: an error");

@r = $decode->("a\r\nhello");
like($r[2], qr/no last chunk found .*truncated/, "chunked: truncated data");

@r = $decode->("zz\r\n");
like($r[2], qr/^invalid chunked body: zz/, "chunked: bad size line");

@r = $decode->("5\r\nhelloXX0\r\n\r\n");
like($r[2], qr/no CRLF after the chunk data/, "chunked: no CRLF after data");


# requests

my $req = $build->("t", "GET /x", "", "close");
is_deeply($req->{packets},
          [{ value => "GET /x HTTP/1.1\r\nHost: localhost\r\n"
                      . "Connection: close\r\n\r\n" }],
          "request: defaults");

$req = $build->("t", "HEAD", "", "keep-alive");
like($req->{packets}[0]{value}, qr{^HEAD / HTTP/1\.1\r\n.*keep-alive}s,
     "request: default URI, connection type");
ok($req->{head}, "request: HEAD is known");

$req = $build->("t", ["POST /x\n ab", { value => "cd\n\n", delay_before => 1 }],
                "", "close");
is_deeply($req->{packets},
          [{ value => "POST /x HTTP/1.1\r\nHost: localhost\r\n"
                      . "Connection: close\r\nContent-Length: 4\r\n\r\nab" },
           { value => "cd", delay_before => 1 }],
          "request: pieces keep their cuts and delays, the body is trimmed");

$req = $build->("t", "POST /x HTTP/1.0\nbody\n",
                "Host: h\nContent-Length: 5\n# comment\nX-A:1", "close");
is($req->{packets}[0]{value},
   "POST /x HTTP/1.0\r\nConnection: close\r\nHost: h\r\nContent-Length: 5\r\n"
   . "X-A: 1\r\n\r\nbody\n",
   "request: more_headers replace the defaults, the body is then untouched");

$req = $build->("t", "POST /x\n3\r\nabc\r\n0\r\n\r\n",
                "Transfer-Encoding: chunked", "close");
unlike($req->{packets}[0]{value}, qr/Content-Length/,
       "request: no Content-Length for a chunked body");

$req = $build->("t", "\n# comment\n  GET /c\n", "", "close");
like($req->{packets}[0]{value}, qr{^GET /c HTTP/1\.1\r\n},
     "request: leading comments and blank lines are skipped");


# header specs and times

is_deeply([$headers->("A: 1\n! B\nC:\nA: 2\n\n")],
          [["A", "2"], ["B", undef], ["C", ""]],
          "response_headers: one entry per name, ! for absent");

is($time->("50ms"), 0.05, "time: ms");
is($time->("2s"), 2, "time: s");
is($time->("1.5"), 1.5, "time: plain seconds");


# valgrind reports

my $nginx = $Test::Nginx::Socket::NginxBinary;

my $core_leak = <<"_EOR_";
==1== 8 bytes in 1 blocks are definitely lost in loss record 1 of 9
==1==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload.so)
==1==    by 0x154CFE: ngx_alloc (in $nginx)
==1==    by 0x12E404: ??? (in $nginx)
==1==    by 0x4A2C: __libc_start_main (in /usr/lib/x86_64-linux-gnu/libc.so.6)
==1== 
_EOR_

my $module_leak = <<"_EOR_";
==1== 16 bytes in 1 blocks are definitely lost in loss record 2 of 9
==1==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload.so)
==1==    by 0x154CFE: ngx_alloc (in $nginx)
==1==    by 0x5A10: ngx_http_foo_handler (in /work/build/ngx_http_foo_module.so)
==1== 
_EOR_

my $debug_leak = <<"_EOR_";
==1== 16 bytes in 1 blocks are definitely lost in loss record 3 of 9
==1==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload.so)
==1==    by 0x5A10: ngx_http_foo_init (ngx_http_foo_module.c:120)
==1== 
_EOR_

my $summary = <<"_EOR_";
==1== LEAK SUMMARY:
==1==    definitely lost: 24 bytes in 2 blocks
==1== ERROR SUMMARY: 2 errors from 2 contexts (suppressed: 0 from 0)
_EOR_

my $invalid = <<"_EOR_";
==1== Invalid read of size 8
==1==    at 0x5A10: ngx_http_foo_handler (in /work/build/ngx_http_foo_module.so)
==1== 
==1== Conditional jump or move depends on uninitialised value(s)
==1==    at 0x154CFE: ngx_vslprintf (in $nginx)
==1== 
_EOR_

is_deeply([$valgrind->($core_leak . $summary)], [],
          "valgrind: nginx's own leaks and the summary are not errors");

is_deeply([$valgrind->($module_leak)],
          ["16 bytes in 1 blocks are definitely lost in loss record 2 of 9"],
          "valgrind: a leak through a module is an error");

is(scalar $valgrind->($debug_leak), 1,
   "valgrind: a leak in a function with source lines is an error");

is_deeply([$valgrind->($invalid)],
          ["Invalid read of size 8",
           "Conditional jump or move depends on uninitialised value(s)"],
          "valgrind: memory errors are errors, wherever they are");

is(scalar $valgrind->("{\n   <insert_a_suppression_name_here>\n"
                      . "   Memcheck:Leak\n}\n"),
   0, "valgrind: suppression text is not an error");


# the environment

is($ENV{TEST_NGINX_SERVER_PORT}, server_port(),
   "TEST_NGINX_SERVER_PORT is exported");
is($ENV{TEST_NGINX_PORT}, server_port(), "TEST_NGINX_PORT too");
is($ENV{TEST_NGINX_HTML_DIR}, html_dir(), "TEST_NGINX_HTML_DIR too");
ok(-x $nginx, "an nginx binary is found");
