#!/usr/bin/env bash
# bench/run.sh: benchmark of the service registry against an nginx ceiling.
#
# Builds a Release registry in build-bench/, starts nginx (one worker, fixed
# 200 JSON answer shaped like a discover answer) and registries on free
# loopback ports, measures with wrk (and bench/regload.c for "register N"),
# prints a table and writes it to bench/RESULTS.md.
#
# It measures and prints; it is not a test. Exit status is non-zero only if
# a measurement could not be made; missed targets show as FAIL in the table.
#
# All traffic goes to 127.0.0.1. Every wait loop is bounded, every load run
# is bounded in time (wrk -d, regload's deadline), and the EXIT trap stops
# the processes this script started and removes its temp directory.
#
# Knobs (environment): BENCH_DURATION (wrk seconds, default 10),
# BENCH_CONNS (default 32), BENCH_REGISTRATIONS (default 100000),
# BENCH_PIN (1: server on CPU 1, load generator on CPU 0; default 1 when
# there are 2+ CPUs).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build-bench
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-32}
N_REG=${BENCH_REGISTRATIONS:-100000}
N_NAMES=1000               # registrations are spread over svc-0 .. svc-999
TTL=600                    # nothing expires during the run

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

# Temp dir and cleanup of everything started here.
TMP=$(mktemp -d /tmp/registry-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # bounded wait (5 s) for a clean exit, then SIGKILL
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU pinning: on a 2-core box the server gets CPU 1 and the load generator
# CPU 0, the same for nginx and the registry, so both compete alike.
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

echo "== building Release registry in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSVC_TESTS=OFF >"$TMP/cmake.log" 2>&1 ||
    { cat "$TMP/cmake.log"; exit 1; }
# Only the registry target: the other executables are not benchmarked here.
cmake --build "$BUILD" --target registry -j"$NPROC" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }
REGISTRY=$BUILD/bin/registry
gcc -O2 -std=c11 -Wall -Wextra -o "$TMP/regload" "$ROOT/bench/regload.c"

# ------------------------------------------------------------- helpers --

# A TCP port nobody listens on (bounded tries).
free_port() {
    local p i
    for i in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# start_registry NAME DATA: a registry on an ephemeral port; sets REG_PID
# and REG_PORT. Info level: the "listening on" line is logged at info.
start_registry() {
    local log=$TMP/$1.log i
    "${SRV_PIN[@]}" "$REGISTRY" --port 0 --bind 127.0.0.1 --data "$2" \
        --cleanup-interval 1s --log-level info 2>"$log" &
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

stop_pid() { # stop_pid PID: SIGTERM and a bounded wait
    local i
    kill "$1" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
}

# Register one instance of NAME; prints its id.
register_one() { # register_one PORT NAME SVCPORT
    curl -fsS -X POST "http://127.0.0.1:$1/v1/services" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$2\",\"host\":\"127.0.0.1\",\"port\":$3,\"ttl\":$TTL,\"tags\":[\"bench\",\"v1\"],\"metadata\":{\"zone\":\"local\",\"version\":\"1.0.0\"}}" |
        sed -n 's/.*"service_id":"\([^"]*\)".*/\1/p'
}

# run_wrk LABEL URL [wrk args...]: wrk -t1 -cCONNS -dDURATION --latency;
# sets RPS and P99 (ms). Fails if wrk saw errors or non-2xx answers.
run_wrk() {
    local label=$1 url=$2 out=$TMP/wrk-$1.txt
    shift 2
    echo "-- wrk $label: $url"
    "${GEN_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out" 2>&1 || true
    sed 's/^/   /' "$out"
    RPS=$(awk '/^Requests\/sec:/ {print $2}' "$out")
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

# ----------------------------------------------- scenario 2 registry up --
# The small registry comes first so that nginx can serve a byte-for-byte
# copy of a real discover answer (same size, same Content-Type).

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

# ---------------------------------------------------------- nginx up --

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

# ------------------------------------------------------- measurements --

# The machine is shared and noisy: nginx runs three times (start, between
# the two small discover runs, end) and the median is the reference.
echo "== 1. nginx fixed 200 (ceiling), run 1 of 3"
run_wrk nginx-1 "$NGINX_URL"
NGX1_RPS=$RPS NGX1_P99=$P99

echo "== 2. registry discover, 10 instances, SQLite, run 1 of 2"
run_wrk discover-10a "$DISCOVER_URL"
D10A_RPS=$RPS D10A_P99=$P99

echo "== 1. nginx fixed 200 (ceiling), run 2 of 3"
run_wrk nginx-2 "$NGINX_URL"
NGX2_RPS=$RPS NGX2_P99=$P99

echo "== 2. registry discover, 10 instances, SQLite, run 2 of 2"
run_wrk discover-10b "$DISCOVER_URL"
D10B_RPS=$RPS D10B_P99=$P99
stop_pid "$SMALL_PID"

echo "== 3. registry with $N_REG instances (SQLite file in $TMP)"
start_registry big "$TMP/big.db"
BIG_PID=$REG_PID
BIG_PORT=$REG_PORT
IDS=$TMP/ids.txt
echo "-- regload: POST $N_REG registrations, $CONNS in flight"
REGOUT=$("${GEN_PIN[@]}" "$TMP/regload" "$BIG_PORT" "$N_REG" "$CONNS" "$IDS" "$N_NAMES" 120) ||
    { echo "regload failed: $REGOUT" >&2; exit 1; }
echo "   $REGOUT"
REG_S=$(sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' <<<"$REGOUT")
REG_RPS=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$REGOUT")
REG_P99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$REGOUT")
COUNT=$(curl -fsS "http://127.0.0.1:$BIG_PORT/metrics" |
    awk '/^registry_instances\{health="passing"\}/ {print $2}')
echo "   passing instances reported by /metrics: $COUNT"
[ "$COUNT" = "$N_REG" ] || { echo "expected $N_REG passing instances" >&2; exit 1; }
sleep 1 # let the group commit finish
RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$BIG_PID/status")
HWM_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$BIG_PID/status")
RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }') # MiB
HWM_MB=$(awk -v k="$HWM_KB" 'BEGIN { printf "%.1f", k / 1024 }')
DB_MB=$(du -cm "$TMP"/big.db* | awk 'END {print $1}')
echo "   registry VmRSS ${RSS_MB} MiB (peak ${HWM_MB} MiB); SQLite files ${DB_MB} MiB"

run_wrk discover-100k "http://127.0.0.1:$BIG_PORT/v1/discover?name=svc-7"
DBIG_RPS=$RPS DBIG_P99=$P99

IDS_FILE=$IDS run_wrk renew-100k "http://127.0.0.1:$BIG_PORT" -s "$ROOT/bench/renew.lua"
REN_RPS=$RPS REN_P99=$P99
stop_pid "$BIG_PID"

echo "== 1. nginx fixed 200 (ceiling), run 3 of 3"
run_wrk nginx-3 "$NGINX_URL"
NGX3_RPS=$RPS NGX3_P99=$P99
stop_pid "$NGINX_PID"

# --------------------------------------------------------------- table --
# The reference is the median of the three nginx runs; their spread
# (max - min over median) says how noisy the machine was. The small discover
# figure is the mean of its two runs, its p99 the worse of the two.

NGX_RPS=$(printf '%s\n' "$NGX1_RPS" "$NGX2_RPS" "$NGX3_RPS" | sort -g | sed -n 2p)
NGX_P99=$(printf '%s\n' "$NGX1_P99" "$NGX2_P99" "$NGX3_P99" | sort -g | sed -n 2p)
NGX_SPREAD=$(printf '%s\n' "$NGX1_RPS" "$NGX2_RPS" "$NGX3_RPS" | sort -g |
    awk 'NR == 1 {lo = $1} NR == 2 {mid = $1} NR == 3 {hi = $1} END {printf "%.0f", 100 * (hi - lo) / mid}')
D10_RPS=$(awk -v a="$D10A_RPS" -v b="$D10B_RPS" 'BEGIN { printf "%.0f", (a + b) / 2 }')
D10_P99=$(awk -v a="$D10A_P99" -v b="$D10B_P99" 'BEGIN { printf "%.3f", (a > b ? a : b) }')
D10_RATIO=$(ratio "$D10_RPS" "$NGX_RPS")
NGX_RUNS="$(fmt "$NGX1_RPS" %.0f), $(fmt "$NGX2_RPS" %.0f), $(fmt "$NGX3_RPS" %.0f)"
D10_RUNS="$(fmt "$D10A_RPS" %.0f), $(fmt "$D10B_RPS" %.0f)"
NGX_P99S="$(fmt "$NGX1_P99" %.2f), $(fmt "$NGX2_P99" %.2f), $(fmt "$NGX3_P99" %.2f)"

row "nginx fixed 200 (ceiling; median of 3 runs: $NGX_RUNS)" \
    "$(fmt "$NGX_RPS" %.0f)" "$(fmt "$NGX_P99" %.2f) ms (runs: $NGX_P99S)" "1.00" "reference" "-"
row "discover svc, 10 instances (SQLite; mean of 2 runs: $D10_RUNS)" "$D10_RPS" \
    "$(fmt "$D10_P99" %.2f) ms" "$D10_RATIO" ">= 0.50 x nginx" "$(verdict ge "$D10_RATIO" 0.5)"
row "register $N_REG (regload, $CONNS in flight): ${REG_S} s" "$(fmt "$REG_RPS" %.0f)" \
    "$(fmt "$REG_P99" %.2f) ms" "$(ratio "$REG_RPS" "$NGX_RPS")" "< 10 s" "$(verdict lt "$REG_S" 10)"
row "RSS with $N_REG: ${RSS_MB} MiB (peak ${HWM_MB} MiB)" "-" "-" "-" "< 150 MiB" \
    "$(verdict lt "$RSS_MB" 150)"
row "discover svc-7 with $N_REG" "$(fmt "$DBIG_RPS" %.0f)" "$(fmt "$DBIG_P99" %.2f) ms" \
    "$(ratio "$DBIG_RPS" "$NGX_RPS")" "p99 < 2 ms" "$(verdict lt "$DBIG_P99" 2)"
row "renew, cycling $N_REG ids" "$(fmt "$REN_RPS" %.0f)" "$(fmt "$REN_P99" %.2f) ms" \
    "$(ratio "$REN_RPS" "$NGX_RPS")" ">= 30000/s" "$(verdict ge "$REN_RPS" 30000)"

TABLE=$(
    echo "| scenario | requests/s | p99 | ratio to nginx | target | result |"
    echo "| --- | ---: | ---: | ---: | --- | --- |"
    printf '%s\n' "${ROWS[@]}"
)

# ------------------------------------------------------------- machine --

MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
WRK_V=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)
NGINX_V=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
LIBEVENT_V=$(pkg-config --modversion libevent)
SQLITE_V=$(pkg-config --modversion sqlite3)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- registry common 2>/dev/null | grep -q . && echo " (with uncommitted changes in registry/ or common/)" || true)

# ------------------------------------------------------------- report --

REPORT=$TMP/RESULTS.md
cat >"$REPORT" <<EOF
# Registry benchmark results

Written by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); source at ${GIT_REV}${GIT_DIRTY}.

## Machine

- CPUs: $NPROC x $MODEL
- memory: $MEM
- kernel: $(uname -r)
- wrk $WRK_V, nginx $NGINX_V, libevent $LIBEVENT_V, SQLite $SQLITE_V
- CPU pinning: $([ "$PIN" = 1 ] && echo "server (nginx or registry) on CPU 1, load generator on CPU 0" || echo none)
- the machine is shared: compare the ratios, not the absolute numbers

## Commands

\`\`\`
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSVC_TESTS=OFF && cmake --build build-bench --target registry
nginx -p TMP -c TMP/nginx.conf            # bench/nginx.conf.in: 1 worker, access_log off,
                                          # return 200 '<a real discover answer, ${#BODY} bytes>'
registry --port 0 --bind 127.0.0.1 --data TMP/small.db --cleanup-interval 1s --log-level info
  10 x POST /v1/services {"name":"svc",...,"ttl":$TTL}
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:NGINX/v1/discover?name=svc     # 3 times
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:REG/v1/discover?name=svc       # 2 times
registry --port 0 --bind 127.0.0.1 --data TMP/big.db --cleanup-interval 1s --log-level info
regload PORT $N_REG $CONNS ids.txt $N_NAMES   # bench/regload.c: $CONNS keep-alive connections, one
                                          # request in flight each; names svc-<i % $N_NAMES>
wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:REG/v1/discover?name=svc-7
IDS_FILE=ids.txt wrk -t1 -c$CONNS -d${DURATION}s --latency -s bench/renew.lua http://127.0.0.1:REG
\`\`\`

## Results

$TABLE

Notes:
- ratio = requests/s of the row over the median nginx requests/s of this run
  (nginx ran at the start, between the two small discover runs and at the end:
  $NGX_RUNS req/s, a spread of ${NGX_SPREAD}% of the median).
- p99 of "register" is regload's per-request latency; the others are wrk's.
  The p99 targets are absolute, so they are only as good as the machine is
  quiet: nginx's own p99 over its three runs ($NGX_P99S ms) shows how much
  the other tenants added during this run.
- every registration body is {"name","host":"127.0.0.1","port","ttl":$TTL} plus
  2 tags and 2 metadata keys, so the discover answer is ${#BODY} bytes.
- RSS is VmRSS from /proc/PID/status about 1 s after the last registration.
- the registry runs with --log-level info because its "listening on" line is
  logged at info (nothing is logged per request at that level).
- register: $REGOUT
- SQLite files after registering: ${DB_MB} MiB.
EOF
cp "$REPORT" "$ROOT/bench/RESULTS.md"

echo
echo "== results (also in bench/RESULTS.md)"
echo "$TABLE"
echo "nginx runs: $NGX_RUNS req/s (spread ${NGX_SPREAD}% of the median)"
