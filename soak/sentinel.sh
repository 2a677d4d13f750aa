# soak/sentinel.sh -- the soak's Redis with Sentinels (SOAK_REDIS_MODE=sentinel),
# sourced by soak/run after tools/lib.sh.
#
# Two Redis servers, x on SOAK_REDIS_PORT and y on SOAK_REDIS_PORT + 1 (a
# replica of x at first), and three Sentinels on SOAK_SENTINEL_PORT and the
# two ports after it (master "soak", quorum 2, down-after-milliseconds 1000,
# failover-timeout 3000), all under $out/redis/, each started and stopped
# by its recorded pid.  nginx uses classify_redis_sentinel.  The fault,
# every SOAK_REDIS_MIN..MAX s (60 in this mode), falls on whichever server
# is the master then, in turn:
#   SIGKILL            the Sentinels promote the other; SOAK_REDIS_DOWN s
#                      later the killed one is started again, as a replica
#                      of the new master
#   SIGSTOP            the same, and SIGCONT after SOAK_REDIS_DOWN s: the
#                      Sentinels make it a replica
#   SENTINEL FAILOVER  a switch while the master is up (it stays writable
#                      for seconds: only +switch-master moves nginx in time)
#
#   ha_start            start the five, wait until the Sentinels know the replica
#   ha_fault            one fault on the master: sets $how, $redis_state
#   ha_back             the faulted server back: sets $redis_state=up
#   ha_up               every server answering (for the counts at the end)
#   ha_ports            every port of the set (the fd categories)
#   ha_directive        the nginx directive

ha_state_x=down ha_state_y=down ha_pid_x= ha_pid_y= ha_how=0 ha_faulted=

ha_port() { [ "$1" = x ] && echo "$SOAK_REDIS_PORT" || echo $(( SOAK_REDIS_PORT + 1 )); }
ha_sentinels() { echo "$SOAK_SENTINEL_PORT" $(( SOAK_SENTINEL_PORT + 1 )) $(( SOAK_SENTINEL_PORT + 2 )); }
ha_ports() { echo "$SOAK_REDIS_PORT" $(( SOAK_REDIS_PORT + 1 )) $(ha_sentinels); }

ha_directive() {
    local p line="classify_redis_sentinel soak"
    for p in $(ha_sentinels); do line+=" 127.0.0.1:$p"; done
    echo "$line connect_timeout=300ms timeout=300ms;"
}

# the master's port as the first Sentinel that answers gives it
ha_master() {
    local p a
    for p in $(ha_sentinels); do
        a=$(timeout 3 redis-cli -p "$p" SENTINEL get-master-addr-by-name soak 2>/dev/null | sed -n 2p)
        [ -n "$a" ] && { echo "$a"; return 0; }
    done
    return 1
}

ha_node() {   # x|y [master port]: start it (as a replica of that master)
    local n=$1 p
    p=$(ha_port "$1")
    mkdir -p "$out/redis/$n"
    svc_start "redis-$n" redis-server --port "$p" --bind 127.0.0.1 \
        --save "" --appendonly no --dir "$out/redis/$n" \
        --logfile "$out/redis/$n/redis.log" --repl-diskless-sync-delay 0 \
        ${2:+--replicaof 127.0.0.1 "$2"}
    disown "$svc_pid"     # no "Killed" job notice when SIGKILLed on purpose
    eval "ha_pid_$n=$svc_pid ha_state_$n=up"
    wait_port "$p"
}

ha_start() {
    local i p d ok
    ha_node x
    ha_node y "$SOAK_REDIS_PORT"
    i=0
    for p in $(ha_sentinels); do
        i=$(( i + 1 ))
        d=$out/redis/sentinel-$i
        mkdir -p "$d"
        printf '%s\n' "port $p" "bind 127.0.0.1" "dir $d" \
            "logfile $d/sentinel.log" \
            "sentinel monitor soak 127.0.0.1 $SOAK_REDIS_PORT 2" \
            "sentinel down-after-milliseconds soak 1000" \
            "sentinel failover-timeout soak 3000" > "$d/sentinel.conf"
        svc_start "sentinel-$i" redis-server "$d/sentinel.conf" --sentinel
        wait_port "$p"
    done
    # bounded (30 s): every Sentinel knows the two others and the replica
    for i in $(seq 300); do
        ok=1
        for p in $(ha_sentinels); do
            [ "$(timeout 3 redis-cli -p "$p" SENTINEL sentinels soak 2>/dev/null | grep -c '^name$')" = 2 ] || ok=0
            timeout 3 redis-cli -p "$p" SENTINEL replicas soak 2>/dev/null | grep -qx 'slave' || ok=0
        done
        [ $ok = 1 ] && break
        sleep 0.1
    done
    redis_state=up
}

ha_name() { [ "$1" = "$SOAK_REDIS_PORT" ] && echo x || echo y; }

ha_fault() {
    local m n pid i
    m=$(ha_master) || { how="no master known: no fault"; return 0; }
    n=$(ha_name "$m")
    eval "pid=\$ha_pid_$n"
    case $(( ha_how % 3 )) in
        0)  kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            svc_forget "redis-$n"
            eval "ha_state_$n=down"
            how="SIGKILL of the master :$m, back as a replica after ${down} s" ;;
        1)  kill -STOP "$pid"
            eval "ha_state_$n=stopped"
            how="SIGSTOP of the master :$m, SIGCONT after ${down} s" ;;
        2)  timeout 3 redis-cli -p "$SOAK_SENTINEL_PORT" SENTINEL FAILOVER soak >/dev/null 2>&1 || true
            how="SENTINEL FAILOVER, the master :$m up" ;;
    esac
    ha_how=$(( ha_how + 1 ))
    ha_faulted=$n
    redis_state=down
}

ha_back() {
    local n=$ha_faulted st pid
    eval "st=\$ha_state_$n pid=\$ha_pid_$n"
    case $st in
        stopped) kill -CONT "$pid"; eval "ha_state_$n=up" ;;
        down) ha_node "$n" "$(ha_master || echo "$SOAK_REDIS_PORT")" ;;
    esac
    redis_state=up
}

ha_up() {
    [ "$redis_state" = up ] || ha_back
}

# every stopped server resumed (the run's cleanup)
ha_cont() {
    [ "$ha_state_x" = stopped ] && kill -CONT "$ha_pid_x" 2>/dev/null
    [ "$ha_state_y" = stopped ] && kill -CONT "$ha_pid_y" 2>/dev/null
    return 0
}
