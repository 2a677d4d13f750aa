#!/bin/bash
# selftest.sh -- check the mock LLM backends against their contract (the top
# of t/mock/mock.lua) with curl.  Exits non-zero when a check fails.
#
#   t/mock/selftest.sh [PORT]          (default port 19990)
#
# Starts its own mock with t/mock/run-mock on PORT (prefix in a temp dir) and
# stops it (by pid) at exit; with SELFTEST_EXTERNAL=1 it tests a mock that is
# already running on PORT instead.  Then checks Test::Classify::Mock's start/
# stop cycle on PORT+1.  Needs bash, curl, perl, sha1sum.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
PORT=${1:-19990}
BASE="http://127.0.0.1:$PORT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mock-selftest.XXXXXX")
MOCK_PID=
PASS=0
FAIL=0

cleanup() {
    if [ -n "$MOCK_PID" ] && kill -0 "$MOCK_PID" 2>/dev/null; then
        kill -QUIT "$MOCK_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$MOCK_PID" 2>/dev/null || break; sleep 0.02; done
        kill -KILL "$MOCK_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

ok()   { PASS=$((PASS + 1)); echo "ok - $1"; }
nok()  { FAIL=$((FAIL + 1)); echo "NOT OK - $1"; [ $# -gt 1 ] && printf '    %s\n' "${@:2}"; }
# check NAME EXPECTED GOT
check() { if [ "$2" = "$3" ]; then ok "$1"; else nok "$1" "expected: $2" "got:      $3"; fi; }
# check_match NAME REGEX GOT
check_match() { if [[ $3 =~ $2 ]]; then ok "$1"; else nok "$1" "expected match: $2" "got: $3"; fi; }
# within NAME LOW HIGH VALUE   (floats)
within() {
    if awk -v a="$2" -v b="$3" -v v="$4" 'BEGIN { exit !(v >= a && v <= b) }'; then
        ok "$1 ($4 in [$2, $3])"
    else
        nok "$1" "expected a value in [$2, $3], got $4"
    fi
}

post()  { curl -s -X POST -H 'Content-Type: application/json' "$@"; }
mlog()  { curl -s "$BASE/_mock/log?$1"; }
json_ok() { perl -MJSON::PP -e 'local $/; my $s = <STDIN>; eval { JSON::PP->new->decode($s); 1 } or exit 1'; }
json_get() {   # json_get PERL-EXPR  (on $j, from stdin)
    perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>); my $v = eval $ARGV[0]; die $@ if $@; print defined $v ? (ref $v eq "JSON::PP::Boolean" ? ($v ? "true" : "false") : $v) : "undef"' "$1"
}

# ------------------------------------------------------------------ start

if [ -z "${SELFTEST_EXTERNAL:-}" ]; then
    "$HERE/run-mock" "$PORT" "$TMP/prefix" >"$TMP/mock.out" 2>&1 &
    MOCK_PID=$!
fi
for _ in $(seq 100); do
    [ "$(curl -s "$BASE/_mock/ping")" = pong ] && break
    sleep 0.05
done
check "mock answers /_mock/ping" "pong" "$(curl -s "$BASE/_mock/ping")"
[ "$FAIL" -eq 0 ] || { cat "$TMP/mock.out" 2>/dev/null; exit 1; }
curl -s "$BASE/_mock/clear" >/dev/null

# ------------------------------------------------------------------ classifier

BODY='{"model":"gpt-test","temperature":0,"messages":[{"role":"user","content":"is this fiqh?"}]}'
post -D "$TMP/h" -o "$TMP/b" "$BASE/v1/chat/completions?tag=c1&verdict=Yes." -d "$BODY"
check "ok: status 200" "200" "$(head -1 "$TMP/h" | cut -d' ' -f2)"
check_match "ok: content-type json" $'Content-Type: application/json\r' "$(grep -i '^content-type' "$TMP/h")"
check "ok: verdict content (URL-decoded)" "Yes." "$(json_get '$j->{choices}[0]{message}{content}' <"$TMP/b")"
check "ok: model from the request" "gpt-test" "$(json_get '$j->{model}' <"$TMP/b")"
check "ok: object/id/role/finish" "chat.completion chatcmpl-mock assistant stop 0" \
    "$(json_get 'join " ", $j->{object}, $j->{id}, $j->{choices}[0]{message}{role}, $j->{choices}[0]{finish_reason}, $j->{choices}[0]{index}' <"$TMP/b")"
check_match "ok: created + usage" '^[0-9]{9,} [0-9]+ [0-9]+ [0-9]+$' \
    "$(json_get 'join " ", $j->{created}, @{$j->{usage}}{qw(prompt_tokens completion_tokens total_tokens)}' <"$TMP/b")"
check "X-Mock-Body-Length" "${#BODY}" "$(grep -i '^x-mock-body-length' "$TMP/h" | tr -d '\r' | cut -d' ' -f2)"
check "X-Mock-Body-Sha1" "$(printf %s "$BODY" | sha1sum | cut -c1-40)" \
    "$(grep -i '^x-mock-body-sha1' "$TMP/h" | tr -d '\r' | cut -d' ' -f2)"

check "default verdict is no, model mock" "no mock" \
    "$(post "$BASE/v1/chat/completions?tag=c1" -d '{}' | json_get '"$j->{choices}[0]{message}{content} $j->{model}"')"
check "stream:true still answers one JSON object" "chat.completion no" \
    "$(post "$BASE/v1/chat/completions?tag=c1" -d '{"stream":true}' | json_get '"$j->{object} $j->{choices}[0]{message}{content}"')"
check "verdict with spaces" " TRUE" \
    "$(post "$BASE/v1/chat/completions?tag=c1&verdict=%20TRUE" -d '{}' | json_get '$j->{choices}[0]{message}{content}')"

out=$(post -w ' %{http_code}' "$BASE/v1/chat/completions?tag=c1&mode=garbage" -d '{}')
check "garbage: status 200" "200" "${out##* }"
if printf %s "${out% *}" | json_ok; then nok "garbage: body is not JSON" "$out"; else ok "garbage: body is not JSON"; fi
check "empty" '{"choices":[]} 200' "$(post -w ' %{http_code}' "$BASE/v1/chat/completions?tag=c1&mode=empty" -d '{}')"
check "noword: content ???" "???" \
    "$(post "$BASE/v1/chat/completions?tag=c1&mode=noword" -d '{}' | json_get '$j->{choices}[0]{message}{content}')"
check "noword with verdict=" "" \
    "$(post "$BASE/v1/chat/completions?tag=c1&mode=noword&verdict=" -d '{}' | json_get '$j->{choices}[0]{message}{content}')"
post -o "$TMP/big" "$BASE/v1/chat/completions?tag=c1&mode=big&verdict=yes" -d '{}'
size=$(stat -c %s "$TMP/big")
within "big: body over 128 KB" 131073 10000000 "$size"
check "big: valid JSON, content starts with the verdict" "yes padding" \
    "$(json_get 'substr($j->{choices}[0]{message}{content}, 0, 11)' <"$TMP/big")"
out=$(post -w ' %{http_code}' "$BASE/v1/chat/completions?tag=c1&status=500" -d '{}')
check "status=500" '{"error":{"message":"mock error 500","type":"mock_error","code":500}} 500' "$out"
check "status=503" "503" "$(post -o /dev/null -w '%{http_code}' "$BASE/v1/chat/completions?tag=c1&status=503" -d '{}')"
check "unknown mode: 400" "400" "$(post -o /dev/null -w '%{http_code}' "$BASE/v1/chat/completions?tag=c1&mode=nosuch" -d '{}')"

post -D "$TMP/h" -o "$TMP/b" "$BASE/v1/chat/completions?tag=c1&mode=reset&verdict=yes" -d '{}'
rc=$?
check "reset: curl sees a truncated transfer (rc 18)" 18 "$rc"
cl=$(grep -i '^content-length' "$TMP/h" | tr -d '\r' | cut -d' ' -f2)
got=$(stat -c %s "$TMP/b")
if [ -n "$cl" ] && [ "$got" -gt 0 ] && [ "$got" -lt "$cl" ]; then
    ok "reset: status line + Content-Length $cl, only $got bytes"
else
    nok "reset: partial body" "content-length '$cl', received $got"
fi
post -o /dev/null "$BASE/v1/chat/completions?tag=c1&mode=close" -d '{}'
check "close: no answer (curl rc 52)" 52 "$?"

t=$(post -o /dev/null -w '%{time_total}' "$BASE/v1/chat/completions?tag=c1&delay=0.3" -d '{}')
within "delay=0.3 answers after 0.3 s" 0.29 0.6 "$t"
t=$(post -o /dev/null -w '%{time_total}' "$BASE/v1/chat/completions?tag=c1&delay=0.2&status=502" -d '{}')
within "delay applies to status answers too" 0.19 0.5 "$t"

# ------------------------------------------------------------------ json protocol

check "json: verdict=true" '{"verdict":true}' "$(post "$BASE/classify/json?tag=j&verdict=true" -d '{"query":"q"}')"
check "json: verdict=false" '{"verdict":false}' "$(post "$BASE/classify/json?tag=j&verdict=false" -d '{}')"
check "json: default false" '{"verdict":false}' "$(post "$BASE/classify/json?tag=j" -d '{}')"
check "json: empty" '{}' "$(post "$BASE/classify/json?tag=j&mode=empty" -d '{}')"
check "json: noword" '{"verdict":"maybe"}' "$(post "$BASE/classify/json?tag=j&mode=noword" -d '{}')"
if post "$BASE/classify/json?tag=j&mode=garbage" -d '{}' | json_ok; then nok "json: garbage is not JSON"; else ok "json: garbage is not JSON"; fi
check "json: status=500" 500 "$(post -o /dev/null -w '%{http_code}' "$BASE/classify/json?tag=j&status=500" -d '{}')"
post -o "$TMP/big" "$BASE/classify/json?tag=j&mode=big&verdict=true" -d '{}'
within "json: big over 128 KB" 131073 10000000 "$(stat -c %s "$TMP/big")"
check "json: big is valid with the verdict" "true" "$(json_get '$j->{verdict}' <"$TMP/big")"
post -o /dev/null "$BASE/classify/json?tag=j&mode=reset" -d '{}'
check "json: reset (rc 18)" 18 "$?"
post -o /dev/null "$BASE/classify/json?tag=j&mode=close" -d '{}'
check "json: close (rc 52)" 52 "$?"

# ------------------------------------------------------------------ generation

ev() {  # ev MODEL DELTA-JSON FINISH-JSON
    printf 'data: {"id":"chatcmpl-gen","object":"chat.completion.chunk","created":CREATED,"model":"%s","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}\n\n' "$1" "$2" "$3"
}
{
    ev gen-m '{"content":"chunk1 "}' null
    ev gen-m '{"content":"chunk2 "}' null
    ev gen-m '{"content":"chunk3 "}' null
    ev gen-m '{}' '"stop"'
    printf 'data: [DONE]\n\n'
} >"$TMP/expect"
post -D "$TMP/h" -o "$TMP/b" "$BASE/v1/generate?tag=g" -d '{"model":"gen-m","stream":true,"messages":[]}'
check_match "generate: text/event-stream" $'Content-Type: text/event-stream\r' "$(grep -i '^content-type' "$TMP/h")"
sed -E 's/"created":[0-9]+/"created":CREATED/' "$TMP/b" >"$TMP/got"
if cmp -s "$TMP/expect" "$TMP/got"; then
    ok "generate: default SSE stream, byte for byte"
else
    nok "generate: default SSE stream, byte for byte" "$(diff "$TMP/expect" "$TMP/got")"
fi
check "generate: stream ends with [DONE]\\n\\n" "data: [DONE]NN" "$(tail -c 14 "$TMP/b" | tr '\n' N)"
check "generate: body sha1 header" "$(printf %s '{"model":"gen-m","stream":true,"messages":[]}' | sha1sum | cut -c1-40)" \
    "$(grep -i '^x-mock-body-sha1' "$TMP/h" | tr -d '\r' | cut -d' ' -f2)"

pieces=$(post "$BASE/v1/generate?tag=g&chunks=4&text=h%C3%A9llo%20w%C3%B6rld%20%E2%9C%93" -d '{}' |
         perl -MJSON::PP -ne 'next unless s/^data: //; next if /^\[DONE\]/; my $j = JSON::PP->new->utf8->decode($_); my $c = $j->{choices}[0]{delta}{content}; binmode STDOUT, ":utf8"; print "[", $c, "]" if defined $c')
check "generate: text split evenly, UTF-8 safe" "[hél][lo ][wör][ld ✓]" "$pieces"
check "generate: chunks=5 default pieces" "chunk1 chunk2 chunk3 chunk4 chunk5 " \
    "$(post "$BASE/v1/generate?tag=g&chunks=5" -d '{}' | perl -MJSON::PP -ne 'next unless s/^data: \{/{/; my $c = JSON::PP->new->decode($_)->{choices}[0]{delta}{content}; print $c if defined $c')"
out=$(post "$BASE/v1/generate?tag=g&chunks=2" -d '{"stream":false,"model":"x"}')
check "generate: stream:false -> one chat.completion" "chat.completion chatcmpl-gen x chunk1 chunk2 " \
    "$(printf %s "$out" | json_get '"$j->{object} $j->{id} $j->{model} $j->{choices}[0]{message}{content}"')"
check "generate: status=500" 500 "$(post -o /dev/null -w '%{http_code}' "$BASE/v1/generate?tag=g&status=500" -d '{}')"
post -o "$TMP/b" "$BASE/v1/generate?tag=g&mode=reset" -d '{}'
rc=$?
check "generate: reset -> first event then a cut stream (rc 18)" "18 1" "$rc $(grep -c '^data:' "$TMP/b")"
post -o /dev/null "$BASE/v1/generate?tag=g&mode=close" -d '{}'
check "generate: close (rc 52)" 52 "$?"

# gaps really stream: timestamp each event as it arrives
post -N "$BASE/v1/generate?tag=g&chunks=3&gap=0.3" -d '{}' |
    while IFS= read -r line; do
        [ -n "$line" ] && echo "$(date +%s.%N) ${line:0:12}"
    done >"$TMP/arrivals"
times=$(awk 'NR==1 { t0 = $1 } { printf "%.1f ", $1 - t0 }' "$TMP/arrivals")
check "generate: events arrive spread over time (gap=0.3)" "0.0 0.3 0.6 0.6 0.6 " "$times"
# HTTP/1.0 (nginx proxy's default) is streamed too, close-delimited
post --http1.0 -N "$BASE/v1/generate?tag=g&chunks=2&gap=0.3" -d '{}' |
    while IFS= read -r line; do
        [ -n "$line" ] && echo "$(date +%s.%N) ${line:0:12}"
    done >"$TMP/arrivals"
times=$(awk 'NR==1 { t0 = $1 } { printf "%.1f ", $1 - t0 }' "$TMP/arrivals")
check "generate: HTTP/1.0 client also streamed" "0.0 0.3 0.3 0.3 " "$times"
t=$(post -o /dev/null -w '%{time_starttransfer}' "$BASE/v1/generate?tag=g&delay=0.3" -d '{}')
within "generate: delay before the first byte" 0.29 0.6 "$t"

# ------------------------------------------------------------------ records

curl -s "$BASE/_mock/clear" >/dev/null
check "clear all -> count 0" "0" "$(curl -s "$BASE/_mock/count?tag=c1")"
check "log of an unknown tag is empty (200)" "200:" "$(curl -s -w '%{http_code}:' "$BASE/_mock/log?tag=nothing")"

post -o /dev/null "$BASE/v1/chat/completions?tag=r&verdict=Yes." -d 'first'
post -o /dev/null "$BASE/v1/chat/completions?tag=r&mode=close" -d 'second'
post -o /dev/null "$BASE/v1/chat/completions?verdict=no" -d 'third'
check_match "log lines: <status> <request_time> <uri>" \
    $'^200 0\\.[0-9]{3} /v1/chat/completions\\?tag=r&verdict=Yes\\.\n444 0\\.[0-9]{3} /v1/chat/completions\\?tag=r&mode=close$' \
    "$(mlog 'tag=r')"
check "count" "2" "$(curl -s "$BASE/_mock/count?tag=r")"
check "no tag -> tag default" "1" "$(curl -s "$BASE/_mock/count?tag=default")"
check "body: last by default" "second" "$(curl -s "$BASE/_mock/body?tag=r")"
check "body: i=1" "first" "$(curl -s "$BASE/_mock/body?tag=r&i=1")"
check "body: i=-2" "first" "$(curl -s "$BASE/_mock/body?tag=r&i=-2")"
check "body: content-type json" "application/json" "$(curl -s -o /dev/null -w '%{content_type}' "$BASE/_mock/body?tag=r")"
check "body: i=3 -> 404" "404" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/_mock/body?tag=r&i=3")"
check "records JSON" "1 r POST 200 false first|2 r POST 444 false second" \
    "$(curl -s "$BASE/_mock/records?tag=r&body=1" | json_get 'join "|", map { join " ", $_->{i}, $_->{tag}, $_->{method}, $_->{status}, ($_->{aborted} ? "true" : "false"), $_->{body} } @$j')"
check "tag=* lists all, in order" "3" "$(mlog 'tag=*' | wc -l | tr -d ' ')"
check "tags" "$(printf 'default\nr')" "$(curl -s "$BASE/_mock/tags")"
check "unknown URI: 404, recorded" "404 1" \
    "$(post -o /dev/null -w '%{http_code}' "$BASE/v1/nope?tag=u" -d x) $(curl -s "$BASE/_mock/count?tag=u")"
curl -s "$BASE/_mock/clear?tag=r" >/dev/null
check "clear one tag" "0 1" "$(curl -s "$BASE/_mock/count?tag=r") $(curl -s "$BASE/_mock/count?tag=default")"
check "clear one tag keeps tag=* consistent" "2" "$(mlog 'tag=*' | wc -l | tr -d ' ')"
check "POST /_mock/clear" "ok" "$(curl -s -X POST "$BASE/_mock/clear")"

# client abort: curl gives up after 0.2 s of a delay=2 answer
post -o /dev/null --max-time 0.2 "$BASE/v1/chat/completions?tag=ab&delay=2" -d '{"abort":1}'
quick=$(mlog 'tag=ab&wait=0.05')
line=$(mlog 'tag=ab&wait=2')
check_match "abort: recorded as 499" '^499 0\.[0-9]{3} /v1/chat/completions\?tag=ab&delay=2$' "$line"
within "abort: request_time close to the close" 0.19 0.3 "$(echo "$line" | cut -d' ' -f2)"
check "abort: the record is there at once (wait=0.05)" "$line" "$quick"
check "abort: aborted=true, body kept" "499 true {\"abort\":1}" \
    "$(curl -s "$BASE/_mock/records?tag=ab&body=1" | json_get '"$j->[0]{status} " . ($j->[0]{aborted} ? "true" : "false") . " $j->[0]{body}"')"

post -o /dev/null --max-time 0.3 "$BASE/v1/chat/completions?tag=ab2&mode=hang" -d '{}'
within "abort of mode=hang: 499 at ~0.3 s" 0.29 0.4 "$(mlog 'tag=ab2&wait=2' | awk '$1 == 499 { print $2 }')"
post -o /dev/null --max-time 0.3 "$BASE/classify/json?tag=ab3&delay=5" -d '{}'
within "abort of /classify/json: 499 at ~0.3 s" 0.29 0.4 "$(mlog 'tag=ab3&wait=2' | awk '$1 == 499 { print $2 }')"
post -o /dev/null --max-time 0.5 "$BASE/v1/generate?tag=ab4&gap=2" -d '{}'
line=$(mlog 'tag=ab4&wait=2')
check "abort mid-stream: 499 (headers were sent)" "499" "${line%% *}"
within "abort mid-stream: request_time ~0.5" 0.49 0.6 "$(echo "$line" | cut -d' ' -f2)"

# wait semantics
( sleep 0.3; post -o /dev/null "$BASE/v1/chat/completions?tag=w" -d '{}' ) &
bg=$!
out=$(curl -s -w ' %{time_total}' "$BASE/_mock/log?tag=w&wait=3")
within "log wait returns as soon as the record exists" 0.29 0.5 "${out##* }"
wait $bg
out=$(curl -s -w ' %{time_total}' "$BASE/_mock/log?tag=w&wait=0.3&n=2")
within "log wait for n=2 gives up after wait=0.3" 0.29 0.5 "${out##* }"
check_match "…and returns what there is" $'^200 0\\.[0-9]{3} /v1/chat/completions\\?tag=w\n [0-9.]+$' "$out"
out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$BASE/_mock/body?tag=none&wait=0.2")
check "body wait: 404 when nothing came" "404" "${out%% *}"
within "body wait: waited 0.2 s" 0.19 0.4 "${out##* }"
( sleep 0.2; post -o /dev/null "$BASE/classify/json?tag=wb" -d 'late body' ) &
bg=$!
check "body wait: gets a body that arrives later" "late body" "$(curl -s "$BASE/_mock/body?tag=wb&wait=2")"
wait $bg
t=$(curl -s -o /dev/null -w '%{time_total}' "$BASE/_mock/log?tag=none")
within "log without wait answers at once" 0 0.1 "$t"

# ------------------------------------------------------------------ concurrency

start=$(date +%s.%N)
pids=()
for i in $(seq 10); do
    post -o /dev/null "$BASE/v1/chat/completions?tag=par&delay=0.5" -d "{\"i\":$i}" &
    pids+=($!)
done
wait "${pids[@]}"
end=$(date +%s.%N)
within "10 parallel delay=0.5 requests take ~0.5 s in all" 0.49 0.95 \
    "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')"
check "10 records" "10" "$(curl -s "$BASE/_mock/count?tag=par")"

# ------------------------------------------------------------------ exact bodies

printf '{"messages":[{"role":"user","content":"مرحبا — héllo ✓ 😀 \\u00e9 \\"q\\""}]}' >"$TMP/u.json"
perl -e 'print "{\"pad\":\"", "x" x (1024 * 1024), "\"}"' >"$TMP/1m.json"
perl -e 'srand(7); print map { chr(int rand 256) } 1 .. (6 * 1024 * 1024)' >"$TMP/6m.bin"
: >"$TMP/empty"
for f in u.json 1m.json 6m.bin empty; do
    len=$(post -D - -o /dev/null "$BASE/v1/chat/completions?tag=body-$f" --data-binary "@$TMP/$f" |
          grep -i '^x-mock-body-length' | tr -d '\r' | cut -d' ' -f2)
    check "body $f: X-Mock-Body-Length" "$(stat -c %s "$TMP/$f")" "$len"
    curl -s -o "$TMP/got" "$BASE/_mock/body?tag=body-$f"
    if cmp -s "$TMP/got" "$TMP/$f"; then ok "body $f: recorded byte for byte"; else nok "body $f: recorded byte for byte"; fi
done
post -H 'Transfer-Encoding: chunked' -o /dev/null "$BASE/v1/generate?tag=chunked" --data-binary "@$TMP/u.json"
curl -s -o "$TMP/got" "$BASE/_mock/body?tag=chunked"
if cmp -s "$TMP/got" "$TMP/u.json"; then ok "chunked request body recorded"; else nok "chunked request body recorded"; fi

# ------------------------------------------------------------------ mock health

if [ -n "$MOCK_PID" ]; then
    errs=$(grep -E '\[(error|alert|crit|emerg)\]' "$TMP/mock.out")
    check "no [error]/[alert]/[crit] in the mock's error log" "" "$errs"
fi

# ------------------------------------------------------------------ Test::Classify::Mock

PORT2=$((PORT + 1))
SR="$TMP/sr"
out=$(cd "$TOP" && TEST_NGINX_MOCK_PORT=$PORT2 TEST_NGINX_MOCK_SERVROOT="$SR" TEST_NGINX_NO_CLEAN= \
      perl -I t/lib -e '
        use Test::Classify::Mock qw(mock_log mock_count mock_body mock_records mock_clear mock_request);
        my ($s, undef, $h) = mock_request("POST", "/v1/chat/completions?tag=pm&delay=0.1", "{\"x\":1}");
        print "$ENV{TEST_NGINX_MOCK_PORT} $s $h->{\"x-mock-body-length\"}\n";
        print mock_log("pm", wait => 1);
        print mock_count("pm"), " ", mock_body("pm"), " ", mock_records("pm")->[0]{status}, "\n";
        print -f $ENV{TEST_NGINX_MOCK_LOG} ? "log ok\n" : "no log\n";
        if (fork() == 0) { exit 0 }     # a forked child must not stop the mock
        wait;
        print mock_clear("pm"), mock_count("pm"), "\n";
      ' 2>&1)
check_match "Mock.pm: starts, exports the port, helpers work" \
    "^$PORT2 200 7"$'\n'"200 0\\.1[0-9]{2} /v1/chat/completions\\?tag=pm&delay=0\\.1"$'\n'"1 \\{\"x\":1\\} 200"$'\n'"log ok"$'\n'"ok"$'\n'"0\$" "$out"
check "Mock.pm: stopped at END" "000" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/_mock/ping")"
check_match "Mock.pm: access log written" "tag=pm 200 0\\.1" "$(cat "$SR/logs/access.log")"
out=$(cd "$TOP" && TEST_NGINX_MOCK_PORT=$PORT TEST_NGINX_MOCK_SERVROOT="$SR" perl -I t/lib -e 'use Test::Classify::Mock;' 2>&1)
check_match "Mock.pm: dies with a clear message when the port is busy" "port $PORT on 127.0.0.1 is busy" "$out"
out=$(cd "$TOP" && TEST_NGINX_MOCK_PORT=$PORT2 TEST_NGINX_MOCK_SERVROOT="$SR" TEST_NGINX_MOCK_MODULES_DIR=/nonexistent \
      perl -I t/lib -e 'use Test::Classify::Mock;' 2>&1)
check_match "Mock.pm: dies with the mock's error log" 'failed to start.*dlopen\(\) "/nonexistent/ndk_http_module.so" failed' "$out"
out=$(cd "$TOP" && TEST_NGINX_MOCK_PORT=$PORT TEST_NGINX_MOCK_EXTERNAL=1 perl -I t/lib -e '
        use Test::Classify::Mock qw(mock_count); print mock_count("par"), "\n";' 2>&1)
check "Mock.pm: TEST_NGINX_MOCK_EXTERNAL uses the running mock" "10" "$out"
check "Mock.pm: EXTERNAL leaves the mock running" "pong" "$(curl -s "$BASE/_mock/ping")"

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
