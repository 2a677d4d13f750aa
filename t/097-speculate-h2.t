# classify_speculate for HTTP/2 clients (h2c with prior knowledge, curl):
# the held generation is released on the client's stream, a block closes
# it, a client that resets goes with every upstream.  Each block's --- init
# runs curl (Debian's, built with nghttp2; make test installs it) against
# the block's HTTP/2 port and leaves what curl saw (status line, headers,
# body) in html/, which the requests then read.

use Test::Nginx::Socket 'no_plan';
use Test::Classify::Mock;

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config', <<'_EOC_' . ($block->http_config // ''));
    classifier a { pass /_c/a; prompt "a?"; reply "A blocks."; }
    classifier b { pass /_c/b; prompt "b?"; reply "B blocks."; }
_EOC_

    if (defined $block->config) {
        $block->set_value('config', <<'_EOC_' . $block->config);
    location /mock/ { proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/_mock/; }
_EOC_
    }
});

# one HTTP/2 request with curl to the block's "listen ... http2" port
# (read back from the nginx.conf written for the block, so that this works
# under either runner); what it saw goes to html/NAME.{w,h,b}:
# "<http version> <status>", the response headers, the body
sub main::h2 {
    my ($name, $path, %opt) = @_;
    my $root = $ENV{TEST_NGINX_SERVER_ROOT};
    my $o = "$root/html/$name";
    my $body = '{"messages":[{"role":"user","content":"x"}],"stream":true}';

    open my $conf, '<', "$root/conf/nginx.conf" or die "nginx.conf: $!";
    my ($port) = do { local $/; <$conf> } =~ /listen 127\.0\.0\.1:(\d+) http2;/
        or die "no http2 listener in nginx.conf";
    close $conf;

    open my $curl, '-|', 'curl', '-s', '--http2-prior-knowledge',
         '-m', $opt{max} // 30, '-D', "$o.h", '-o', "$o.b",
         '-w', '%{http_version} %{response_code}',
         '-H', 'Content-Type: application/json', '--data-binary', $body,
         "http://127.0.0.1:$port$path"
        or die "cannot run curl: $!";
    my $w = do { local $/; <$curl> };
    close $curl;

    open my $fh, '>', "$o.w" or die "$o.w: $!";
    print {$fh} $w;
    close $fh;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a pass: the generation held while the classifiers ran (its first token at 0.6 s, not 1 s), streamed on the client's stream
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 http2;
        location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
        location @gen {
            rewrite ^ /v1/generate?tag=h1g&delay=0.6&chunks=3&gap=0.1? break;
            proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
            proxy_buffering off;
            add_header X-Verdict $classify_verdict;
            add_header X-Elapsed $request_time;
        }
        location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h1a&verdict=no&delay=0.4; }
        location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h1b&verdict=no; }
    }
--- config
--- init
main::h2('h1', '/chat');
--- request eval
["GET /h1.w", "GET /h1.h", "GET /h1.b"]
--- response_body_like eval
['^2 200$',
 '(?i)^HTTP/2 200 ?\r\n(?s:.*)content-type: text/event-stream\r\n(?s:.*)x-verdict: pass\r\nx-elapsed: 0\.(59\d|[6-8]\d\d|9[0-4]\d)\r\n',
 '^data: .*"content":"chunk1 ".*"content":"chunk3 ".*data: \[DONE\]\n\n$']
--- no_error_log
[error]
[alert]



=== TEST 2: a block: the reply on the stream, the generation closed at the decision
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 http2;
        location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
        location @gen {
            rewrite ^ /v1/generate?tag=h2g&chunks=50&gap=0.1? break;
            proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
            proxy_buffering off;
        }
        location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h2a&verdict=yes&delay=0.2; }
        location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h2b&verdict=no; }
    }
--- config
--- init
main::h2('h2', '/chat');
--- request eval
["GET /h2.w", "GET /h2.h", "GET /h2.b", "GET /mock/log?tag=h2g&wait=2"]
--- response_body_like eval
['^2 200$',
 '(?i)^HTTP/2 200 ?\r\n(?s:.*)x-classify-verdict: a\r\n',
 '^(?!.*chunk\d)data: .*"content":"A blocks\.".*data: \[DONE\]\n\n$',
 '^499 0\.[1-4]\d* /v1/generate\?tag=h2g']
--- no_error_log
[error]
[alert]



=== TEST 3: a generation bigger than the buffer arrives whole over HTTP/2 flow control
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 http2;
        location = /chat { classify a b; classify_pass @gen; classify_speculate on; classify_speculate_buffer 8k; }
        location @gen {
            rewrite ^ /v1/generate?tag=h3g&chunks=3000? break;
            proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
            proxy_buffering off;
        }
        location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h3a&verdict=no&delay=0.3; }
        location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h3b&verdict=no; }
    }
--- config
--- init
main::h2('h3', '/chat');
--- request eval
["GET /h3.w", "GET /h3.b"]
--- response_body_filters eval
[[], [sub { my @n = $_[0] =~ /"content":"chunk(\d+) "/g;
            (CORE::join(',', @n) eq CORE::join(',', 1 .. 3000) ? "3000 chunks in order" : scalar(@n) . " chunks")
            . ($_[0] =~ /data: \[DONE\]\n\n\z/ ? ", done" : ", no end") }]]
--- response_body eval
["2 200", "3000 chunks in order, done"]
--- no_error_log
[error]
[alert]



=== TEST 4: an HTTP/2 client gone during the decision: both classifiers and the generation are closed
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 http2;
        location = /chat { classify a b; classify_pass @gen; classify_speculate on; }
        location @gen {
            rewrite ^ /v1/generate?tag=h4g&delay=3? break;
            proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
            proxy_buffering off;
        }
        location /_c/a { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h4a&delay=3; }
        location /_c/b { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/chat/completions?tag=h4b&delay=3; }
    }
--- config
--- init
main::h2('h4', '/chat', max => 0.5);
--- request eval
["GET /mock/log?tag=h4a&wait=2", "GET /mock/log?tag=h4b&wait=2", "GET /mock/log?tag=h4g&wait=2"]
--- response_body_like eval
['^499 [01]\.\d+ ', '^499 [01]\.\d+ ', '^499 [01]\.\d+ /v1/generate']
--- no_error_log
[error]
[alert]
