#!/usr/bin/env bash
# bench/run.sh [registry|facade|watch|dns|consul|ui|ha|all]: benchmark of the suite against
# an nginx ceiling (default: all).
#
#   registry  the service registry alone: discover (10 instances), register
#             100k (bench/regload.c), discover and renew with 100k instances,
#             RSS with 100k.
#   facade    the whole suite: registry + 2 logging-service + messages-service
#             + facade-service (--replicas 2): POST /facade (32 and 256
#             connections, each against nginx at as many), GET /facade with
#             1,000 stored messages, RSS of every service idle and after load;
#             then (also alone: facade-view) GET /facade with 10,000 messages
#             against nginx serving the same bytes from a file, and 1,000,000
#             messages served complete with the facade's RSS.
#   watch     the registry's watchers (bench/watchload.c, libevent): 10,000
#             parked long-polls (GET /v1/events?index=<current>&wait=5m, half
#             with ?name=) and 1,000 SSE streams: the registry's extra RSS,
#             its CPU over 10 s with them parked, and the time from one
#             registration to the last of the 11,000 having it (5 rounds,
#             median and max); then the registry's CPU with 1,000 instances
#             whose HTTP check (1 s interval) hits nginx on the other CPU
#             (skipped, with a line saying so, when the registry answers 400
#             to a registration with a check, or takes it but no check
#             reaches nginx). No nginx ceiling: the targets are absolute.
#   dns       the registry's DNS interface: 1,000 services (one instance
#             each, registered over HTTP), dnsperf sending A queries for
#             their names at a fixed rate (BENCH_DNS_QPS, default 60,000 q/s)
#             for BENCH_DNS_DURATION s (default 10): answered q/s and lost
#             queries, against nsd serving a static zone of the same names
#             at the same rate (the reference, when it can be set up).
#   consul    the registry's Consul HTTP API: 10 instances of svc registered
#             with PUT /v1/agent/service/register, then GET
#             /v1/health/service/svc?passing (wrk, as the registry part's
#             discover row) against nginx serving the byte-identical answer
#             as a static file (target >= 0.4 x); then BENCH_CONSUL_ROUNDS
#             (default 20) blocking queries (bench/consulwait.c, libevent:
#             GET /v1/catalog/service/svc and /v1/health/service/svc?passing
#             in turn, ?index=<X-Consul-Index>&wait=5m, parked), each woken
#             by a registration of svc: time from sending it to the parked
#             query's answer, median and max (target max < 100 ms).
#   ui        the dashboard (bench/uiload.py, python3-selenium): the facade
#             part's suite; the registry's CPU over BENCH_UI_DURATION s
#             (default 30) with no browser (the reference), then with
#             BENCH_UI_TABS (default 50) tabs of one headless chromium on
#             /ui/, settled BENCH_UI_SETTLE s (default 10): CPU (target
#             < 2 %), the pages' requests per tab per second from the
#             registry's http_requests_total (target < 1), and the first
#             load's transferred bytes with a cold cache (target < 100 kB).
#             Skipped, with a line saying so, without chromium,
#             chromedriver or python3-selenium.
#   ha        replicas on etcd: a 3-member etcd cluster on loopback
#             (bench/etcdup.py) and two registry replicas A and B on one
#             prefix. Discover on B (10 instances registered on A) against
#             nginx serving B's answer as a static file (target >= 0.5 x);
#             BENCH_HA_ROUNDS (default 50) registrations on A each waking a
#             blocking read parked on B (bench/halatency.py): p50, p99
#             (target p99 < 100 ms); BENCH_HA_RENEWS (default 10,000)
#             instances at ttl 10, half registered on A and half on B,
#             renewed every ttl/3 alternately through both replicas for
#             BENCH_HA_RENEW_S s (default 30; bench/renewload.c): all
#             passing on both at the end, with the CPU of the etcd members
#             and of each replica; BENCH_HA_REGISTRATIONS (default 20,000)
#             registrations (ttl 10) through A (regload) against etcd's own
#             lease grant + put of the same records through the same v3
#             gateway, as many in flight (bench/etcdload.c; target >= 0.8
#             x). Skipped, with a line saying so, without etcd.
#
# Builds every executable (Release) in build-bench/, starts nginx (one worker,
# fixed 200 JSON answer shaped like a discover answer) and the services on
# free loopback ports, measures with wrk, prints tables and, for "all",
# writes them to bench/RESULTS.md (a single part only prints).
#
# It measures and prints; it is not a test. Exit status is non-zero only if
# a measurement could not be made (a service did not start, wrk saw an error
# or a non-2xx answer, a count is wrong); missed targets show as FAIL.
#
# All traffic goes to 127.0.0.1. Every wait loop is bounded, every load run
# is bounded in time (wrk -d, regload's deadline, curl --max-time), and the
# EXIT trap stops the processes this script started and removes its temp
# directory.
#
# Knobs (environment): BENCH_DURATION (wrk seconds, default 10),
# BENCH_CONNS (default 32), BENCH_CONNS_MANY (the second POST /facade run,
# default 256), BENCH_REGISTRATIONS (default 100000),
# BENCH_MESSAGES (messages stored before GET /facade, default 1000),
# BENCH_WATCH_POLLS (default 10000), BENCH_WATCH_STREAMS (default 1000),
# BENCH_WATCH_ROUNDS (default 5), BENCH_CHECKS (default 1000),
# BENCH_CONSUL_ROUNDS (default 20), BENCH_UI_TABS (default 50),
# BENCH_UI_DURATION (default 30), BENCH_UI_SETTLE (default 10),
# BENCH_HA_REGISTRATIONS (default 20000), BENCH_HA_ROUNDS (default 50),
# BENCH_HA_RENEWS (default 10000), BENCH_HA_RENEW_S (default 30),
# BENCH_PIN (1: servers on CPU 1, load generator on CPU 0; default 1 when
# there are 2+ CPUs).
set -euo pipefail

MODE=${1:-all}
case $MODE in
registry | facade | facade-view | watch | dns | consul | ui | ha | all) ;;
-h | --help)
    sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [registry|facade|facade-view|watch|dns|consul|ui|ha|all]" >&2
    exit 2
    ;;
esac
want() { [ "$MODE" = all ] || [ "$MODE" = "$1" ]; }

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build-bench
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
CONNS_MANY=${BENCH_CONNS_MANY:-256} # the second POST run (TCP_NODELAY matters there)
N_REG=${BENCH_REGISTRATIONS:-100000}
N_MSG=${BENCH_MESSAGES:-1000}
N_NAMES=1000               # registrations are spread over svc-0 .. svc-999
TTL=600                    # nothing expires during the run
N_POLLS=${BENCH_WATCH_POLLS:-10000}
N_STREAMS=${BENCH_WATCH_STREAMS:-1000}
WATCH_ROUNDS=${BENCH_WATCH_ROUNDS:-5}
WATCH_IDLE_S=10            # the idle CPU window with every watcher parked
N_CHECKS=${BENCH_CHECKS:-1000}
DNS_QPS=${BENCH_DNS_QPS:-60000}
DNS_DURATION=${BENCH_DNS_DURATION:-10}
CONSUL_ROUNDS=${BENCH_CONSUL_ROUNDS:-20}
UI_TABS=${BENCH_UI_TABS:-50}
UI_DURATION=${BENCH_UI_DURATION:-30}
UI_SETTLE=${BENCH_UI_SETTLE:-10}
HA_REG=${BENCH_HA_REGISTRATIONS:-20000}
HA_ROUNDS=${BENCH_HA_ROUNDS:-50}
HA_RENEWS=${BENCH_HA_RENEWS:-10000}
HA_RENEW_S=${BENCH_HA_RENEW_S:-30}

# ---------------------------------------------------------------- setup --

# Install only what is missing, with apt-get, once.
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
need_cmd() { # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || { echo "installing $2 (no $1)"; apt_install "$2"; }
}
need_cmd curl curl
need_cmd pkg-config pkg-config
need_cmd gcc gcc
need_cmd cmake cmake
need_cmd wrk wrk
need_cmd taskset util-linux
need_cmd ss iproute2
need_cmd jq jq
if want dns; then
    need_cmd dnsperf dnsperf
    need_cmd dig dnsutils
    command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] ||
        { echo "installing nsd (the DNS reference)"; apt_install nsd || true; }
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] ||
    { echo "installing nginx-light"; apt_install nginx-light; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
need_pc() { # need_pc PKGCONFIG_NAME PACKAGE
    pkg-config --exists "$1" || { echo "installing $2 (no $1.pc)"; apt_install "$2"; }
}
need_pc libevent libevent-dev
need_pc libcurl libcurl4-openssl-dev
need_pc jansson libjansson-dev
need_pc uuid uuid-dev
need_pc sqlite3 libsqlite3-dev
need_pc cmocka libcmocka-dev
[ -f /usr/include/uthash.h ] || { echo "installing uthash-dev"; apt_install uthash-dev; }

# Temp dir and cleanup of everything started here. PIDS holds the processes
# still running; stop_pid takes a stopped one out, so that the trap never
# signals a pid the system may have given to someone else.
TMP=$(mktemp -d /tmp/svc-bench.XXXXXX)
PIDS=()
ETCD_MEMBERS=() # the ha part's etcd members (its wrapper is in PIDS)
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # bounded wait (6 s: the services drain for up to 5 s) for a clean exit
        for i in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    # etcd members of the ha part outlive their wrapper only if it was
    # killed before it stopped them: those (still running on a data dir in
    # TMP, so surely ours) are killed here.
    for pid in "${ETCD_MEMBERS[@]}"; do
        { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "--data-dir $TMP/" &&
            kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() { # forget_pid PID: take PID out of PIDS
    local p keep=()
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

stop_pid() { # stop_pid PID: SIGTERM and a bounded wait (6 s), then SIGKILL
    local i
    kill "$1" 2>/dev/null || true
    for i in $(seq 60); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

# CPU pinning: on a 2-core box the servers get CPU 1 and the load generator
# CPU 0, the same for nginx and our services, so both compete alike. The
# facade part measures in two layouts (set_layout): "free", its target's
# layout, where nginx's worker, the five services and wrk are all scheduled
# freely on every CPU, and "pinned", shown for information, where all five
# services share CPU 1 as nginx's one worker does.
NPROC=$(nproc)
PIN=${BENCH_PIN:-$([ "$NPROC" -ge 2 ] && echo 1 || echo 0)}
if [ "$PIN" = 1 ]; then
    SRV_PIN=(taskset -c 1)
    GEN_PIN=(taskset -c 0)
else
    SRV_PIN=()
    GEN_PIN=()
fi

# ---------------------------------------------------------------- build --

echo "== building Release executables in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSVC_TESTS=OFF \
    >"$TMP/cmake.log" 2>&1 || { cat "$TMP/cmake.log"; exit 1; }
cmake --build "$BUILD" -j"$NPROC" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }
BUILD_WARNINGS=$(grep -c 'warning:' "$TMP/build.log" || true)
grep 'warning:' "$TMP/build.log" | sed 's/^/   build: /' || true
REGISTRY=$BUILD/bin/registry
LOGGING=$BUILD/bin/logging-service
MESSAGES=$BUILD/bin/messages-service
FACADE=$BUILD/bin/facade-service
for b in "$REGISTRY" "$LOGGING" "$MESSAGES" "$FACADE"; do
    [ -x "$b" ] || { echo "missing $b after the build" >&2; exit 1; }
done
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/regload" "$ROOT/bench/regload.c"
gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I "$ROOT/common" -o "$TMP/storeload" "$ROOT/bench/storeload.c" \
    "$ROOT/registry/store/sqlite.c" "$ROOT/registry/store/memory.c" "$ROOT/common/core/errbuf.c" "$ROOT/common/core/clock.c" \
    $(pkg-config --cflags --libs sqlite3 libevent) -lpthread
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/curlfloor" "$ROOT/bench/curlfloor.c" $(pkg-config --cflags --libs libcurl)
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/watchload" "$ROOT/bench/watchload.c" $(pkg-config --cflags --libs libevent)
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/consulwait" "$ROOT/bench/consulwait.c" $(pkg-config --cflags --libs libevent)
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/etcdload" "$ROOT/bench/etcdload.c"
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/renewload" "$ROOT/bench/renewload.c"

# ------------------------------------------------------------- helpers --

# A TCP port nobody listens on and that this script has not handed out yet
# (bounded tries). Below the kernel's ephemeral range, so that no outgoing
# connection (wrk, the services' clients) can be sitting on it.
PORTS_TAKEN=" "
EPH_LO=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPH_LO" -gt 21000 ] 2>/dev/null || EPH_LO=60000
free_port() {
    local p i
    for i in $(seq 200); do
        p=$((20000 + RANDOM % (EPH_LO - 20000)))
        case $PORTS_TAKEN in *" $p "*) continue ;; esac
        if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            PORTS_TAKEN="$PORTS_TAKEN$p "
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# start_registry NAME DATA [ARGS...]: a registry on an ephemeral port, with
# ARGS added to its options; sets REG_PID and REG_PORT. Info level: the
# "listening on" line is logged at info.
start_registry() {
    local log=$TMP/$1.log i
    "${SRV_PIN[@]}" "$REGISTRY" --port 0 --bind 127.0.0.1 --data "$2" \
        --cleanup-interval 1s --log-level info "${@:3}" 2>"$log" &
    REG_PID=$!
    PIDS+=("$REG_PID")
    REG_PORT=
    for i in $(seq 100); do # up to 10 s
        REG_PORT=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$log" | sed 's/.*://' || true)
        [ -n "$REG_PORT" ] && return 0
        kill -0 "$REG_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "registry $1 did not start:" >&2
    cat "$log" >&2
    return 1
}

# Register one instance of NAME; prints its id.
register_one() { # register_one PORT NAME SVCPORT
    curl -fsS -X POST "http://127.0.0.1:$1/v1/services" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$2\",\"host\":\"127.0.0.1\",\"port\":$3,\"ttl\":$TTL,\"tags\":[\"bench\",\"v1\"],\"metadata\":{\"zone\":\"local\",\"version\":\"1.0.0\"}}" |
        sed -n 's/.*"service_id":"\([^"]*\)".*/\1/p'
}

# set_layout free|pinned: the CPUs of the servers started from now on, of
# the load generator and of the running nginx (master and worker).
set_layout() {
    local cpus p
    if [ "$1" = pinned ] && [ "$PIN" = 1 ]; then
        SRV_PIN=(taskset -c 1)
        GEN_PIN=(taskset -c 0)
        cpus=1
    else
        SRV_PIN=()
        GEN_PIN=()
        cpus=0-$((NPROC - 1))
    fi
    for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); do
        taskset -p -c "$cpus" "$p" >/dev/null
    done
}

# run_wrk LABEL URL [wrk args...]: wrk -t1 -cCONNS -dDURATION --latency;
# sets RPS, P99 (ms) and REQS. Fails if wrk saw errors or non-2xx answers.
run_wrk() {
    local label=$1 url=$2 out=$TMP/wrk-$1.txt
    shift 2
    echo "-- wrk $label: $url"
    "${GEN_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out" 2>&1 || true
    sed 's/^/   /' "$out"
    RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    REQS=$(awk '/ requests in / {print $1}' "$out")
    P99=$(awk '$1 == "99%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
        printf "%.3f", v }' "$out")
    if [ -z "$RPS" ] || [ -z "$P99" ]; then
        echo "wrk $label produced no result" >&2
        return 1
    fi
    if grep -q 'Non-2xx or 3xx responses' "$out" || grep -q '^  Socket errors' "$out"; then
        echo "wrk $label: errors or non-2xx answers (see above); not a valid measurement" >&2
        return 1
    fi
}

fmt() { awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }'; }      # fmt VALUE FORMAT
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }    # a >= b
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }     # a < b
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { r = a / b; printf (r >= 0.1 ? "%.3f" : "%.4f"), r }'; }
# ratio_ge A B T: A / B >= T, on the unrounded values (a printed 0.250 may be 0.2496)
ratio_ge() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { exit !(a / b >= t) }'; }
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
spread3() { # (max - min) / median, in percent
    printf '%s\n' "$@" | sort -g |
        awk 'NR == 1 {lo = $1} NR == 2 {mid = $1} NR == 3 {hi = $1} END {printf "%.0f", 100 * (hi - lo) / mid}'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }        # rss_kb PID
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }     # anon_kb PID
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }      # kB -> MiB
# cpu_ticks PID: utime + stime of PID in clock ticks (after the ")" of the
# command name, utime and stime are the 12th and 13th fields)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
CLK_TCK=$(getconf CLK_TCK)

# --------------------------------------------------------- nginx ceiling --
# A small registry comes first so that nginx can serve a byte-for-byte copy
# of a real discover answer (same size, same Content-Type). The same nginx is
# the ceiling of both parts; each part measures it three times around its
# own runs and takes the median.

BODY= NGINX_PID=
if want registry || want facade || [ "$MODE" = facade-view ]; then
echo "== registry with 10 instances of svc (SQLite)"
start_registry small "$TMP/small.db"
SMALL_PID=$REG_PID
SMALL_PORT=$REG_PORT
for i in $(seq 10); do
    register_one "$SMALL_PORT" svc $((9000 + i)) >/dev/null
done
DISCOVER_URL="http://127.0.0.1:$SMALL_PORT/v1/discover?name=svc"
BODY=$(curl -fsS "$DISCOVER_URL")
echo "   discover answer: ${#BODY} bytes"
# (characters that sed or nginx's return string would interpret)
case $BODY in *"'"* | *'|'* | *'\'* | *'&'* | *'$'*) echo "unexpected characters in the discover answer" >&2; exit 1 ;; esac

echo "== nginx (1 worker, access_log off, fixed 200 of ${#BODY} bytes)"
NGX=$TMP/nginx
mkdir -p "$NGX/logs"
NGINX_PORT=$(free_port)
sed -e "s|@PREFIX@|$NGX|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@BODY@|$BODY|" \
    "$ROOT/bench/nginx.conf.in" >"$NGX/nginx.conf"
"${SRV_PIN[@]}" "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for i in $(seq 100); do # up to 10 s
    curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PORT/" 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NGX/error.log" >&2; exit 1; }
    sleep 0.1
done
NGINX_URL="http://127.0.0.1:$NGINX_PORT/v1/discover?name=svc"
[ "$(curl -fsS "$NGINX_URL")" = "$BODY" ] || { echo "nginx answer differs" >&2; exit 1; }

# nginx_run LABEL: one ceiling run; sets NRPS and NP99.
nginx_run() {
    run_wrk "$1" "$NGINX_URL"
    NRPS=$RPS NP99=$P99
}
fi # the ceiling (not for the watch part alone)

# ====================================================== registry part ====

REG_TABLE=
REG_NOTES=
registry_part() {
    echo "== [registry] 1. nginx fixed 200 (ceiling), run 1 of 3"
    nginx_run nginx-r1
    local n1=$NRPS p1=$NP99 n2 p2 n3 p3

    echo "== [registry] 2. registry discover, 10 instances, SQLite, run 1 of 2"
    run_wrk discover-10a "$DISCOVER_URL"
    local d10a=$RPS d10a99=$P99

    echo "== [registry] 1. nginx fixed 200 (ceiling), run 2 of 3"
    nginx_run nginx-r2
    n2=$NRPS p2=$NP99

    echo "== [registry] 2. registry discover, 10 instances, SQLite, run 2 of 2"
    run_wrk discover-10b "$DISCOVER_URL"
    local d10b=$RPS d10b99=$P99
    stop_pid "$SMALL_PID"

    echo "== [registry] 3. registry with $N_REG instances (SQLite file in $TMP)"
    start_registry big "$TMP/big.db"
    local big_pid=$REG_PID big_port=$REG_PORT ids=$TMP/ids.txt regout count
    echo "-- regload: POST $N_REG registrations, $CONNS in flight"
    regout=$("${GEN_PIN[@]}" "$TMP/regload" "$big_port" "$N_REG" "$CONNS" "$ids" "$N_NAMES" 120) ||
        { echo "regload failed: $regout" >&2; return 1; }
    echo "   $regout"
    local reg_s reg_rps reg_p99
    reg_s=$(sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' <<<"$regout")
    reg_rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$regout")
    reg_p99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$regout")
    count=$(curl -fsS "http://127.0.0.1:$big_port/metrics" |
        awk '/^registry_instances\{health="passing"\}/ {print $2}')
    echo "   passing instances reported by /metrics: $count"
    [ "$count" = "$N_REG" ] || { echo "expected $N_REG passing instances" >&2; return 1; }
    sleep 1 # let the group commit finish
    local rss_mb hwm_mb db_mb
    rss_mb=$(mib "$(rss_kb "$big_pid")")
    hwm_mb=$(mib "$(awk '/^VmHWM:/ {print $2}' "/proc/$big_pid/status")")
    db_mb=$(du -cm "$TMP"/big.db* | awk 'END {print $1}')
    echo "   registry VmRSS ${rss_mb} MiB (peak ${hwm_mb} MiB); SQLite files ${db_mb} MiB"

    run_wrk discover-100k "http://127.0.0.1:$big_port/v1/discover?name=svc-7"
    local dbig=$RPS dbig99=$P99

    IDS_FILE=$ids run_wrk renew-100k "http://127.0.0.1:$big_port" -s "$ROOT/bench/renew.lua"
    local ren=$RPS ren99=$P99
    stop_pid "$big_pid"

    # The store alone (bench/storeload.c): N_REG writes through store.h in
    # loop turns of CONNS writes, each turn waiting for its commit.
    echo "-- storeload: $N_REG store writes, turns of $CONNS, SQLite in $TMP"
    local storeout store_s
    storeout=$("${SRV_PIN[@]}" "$TMP/storeload" sqlite "$TMP" "$N_REG" "$CONNS") ||
        { echo "storeload failed: $storeout" >&2; return 1; }
    echo "   $storeout"
    store_s=$(sed 's/.*write_s=\([0-9.]*\).*/\1/' <<<"$storeout")

    echo "== [registry] 1. nginx fixed 200 (ceiling), run 3 of 3"
    nginx_run nginx-r3
    n3=$NRPS p3=$NP99

    # The reference is the median of the three nginx runs; their spread
    # (max - min over median) says how noisy the machine was. The small
    # discover figure is the mean of its two runs, its p99 the worse one.
    local ngx ngx99 spread d10 d10_99 d10r runs d10runs p99s rows=()
    ngx=$(median3 "$n1" "$n2" "$n3")
    ngx99=$(median3 "$p1" "$p2" "$p3")
    spread=$(spread3 "$n1" "$n2" "$n3")
    d10=$(awk -v a="$d10a" -v b="$d10b" 'BEGIN { printf "%.0f", (a + b) / 2 }')
    d10_99=$(awk -v a="$d10a99" -v b="$d10b99" 'BEGIN { printf "%.3f", (a > b ? a : b) }')
    d10r=$(ratio "$d10" "$ngx")
    runs="$(fmt "$n1" %.0f), $(fmt "$n2" %.0f), $(fmt "$n3" %.0f)"
    d10runs="$(fmt "$d10a" %.0f), $(fmt "$d10b" %.0f)"
    p99s="$(fmt "$p1" %.2f), $(fmt "$p2" %.2f), $(fmt "$p3" %.2f)"

    rows+=("| nginx fixed 200 (ceiling; median of 3 runs: $runs) | $(fmt "$ngx" %.0f) | $(fmt "$ngx99" %.2f) ms (runs: $p99s) | 1.00 | reference | - |")
    rows+=("| discover svc, 10 instances (SQLite; mean of 2 runs: $d10runs) | $d10 | $(fmt "$d10_99" %.2f) ms | $d10r | >= 0.55 x nginx | $(verdict ratio_ge "$d10" "$ngx" 0.55) |")
    rows+=("| register $N_REG (regload, $CONNS in flight): ${reg_s} s | $(fmt "$reg_rps" %.0f) | $(fmt "$reg_p99" %.2f) ms | $(ratio "$reg_rps" "$ngx") | < 10 s | $(verdict lt "$reg_s" 10) |")
    rows+=("| RSS with $N_REG: ${rss_mb} MiB (peak ${hwm_mb} MiB) | - | - | - | < 150 MiB | $(verdict lt "$rss_mb" 150) |")
    rows+=("| discover svc-7 with $N_REG | $(fmt "$dbig" %.0f) | $(fmt "$dbig99" %.2f) ms | $(ratio "$dbig" "$ngx") | p99 < 2 ms | $(verdict lt "$dbig99" 2) |")
    rows+=("| store alone: $N_REG SQLite writes in turns of $CONNS (storeload): ${store_s} s | - | - | - | none | - |")
    rows+=("| renew, cycling $N_REG ids | $(fmt "$ren" %.0f) | $(fmt "$ren99" %.2f) ms | $(ratio "$ren" "$ngx") | >= 30000/s | $(verdict ge "$ren" 30000) |")
    REG_TABLE=$(
        echo "| scenario | requests/s | p99 | ratio to nginx | target | result |"
        echo "| --- | ---: | ---: | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
    REG_NOTES=$(
        cat <<EOF
- ratio = requests/s of the row over the median nginx requests/s of this part
  (nginx ran at the start, between the two small discover runs and at the end:
  $runs req/s, a spread of ${spread}% of the median).
- p99 of "register" is regload's per-request latency; the others are wrk's.
  The p99 targets are absolute, so they are only as good as the machine is
  quiet: nginx's own p99 over its three runs ($p99s ms) shows how much
  the other tenants added during this run.
- every registration body is {"name","host":"127.0.0.1","port","ttl":$TTL} plus
  2 tags and 2 metadata keys, so the discover answer is ${#BODY} bytes.
- RSS is VmRSS from /proc/PID/status about 1 s after the last registration.
- the registry runs with --log-level info because its "listening on" line is
  logged at info (nothing is logged per request at that level).
- register: $regout
- SQLite files after registering: ${db_mb} MiB.
EOF
    )
}

# ======================================================== facade part ====

# start_stack NAME: registry (memory) + 2 logging-service + messages-service
# + facade-service (--replicas 2), all at warn level on ports found free
# here, in TMP/NAME. Waits (bounded) until the registry lists 2 passing
# logging-service and 1 messages-service, and the facade's GET /facade
# answers with a "message" string (its discovery refreshes every second).
# Sets STK_DIR, STK_FACADE (base URL), STK_NAMES[], STK_PIDS[], STK_PORTS[].
start_stack() {
    local name=$1 dir=$TMP/$1 rp lp1 lp2 mp fp reg i n ok=0
    mkdir -p "$dir/data"
    rp=$(free_port) lp1=$(free_port) lp2=$(free_port) mp=$(free_port) fp=$(free_port)
    reg=http://127.0.0.1:$rp
    STK_DIR=$dir
    STK_NAMES=(registry logging-1 logging-2 messages facade)
    STK_PORTS=("$rp" "$lp1" "$lp2" "$mp" "$fp")
    STK_PIDS=()
    STK_FACADE=http://127.0.0.1:$fp
    echo "-- stack $name: registry :$rp, logging :$lp1 :$lp2, messages :$mp, facade :$fp"
    (cd "$dir" && exec "${SRV_PIN[@]}" "$REGISTRY" --port "$rp" --bind 127.0.0.1 \
        --backend memory --log-level warn 2>"$dir/registry.log") &
    STK_PIDS+=($!)
    PIDS+=($!)
    for i in $(seq 100); do # up to 10 s
        curl -fsS -o /dev/null "$reg/health" 2>/dev/null && break
        sleep 0.1
    done
    (cd "$dir" && exec "${SRV_PIN[@]}" "$LOGGING" --port "$lp1" --bind 127.0.0.1 --registry "$reg" \
        --data-dir "$dir/data" --log-level warn 2>"$dir/logging-1.log") &
    STK_PIDS+=($!)
    PIDS+=($!)
    (cd "$dir" && exec "${SRV_PIN[@]}" "$LOGGING" --port "$lp2" --bind 127.0.0.1 --registry "$reg" \
        --data-dir "$dir/data" --log-level warn 2>"$dir/logging-2.log") &
    STK_PIDS+=($!)
    PIDS+=($!)
    (cd "$dir" && exec "${SRV_PIN[@]}" "$MESSAGES" --port "$mp" --bind 127.0.0.1 --registry "$reg" \
        --log-level warn 2>"$dir/messages.log") &
    STK_PIDS+=($!)
    PIDS+=($!)
    (cd "$dir" && exec "${SRV_PIN[@]}" "$FACADE" --port "$fp" --bind 127.0.0.1 --registry "$reg" \
        --replicas 2 --log-level warn 2>"$dir/facade.log") &
    STK_PIDS+=($!)
    PIDS+=($!)
    for i in $(seq 200); do # up to 20 s
        for n in "${!STK_PIDS[@]}"; do
            kill -0 "${STK_PIDS[$n]}" 2>/dev/null ||
                { echo "${STK_NAMES[$n]} of stack $name exited:" >&2; tail -n 20 "$dir/${STK_NAMES[$n]}.log" >&2; return 1; }
        done
        if [ "$(curl -fsS "$reg/v1/services?name=logging-service&health=passing" 2>/dev/null |
            jq '.services | length' 2>/dev/null)" = 2 ] &&
            [ "$(curl -fsS "$reg/v1/services?name=messages-service&health=passing" 2>/dev/null |
                jq '.services | length' 2>/dev/null)" = 1 ] &&
            curl -fsS --max-time 2 "$STK_FACADE/facade" 2>/dev/null |
            jq -e '.message | type == "string"' >/dev/null 2>&1; then
            ok=1
            break
        fi
        sleep 0.1
    done
    if [ "$ok" != 1 ]; then
        echo "stack $name not ready after 20 s" >&2
        tail -n 5 "$dir"/*.log >&2
        return 1
    fi
    # GET /facade already answers with the messages-service's text; give
    # the facade's discovery (refreshed every second) one more refresh so
    # that it knows both logging instances, not only the first registered.
    sleep 1.5
    echo "   ready: $(curl -fsS "$STK_FACADE/facade")"
}

stop_stack() { # facade first, so that nothing it sends is refused
    local n
    for n in 4 3 2 1 0; do
        stop_pid "${STK_PIDS[$n]}"
    done
}

# stack_rss VAR: VAR[i] = "VmRSS_kB RssAnon_kB" of every service of the stack.
stack_rss() {
    local -n out=$1
    local p
    out=()
    for p in "${STK_PIDS[@]}"; do
        out+=("$(rss_kb "$p") $(anon_kb "$p")")
    done
}

# curl_floor_rss LEVEL: "VmRSS_kB RssAnon_kB" of bench/curlfloor.c at LEVEL
# (2: libcurl initialised and one multi handle, nothing else).
curl_floor_rss() {
    local fifo=$TMP/curlfloor.out pid line rss
    rm -f "$fifo"
    mkfifo "$fifo"
    "$TMP/curlfloor" "$1" >"$fifo" &
    pid=$!
    PIDS+=("$pid")
    read -r -t 10 line <"$fifo" || true
    [ "$line" = ready ] || { echo "curlfloor did not start" >&2; return 1; }
    rss="$(rss_kb "$pid") $(anon_kb "$pid")"
    stop_pid "$pid"
    echo "$rss"
}

# logging_stored PORT: logging_messages_stored of one logging-service.
logging_stored() {
    curl -fsS "http://127.0.0.1:$1/metrics" | awk '$1 == "logging_messages_stored" {print $2}'
}

FAC_TABLE=
FAC_RSS_TABLE=
FAC_NOTES=
facade_part() {
    local n1 n2 n3 p1 p2 p3 i
    # The small registry only fed nginx its body when the registry part
    # does not run.
    if kill -0 "$SMALL_PID" 2>/dev/null; then stop_pid "$SMALL_PID"; fi

    set_layout free
    echo "== [facade] layout free: nginx, the services and wrk on any CPU"
    echo "== [facade] 1. nginx fixed 200 (ceiling), run 1 of 3"
    nginx_run nginx-f1
    n1=$NRPS p1=$NP99

    echo "== [facade] 2. POST /facade (stack A: fresh, nothing stored)"
    start_stack A
    local rss_idle_a=() rss_post=() post_names=("${STK_NAMES[@]}") floor
    sleep 1
    stack_rss rss_idle_a
    floor=$(curl_floor_rss 2)
    run_wrk facade-post "$STK_FACADE/facade" -s "$ROOT/bench/facade_post.lua"
    local post=$RPS post99=$P99 post_reqs=$REQS
    sleep 1 # let the last batches and the journal's everysec sync settle
    stack_rss rss_post
    local st1 st2
    st1=$(logging_stored "${STK_PORTS[1]}")
    st2=$(logging_stored "${STK_PORTS[2]}")
    echo "   wrk completed $post_reqs POSTs (all 2xx); logging_messages_stored: $st1, $st2"
    # Every 200 means stored on both replicas; wrk may have a few requests
    # in flight at the deadline whose answers it never counts, hence >=.
    if ! ge "$st1" "$post_reqs" || ! ge "$st2" "$post_reqs"; then
        echo "a logging-service stored fewer messages than the POSTs answered 200" >&2
        return 1
    fi
    local post_upstreams
    post_upstreams=$(curl -fsS "$STK_FACADE/stats" |
        jq -r '[.upstreams[] | select(.service == "logging-service") |
                "\(.instance): \(.total_requests) batch POSTs, \(.failure_requests) failed, \(.retries) retries, mean \(.mean_latency_ms * 100 | round / 100) ms"] | join("; ")')
    echo "   facade upstreams: $post_upstreams"
    # Many connections: answers of one batch leave in one turn, so a socket
    # without TCP_NODELAY would hold their tails for the peer's delayed ACK.
    echo "== [facade] 2b. POST /facade at $CONNS_MANY connections (stack A)"
    CONNS=$CONNS_MANY run_wrk facade-post-many "$STK_FACADE/facade" -s "$ROOT/bench/facade_post.lua"
    local post_many=$RPS post_many99=$P99
    stop_stack
    echo "== [facade] 1b. nginx fixed 200 at $CONNS_MANY connections"
    CONNS=$CONNS_MANY nginx_run nginx-many
    local ngx_many=$NRPS ngx_many99=$NP99

    echo "== [facade] 1. nginx fixed 200 (ceiling), run 2 of 3"
    nginx_run nginx-f2
    n2=$NRPS p2=$NP99

    echo "== [facade] 3. GET /facade with $N_MSG stored messages (stack B: fresh)"
    start_stack B
    local rss_idle_b=() rss_get=() cfg=$STK_DIR/seed.curl codes ok200 len1 len2 nlogs
    # One curl process, one keep-alive connection, N_MSG sequential POSTs.
    for i in $(seq "$N_MSG"); do
        printf 'url = "%s/facade"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "{\\"msg\\":\\"seed message %05d\\"}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 15\n' \
            "$STK_FACADE" "$i"
        [ "$i" = "$N_MSG" ] || echo next
    done >"$cfg"
    echo "-- seeding: $N_MSG x POST /facade with curl -K (one connection)"
    codes=$(curl -sS -K "$cfg" || true)
    ok200=$(grep -c '^200$' <<<"$codes" || true)
    [ "$ok200" = "$N_MSG" ] || { echo "seeding: $ok200 of $N_MSG POSTs answered 200" >&2; return 1; }
    len1=$(logging_stored "${STK_PORTS[1]}")
    len2=$(logging_stored "${STK_PORTS[2]}")
    nlogs=$(curl -fsS "$STK_FACADE/facade" | jq '.logs | length')
    echo "   stored: logging-1 $len1, logging-2 $len2; GET /facade returns $nlogs logs"
    if [ "$len1" != "$N_MSG" ] || [ "$len2" != "$N_MSG" ] || [ "$nlogs" != "$N_MSG" ]; then
        echo "expected exactly $N_MSG messages everywhere" >&2
        return 1
    fi
    local get_bytes
    get_bytes=$(curl -fsS -o /dev/null -w '%{size_download}' "$STK_FACADE/facade")
    sleep 1
    stack_rss rss_idle_b
    run_wrk facade-get "$STK_FACADE/facade"
    local get=$RPS get99=$P99
    nlogs=$(curl -fsS "$STK_FACADE/facade" | jq '.logs | length')
    [ "$nlogs" = "$N_MSG" ] || { echo "after the GET run: $nlogs logs, expected $N_MSG" >&2; return 1; }
    stack_rss rss_get
    stop_stack

    echo "== [facade] 1. nginx fixed 200 (ceiling), run 3 of 3"
    nginx_run nginx-f3
    n3=$NRPS p3=$NP99

    # The same POST run with the whole stack on one CPU, for information.
    local pin_rows=() pn1 pn2 pngx ppost ppost99 ppost_reqs
    if [ "$PIN" = 1 ]; then
        set_layout pinned
        echo "== [facade] layout pinned: nginx's worker, or all five services, on CPU 1; wrk on CPU 0"
        echo "== [facade] 4. nginx fixed 200 (ceiling, pinned), run 1 of 2"
        nginx_run nginx-p1
        pn1=$NRPS
        echo "== [facade] 5. POST /facade (stack C: fresh, pinned)"
        start_stack C
        run_wrk facade-post-pinned "$STK_FACADE/facade" -s "$ROOT/bench/facade_post.lua"
        ppost=$RPS ppost99=$P99 ppost_reqs=$REQS
        stop_stack
        echo "== [facade] 4. nginx fixed 200 (ceiling, pinned), run 2 of 2"
        nginx_run nginx-p2
        pn2=$NRPS
        pngx=$(awk -v a="$pn1" -v b="$pn2" 'BEGIN { printf "%.0f", (a + b) / 2 }')
        pin_rows+=("| nginx fixed 200, pinned layout (worker on CPU 1; mean of 2 runs: $(fmt "$pn1" %.0f), $(fmt "$pn2" %.0f)) | $pngx | - | 1.00 | reference for the next row | - |")
        pin_rows+=("| POST /facade, pinned layout (all five services on CPU 1; $ppost_reqs POSTs) | $(fmt "$ppost" %.0f) | $(fmt "$ppost99" %.2f) ms | $(ratio "$ppost" "$pngx") | none (information) | - |")
        set_layout free
    fi

    local ngx ngx99 spread runs p99s post_r get_r rows=() rrows=() k a b c d
    ngx=$(median3 "$n1" "$n2" "$n3")
    ngx99=$(median3 "$p1" "$p2" "$p3")
    spread=$(spread3 "$n1" "$n2" "$n3")
    runs="$(fmt "$n1" %.0f), $(fmt "$n2" %.0f), $(fmt "$n3" %.0f)"
    p99s="$(fmt "$p1" %.2f), $(fmt "$p2" %.2f), $(fmt "$p3" %.2f)"
    post_r=$(ratio "$post" "$ngx")
    get_r=$(ratio "$get" "$ngx")
    rows+=("| nginx fixed 200 (ceiling, free layout; median of 3 runs: $runs) | $(fmt "$ngx" %.0f) | $(fmt "$ngx99" %.2f) ms (runs: $p99s) | 1.00 | reference | - |")
    rows+=("| POST /facade {\"msg\"} 66 B, --replicas 2 | $(fmt "$post" %.0f) | $(fmt "$post99" %.2f) ms | $post_r | >= 0.25 x nginx | $(verdict ratio_ge "$post" "$ngx" 0.25) |")
    rows+=("| POST /facade p99 | - | $(fmt "$post99" %.2f) ms | - | p99 < 10 ms | $(verdict lt "$post99" 10) |")
    rows+=("| nginx fixed 200, $CONNS_MANY connections | $(fmt "$ngx_many" %.0f) | $(fmt "$ngx_many99" %.2f) ms | 1.00 | reference for the next row | - |")
    rows+=("| POST /facade, $CONNS_MANY connections | $(fmt "$post_many" %.0f) | $(fmt "$post_many99" %.2f) ms | $(ratio "$post_many" "$ngx_many") | >= 0.25 x nginx at $CONNS_MANY | $(verdict ratio_ge "$post_many" "$ngx_many" 0.25) |")
    rows+=("| GET /facade, $N_MSG messages ($get_bytes B answer) | $(fmt "$get" %.0f) | $(fmt "$get99" %.2f) ms | $get_r | none | - |")
    rows+=("${pin_rows[@]}")
    FAC_TABLE=$(
        echo "| scenario | requests/s | p99 | ratio to nginx | target | result |"
        echo "| --- | ---: | ---: | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
    cell() { # cell "RSS ANON": "10.4 (anon 1.4)"
        set -- $1
        echo "$(mib "$1") (anon $(mib "$2"))"
    }
    for k in "${!post_names[@]}"; do
        a=${rss_idle_a[$k]%% *}
        b=${rss_idle_b[$k]%% *}
        c=$a
        [ "$b" -gt "$c" ] && c=$b
        d=$(mib "$c")
        rrows+=("| ${post_names[$k]} | $(cell "${rss_idle_a[$k]}") | $(cell "${rss_post[$k]}") | $(cell "${rss_idle_b[$k]}") | $(cell "${rss_get[$k]}") | idle < 8 MiB | $(verdict lt "$d" 8) |")
    done
    rrows+=("| bench/curlfloor.c: a program that only initialises libcurl and makes a multi handle | $(cell "$floor") | - | - | - | reference | - |")
    FAC_RSS_TABLE=$(
        echo "| service | idle, stack A (MiB) | after POST load | idle, stack B with $N_MSG msgs | after GET load | target | result |"
        echo "| --- | ---: | ---: | ---: | ---: | --- | --- |"
        printf '%s\n' "${rrows[@]}"
    )
    FAC_NOTES=$(
        cat <<EOF
- ratio = requests/s of the row over the median nginx requests/s of this part
  (nginx ran before stack A, between the stacks and after stack B:
  $runs req/s, a spread of ${spread}% of the median; nginx p99s $p99s ms).
- layouts: the target rows ran in the free layout: nginx's one worker, or
  the five services of a stack, and wrk all scheduled freely on the
  $NPROC CPUs, the same for both. A POST costs the facade, two
  logging-service instances (each writing its journal in TMP/<stack>/data,
  fsync everysec) and the loopback traffic between them. The pinned rows
  (when there are 2+ CPUs) put all five services on CPU 1, as nginx's worker,
  and wrk on CPU 0: a stricter comparison, shown for information.
- POST: wrk completed $post_reqs POSTs, all 200; afterwards each
  logging-service reported logging_messages_stored $st1 and $st2 (>= the
  POSTs: each 200 means stored on both replicas; a few more were in flight at
  wrk's deadline). The facade batched them: $post_upstreams.
- GET: stack B was fresh and seeded with exactly $N_MSG POSTs (one curl -K
  process, all 200); both logging-service instances then reported $N_MSG
  messages and GET /facade returned $N_MSG logs (also after the load run).
  Each GET fans out to both logging instances (each answering all $N_MSG
  messages) and one messages-service, merges by uuid and sorts.
- RSS: VmRSS from /proc/PID/status, with RssAnon (heap, stacks) in
  parentheses; the rest is file-backed (shared libraries). "idle" is taken
  1 s after the stack is ready (a few GET /facade polls) and, for stack B,
  after seeding. The target is checked on the larger of the two idle values.
  After the POST run each logging-service holds every message in memory.
- the last RSS row is the floor that Debian's libcurl sets: a program that
  does nothing but curl_global_init and curl_multi_init (bench/curlfloor.c)
  is already above 8 MiB, almost all of it the shared libraries libcurl
  pulls in (libcrypto, gnutls, krb5, ldap, ssh2...). The three services
  that make HTTP calls through libcurl (the project's rule for outgoing
  HTTP) sit about 1 MiB above that floor; the registry, which makes none,
  is far below the target.
EOF
    )
}

# ============================================ facade GET view part ====
# GET /facade served from the facade's merged view (facade-service/fanout.c):
# the logging instances of a fresh stack are seeded directly with batch
# POST /logging (the same uuids, msgs and ts on both, as the replicator
# would store them), then: with 10,000 messages, GET /facade against nginx
# serving a static file of the very same answer (target >= 0.3 x); with
# 1,000,000 messages, the answer served complete (every message) and the
# facade's RSS against the data (target under 3 x).

# seed_logging COUNT PORT...: COUNT messages stored on every PORT in
# batches of 1024 ("seed message NNNNNNN", ts rising 1 ms per 100).
seed_logging() {
    python3 - "$@" <<'PYEOF'
import http.client, json, sys, time, uuid
n, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=60) for p in ports]
base, i = int(time.time() * 1000) - n // 100 - 1000, 0
while i < n:
    k = min(1024, n - i)
    body = json.dumps([{"uuid": str(uuid.uuid4()), "msg": "seed message %07d" % (i + j),
                        "ts": base + (i + j) // 100} for j in range(k)])
    for c in conns:
        c.request("POST", "/logging", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("POST /logging: HTTP %d" % r.status)
    i += k
PYEOF
}

# static_nginx DIR: a second nginx (1 worker) serving DIR's files; sets
# SNGX_PID and SNGX_URL (base).
static_nginx() {
    local d=$1 port i
    port=$(free_port)
    mkdir -p "$d/logs" "$d/www"
    cat >"$d/nginx.conf" <<NGXEOF
daemon off;
master_process on;
worker_processes 1;
user $(id -un) $(id -gn); # the worker must read TMP (mode 700); ignored when not root
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    sendfile on;
    client_body_temp_path $d/cb; proxy_temp_path $d/px; fastcgi_temp_path $d/fc;
    uwsgi_temp_path $d/uw; scgi_temp_path $d/sc;
    server { listen 127.0.0.1:$port; location / { root $d/www; default_type application/json; } }
}
NGXEOF
    "${SRV_PIN[@]}" "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    SNGX_PID=$!
    PIDS+=("$SNGX_PID")
    SNGX_URL=http://127.0.0.1:$port
    for i in $(seq 100); do
        curl -fsS -o /dev/null "$SNGX_URL/" 2>/dev/null && return 0
        curl -sS -o /dev/null "$SNGX_URL/" 2>/dev/null && return 0 # 403/404: up
        sleep 0.1
    done
    echo "static nginx did not start" >&2
    return 1
}

FAC_VIEW_TABLE=
facade_view_part() {
    local rows=() n t0 t1 bytes nlogs rss data fac_rps ngx_rps sync_s d
    set_layout free
    echo "== [facade view] 1. GET /facade with 10000 messages vs nginx serving the same bytes"
    start_stack V1
    d=$STK_DIR
    seed_logging 10000 "${STK_PORTS[1]}" "${STK_PORTS[2]}"
    curl -fsS -o "$d/get.json" "$STK_FACADE/facade"
    nlogs=$(jq '.logs | length' "$d/get.json")
    bytes=$(stat -c %s "$d/get.json")
    [ "$nlogs" = 10000 ] || { echo "GET /facade returned $nlogs logs, expected 10000" >&2; return 1; }
    static_nginx "$d/ngx"
    cp "$d/get.json" "$d/ngx/www/facade.json"
    run_wrk view-nginx-static "$SNGX_URL/facade.json"
    ngx_rps=$RPS
    run_wrk view-facade-get "$STK_FACADE/facade"
    fac_rps=$RPS
    local fac99=$P99
    stop_pid "$SNGX_PID"
    stop_stack
    rows+=("| nginx static file of the same answer ($bytes B) | $(fmt "$ngx_rps" %.0f) | 1.00 | reference | - |")
    rows+=("| GET /facade, 10,000 messages (p99 $(fmt "$fac99" %.2f) ms) | $(fmt "$fac_rps" %.0f) | $(ratio "$fac_rps" "$ngx_rps") | >= 0.3 x | $(verdict ratio_ge "$fac_rps" "$ngx_rps" 0.3) |")

    echo "== [facade view] 2. 1,000,000 messages served complete; facade RSS"
    start_stack V2
    d=$STK_DIR
    n=1000000
    t0=$(date +%s.%N)
    seed_logging "$n" "${STK_PORTS[1]}" "${STK_PORTS[2]}"
    t1=$(date +%s.%N)
    echo "   seeded $n messages on both logging instances in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
    curl -fsS -o "$d/logging.json" "http://127.0.0.1:${STK_PORTS[1]}/logging"
    data=$(stat -c %s "$d/logging.json")
    rm -f "$d/logging.json"
    t0=$(date +%s.%N)
    curl -fsS --max-time 120 -o "$d/get.json" "$STK_FACADE/facade"
    t1=$(date +%s.%N)
    sync_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
    nlogs=$(jq '.logs | length' "$d/get.json")
    bytes=$(stat -c %s "$d/get.json")
    [ "$nlogs" = "$n" ] || { echo "GET /facade returned $nlogs logs, expected $n" >&2; return 1; }
    t0=$(date +%s.%N)
    curl -fsS --max-time 120 -o "$d/get2.json" "$STK_FACADE/facade"
    t1=$(date +%s.%N)
    cmp -s "$d/get.json" "$d/get2.json" || { echo "a second GET answered other bytes" >&2; return 1; }
    rm -f "$d/get.json" "$d/get2.json"
    rss=$(rss_kb "${STK_PIDS[4]}")
    stop_stack
    rows+=("| 1,000,000 messages: first GET /facade (full sync in pages), $bytes B answer, all $nlogs logs | ${sync_s} s | - | none | - |")
    rows+=("| 1,000,000 messages: next GET /facade (nothing new) | $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s | - | none | - |")
    rows+=("| facade RSS with 1,000,000 messages: $(mib "$rss") MiB; data (one instance's GET /logging) $(mib $((data / 1024))) MiB | $(awk -v r="$rss" -v d="$data" 'BEGIN{printf "%.2f", r*1024/d}') x data | - | < 3 x data | $(verdict lt "$(awk -v r="$rss" -v d="$data" 'BEGIN{print r*1024/d}')" 3) |")
    rows+=("| the same RSS against the GET /facade answer itself ($(mib $((bytes / 1024))) MiB) | $(awk -v r="$rss" -v d="$bytes" 'BEGIN{printf "%.2f", r*1024/d}') x answer | - | information | - |")
    FAC_VIEW_TABLE=$(
        echo "| scenario | requests/s or time | ratio to nginx | target | result |"
        echo "| --- | ---: | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
    echo "$FAC_VIEW_TABLE"
}

# ========================================================= watch part ====

# The registry's watchers (bench/watchload.c) on a registry of their own,
# then the check load on another fresh one. The targets are absolute (no
# ceiling): RSS and CPU of the registry, latency of a change.
WATCH_TABLE=
WATCH_NOTES=
watch_part() {
    local need=$((N_POLLS + N_STREAMS + 1000)) out line rss0 rss1 extra idle med max rows=()
    # the registry part's layout (the facade part may have left the free one)
    if [ "$PIN" = 1 ]; then
        SRV_PIN=(taskset -c 1)
        GEN_PIN=(taskset -c 0)
    fi
    # every watcher is a descriptor, in watchload and in the registry
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
        echo "watch: RLIMIT_NOFILE is $(ulimit -n) (hard $(ulimit -Hn)); $need are needed" >&2
        return 1
    fi
    echo "== [watch] 1. registry (SQLite), $N_POLLS long-polls + $N_STREAMS streams (watchload)"
    start_registry watch "$TMP/watch.db" --max-connections "$need"
    local w_pid=$REG_PID w_port=$REG_PORT
    # ?index=0 asks for the index only: the index must be above 0 first
    register_one "$w_port" bench-seed 9000 >/dev/null
    out=$("${GEN_PIN[@]}" "$TMP/watchload" "$w_port" "$w_pid" "$N_POLLS" "$N_STREAMS" \
        "$WATCH_ROUNDS" "$WATCH_IDLE_S" 180) || {
        echo "watchload failed:" >&2
        echo "$out" >&2
        tail -n 5 "$TMP/watch.log" >&2
        return 1
    }
    sed 's/^/   /' <<<"$out"
    stop_pid "$w_pid"
    line=$(tail -n 1 <<<"$out")
    field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    rss0=$(field rss_before_kb) rss1=$(field rss_parked_kb) extra=$(field extra_mib)
    idle=$(field idle_cpu_pct) med=$(fmt "$(field lat_median_ms)" %.1f) max=$(fmt "$(field lat_max_ms)" %.1f)
    rows+=("| extra RSS with $N_POLLS long-polls + $N_STREAMS streams parked: $(mib "$rss0") -> $(mib "$rss1") MiB | $extra MiB | < 100 MB for the $N_POLLS | $(verdict lt "$extra" 95.4) |")
    rows+=("| registry CPU over ${WATCH_IDLE_S} s with them parked | $idle % of one core | < 1 % | $(verdict lt "$idle" 1) |")
    rows+=("| one registration -> the last of the $((N_POLLS + N_STREAMS)) has it ($WATCH_ROUNDS rounds) | median $med ms, max $max ms | < 200 ms | $(verdict lt "$max" 200) |")
    # The floor of that latency on this machine: one HTTP answer per
    # watcher. nginx (the ceiling, when it runs: the "all" mode) answering
    # small requests over 256 connections (over 1,000 its keep-alive
    # connections are closed under wrk, which counts read errors), in the
    # same run, gives the time of as many answers on one core.
    if [ -n "${NGINX_URL:-}" ]; then
        local saved=$CONNS floor
        CONNS=256
        set_layout pinned
        run_wrk watch-floor "$NGINX_URL"
        CONNS=$saved
        floor=$(awk -v n="$((N_POLLS + N_STREAMS))" -v r="$RPS" 'BEGIN { printf "%.1f", 1000 * n / r }')
        rows+=("| reference: nginx answering $((N_POLLS + N_STREAMS)) requests at $(fmt "$RPS" %.0f)/s (256 connections, same run) | $floor ms | - | latency max / this: $(ratio "$max" "$floor") |")
    fi

    echo "== [watch] 2. registry (SQLite), $N_CHECKS instances with an HTTP check every 1 s"
    start_registry checks "$TMP/checks.db"
    local c_pid=$REG_PID c_port=$REG_PORT tport ngx=$TMP/nginx-health code cfg=$TMP/checks.curl i ok
    local t0 t1 cpu hits0 hits1 rate
    tport=$(free_port)
    mkdir -p "$ngx/logs"
    sed -e "s|@PREFIX@|$ngx|g" -e "s|@PORT@|$tport|g" -e 's|@BODY@|{"status":"ok"}|' \
        -e 's|worker_connections 1024|worker_connections 4096|' \
        -e "s|access_log off;|access_log $ngx/access.log;|" \
        "$ROOT/bench/nginx.conf.in" >"$ngx/nginx.conf"
    # the check target on the load generator's CPU, away from the registry's
    "${GEN_PIN[@]}" "$NGINX" -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" &
    local h_pid=$!
    PIDS+=("$h_pid")
    for i in $(seq 100); do # up to 10 s
        curl -fsS -o /dev/null "http://127.0.0.1:$tport/health" 2>/dev/null && break
        kill -0 "$h_pid" 2>/dev/null || { cat "$ngx/error.log" >&2; return 1; }
        sleep 0.1
    done
    check_body() { # check_body I: instance I with its HTTP check
        printf '{"name":"chk-%d","host":"127.0.0.1","port":%d,"check":{"http":"http://127.0.0.1:%d/health","interval":"1s","timeout":"1s"}}' \
            $(($1 % 100)) $((10000 + $1)) "$tport"
    }
    code=$(curl -sS -o "$TMP/check-first.json" -w '%{http_code}' --max-time 5 -X POST \
        "http://127.0.0.1:$c_port/v1/services" -H 'Content-Type: application/json' -d "$(check_body 0)")
    if [ "$code" = 400 ]; then
        echo "checks: not supported by this registry build ($(cat "$TMP/check-first.json"))"
        rows+=("| registry CPU with $N_CHECKS HTTP checks at 1 s | not supported by this registry build | < 10 % | - |")
    elif [ "$code" != 201 ]; then
        echo "checks: the first registration with a check was answered $code: $(cat "$TMP/check-first.json")" >&2
        return 1
    else
        for i in $(seq 1 $((N_CHECKS - 1))); do
            printf 'url = "http://127.0.0.1:%s/v1/services"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 15\n' \
                "$c_port" "$(check_body "$i" | sed 's/"/\\"/g')"
            [ "$i" = $((N_CHECKS - 1)) ] || echo next
        done >"$cfg"
        ok=$(curl -sS -K "$cfg" | grep -c '^201$' || true)
        [ "$ok" = $((N_CHECKS - 1)) ] ||
            { echo "checks: $ok of $((N_CHECKS - 1)) registrations answered 201" >&2; return 1; }
        echo "   $N_CHECKS registered; 5 s to a steady state, then CPU over 10 s"
        sleep 5
        # a build that takes "check" without running it (an unknown member
        # ignored) answers 201 too: the target's access log tells
        hits0=$(wc -l <"$ngx/access.log")
        t0=$(cpu_ticks "$c_pid")
        sleep 10
        t1=$(cpu_ticks "$c_pid")
        hits1=$(wc -l <"$ngx/access.log")
        cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", 100 * (b - a) / hz / 10 }')
        rate=$(awk -v a="$hits0" -v b="$hits1" 'BEGIN { printf "%.0f", (b - a) / 10 }')
        if [ "$((hits1 - hits0))" = 0 ]; then
            echo "checks: not supported by this registry build (registrations with a check are accepted, but no check reached the target)"
            rows+=("| registry CPU with $N_CHECKS HTTP checks at 1 s | not supported by this registry build (no check ran) | < 10 % | - |")
        else
            echo "   registry CPU: $cpu % of one core; the target saw $rate checks/s"
            rows+=("| registry CPU with $N_CHECKS HTTP checks at 1 s (nginx /health on the other CPU: $rate checks/s seen), over 10 s | $cpu % of one core | < 10 % | $(verdict lt "$cpu" 10) |")
        fi
    fi
    stop_pid "$c_pid"
    stop_pid "$h_pid"
    WATCH_TABLE=$(
        echo "| scenario | figure | target | result |"
        echo "| --- | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
    WATCH_NOTES=$(
        cat <<NOTES
- watchload opens the connections $((200)) every 20 ms, then reads /metrics
  until registry_watchers = $((N_POLLS + N_STREAMS)); RSS is VmRSS before
  the first connection and once all are parked (100 MB = 95.4 MiB).
- CPU is utime + stime of /proc/PID/stat over the window (clock ticks of
  1/$CLK_TCK s).
- latency: CLOCK_MONOTONIC from just before the POST is written to the last
  long-poll answer complete (200, X-Registry-Index = the new index) or SSE
  frame "id: <new index>" read; the registration is committed to SQLite
  before its event. After each round every long-poll is sent again on its
  keep-alive connection and parked before the next.
- the rounds (ms after the POST; post_201 "later": the registration's own
  answer came after the last watcher's; CPU of the registry and of watchload
  during the round, to tell whose time the latency is):
$(sed -n 's/^round=/  - round /p' <<<"$out")
- idle CPU has the resolution of one tick over the window (0.1 % over 10 s).
NOTES
    )
}

# ------------------------------------------------------------------ dns --

DNS_TABLE=
DNS_NOTES=

# A port free for UDP and TCP (see free_port).
free_dns_port() {
    local p i
    for i in $(seq 50); do
        p=$(free_port)
        if ! ss -Huln "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    echo "no free UDP+TCP port found" >&2
    return 1
}

# run_dnsperf LABEL PORT: dnsperf at DNS_QPS for DNS_DURATION s over the
# query file; sets DQPS (answered per second), DSENT, DLOST, DNOERR.
run_dnsperf() {
    local out=$TMP/dnsperf-$1.txt
    echo "-- dnsperf $1: 127.0.0.1:$2, $DNS_QPS q/s for $DNS_DURATION s"
    "${GEN_PIN[@]}" dnsperf -s 127.0.0.1 -p "$2" -d "$TMP/dns-queries.txt" -l "$DNS_DURATION" \
        -Q "$DNS_QPS" -q 500 -t 2 -b 4096 >"$out" 2>&1 || true
    sed -n '/Statistics:/,$p' "$out" | sed 's/^/   /'
    DSENT=$(awk '/Queries sent:/ {print $3}' "$out")
    DLOST=$(awk '/Queries lost:/ {print $3}' "$out")
    DQPS=$(awk '/Queries per second:/ {print $4}' "$out")
    DNOERR=$(grep -o 'NOERROR [0-9]*' "$out" | awk '{print $2}' || true)
    if [ -z "$DQPS" ] || [ -z "$DSENT" ]; then
        echo "dnsperf $1 produced no result:" >&2
        cat "$out" >&2
        return 1
    fi
}

# nsd_zone DIR PORT: the zone and configuration of the reference server.
nsd_zone() {
    local i
    {
        printf '$ORIGIN consul.\n$TTL 0\n@ IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 0\n'
        printf '@ IN NS ns.consul.\nns IN A 127.0.0.1\n'
        for i in $(seq 0 $((N_NAMES - 1))); do
            echo "svc-$i.service IN A 10.0.$((i / 250)).$((i % 250 + 1))"
        done
    } >"$1/consul.zone"
    cat >"$1/nsd.conf" <<NSDEOF
server:
    ip-address: 127.0.0.1
    port: $2
    username: ""
    chroot: ""
    zonesdir: "$1"
    pidfile: "$1/nsd.pid"
    database: ""
    zonelistfile: "$1/zone.list"
    xfrdfile: "$1/xfrd.state"
    xfrdir: "$1"
    logfile: "$1/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: consul.
    zonefile: consul.zone
NSDEOF
}

# dig_is PORT NAME WANT: whether PORT answers NAME A with WANT.
dig_is() {
    [ "$(dig @127.0.0.1 -p "$1" +short +tries=1 +timeout=1 "$2" 2>/dev/null)" = "$3" ]
}

dns_part() {
    local d_port n_port cfg=$TMP/dns-reg.curl ok i r_qps r_lost r_sent n_qps= n_lost= rows=()
    local nsd_bin nsd_pid ratio_s verdict_s
    if [ "$PIN" = 1 ]; then
        SRV_PIN=(taskset -c 1)
        GEN_PIN=(taskset -c 0)
    fi
    for i in $(seq 0 $((N_NAMES - 1))); do
        echo "svc-$i.service.consul A"
    done >"$TMP/dns-queries.txt"
    echo "== [dns] 1. registry (memory), $N_NAMES services, dnsperf A queries at $DNS_QPS q/s"
    d_port=$(free_dns_port)
    start_registry dns "$TMP/dns.db" --backend memory --dns-port "$d_port"
    local r_pid=$REG_PID r_port=$REG_PORT
    for i in $(seq 20); do
        grep -q "dns listening on 127.0.0.1 port $d_port" "$TMP/dns.log" && break
        sleep 0.1
    done
    grep -q "dns listening on 127.0.0.1 port $d_port" "$TMP/dns.log" ||
        { echo "dns: the registry's DNS interface did not start:" >&2; cat "$TMP/dns.log" >&2; return 1; }
    for i in $(seq 0 $((N_NAMES - 1))); do
        printf 'url = "http://127.0.0.1:%s/v1/services"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"svc-%d\\",\\"host\\":\\"10.0.%d.%d\\",\\"port\\":8080,\\"ttl\\":%d}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 15\n' \
            "$r_port" "$i" $((i / 250)) $((i % 250 + 1)) "$TTL"
        [ "$i" = $((N_NAMES - 1)) ] || echo next
    done >"$cfg"
    ok=$(curl -sS -K "$cfg" | grep -c '^201$' || true)
    [ "$ok" = "$N_NAMES" ] || { echo "dns: $ok of $N_NAMES registrations answered 201" >&2; return 1; }
    dig_is "$d_port" svc-7.service.consul 10.0.0.8 ||
        { echo "dns: svc-7.service.consul does not answer 10.0.0.8" >&2; return 1; }
    run_dnsperf registry "$d_port"
    r_qps=$DQPS r_lost=$DLOST r_sent=$DSENT
    if [ "$r_lost" = 0 ] && [ "$DNOERR" != "$DSENT" ]; then
        echo "dns: $DNOERR of $DSENT answers were NOERROR" >&2
        return 1
    fi
    stop_pid "$r_pid"

    echo "== [dns] 2. nsd (the reference): a static zone of the same $N_NAMES names"
    nsd_bin=$(command -v nsd || echo /usr/sbin/nsd)
    if [ -x "$nsd_bin" ]; then
        mkdir -p "$TMP/nsd"
        n_port=$(free_dns_port)
        nsd_zone "$TMP/nsd" "$n_port"
        "${SRV_PIN[@]}" "$nsd_bin" -d -c "$TMP/nsd/nsd.conf" >"$TMP/nsd/out.log" 2>&1 &
        nsd_pid=$!
        PIDS+=("$nsd_pid")
        for i in $(seq 50); do
            dig_is "$n_port" svc-7.service.consul 10.0.0.8 && break
            sleep 0.1
        done
        if dig_is "$n_port" svc-7.service.consul 10.0.0.8; then
            run_dnsperf nsd "$n_port"
            n_qps=$DQPS n_lost=$DLOST
        else
            echo "dns: nsd did not answer; no reference:" >&2
            tail -n 5 "$TMP/nsd/out.log" "$TMP/nsd/nsd.log" >&2 2>/dev/null || true
        fi
        stop_pid "$nsd_pid"
    else
        echo "dns: nsd could not be installed; no reference"
    fi
    if [ -n "$n_qps" ]; then
        rows+=("| nsd $("$nsd_bin" -v 2>&1 | awk '/^NSD version/ {print $3}'), one server process, a static zone of the same names | $(fmt "$n_qps" %.0f) | $n_lost | - | 1.00 | reference |")
        ratio_s=$(ratio "$r_qps" "$n_qps")
    else
        rows+=("| nsd (reference) | not available | - | - | - | - |")
        ratio_s=-
    fi
    if ge "$r_qps" 50000 && [ "$r_lost" = 0 ]; then verdict_s=PASS; else verdict_s=FAIL; fi
    rows+=("| registry, $N_NAMES services, A svc-N.service.consul | $(fmt "$r_qps" %.0f) | $r_lost of $r_sent | >= 50,000 q/s, none lost | $ratio_s | $verdict_s |")
    DNS_TABLE=$(
        echo "| scenario | answered q/s | lost | target | vs nsd | result |"
        echo "| --- | ---: | ---: | --- | ---: | --- |"
        printf '%s\n' "${rows[@]}"
    )
    DNS_NOTES=$(
        cat <<NOTES
- dnsperf -Q $DNS_QPS -q 500 -t 2 -b 4096 -l $DNS_DURATION over a file of the $N_NAMES names
  (svc-0 .. svc-$((N_NAMES - 1)), one instance each at 10.0.x.y), in order, repeated;
  "lost": no answer within 2 s. The offered rate is fixed, so "answered q/s"
  is at most $DNS_QPS: a server at the rate with nothing lost keeps up.
- the registry answers UDP through libevent's evdns server; its names index
  is built on the first query after the registrations (one walk), then each
  query is one hash lookup plus one per instance of the name.
NOTES
    )
}

# ========================================================= consul part ====

# The registry's Consul HTTP API on a registry of its own, in the registry
# part's layout: the health read against nginx serving the same bytes from
# a file, then blocking queries woken by a registration (bench/consulwait.c).
CONSUL_TABLE=
CONSUL_NOTES=
consul_part() {
    local d=$TMP/consul c_pid c_port url i code out line bytes rows=()
    local n1 n2 n3 p1 p2 p3 r1 r2 r1_99 r2_99 ngx ngx99 spread reg reg99 med max
    if [ "$PIN" = 1 ]; then
        SRV_PIN=(taskset -c 1)
        GEN_PIN=(taskset -c 0)
    fi
    mkdir -p "$d"
    echo "== [consul] 1. registry (SQLite), 10 instances of svc by PUT /v1/agent/service/register"
    start_registry consul "$d/consul.db"
    c_pid=$REG_PID c_port=$REG_PORT
    for i in $(seq 10); do
        code=$(curl -sS -o "$d/put.out" -w '%{http_code}' --max-time 5 -X PUT \
            "http://127.0.0.1:$c_port/v1/agent/service/register" -H 'Content-Type: application/json' \
            -d "{\"Name\":\"svc\",\"ID\":\"svc-$i\",\"Address\":\"127.0.0.1\",\"Port\":$((9000 + i)),\"Tags\":[\"bench\",\"v1\"],\"Meta\":{\"zone\":\"local\",\"version\":\"1.0.0\"}}")
        [ "$code" = 200 ] || { echo "consul: registration $i answered $code: $(cat "$d/put.out")" >&2; return 1; }
    done
    url="http://127.0.0.1:$c_port/v1/health/service/svc?passing"
    static_nginx "$d/ngx"
    mkdir -p "$d/ngx/www/v1/health/service"
    # the answer once, as nginx's file at the same path (nginx ignores ?passing)
    curl -fsS --max-time 5 -o "$d/ngx/www/v1/health/service/svc" "$url"
    bytes=$(stat -c %s "$d/ngx/www/v1/health/service/svc")
    [ "$(jq length "$d/ngx/www/v1/health/service/svc")" = 10 ] ||
        { echo "consul: the health answer does not list 10 instances" >&2; return 1; }
    curl -fsS --max-time 5 -o "$d/ngx.out" "$SNGX_URL/v1/health/service/svc?passing"
    curl -fsS --max-time 5 -o "$d/reg.out" "$url"
    { cmp -s "$d/ngx.out" "$d/ngx/www/v1/health/service/svc" && cmp -s "$d/reg.out" "$d/ngx.out"; } ||
        { echo "consul: nginx's and the registry's answers differ" >&2; return 1; }
    echo "   health answer: $bytes bytes"

    echo "== [consul] nginx static file of the same answer, run 1 of 3"
    run_wrk consul-nginx-1 "$SNGX_URL/v1/health/service/svc?passing"
    n1=$RPS p1=$P99
    echo "== [consul] GET /v1/health/service/svc?passing, run 1 of 2"
    run_wrk consul-health-1 "$url"
    r1=$RPS r1_99=$P99
    echo "== [consul] nginx static file of the same answer, run 2 of 3"
    run_wrk consul-nginx-2 "$SNGX_URL/v1/health/service/svc?passing"
    n2=$RPS p2=$P99
    echo "== [consul] GET /v1/health/service/svc?passing, run 2 of 2"
    run_wrk consul-health-2 "$url"
    r2=$RPS r2_99=$P99
    echo "== [consul] nginx static file of the same answer, run 3 of 3"
    run_wrk consul-nginx-3 "$SNGX_URL/v1/health/service/svc?passing"
    n3=$RPS p3=$P99
    stop_pid "$SNGX_PID"
    ngx=$(median3 "$n1" "$n2" "$n3")
    ngx99=$(median3 "$p1" "$p2" "$p3")
    spread=$(spread3 "$n1" "$n2" "$n3")
    reg=$(awk -v a="$r1" -v b="$r2" 'BEGIN { printf "%.0f", (a + b) / 2 }')
    reg99=$(awk -v a="$r1_99" -v b="$r2_99" 'BEGIN { printf "%.3f", (a > b ? a : b) }')

    echo "== [consul] 2. $CONSUL_ROUNDS blocking queries, each woken by a registration (consulwait)"
    out=$("${GEN_PIN[@]}" "$TMP/consulwait" "$c_port" svc "$CONSUL_ROUNDS" 120) || {
        echo "consulwait failed:" >&2
        echo "$out" >&2
        tail -n 5 "$TMP/consul.log" >&2
        return 1
    }
    sed 's/^/   /' <<<"$out"
    stop_pid "$c_pid"
    line=$(tail -n 1 <<<"$out")
    med=$(fmt "$(sed -n 's/.*lat_median_ms=\([0-9.]*\).*/\1/p' <<<"$line")" %.2f)
    max=$(fmt "$(sed -n 's/.*lat_max_ms=\([0-9.]*\).*/\1/p' <<<"$line")" %.2f)

    rows+=("| nginx static file of the same answer ($bytes B; median of 3 runs: $(fmt "$n1" %.0f), $(fmt "$n2" %.0f), $(fmt "$n3" %.0f)) | $(fmt "$ngx" %.0f) | $(fmt "$ngx99" %.2f) ms | 1.00 | reference | - |")
    rows+=("| GET /v1/health/service/svc?passing, 10 instances (SQLite; mean of 2 runs: $(fmt "$r1" %.0f), $(fmt "$r2" %.0f)) | $reg | $(fmt "$reg99" %.2f) ms | $(ratio "$reg" "$ngx") | >= 0.4 x nginx | $(verdict ratio_ge "$reg" "$ngx" 0.4) |")
    rows+=("| blocking query woken by a registration ($CONSUL_ROUNDS rounds, catalog and health in turn): median $med ms, max $max ms | - | - | - | max < 100 ms | $(verdict lt "$max" 100) |")
    CONSUL_TABLE=$(
        echo "| scenario | requests/s | p99 | ratio to nginx | target | result |"
        echo "| --- | ---: | ---: | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
    CONSUL_NOTES=$(
        cat <<NOTES
- ratio = requests/s of the registry over the median of nginx's three runs
  (before, between and after the registry's two; a spread of ${spread}% of
  the median). nginx serves the registry's answer, fetched once, as a
  static file at the same path; both answers were compared byte for byte.
- every registration body is {"Name":"svc","ID":"svc-<i>","Address","Port"}
  plus 2 Tags and 2 Meta keys, so the health answer is $bytes bytes.
- blocking query: consulwait parks the query (/metrics registry_watchers
  >= 1), then sends PUT /v1/agent/service/register of svc-wait-<round>;
  latency is CLOCK_MONOTONIC from just before that request is written to
  the parked answer complete (200, X-Consul-Index above the one waited
  after, the new ID in the body).
- the rounds:
$(sed -n 's/^round=/  - round /p' <<<"$out")
NOTES
    )
}

# ============================================================ ui part ====

# The dashboard's load on the registry (issue 12, Performance): the suite
# of the facade part (so the pages have data and the callers page a
# facade), then bench/uiload.py: the registry's CPU and requests over
# UI_DURATION s with no browser (the reference), then with UI_TABS tabs of
# one headless chromium on /ui/ settled UI_SETTLE s, and the first load's
# transferred bytes. Servers on CPU 1, the browser on CPU 0 (as the other
# parts' load generators). Skipped, with a line saying so, without
# chromium, chromedriver or python3-selenium.
UI_TABLE=
UI_NOTES=
ui_get() { sed -n "s/^$1=//p" "$TMP/uiload.out"; } # ui_get KEY: uiload's value of KEY
kbytes() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000 }'; }
ui_part() {
    local rc rows=() page ui_pid tabs live cref ctabs rps brps first
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 ||
        ! /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
        echo "== [ui] skipped: no chromium, chromedriver or python3-selenium (scripts/deps.sh --test installs them)"
        UI_TABLE="ui: skipped, no chromium, chromedriver or python3-selenium on this machine"
        return 0
    fi
    if [ "$PIN" = 1 ]; then
        SRV_PIN=(taskset -c 1)
        GEN_PIN=(taskset -c 0)
    else
        SRV_PIN=()
        GEN_PIN=()
    fi
    echo "== [ui] 1. the suite (registry, 2 logging, messages, facade)"
    start_stack U
    echo "== [ui] 2. uiload: reference ${UI_DURATION} s without a browser, then $UI_TABS tabs settled ${UI_SETTLE} s, measured ${UI_DURATION} s"
    # Bounded: both windows, the settling, the tabs' loads and the page
    # loads, with room. timeout passes its TERM on to uiload, which quits
    # the browser on TERM.
    "${GEN_PIN[@]}" timeout -k 10 $((2 * UI_DURATION + UI_SETTLE + 4 * UI_TABS + 120)) \
        /usr/bin/python3 "$ROOT/bench/uiload.py" --registry "http://127.0.0.1:${STK_PORTS[0]}" \
        --pid "${STK_PIDS[0]}" --tabs "$UI_TABS" --settle "$UI_SETTLE" --duration "$UI_DURATION" \
        >"$TMP/uiload.out" 2>"$TMP/uiload.err" &
    ui_pid=$!
    PIDS+=("$ui_pid")
    rc=0
    wait "$ui_pid" || rc=$?
    forget_pid "$ui_pid"
    sed 's/^/   /' "$TMP/uiload.err" "$TMP/uiload.out"
    stop_stack
    if [ "$rc" != 0 ] || ! grep -qx 'ok=1' "$TMP/uiload.out"; then
        echo "uiload failed (exit $rc)" >&2
        return 1
    fi
    tabs=$(ui_get tabs) live=$(ui_get tabs_live) cref=$(ui_get cpu_ref_pct) ctabs=$(ui_get cpu_tabs_pct)
    rps=$(ui_get rps_per_tab) brps=$(ui_get browser_rps_per_tab) first=$(ui_get first_load_bytes)
    # every tab must follow the stream, or the figures are of fewer tabs
    [ "$live" = "$tabs" ] || { echo "ui: only $live of $tabs tabs follow the event stream" >&2; return 1; }
    rows+=("| registry CPU, the suite idle, no browser (reference) | 0 | $(fmt "$cref" %.2f) % of a core | reference | - |")
    rows+=("| registry CPU with the tabs open, nothing changing | $tabs | $(fmt "$ctabs" %.2f) % of a core | < 2 % | $(verdict lt "$ctabs" 2) |")
    rows+=("| the pages' requests to the registry (its http_requests_total, less the reference) | $tabs | $(fmt "$rps" %.3f) /s per tab | < 1 /s per tab | $(verdict lt "$rps" 1) |")
    rows+=("| the same seen by the browser (resource entries started in the window) | $tabs | $(fmt "$brps" %.3f) /s per tab | information | - |")
    rows+=("| first load of /ui/ (services), cold cache: $(ui_get first_load_files) entries | 1 | $(kbytes "$first") kB transferred (bodies $(kbytes "$(ui_get first_load_body_bytes)") kB) | < 100 kB | $(verdict lt "$first" 100000) |")
    for page in services instances callers kv events; do
        rows+=("| first load of the $page page, cache disabled: $(ui_get "load_${page}_files") entries | 1 | $(kbytes "$(ui_get "load_${page}_bytes")") kB transferred | information | - |")
    done
    rows+=("| the callers page's own timer (relay reads of the facade's /stats and each logging /metrics), one tab shown | 1 | $(fmt "$(ui_get callers_rps)" %.3f) /s | information (not the default page) | - |")
    UI_TABLE=$(
        echo "| scenario | tabs | value | target | result |"
        echo "| --- | ---: | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
    UI_NOTES=$(
        cat <<NOTES
- one headless chromium ($(chromium --version 2>/dev/null | awk '{print $2}'), one chromedriver,
  $tabs tabs as window handles), every tab on a host name of its own
  (tab<i>.uibench.test mapped to 127.0.0.1 by --host-resolver-rules): chromium
  keeps at most 6 HTTP/1.1 connections per host and every tab holds an
  event stream open. $live of $tabs tabs showed "live" after settling;
  registry_watchers: $(ui_get watchers_ref) without the browser, $(ui_get watchers_tabs_start) at the start
  of the tab window and $(ui_get watchers_tabs) at its end ($([ "$(ui_get watchers_tabs_start)" = "$(ui_get watchers_tabs)" ] &&
      echo "the same count" || echo "they differ: streams or long-polls opened or ended in the window")).
- CPU: utime + stime of the registry (/proc/PID/stat) over $(ui_get window_s) s of wall time.
- requests: the registry's http_requests_total on the page's routes (/ui/*,
  /ui/relay, GET /v1/services, /v1/events) in the tab window, less those of
  the reference window; a stream is counted when it ends, so an open event
  stream is not counted, one that broke and reopened is. The suite's own
  blocking reads of GET /v1/services (the facade's and messages' discovery,
  wait=60s) end in one window or the other, so a few of those counted
  here are not the pages' (the browser's count has none of them). All
  routes, less the reference: $(fmt "$(ui_get rps_per_tab_all)" %.3f) /s per tab.
  Routes in the tab window: $(ui_get routes_tabs | tr -d '[]"' | sed 's/,/; /g').
  Reference window: $(ui_get routes_ref | tr -d '[]"' | sed 's/,/; /g').
- first load: Performance API transferSize (headers + body as received)
  of the navigation and every resource entry, summed (the open event
  stream is not an entry); services: the first tab of a fresh profile;
  the other pages: a new tab each with CDP Network.setCacheDisabled.
  Files of the services load: $(ui_get load_services_names | tr -d '[]"' | sed 's/,/, /g').
NOTES
    )
}

# ============================================================ ha part ====

# Replicas on etcd (issue 13, Performance): a 3-member etcd cluster on
# loopback (bench/etcdup.py, members scheduled freely on every CPU), two
# registry replicas A and B on one prefix (CPU 1, as the other parts'
# servers; load generators on CPU 0). Discover on B against nginx serving
# B's answer as a static file; the change-to-other-replica latency
# (bench/halatency.py); HA_RENEWS instances at ttl 10 renewed over both
# replicas for HA_RENEW_S s with the CPU of etcd and of each replica
# (bench/renewload.c); then HA_REG registrations through A (regload, ttl 10)
# against etcd's own lease grant + put of the same records through the same
# gateway (bench/etcdload.c). Skipped, with a line saying so, without etcd.
HA_TABLE=
HA_NOTES=
ha_rev() { # ha_rev ENDPOINT: etcd's current revision
    curl -fsS --max-time 5 -X POST "$1/v3/kv/range" -d '{"key":"cmV2"}' | jq -r .header.revision
}
ha_etcd_ticks() { # the utime + stime of every etcd member, summed
    local p s=0
    for p in "${ETCD_MEMBERS[@]}"; do
        s=$((s + $(cpu_ticks "$p")))
    done
    echo "$s"
}
ha_count() { # ha_count PORT NAME HEALTH: instances of NAME listed with health=HEALTH
    curl -fsS --max-time 30 "http://127.0.0.1:$1/v1/services?name=$2&health=$3" | jq '.services | length'
}
both_eq() { [ "$1" = "$3" ] && [ "$2" = "$3" ]; } # both_eq A B N: A and B are N
ha_pct() { # ha_pct TICKS SECONDS: percent of a core
    awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", 100 * t / hz / s }'
}
ha_part() {
    local d=$TMP/ha up_pid eps ep1 ep1_port pa pb a_pid b_pid i n out line rows=()
    local n1 n2 n3 p1 p2 p3 r1 r2 r1_99 r2_99 ngx ngx99 spread disc disc99 bytes
    local lat_line lat50 lat99 latmax ack50
    local ids_a ids_b ids cnt_a cnt_b cnt0_a cnt0_b e0 e1 a0 a1 b0 b1 t0 t1 win ren_out
    local ref_out reg_out ref_rps reg_rps ref_s reg_s ref99 reg99 rev0 rev1 rev2 ref_txn reg_txn
    local ref_cpu reg_cpu rega0 rega1 keys doc doc_bytes ref_doc
    local period ren_e ren_a ren_b reg_a_cpu lapsed after50 aftermax
    if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
        echo "== [ha] skipped: etcd is not installed (apt-get install etcd-server etcd-client; scripts/deps.sh --test installs them)"
        HA_TABLE="ha: skipped, etcd is not installed on this machine"
        return 0
    fi
    need_cmd etcdctl etcd-client
    if [ "$PIN" = 1 ]; then
        SRV_PIN=(taskset -c 1)
        GEN_PIN=(taskset -c 0)
    else
        SRV_PIN=()
        GEN_PIN=()
    fi
    mkdir -p "$d"
    echo "== [ha] 1. a 3-member etcd cluster on loopback (bench/etcdup.py)"
    TMPDIR=$d python3 "$ROOT/bench/etcdup.py" 3 >"$d/etcdup.out" 2>"$d/etcdup.err" &
    up_pid=$!
    PIDS+=("$up_pid")
    for i in $(seq 600); do # up to 60 s
        grep -q '^pids=' "$d/etcdup.out" && break
        kill -0 "$up_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^pids=' "$d/etcdup.out" || { echo "etcd cluster did not start:" >&2; cat "$d/etcdup.err" >&2; return 1; }
    eps=$(sed -n 's/^endpoints=//p' "$d/etcdup.out")
    read -r -a ETCD_MEMBERS <<<"$(sed -n 's/^pids=//p' "$d/etcdup.out")"
    ep1=${eps%%,*}
    ep1_port=${ep1##*:}
    echo "   endpoints $eps, member pids ${ETCD_MEMBERS[*]}"

    echo "== [ha] 2. replicas A and B on prefix /bench-ha/"
    start_registry ha-a "$d/unused-a.db" --backend etcd --etcd-endpoints "$eps" --etcd-prefix /bench-ha/
    a_pid=$REG_PID pa=$REG_PORT
    start_registry ha-b "$d/unused-b.db" --backend etcd --etcd-endpoints "$eps" --etcd-prefix /bench-ha/
    b_pid=$REG_PID pb=$REG_PORT
    echo "   A :$pa (pid $a_pid), B :$pb (pid $b_pid)"

    echo "== [ha] 3. discover on B: 10 instances of svc registered on A"
    for i in $(seq 10); do
        [ -n "$(register_one "$pa" svc $((9000 + i)))" ] || { echo "ha: registration $i on A failed" >&2; return 1; }
    done
    for i in $(seq 100); do # up to 10 s
        [ "$(ha_count "$pb" svc passing)" = 10 ] && break
        sleep 0.1
    done
    [ "$(ha_count "$pb" svc passing)" = 10 ] || { echo "ha: B does not list the 10 instances registered on A" >&2; return 1; }
    static_nginx "$d/ngx"
    mkdir -p "$d/ngx/www/v1"
    curl -fsS --max-time 5 -o "$d/ngx/www/v1/discover" "http://127.0.0.1:$pb/v1/discover?name=svc"
    bytes=$(stat -c %s "$d/ngx/www/v1/discover")
    jq -e '.service.name == "svc"' "$d/ngx/www/v1/discover" >/dev/null ||
        { echo "ha: B's discover answer is not an instance of svc" >&2; return 1; }
    # one instance of the ten, picked at random: the same size each time
    # (ids of one length, ports 9001-9010)
    [ "$(curl -fsS --max-time 5 "$SNGX_URL/v1/discover?name=svc" | wc -c)" = "$bytes" ] ||
        { echo "ha: nginx's answer differs in size from B's" >&2; return 1; }
    echo "   discover answer: $bytes bytes"
    echo "== [ha] nginx static file of B's answer, run 1 of 3"
    run_wrk ha-nginx-1 "$SNGX_URL/v1/discover?name=svc"
    n1=$RPS p1=$P99
    echo "== [ha] discover on replica B, run 1 of 2"
    run_wrk ha-discover-1 "http://127.0.0.1:$pb/v1/discover?name=svc"
    r1=$RPS r1_99=$P99
    echo "== [ha] nginx static file of B's answer, run 2 of 3"
    run_wrk ha-nginx-2 "$SNGX_URL/v1/discover?name=svc"
    n2=$RPS p2=$P99
    echo "== [ha] discover on replica B, run 2 of 2"
    run_wrk ha-discover-2 "http://127.0.0.1:$pb/v1/discover?name=svc"
    r2=$RPS r2_99=$P99
    echo "== [ha] nginx static file of B's answer, run 3 of 3"
    run_wrk ha-nginx-3 "$SNGX_URL/v1/discover?name=svc"
    n3=$RPS p3=$P99
    stop_pid "$SNGX_PID"
    ngx=$(median3 "$n1" "$n2" "$n3")
    ngx99=$(median3 "$p1" "$p2" "$p3")
    spread=$(spread3 "$n1" "$n2" "$n3")
    disc=$(awk -v a="$r1" -v b="$r2" 'BEGIN { printf "%.0f", (a + b) / 2 }')
    disc99=$(awk -v a="$r1_99" -v b="$r2_99" 'BEGIN { printf "%.3f", (a > b ? a : b) }')

    echo "== [ha] 4. change on A -> B's parked blocking read, $HA_ROUNDS rounds (bench/halatency.py)"
    out=$("${GEN_PIN[@]}" timeout -k 5 $((30 * HA_ROUNDS + 30)) python3 "$ROOT/bench/halatency.py" "$pa" "$pb" "$HA_ROUNDS" lat 2>&1) ||
        { echo "halatency failed:" >&2; echo "$out" >&2; return 1; }
    lat_line=$(tail -n 1 <<<"$out")
    echo "   $lat_line"
    lat50=$(fmt "$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$lat_line")" %.2f)
    lat99=$(fmt "$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$lat_line")" %.2f)
    latmax=$(fmt "$(sed -n 's/.* max_ms=\([0-9.]*\).*/\1/p' <<<"$lat_line")" %.2f)
    ack50=$(fmt "$(sed -n 's/.* ack_p50_ms=\([0-9.]*\).*/\1/p' <<<"$lat_line")" %.2f)
    after50=$(fmt "$(sed -n 's/.* after_ack_p50_ms=\([-0-9.]*\).*/\1/p' <<<"$lat_line")" %.2f)
    aftermax=$(fmt "$(sed -n 's/.* after_ack_max_ms=\([-0-9.]*\).*/\1/p' <<<"$lat_line")" %.2f)

    echo "== [ha] 5. $HA_RENEWS instances at ttl 10, half registered on A, half on B"
    ids_a=$d/ids-a.txt ids_b=$d/ids-b.txt ids=$d/ids-ren.txt
    out=$("${GEN_PIN[@]}" "$TMP/regload" "$pa" $((HA_RENEWS / 2)) "$CONNS" "$ids_a" 1 120 10 ren) ||
        { echo "regload (renew set, A) failed: $out" >&2; return 1; }
    echo "   A: $out"
    out=$("${GEN_PIN[@]}" "$TMP/regload" "$pb" $((HA_RENEWS - HA_RENEWS / 2)) "$CONNS" "$ids_b" 1 120 10 ren) ||
        { echo "regload (renew set, B) failed: $out" >&2; return 1; }
    echo "   B: $out"
    cat "$ids_a" "$ids_b" >"$ids"
    period=$(awk 'BEGIN { printf "%.3f", 10 / 3 }')
    # Registering them takes longer than their ttl here, so the first ones
    # may have lapsed: two rounds of renews (not measured; each id through
    # both replicas, for a registry whose TTL lapses are each replica's
    # own) bring every one back to passing before the window.
    echo "-- renewload: warm-up, two rounds over both replicas"
    out=$("${GEN_PIN[@]}" "$TMP/renewload" "$pa" "$pb" "$ids" "$period" "$(awk -v p="$period" 'BEGIN { print 2 * p + 0.5 }')" "$CONNS") ||
        { echo "renewload (warm-up) failed: $out" >&2; return 1; }
    echo "   $out"
    cnt0_a=$(ha_count "$pa" ren-0 passing) cnt0_b=$(ha_count "$pb" ren-0 passing)
    echo "   passing at the start of the window: A $cnt0_a, B $cnt0_b"
    echo "-- renewload: every ${period} s each, ${HA_RENEW_S} s, $CONNS connections per replica"
    e0=$(ha_etcd_ticks) a0=$(cpu_ticks "$a_pid") b0=$(cpu_ticks "$b_pid") t0=$(date +%s.%N)
    # a failed window (renews unanswered) is a FAIL row, not the end of the part
    ren_ok=1
    ren_out=$("${GEN_PIN[@]}" "$TMP/renewload" "$pa" "$pb" "$ids" "$period" "$HA_RENEW_S" "$CONNS") ||
        { echo "renewload failed: $ren_out" >&2; ren_ok=0; }
    e1=$(ha_etcd_ticks) a1=$(cpu_ticks "$a_pid") b1=$(cpu_ticks "$b_pid") t1=$(date +%s.%N)
    win=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    echo "   $ren_out"
    cnt_a=$(ha_count "$pa" ren-0 passing) cnt_b=$(ha_count "$pb" ren-0 passing)
    ren_e=$(ha_pct $((e1 - e0)) "$win") ren_a=$(ha_pct $((a1 - a0)) "$win") ren_b=$(ha_pct $((b1 - b0)) "$win")
    echo "   passing at the end: A $cnt_a, B $cnt_b; CPU over ${win} s: etcd $ren_e %, A $ren_a %, B $ren_b % of a core"
    echo "-- deregistering them (renewload's DELETE pass), so that none lapses during the register rows"
    # deletes refused by an overloaded replica are reported, not fatal: those
    # instances then lapse during the register rows
    out=$("${GEN_PIN[@]}" "$TMP/renewload" "$pa" "$pb" "$ids" 0 120 "$CONNS") ||
        echo "renewload (DELETE pass) failed: $out" >&2
    echo "   $out"

    echo "== [ha] 6. register $HA_REG records, ttl 10, $CONNS in flight"
    echo "-- etcdload: lease grant + put of each record on $ep1 (the first endpoint, as the replicas use)"
    rev0=$(ha_rev "$ep1") e0=$(ha_etcd_ticks) t0=$(date +%s.%N)
    ref_out=$("${GEN_PIN[@]}" "$TMP/etcdload" "$ep1_port" "$HA_REG" "$CONNS" /bench-ref/ "$N_NAMES" 10 120) ||
        { echo "etcdload failed: $ref_out" >&2; return 1; }
    rev1=$(ha_rev "$ep1") e1=$(ha_etcd_ticks) t1=$(date +%s.%N)
    echo "   $ref_out"
    ref_cpu=$(ha_pct $((e1 - e0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    ref_txn=$((rev1 - rev0))
    # The reference's leases lapse from 10 s after their grant, and etcd
    # then deletes their keys (a revision and a Raft round each): wait
    # until all are gone, so that this work is not inside the registry's
    # run (bounded: 120 s).
    echo "-- waiting for the reference's leases to lapse (etcd deletes /bench-ref/*)"
    for i in $(seq 240); do
        [ -z "$(etcdctl --endpoints="$ep1" get --prefix --keys-only --limit 1 /bench-ref/)" ] && break
        sleep 0.5
    done
    lapsed=$(etcdctl --endpoints="$ep1" get --prefix --keys-only --limit 1 /bench-ref/)
    [ -z "$lapsed" ] || { echo "ha: reference keys still there after 120 s ($lapsed ...)" >&2; return 1; }
    echo "   gone after $(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    rev1=$(ha_rev "$ep1")
    echo "-- regload: POST $HA_REG registrations to A"
    e0=$(ha_etcd_ticks) rega0=$(cpu_ticks "$a_pid") t0=$(date +%s.%N)
    reg_out=$("${GEN_PIN[@]}" "$TMP/regload" "$pa" "$HA_REG" "$CONNS" "$d/ids-reg.txt" "$N_NAMES" 120 10) ||
        { echo "regload failed: $reg_out" >&2; return 1; }
    rev2=$(ha_rev "$ep1") e1=$(ha_etcd_ticks) rega1=$(cpu_ticks "$a_pid") t1=$(date +%s.%N)
    echo "   $reg_out"
    reg_cpu=$(ha_pct $((e1 - e0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    reg_a_cpu=$(ha_pct $((rega1 - rega0)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    reg_txn=$((rev2 - rev1))
    # what the registry wrote: the kinds of keys under its prefix, and one record
    keys=$(etcdctl --endpoints="$ep1" get --prefix --keys-only /bench-ha/ |
        awk 'NF { k = substr($0, 11); if (k ~ /^!/) sub(/\/.*/, "", k); else k = "records"; c[k]++ }
             END { for (k in c) printf "%s%s %d", (n++ ? ", " : ""), k, c[k] }')
    doc=$(etcdctl --endpoints="$ep1" get --prefix --print-value-only --limit 1 /bench-ha/svc-)
    doc_bytes=${#doc}
    ref_doc=$(sed -n 's/.*doc_bytes=\([0-9.]*\).*/\1/p' <<<"$ref_out")
    echo "   keys under /bench-ha/: $keys"
    echo "   etcd revisions: +$ref_txn for etcdload's $HA_REG puts, +$reg_txn for the registry's $HA_REG registrations (one a txn)"
    echo "   a record as the registry stores it ($doc_bytes bytes): $doc"
    ref_rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$ref_out")
    reg_rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$reg_out")
    ref_s=$(sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' <<<"$ref_out")
    reg_s=$(sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' <<<"$reg_out")
    ref99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$ref_out")
    reg99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$reg_out")

    stop_pid "$b_pid"
    stop_pid "$a_pid"
    stop_pid "$up_pid"
    ETCD_MEMBERS=()

    rows+=("| etcd: lease grant + put of $HA_REG records (etcdload, $CONNS in flight, on one member's gateway): ${ref_s} s | $(fmt "$ref_rps" %.0f) | $(fmt "$ref99" %.2f) ms | 1.00 | reference | - |")
    rows+=("| register $HA_REG (ttl 10) through replica A (regload, $CONNS in flight): ${reg_s} s | $(fmt "$reg_rps" %.0f) | $(fmt "$reg99" %.2f) ms | $(ratio "$reg_rps" "$ref_rps") | >= 0.8 x etcd | $(verdict ratio_ge "$reg_rps" "$ref_rps" 0.8) |")
    rows+=("| nginx static file of B's discover answer ($bytes B; median of 3 runs: $(fmt "$n1" %.0f), $(fmt "$n2" %.0f), $(fmt "$n3" %.0f)) | $(fmt "$ngx" %.0f) | $(fmt "$ngx99" %.2f) ms | 1.00 | reference | - |")
    rows+=("| discover svc on replica B, 10 instances registered on A (mean of 2 runs: $(fmt "$r1" %.0f), $(fmt "$r2" %.0f)) | $disc | $(fmt "$disc99" %.2f) ms | $(ratio "$disc" "$ngx") | >= 0.5 x nginx | $(verdict ratio_ge "$disc" "$ngx" 0.5) |")
    rows+=("| registration on A -> B's parked blocking read answers ($HA_ROUNDS rounds): p50 $lat50 ms, p99 $lat99 ms (max $latmax; A's own 201: p50 $ack50 ms; B's answer after A's 201: p50 $after50 ms, max $aftermax ms) | - | - | - | p99 < 100 ms | $(verdict lt "$lat99" 100) |")
    rows+=("| $HA_RENEWS instances (ttl 10) renewed every ${period} s over both replicas for ${HA_RENEW_S} s: passing at the end on A $cnt_a, on B $cnt_b | $(fmt "$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$ren_out")" %.0f) | $(fmt "$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$ren_out")" %.2f) ms | - | all passing on both, every renew answered (at the start: A $cnt0_a, B $cnt0_b$([ "$ren_ok" = 1 ] || echo "; renews unanswered: $(sed 's/.*sent=\([0-9]*\).*/\1/' <<<"$ren_out") sent, $(sed 's/.*ok=\([0-9]*\).*/\1/' <<<"$ren_out") answered")) | $([ "$ren_ok" = 1 ] && verdict both_eq "$cnt_a" "$cnt_b" "$HA_RENEWS" || echo FAIL) |")
    rows+=("| CPU over that renew window (${win} s), % of a core: etcd's 3 members together $ren_e %, replica A $ren_a %, replica B $ren_b % | - | - | - | information | - |")
    rows+=("| CPU of etcd's 3 members while registering: etcdload $ref_cpu %, regload $reg_cpu % (replica A $reg_a_cpu %) of a core | - | - | - | information | - |")
    HA_NOTES=$(
        cat <<NOTES
- layout: etcd 3.4 ($(etcd --version 2>/dev/null | awk '/^etcd Version/ {print $3}')), 3 members on loopback
  (bench/etcdup.py over tests/integration/etcdcluster.py: heartbeat 50 ms,
  election 500 ms, data in the benchmark's temp dir), scheduled freely on
  every CPU; replicas A and B (--backend etcd, all three endpoints,
  --etcd-prefix /bench-ha/)$([ "$PIN" = 1 ] && echo " on CPU 1, every load generator on CPU 0").
- register: the reference does per record POST /v3/lease/grant {"TTL":10}
  then POST /v3/kv/put {key, value, lease} on the first endpoint (the one
  the replicas talk to first), key "/bench-ref/<name>-<uuid4>" and a
  document shaped as the registry's ($(fmt "$ref_doc" %.0f) bytes on average; the
  registry's record: $doc_bytes bytes). etcd's revision moved by $ref_txn for
  the reference ($HA_REG puts) and by $reg_txn for the registry's $HA_REG
  registrations (one revision per txn: $(awk -v n="$HA_REG" -v t="$reg_txn" 'BEGIN { printf "%.1f", (t > 0 ? n / t : 0) }') registrations per txn).
  The reference's revisions include the deletions of its keys whose lease
  lapsed during its run; the registry's run started only once all of them
  were gone, so its revisions are its txns. Keys under the registry's
  prefix after it: $keys.
- etcdload: $ref_out
- regload: $reg_out
- discover: nginx serves B's answer to GET /v1/discover?name=svc (one of
  the ten instances), fetched once, as a static file; ratio over the
  median of its three runs (a spread of ${spread}% of the median).
- change latency (bench/halatency.py, Python http.client): a blocking
  GET /v1/services?name=lat&index=<B's X-Registry-Index>&wait=5m parked on B
  (B's registry_watchers one higher), then POST /v1/services on A;
  time.perf_counter() from just before the POST is sent to B's answer
  read in full (200, a higher index, the new id listed). $lat_line
- renews: bench/renewload.c sends PUT /v1/services/<id>/renew, paced, each
  id once every ${period} s, alternating the replica from one round to the
  next ($CONNS keep-alive connections to each). The $HA_RENEWS instances
  (name ren-0) were registered just before, half on A and half on B, which
  took longer than their ttl, so two rounds of renews ran before the window
  (passing at its start: A $cnt0_a, B $cnt0_b); counts at the end are
  GET /v1/services?name=ren-0&health=passing on each replica. CPU: utime +
  stime (/proc/PID/stat) over the window's wall time. $ren_out
  They were deregistered (DELETE, both replicas) before the register rows.
NOTES
    )
    HA_TABLE=$(
        echo "| scenario | requests/s | p99 | ratio | target | result |"
        echo "| --- | ---: | ---: | ---: | --- | --- |"
        printf '%s\n' "${rows[@]}"
    )
}

# ================================================================ run ====

# (in an if, not after &&, so that set -e stays in force inside the parts)
if want registry; then registry_part; fi
if want facade; then facade_part; fi
if want facade || [ "$MODE" = facade-view ]; then facade_view_part; fi
if want watch; then watch_part; fi
if want dns; then dns_part; fi
if want consul; then consul_part; fi
if want ui; then ui_part; fi
if want ha; then ha_part; fi
[ -z "$NGINX_PID" ] || stop_pid "$NGINX_PID"

# ------------------------------------------------------------- machine --

MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
WRK_V=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)
NGINX_V=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
LIBEVENT_V=$(pkg-config --modversion libevent)
SQLITE_V=$(pkg-config --modversion sqlite3)
CURL_V=$(pkg-config --modversion libcurl)
JANSSON_V=$(pkg-config --modversion jansson)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- common registry facade-service logging-service messages-service 2>/dev/null |
    grep -q . && echo " (with uncommitted changes in the sources)" || true)

# ------------------------------------------------------------- report --

REPORT=$TMP/RESULTS.md
{
    cat <<EOF
# Benchmark results

Written by \`bench/run.sh $MODE\` on $(date -u '+%Y-%m-%d %H:%M UTC'); source at ${GIT_REV}${GIT_DIRTY}.

## Machine

- CPUs: $NPROC x $MODEL
- memory: $MEM
- kernel: $(uname -r)
- wrk $WRK_V, nginx $NGINX_V, libevent $LIBEVENT_V, SQLite $SQLITE_V, libcurl $CURL_V, jansson $JANSSON_V
- CPU pinning: registry part $([ "$PIN" = 1 ] && echo "servers (nginx, or the registry) on CPU 1, load generator on CPU 0" || echo none); facade part: the free layout (nothing pinned) for the targets$([ "$PIN" = 1 ] && echo ", and the pinned layout (nginx's worker, or all five services, on CPU 1, wrk on CPU 0) for information")
- load average at the end of the run: $LOADAVG
- the machine is shared (other tenants' processes run on the same 2 CPUs):
  compare the ratios, not the absolute numbers

## Commands

\`\`\`
bench/run.sh [registry|facade|all]       # this file comes from "all"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSVC_TESTS=OFF
cmake --build build-bench                # all four executables
nginx -p TMP -c TMP/nginx.conf            # bench/nginx.conf.in: 1 worker, access_log off,
                                          # return 200 '<a real discover answer, ${#BODY} bytes>'
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:NGINX/v1/discover?name=svc     # 3 times per part
\`\`\`

Registry part:

\`\`\`
registry --port 0 --bind 127.0.0.1 --data TMP/small.db --cleanup-interval 1s --log-level info
  10 x POST /v1/services {"name":"svc",...,"ttl":$TTL}
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:REG/v1/discover?name=svc       # 2 times
registry --port 0 --bind 127.0.0.1 --data TMP/big.db --cleanup-interval 1s --log-level info
regload PORT $N_REG $CONNS ids.txt $N_NAMES   # bench/regload.c: $CONNS keep-alive connections, one
                                          # request in flight each; names svc-<i % $N_NAMES>
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:REG/v1/discover?name=svc-7
IDS_FILE=ids.txt wrk -t1 -c$CONNS -d${DURATION}s --latency -s bench/renew.lua http://127.0.0.1:REG
\`\`\`

Facade part (ports found free by the script; stack A for POST, a fresh stack
B for GET, both in the free layout; a fresh stack C for POST in the pinned
layout):

\`\`\`
registry         --port R --backend memory --log-level warn
logging-service  --port L1 --registry http://127.0.0.1:R --data-dir TMP/stack/data --log-level warn
logging-service  --port L2 --registry http://127.0.0.1:R --data-dir TMP/stack/data --log-level warn
messages-service --port M --registry http://127.0.0.1:R --log-level warn
facade-service   --port F --registry http://127.0.0.1:R --replicas 2 --log-level warn
  wait: registry lists 2 passing logging-service + 1 messages-service and
  GET /facade answers {"message": "<text>", ...}; then 1.5 s more
wrk -t1 -c$CONNS -d${DURATION}s --latency -s bench/facade_post.lua http://127.0.0.1:F/facade   # stack A
curl -K seed.curl                         # stack B: $N_MSG x POST /facade {"msg":"seed message NNNNN"}
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:F/facade                             # stack B
wrk -t1 -c$CONNS -d${DURATION}s --latency -s bench/facade_post.lua http://127.0.0.1:F/facade   # stack C
\`\`\`
EOF
    if want registry; then
        printf '\n## Registry\n\n%s\n\nNotes:\n%s\n' "$REG_TABLE" "$REG_NOTES"
    fi
    if want facade; then
        printf '\n## Facade\n\n%s\n\nResident memory of every service:\n\n%s\n\nNotes:\n%s\n' \
            "$FAC_TABLE" "$FAC_RSS_TABLE" "$FAC_NOTES"
    fi
    if want watch; then
        cat <<EOF

## Watch

\`\`\`
registry --port 0 --bind 127.0.0.1 --data TMP/watch.db --cleanup-interval 1s --log-level info \\
    --max-connections $((N_POLLS + N_STREAMS + 1000))      # ulimit -n raised to the hard limit
watchload PORT PID $N_POLLS $N_STREAMS $WATCH_ROUNDS $WATCH_IDLE_S 180   # bench/watchload.c (libevent)
registry --port 0 --bind 127.0.0.1 --data TMP/checks.db --cleanup-interval 1s --log-level info
nginx (bench/nginx.conf.in, 200 on every path) on the load generator's CPU
$N_CHECKS x POST /v1/services {"name":"chk-<i % 100>",...,"check":{"http":"http://127.0.0.1:N/health","interval":"1s","timeout":"1s"}}
sleep 5; utime + stime of the registry over 10 s
\`\`\`

$WATCH_TABLE

Notes:
$WATCH_NOTES
EOF
    fi
    if want dns; then
        cat <<EOF

## DNS

\`\`\`
registry --port 0 --bind 127.0.0.1 --data TMP/dns.db --cleanup-interval 1s --log-level info \\
    --backend memory --dns-port D
curl -K reg.curl                          # $N_NAMES x POST /v1/services {"name":"svc-<i>","host":"10.0.x.y",...}
dnsperf -s 127.0.0.1 -p D -d queries.txt -l $DNS_DURATION -Q $DNS_QPS -q 500 -t 2 -b 4096   # lines "svc-<i>.service.consul A"
nsd -d -c nsd.conf                        # one server process, zone consul. with the same A records
dnsperf -s 127.0.0.1 -p N -d queries.txt -l $DNS_DURATION -Q $DNS_QPS -q 500 -t 2 -b 4096
\`\`\`

$DNS_TABLE

Notes:
$DNS_NOTES
EOF
    fi
    if want consul; then
        cat <<EOF

## Consul API

\`\`\`
registry --port 0 --bind 127.0.0.1 --data TMP/consul.db --cleanup-interval 1s --log-level info
  10 x PUT /v1/agent/service/register {"Name":"svc","ID":"svc-<i>",...}
nginx (1 worker, static files) serving the registry's answer at /v1/health/service/svc
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:NGINX/v1/health/service/svc?passing   # 3 times
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:REG/v1/health/service/svc?passing     # 2 times
consulwait PORT svc $CONSUL_ROUNDS 120      # bench/consulwait.c (libevent)
\`\`\`

$CONSUL_TABLE

Notes:
$CONSUL_NOTES
EOF
    fi
    if want ui; then
        cat <<EOF

## Dashboard

\`\`\`
registry, 2 x logging-service, messages-service, facade-service as in the facade part (servers on CPU 1)
bench/uiload.py --registry http://127.0.0.1:R --pid REGISTRY_PID --tabs $UI_TABS --settle $UI_SETTLE --duration $UI_DURATION
                                          # python3-selenium, headless chromium and chromedriver on CPU 0
\`\`\`

$UI_TABLE

Notes:
$UI_NOTES
EOF
    fi
    if want ha; then
        cat <<EOF

## Replicas on etcd

\`\`\`
TMPDIR=TMP bench/etcdup.py 3               # 3 etcd members on loopback (tests/integration/etcdcluster.py)
registry --port 0 --bind 127.0.0.1 --cleanup-interval 1s --log-level info \\
    --backend etcd --etcd-endpoints E1,E2,E3 --etcd-prefix /bench-ha/      # A and B
  10 x POST /v1/services {"name":"svc",...,"ttl":$TTL} to A
nginx (1 worker, static files) serving B's answer at /v1/discover
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:NGINX/v1/discover?name=svc     # 3 times
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:B/v1/discover?name=svc         # 2 times
bench/halatency.py A B $HA_ROUNDS lat
regload A $((HA_RENEWS / 2)) $CONNS ids-a.txt 1 120 10 ren; regload B $((HA_RENEWS - HA_RENEWS / 2)) $CONNS ids-b.txt 1 120 10 ren
renewload A B ids.txt 3.333 7.167 $CONNS         # warm-up, two rounds
renewload A B ids.txt 3.333 $HA_RENEW_S $CONNS          # the window
renewload A B ids.txt 0 120 $CONNS               # DELETE pass
etcdload E1 $HA_REG $CONNS /bench-ref/ $N_NAMES 10 120    # bench/etcdload.c
regload A $HA_REG $CONNS ids-reg.txt $N_NAMES 120 10
\`\`\`

$HA_TABLE

Notes:
$HA_NOTES
EOF
    fi
    cat <<EOF

## Build

- Release (-O3, -Werror as in every build); compiler warnings in this
  (possibly incremental) build: $BUILD_WARNINGS.
EOF
} >"$REPORT"

echo
if [ "$MODE" = all ]; then
    cp "$REPORT" "$ROOT/bench/RESULTS.md"
    echo "== results (also in bench/RESULTS.md)"
else
    echo "== results (bench/RESULTS.md is written only by a full run)"
fi
if want registry; then printf '\nregistry:\n%s\n' "$REG_TABLE"; fi
if want facade; then printf '\nfacade:\n%s\n\n%s\n' "$FAC_TABLE" "$FAC_RSS_TABLE"; fi
if want watch; then printf '\nwatch:\n%s\n' "$WATCH_TABLE"; fi
if want dns; then printf '\ndns:\n%s\n' "$DNS_TABLE"; fi
if want consul; then printf '\nconsul:\n%s\n' "$CONSUL_TABLE"; fi
if want ui; then printf '\nui:\n%s\n' "$UI_TABLE"; fi
if want ha; then printf '\nha:\n%s\n' "$HA_TABLE"; fi
if [ -n "$FAC_VIEW_TABLE" ]; then printf '\nfacade GET view:\n%s\n' "$FAC_VIEW_TABLE"; fi
