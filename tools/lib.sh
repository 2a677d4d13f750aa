# tools/lib.sh -- what bench/run, soak/run and tools/run-demo share:
# starting services in the background, each with a pid file, and stopping
# exactly those, by the pid recorded when they were started (never by name:
# other nginx and redis-server processes on the machine are not ours).
#
#   . "$top/tools/lib.sh"
#   svc_dir=DIR                   where the pid files go (DIR/NAME.pid)
#   svc_start NAME CMD ARGS...    CMD in the background; its pid in $svc_pid
#   svc_track NAME PID            a process the script started itself
#   svc_stop NAME                 TERM (nginx: QUIT), KILL after 10 s
#   svc_forget NAME               a tracked process that ended (waited for)
#   svc_stop_all                  every tracked process, the last first
#   port_open PORT                something listens on 127.0.0.1:PORT
#   wait_port PORT [TENTHS]       bounded wait (default 5 s) for that
#   ports_free WHO PORT...        fails naming the first port in use
#   http_get PORT PATH            a bounded GET on 127.0.0.1, the body
#
# A process named nginx* is stopped with QUIT (a graceful stop of a master
# in the foreground), the others with TERM.

svc_dir=${svc_dir:-${TMPDIR:-/tmp}}
svc_names=()
svc_pids=()
svc_pid=

svc_track() {   # name pid
    svc_names+=("$1")
    svc_pids+=("$2")
    mkdir -p "$svc_dir"
    echo "$2" > "$svc_dir/$1.pid"
}

svc_start() {   # name cmd args...
    local name=$1
    shift
    "$@" &
    svc_pid=$!
    svc_track "$name" "$svc_pid"
}

svc_alive() { kill -0 "$1" 2>/dev/null; }

# signal one tracked process, wait (bounded) for it, then KILL
svc_signal_wait() {   # name pid
    local sig=TERM i
    svc_alive "$2" || return 0
    case $1 in nginx*) sig=QUIT ;; esac
    kill "-$sig" "$2" 2>/dev/null || true
    for i in $(seq 100); do
        svc_alive "$2" || break
        sleep 0.1
    done
    kill -KILL "$2" 2>/dev/null || true
}

svc_stop() {   # name
    local i
    for i in "${!svc_names[@]}"; do
        if [ "${svc_names[$i]}" = "$1" ]; then
            svc_signal_wait "$1" "${svc_pids[$i]}"
            wait "${svc_pids[$i]}" 2>/dev/null || true
            rm -f "$svc_dir/$1.pid"
            unset "svc_names[$i]" "svc_pids[$i]"
        fi
    done
}

# once waited for, a pid is no longer ours: forget it, so that a later
# stop never signals whatever process gets that pid next
svc_forget() {   # name
    local i
    for i in "${!svc_names[@]}"; do
        if [ "${svc_names[$i]}" = "$1" ]; then
            rm -f "$svc_dir/$1.pid"
            unset "svc_names[$i]" "svc_pids[$i]"
        fi
    done
}

# all at once, then a bounded wait for all, then KILL: 5 s at most
svc_stop_all() {
    local i p sig alive
    local keys=("${!svc_pids[@]}") k
    for (( k = ${#keys[@]} - 1; k >= 0; k-- )); do
        i=${keys[$k]}
        p=${svc_pids[$i]}
        sig=TERM
        case ${svc_names[$i]} in nginx*) sig=QUIT ;; esac
        kill "-$sig" "$p" 2>/dev/null || true
    done
    for i in $(seq 50); do
        alive=0
        for p in "${svc_pids[@]}"; do
            svc_alive "$p" && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for i in "${!svc_pids[@]}"; do
        kill -KILL "${svc_pids[$i]}" 2>/dev/null || true
        rm -f "$svc_dir/${svc_names[$i]}.pid"
    done
    wait 2>/dev/null || true
    svc_names=()
    svc_pids=()
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {   # port [tenths of a second]
    local i
    for i in $(seq "${2:-50}"); do
        port_open "$1" && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after $(( ${2:-50} / 10 )) s" >&2
    return 1
}

ports_free() {   # who port...
    local who=$1 p
    shift
    for p in "$@"; do
        if port_open "$p"; then
            echo "$who: port $p is already in use" >&2
            return 1
        fi
    done
}

# curl when present, else bash's /dev/tcp; 3 s at most
http_get() {   # port path
    if command -v curl >/dev/null; then
        curl -s -m 3 "http://127.0.0.1:$1$2" || true
    else
        timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"'
            printf "GET %s HTTP/1.0\r\nHost: x\r\n\r\n" "'"$2"'" >&3
            sed "1,/^\r$/d" <&3' 2>/dev/null || true
    fi
}
