# bench/lib.sh -- what the benchmarks' runners share (bench/run,
# bench/cache/run, bench/speculate/run, bench/guard/run), on top of
# tools/lib.sh (services started and stopped by their recorded pids):
#
#   . "$top/bench/lib.sh"
#   bench_init NAME OFFSET      the run's directory $out (build/bench/NAME),
#                               its ports, cleanup on exit, log/die
#   bench_levels QUICK FULL [ONE]
#                               LEVELS, the concurrencies, and count C
#   classifier NAME KIND VERDICT DELAY CONTEXT [REPLY]
#                               a classifier of the mock: KIND off, ruling
#                               or harm (the prompt and the default reply)
#   conf_module FILE            the module's nginx.conf: $MODULE_HTTP at
#                               http{} level, module_gates() in the server
#   conf_peers FILE             the peers' nginx.conf: one server per peer
#                               (OpenResty Lua :$LUA_PORT, njs :$NJS_PORT),
#                               the gated locations of $PEER_GATES
#   mock_start                  the C mock on :$MOCK_PORT, log in $out/mock
#   nginx_up NAME CONF PORT     an nginx of the bench, its 2 workers up
#   peers_check LOCATION...     every peer answers as the module does
#   measure LABEL MASTER URL C N ARGS...
#                               one measured run of the load client, the
#                               CPU of the gate's workers around it (m_*)
#   runs_header COL... / runs_row VALUE...   $out/runs.tsv
#   bench_params                $out/params.txt: the machine, the software
#
# The module's gate and the peers serve the same classifier locations
# (/_cls/NAME, the mock's tag NAME), the same generation locations
# ($GEN_LOCS, tagged <location>-<run>) and log every client request in one
# format (bench): "$msec run= rid= warm= status= rt= verdict= time=
# results=", with the module's $classify_* or the peers' $peer_*.

top=${top:?}
bin=${BIN:-$top/build/bin}
module=${MODULE:-$top/build/ngx_http_classify_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
luamods=${LUA_MODULES:-/usr/lib/nginx/modules}
QUICK=${QUICK:-}

. "$top/tools/lib.sh"

PEERS="lua njs"

# the kinds of classifier: the prompt and the reply
PROMPT_off="Answer Yes if the question is off-topic, else No."
REPLY_off="I can only help with on-topic questions."
PROMPT_ruling="Answer Yes if the question asks for a ruling, else No."
REPLY_ruling="Please ask a qualified scholar."
PROMPT_harm="Answer Yes if the answer is harmful, else No."
REPLY_harm="I can't continue this answer."

cls_names=()
declare -A cls_kind cls_verdict cls_delay cls_context cls_reply

# what the runner sets before writing the configurations
MODULE_HTTP=
PEER_GATES=()           # "location:classifiers[:cache]"
PEER_REDIS=             # the peers read context from Redis (host:port)
PEER_CACHE_SIZE=        # the size of each peer's verdict cache
                        # (lua_shared_dict verdicts_<peer>), for :cache
GEN_ARGS=
GEN_LOCS="/plain @gen"
CLS_HEADERS=            # more in each classifier location (the calls'
                        # headers: by default the client's)

log() { printf '%s %s: %s\n' "$(date +%T)" "$bench" "$*" >&2; }
die() { echo "$bench: $*" >&2; exit 1; }

need() {   # file...
    local f
    for f in "$@"; do
        [ -f "$f" ] || die "$f missing (make bench builds and installs it)"
    done
}

bench_cleanup() {
    trap - INT TERM EXIT
    svc_stop_all
}

# NAME: the benchmark (messages, build/bench/NAME); OFFSET: its ports,
# BENCH_PORT_BASE (18000) + OFFSET + 80 the module, 81 the OpenResty peer,
# 82 the njs peer, 90 the mock, 379 Redis
bench_init() {   # name offset
    local base=$(( ${BENCH_PORT_BASE:-18000} + $2 ))

    bench=$1
    GW_PORT=$(( base + 80 ))
    LUA_PORT=$(( base + 81 ))
    NJS_PORT=$(( base + 82 ))
    MOCK_PORT=$(( base + 90 ))
    REDIS_PORT=$(( base + 379 ))

    if [ -n "$QUICK" ]; then
        report_dir=$top/build/bench
    else
        report_dir=$top/bench
    fi

    loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
    out=${BENCH_OUT:-$top/build/bench}/$bench
    rm -rf "$out"
    mkdir -p "$out"/{conf/peers,logs,temp/gw,temp/peers,csv,mock}
    svc_dir=$out/pids

    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

    need "$bin/classify-load" "$bin/mock-llm" "$module"

    ports_free "$bench" $GW_PORT $LUA_PORT $NJS_PORT $MOCK_PORT
}

# the concurrency levels, LEVELS (QUICK=1: 1 and 64, else 1, 64 and 256),
# and count C: the measured requests at C, 20 (FULL_ONE, 200) at c=1, else
# C times QUICK_PER (FULL_PER)
bench_levels() {   # quick_per full_per [full_one]
    if [ -n "$QUICK" ]; then
        LEVELS="1 64"
        count_one=20
        count_per=$1
    else
        LEVELS="1 64 256"
        count_one=${3:-200}
        count_per=$2
    fi
}

count() {   # c
    if [ "$1" = 1 ]; then
        echo $count_one
    else
        echo $(( $1 * count_per ))
    fi
}

classifier() {   # name kind verdict delay context [reply]
    local reply=REPLY_$2
    cls_names+=("$1")
    cls_kind[$1]=$2
    cls_verdict[$1]=$3
    cls_delay[$1]=$4
    cls_context[$1]=$5
    cls_reply[$1]=${6:-${!reply}}
}

mock_start() {
    log "mock (C, t/mock/) on :$MOCK_PORT"
    svc_start mock "$bin/mock-llm" -p $MOCK_PORT -m 0 -l "$out/mock/mock.log" \
        2>"$out/mock/stderr.log"
    mock_pid=$svc_pid
    wait_port $MOCK_PORT
}

# ---------------------------------------------------------------- nginx.conf

conf_main() {   # name, modules to load...
    local name=$1 m
    shift
    for m in "$@"; do
        echo "load_module $m;"
    done
    # Started by root, the workers run as root too, as the test runner's
    # do: the tree may sit under a directory only root can enter (a fresh
    # clone in a mktemp -d), and the workers write temp files into it.
    [ "$(id -u)" != 0 ] || echo "user root;"
    cat <<EOF

worker_processes 2;
worker_rlimit_nofile 20000;
error_log logs/$name-error.log notice;
pid logs/$name.pid;

events {
    worker_connections 8192;
}
EOF
}

conf_http() {   # name, the verdict, time and results variables
    cat <<EOF
    access_log off;
    client_body_temp_path temp/$1/body;
    proxy_temp_path temp/$1/proxy;
    fastcgi_temp_path temp/$1/fastcgi;
    uwsgi_temp_path temp/$1/uwsgi;
    scgi_temp_path temp/$1/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 1000000;

    # one line per client request: the run, the request's id, the
    # decision time and each classifier's outcome
    log_format bench '\$msec run=\$arg_run rid=\$http_x_bench_rid '
                     'warm=\$http_x_bench_warmup status=\$status '
                     'rt=\$request_time verdict=$2 '
                     'time=$3 results=$4';

    upstream llm {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 1024;
    }

    upstream gen {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 1024;
    }
EOF
}

# a server's head: NAME the nginx (its access log), PORT
conf_listen() {
    cat <<EOF
        listen 127.0.0.1:$2 reuseport backlog=4096;
        access_log logs/$1-access.log bench buffer=256k flush=1s;
EOF
}

# what every gate's server has: the generation (the locations of GEN_LOCS
# matching $1; the client's arguments, run= among them, kept for the access
# log), the classifier locations, stub_status
conf_backends() {   # a pattern of GEN_LOCS
    local loc name
    for loc in $GEN_LOCS; do
        case $loc in $1) ;; *) continue ;; esac
        name=${loc#[@/]}
        [ "${loc#@}" = "$loc" ] && loc="= $loc"
        cat <<EOF
        location $loc {
            rewrite ^ /v1/generate?tag=$name-\$arg_run&$GEN_ARGS break;
            proxy_pass http://gen;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }

EOF
    done
    for name in "${cls_names[@]}"; do
        cat <<EOF
        location = /_cls/$name {
            internal;
            proxy_pass http://llm/v1/chat/completions?tag=$name&verdict=${cls_verdict[$name]}&delay=${cls_delay[$name]};
            proxy_http_version 1.1;
            proxy_set_header Connection "";$CLS_HEADERS
            subrequest_output_buffer_size 64k;
        }

EOF
    done
    cat <<EOF
        location = /status {
            access_log off;
            stub_status;
        }
EOF
}

conf_module() {   # file
    local name p
    {
        conf_main gw "$module"
        echo
        echo "http {"
        conf_http gw '$classify_verdict' '$classify_time' '$classify_results'
        for name in "${cls_names[@]}"; do
            p=PROMPT_${cls_kind[$name]}
            cat <<EOF

    classifier $name {
        pass        /_cls/$name;
        model       bench;
        prompt      "${!p}";
        context     ${cls_context[$name]};
        reply       "${cls_reply[$name]}";
    }
EOF
        done
        echo
        printf '%s\n' "$MODULE_HTTP"
        echo
        echo "    server {"
        conf_listen gw $GW_PORT
        echo
        module_gates
        conf_backends '*'
        cat <<EOF

        location = /metrics {
            access_log off;
            classify_status;
        }
    }
}
EOF
    } > "$1"
}

# the classifiers as the peers read them (conf/peers/peers.json; njs
# imports the same object as peers.js)
peers_json() {
    local name p sep=
    printf '{'
    [ -z "$PEER_REDIS" ] || printf '"redis":{"host":"%s","port":%s,"timeout_ms":1000},' \
        "${PEER_REDIS%:*}" "${PEER_REDIS##*:}"
    printf '"generation":"@gen","cache_valid":600,"classifiers":{'
    for name in "${cls_names[@]}"; do
        p=PROMPT_${cls_kind[$name]}
        printf '%s"%s":{"name":"%s","pass":"/_cls/%s","model":"bench",' \
            "$sep" "$name" "$name" "$name"
        printf '"prompt":"%s","context":%s,"max_tokens":5,' \
            "${!p}" "${cls_context[$name]}"
        printf '"positive":["true","yes"],"reply":"%s"}' "${cls_reply[$name]}"
        sep=,
    done
    printf '}}\n'
}

# a peer's gated locations, from PEER_GATES; $2 is the content directive
peer_locations() {   # peer directive
    local g rest list cache
    for g in "${PEER_GATES[@]}"; do
        rest=${g#*:}
        list=${rest%%:*}
        cache=
        [ "$rest" = "$list" ] || cache=verdicts_$1
        cat <<EOF
        location = /${g%%:*} {
            set \$peer_classify "$list";
            set \$peer_cache "$cache";
            $2
        }

EOF
    done
}

# what the gate writes: decision ms, verdict, name:outcome,...
peer_vars() {
    cat <<EOF
        set \$peer_time "-";
        set \$peer_verdict "-";
        set \$peer_results "-";

EOF
}

# the njs peer's Redis read and verdict cache, served by the Lua module
peer_helpers() {
    [ -z "$PEER_REDIS" ] || cat <<EOF
        location = /_peer/ctx {
            internal;
            content_by_lua_block {
                require("peer_redis").serve("${PEER_REDIS%:*}", ${PEER_REDIS##*:}, 1000)
            }
        }

EOF
    [ -z "$PEER_CACHE_SIZE" ] || cat <<EOF
        location = /_peer/cache {
            internal;
            content_by_lua_block { require("peer_gate").cache_serve() }
        }

EOF
}

# The same gate written the way an OpenResty user
# (ngx.location.capture_multi) and an njs user (r.subrequest + Promise.all)
# would write it, bench/peers/, each a server of a second nginx (the same
# Debian binary, Debian's module packages), so that the module's nginx
# loads the module alone.
conf_peers() {   # file
    local p
    need "$luamods/ndk_http_module.so" "$luamods/ngx_http_lua_module.so" \
         "$luamods/ngx_http_js_module.so"
    peers_json > "$out/conf/peers/peers.json"
    { printf 'export default '; cat "$out/conf/peers/peers.json"; } \
        > "$out/conf/peers/peers.js"
    {
        conf_main peers "$luamods/ndk_http_module.so" \
            "$luamods/ngx_http_lua_module.so" "$luamods/ngx_http_js_module.so"
        echo
        echo "http {"
        conf_http peers '$peer_verdict' '$peer_time' '$peer_results'
        for p in $PEERS; do
            [ -z "$PEER_CACHE_SIZE" ] \
                || echo "    lua_shared_dict verdicts_$p $PEER_CACHE_SIZE;"
        done
        cat <<EOF

    lua_package_path "$top/bench/peers/?.lua;;";
    init_by_lua_block {
        require("peer_gate").init("$out/conf/peers/peers.json")
    }

    js_path $top/bench/peers;
    js_path $out/conf/peers;
    js_import peer from peer_gate.js;

    # OpenResty: bench/peers/peer_gate.lua; Redis over a cosocket
    server {
$(conf_listen peers $LUA_PORT)

$(peer_vars)
$(peer_locations lua 'content_by_lua_block { require("peer_gate").run() }')
$(conf_backends '@*')
    }

    # njs: bench/peers/peer_gate.js; Redis and the verdict cache through
    # subrequests to locations the Lua module serves (njs 0.7.9 has
    # neither a TCP socket nor shared memory)
    server {
$(conf_listen peers $NJS_PORT)

$(peer_vars)
$(peer_locations njs 'js_content peer.gate;')
$(peer_helpers)
$(conf_backends '@*')
    }
}
EOF
    } > "$1"
}

# ---------------------------------------------------------------- processes

# the children of a process (an nginx master's workers), from /proc
workers() {   # pid
    local f line rest p
    for f in /proc/[0-9]*/stat; do
        { read -r line < "$f"; } 2>/dev/null || continue
        rest=${line##*) }
        set -- "$1" $rest
        if [ "${3:-}" = "$1" ]; then
            p=${f#/proc/}
            printf '%s ' "${p%/stat}"
        fi
    done
}

# an nginx of the bench, NAME (nginx*: stopped with QUIT) from CONF, up
# when PORT answers and its 2 workers run; the master's pid in $svc_pid
nginx_up() {   # name conf port
    local master i
    "$nginx" -t -q -p "$out/" -c "$2"
    svc_start "$1" "$nginx" -p "$out/" -c "$2" \
        -g "daemon off; master_process on;" 2>>"$out/logs/stderr.log"
    master=$svc_pid
    wait_port "$3"
    for i in $(seq 50); do
        [ "$(workers $master | wc -w)" = 2 ] && { svc_pid=$master; return 0; }
        sleep 0.1
    done
    die "$1: nginx workers did not start"
}

# what a set of processes has used, summed: "schedstat_ns utime stime
# wake-ups" (ns on CPU, user and system clock ticks, voluntary context
# switches: each epoll_wait that slept)
cpu_of() {   # pid...
    local p ns=0 u=0 k=0 v=0 st x
    for p in "$@"; do
        st=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
        set -- $st
        u=$(( u + ${12} ))
        k=$(( k + ${13} ))
        x=$(cut -d' ' -f1 "/proc/$p/schedstat" 2>/dev/null) || x=0
        ns=$(( ns + x ))
        x=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$p/status" 2>/dev/null) || x=0
        v=$(( v + ${x:-0} ))
    done
    echo "$ns $u $k $v"
}

# every service started here still runs (the load client is waited for and
# forgotten before this is asked)
alive() {
    local i
    for i in "${!svc_pids[@]}"; do
        svc_alive "${svc_pids[$i]}" \
            || die "${svc_names[$i]} (pid ${svc_pids[$i]}) is gone: killed from outside?"
    done
}

# the load client, in the background so that a signal stops the run at
# once (bash runs its traps only between foreground commands); its summary
# line goes to stdout, its stderr to the file $1
client() {   # errfile args...
    local err=$1
    shift
    svc_start client "$bin/classify-load" "$@" 2>"$err"
    wait "$svc_pid" || true
    svc_forget client
}

# one measured run: the load client at concurrency C, a warm-up of max(C,
# 10) requests (marked X-Bench-Warmup: 1, left out of the latency figures,
# counted in the CPU ones) and N measured ones, the files csv/LABEL.*; in
# m_*: the CPU of MASTER's workers, of the mock and of Redis ($redis_pid)
# around it, the wall time, the client's summary line and command
measure() {   # label master url c n args...
    local label=$1 master=$2 url=$3 c=$4 n=$5 ws t0 t1 a b r
    shift 5
    m_n=$n
    m_warm=$c
    [ "$m_warm" -ge 10 ] || m_warm=10
    alive
    ws=$(workers $master)
    m_cmd="classify-load -u '$url' -c $c -w $m_warm -n $n -t 300 -T 30 $* -o csv/$label.csv -l $label"
    read -r a < <(cpu_of $ws)
    read -r b < <(cpu_of $mock_pid)
    read -r r < <(cpu_of ${redis_pid:-})
    t0=$(date +%s.%N)
    client "$out/csv/$label.txt" -u "$url" -c "$c" -w "$m_warm" -n "$n" \
        -t 300 -T 30 "$@" -o "$out/csv/$label.csv" -l "$label" \
        > "$out/csv/$label.sum"
    t1=$(date +%s.%N)
    alive
    set -- $a $(cpu_of $ws)
    m_ns=$(( $5 - $1 ))
    m_utime=$(( $6 - $2 ))
    m_stime=$(( $7 - $3 ))
    m_wakeups=$(( $8 - $4 ))
    set -- $b $(cpu_of $mock_pid)
    m_mock_ticks=$(( $6 + $7 - $2 - $3 ))
    set -- $r $(cpu_of ${redis_pid:-})
    m_redis_ticks=$(( $6 + $7 - $2 - $3 ))
    m_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    m_sum=$(cat "$out/csv/$label.sum")
    log "$label: $(echo "$m_sum" | grep -o 'ok=[0-9]* err=[0-9]*') rps=$(summary_val rps) fb_p99=$(summary_val fb_p99) tok_p99=$(summary_val tok_p99) ms, worker CPU $(( m_ns / 1000000 )) ms"
}

summary_val() { echo "$m_sum" | grep -o " $1=[0-9.]*" | cut -d= -f2; }

# runs.tsv: the runner's own columns first, then what measure() recorded
RUN_COLS='n warmup worker_ns utime stime wakeups mock_ticks redis_ticks wall_s command summary'

runs_header() {   # column...
    printf '%s\t' "$@" $RUN_COLS | sed 's/\t$/\n/' > "$out/runs.tsv"
}

runs_row() {   # value...
    printf '%s\t' "$@" "$m_n" "$m_warm" "$m_ns" "$m_utime" "$m_stime" \
        "$m_wakeups" "$m_mock_ticks" "$m_redis_ticks" "$m_wall" "$m_cmd" "$m_sum" \
        | sed 's/\t$/\n/' >> "$out/runs.tsv"
}

# ---------------------------------------------------------------- the peers

# a gate's answer to a streamed chat request, as a client sees it: the
# headers sorted (Date and Server left out), ids and timestamps masked,
# then the body (X-Mock-Body-Length is the body the generation received)
gate_answer() {   # port location
    local a
    a=$(curl -s -m 5 -i -H 'Content-Type: application/json' -H 'X-Session-Id: bench-1' \
        -d '{"model":"bench","stream":true,"messages":[{"role":"user","content":"check rid-0"}]}' \
        "http://127.0.0.1:$1/$2?run=check" | tr -d '\r' \
        | sed -E 's/"id":"[^"]*"/"id":-/g; s/"created":[0-9]+/"created":-/g') || true
    printf '%s\n' "$a" | sed '/^$/q' | grep -v -i -E '^(date|server):' | tr 'A-Z' 'a-z' | sort
    printf '%s\n' "$a" | sed '1,/^$/d'
}

# the peers answer as the module does, or their figures mean nothing: each
# location asked twice (the second time a verdict cache answers), of the
# module and of each peer, the answers compared
peers_check() {   # location...
    local loc round p port want got
    for loc in "$@"; do
        for round in 1 2; do
            want=$(gate_answer $GW_PORT "$loc")
            for p in $PEERS; do
                port=$LUA_PORT
                [ "$p" = njs ] && port=$NJS_PORT
                got=$(gate_answer $port "$loc")
                if [ "$got" != "$want" ]; then
                    echo "$bench: the $p peer answers /$loc unlike the module:" >&2
                    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") >&2 || true
                    exit 1
                fi
            done
        done
    done
    loc="$*"
    log "peers: $PEERS answer /${loc// /, /} as the module does"
}

# ---------------------------------------------------------------- report

# $1 = probe: with what the machine charges for a system call and a
# wake-up (bench/probe.c)
bench_params() {   # [probe]
    cat > "$out/params.txt" <<EOF
quick=${QUICK:-0}
nproc=$(nproc)
hz=$(getconf CLK_TCK)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -sr)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
nginx=$("$nginx" -v 2>&1 | sed 's/.*: //')
lua_module=$(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?')
luajit=$(dpkg-query -W -f='${Version}' libluajit2-5.1-2 2>/dev/null || echo '?')
njs_module=$(dpkg-query -W -f='${Version}' libnginx-mod-http-js 2>/dev/null || echo '?')
libcurl=$(curl-config --version 2>/dev/null || echo '?')
date=$(date -u '+%Y-%m-%d %H:%M UTC')
module=$module
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$top" diff --quiet HEAD -- src ngx_http_classify_module.c 2>/dev/null || echo ' (with uncommitted module changes)')
loadavg=$loadavg
EOF
    [ "${1:-}" != probe ] || "$bin/probe" | tr ' ' '\n' >> "$out/params.txt"
}
