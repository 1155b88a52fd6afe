#!/usr/bin/env bash
# tests/compose/run.sh: the container bring-up test of Dockerfile and
# docker-compose.yaml, run for real (root, Debian/Ubuntu):
#   1. install docker.io, docker-compose, debootstrap when missing;
#   2. start a private Docker engine (data-root, exec-root and socket under
#      a temporary directory; no default bridge, no iptables, vfs storage);
#   3. make the base image locally with debootstrap when the engine has no
#      debian:bookworm (nothing is pulled), tagged debian:bookworm and
#      debian:bookworm-slim, the names the Dockerfile starts FROM;
#   4. docker-compose config -q, up -d --build, wait for every container to
#      be healthy and every instance registered;
#   5. POST and GET through the facade's published port on 127.0.0.1, and
#      across the two facades: a message POSTed to one is read back from
#      the other (both ways), and both are registered;
#   5b. the stack runs with tokens (scripts/compose-secrets.sh into the
#      temporary directory): a register and a deregister without a token
#      get 403 and change nothing, and a POST /logging sent from inside the
#      network without the peer token gets 403 and stores nothing;
#   6. 100 POSTs from 4 threads, `docker kill` of one logging container
#      after 50 answers; every acknowledged message comes back exactly once;
#      the registry drops the killed instance after its ttl; stopping the
#      services leaves no registration behind;
#   7. docker-compose down -v (then SVC_COMPOSE_NEXT, see step 8), stop the engine, unmount and remove all it
#      made. Cleanup runs on failure too (trap), after the services' logs.
# Ends with "compose: N passed, M failed" and a PASS or FAIL line; exit 0 on
# PASS. Kept out of ctest: .ci/run calls it.
#
# SVC_COMPOSE_DOCKER_HOST=unix:///path.sock uses a running engine instead of
# starting one (its images are kept; the base image is made only if absent).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T_START=$SECONDS

PASSED=0
FAILED=0
say() { printf '%s compose-test: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
ok() { PASSED=$((PASSED + 1)); say "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); say "FAILED - $*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    exec sudo -E bash "$0" "$@"
  fi
  echo "compose-test: needs root (a Docker engine is started by hand)" >&2
  echo "FAIL tests/compose/run.sh" >&2
  exit 1
fi

# --- 1. packages -------------------------------------------------------
PACKAGES=(docker.io docker-compose debootstrap curl python3 iproute2 util-linux)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq
  timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The engine's own client: /usr/local/bin may hold a newer one.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 COMPOSE_HTTP_TIMEOUT=120

WORK=$(mktemp -d "${TMPDIR:-/tmp}/svcmesh-compose.XXXXXX")
PROJECT="svcmeshci$$"
DC=(timeout 600 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yaml")
DOCKERD_PID=""
COMPOSE_UP=0
bridges_before=$(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sort || true)
# Files the engine makes outside its roots: its identity key, the shims'
# socket directory. Removed at the end unless they were there before.
had_key=0 had_run_containerd=0
[ -e /etc/docker/key.json ] && had_key=1
[ -e /run/containerd ] && had_run_containerd=1

# --- cleanup, also on failure ------------------------------------------
cleanup() {
  local rc=$? pid m b
  trap - EXIT INT TERM
  set +e
  if [ "$rc" -ne 0 ] && [ "$COMPOSE_UP" = 1 ]; then
    say "services' logs (last 100 lines each):"
    timeout 60 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yaml" \
      logs --no-color --tail=100 2>&1
    timeout 30 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yaml" ps 2>&1
  fi
  if [ "$COMPOSE_UP" = 1 ]; then
    timeout 120 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yaml" \
      down -v --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 ||
      { say "docker-compose down failed:"; cat "$WORK/down.log"; }
  fi
  if [ -n "$DOCKERD_PID" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 60); do
      kill -0 "$DOCKERD_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
    wait "$DOCKERD_PID" 2>/dev/null
    # What the engine started and left (containerd, shims, docker-proxy)
    # names our temporary directory on its command line.
    for pid in $(grep -l -s -F "$WORK" /proc/[0-9]*/cmdline | cut -d/ -f3); do
      case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
        containerd*|docker-proxy|dockerd|runc)
          grep -q -s -F "$WORK" "/proc/$pid/cmdline" && kill -KILL "$pid" 2>/dev/null ;;
      esac
    done
    # Mounts under it (the data-root bind mount, network namespaces), deepest first.
    for m in $(awk -v w="$WORK" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
      umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    # Bridges the engine made for compose networks and did not remove.
    for b in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sort |
               comm -13 <(printf '%s\n' "$bridges_before") -); do
      case "$b" in br-*|docker0) ip link delete "$b" 2>/dev/null ;; esac
    done
    [ "$had_key" = 1 ] || rm -f /etc/docker/key.json
    [ "$had_run_containerd" = 1 ] || find /run/containerd -depth -type d -empty -delete 2>/dev/null
  fi
  rm -rf "$WORK"
  say "compose: $PASSED passed, $FAILED failed"
  if [ "$rc" -eq 0 ]; then
    echo "PASS tests/compose/run.sh ($((SECONDS - T_START)) s)"
  else
    echo "FAIL tests/compose/run.sh ($((SECONDS - T_START)) s)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 2. the engine -----------------------------------------------------
if [ -n "${SVC_COMPOSE_DOCKER_HOST:-}" ]; then
  export DOCKER_HOST=$SVC_COMPOSE_DOCKER_HOST
  timeout 20 "$DOCKER" version >/dev/null || fail "no engine answers at $DOCKER_HOST"
  ok "engine at $DOCKER_HOST"
else
  echo '{}' >"$WORK/daemon.json"
  t0=$SECONDS
  dockerd --config-file "$WORK/daemon.json" \
    --data-root "$WORK/root" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
    -H "unix://$WORK/docker.sock" --bridge=none --iptables=false --ip6tables=false \
    --storage-driver=vfs >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  export DOCKER_HOST="unix://$WORK/docker.sock"
  for _ in $(seq 1 120); do
    timeout 5 "$DOCKER" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  if ! timeout 5 "$DOCKER" version >/dev/null 2>&1; then
    tail -20 "$WORK/dockerd.log"
    fail "engine did not start within 60 s"
  fi
  ok "engine started in $((SECONDS - t0)) s ($("$DOCKER" version -f '{{.Server.Version}}'))"
fi

# --- 3. the base image -------------------------------------------------
if ! "$DOCKER" image inspect debian:bookworm >/dev/null 2>&1; then
  t0=$SECONDS
  timeout 600 debootstrap --variant=minbase bookworm "$WORK/rootfs" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; fail "debootstrap bookworm"; }
  tar -C "$WORK/rootfs" -c . | timeout 300 "$DOCKER" import - debian:bookworm >/dev/null ||
    fail "docker import of the base image"
  rm -rf "$WORK/rootfs"
  ok "base image debian:bookworm made with debootstrap in $((SECONDS - t0)) s"
fi
if ! "$DOCKER" image inspect debian:bookworm-slim >/dev/null 2>&1; then
  "$DOCKER" tag debian:bookworm debian:bookworm-slim
fi

# --- 4. bring-up -------------------------------------------------------
# Host ports: free ones on 127.0.0.1, so a suite already running there
# (./run.sh) does not get in the way. TTL 4 s: the killed instance leaves
# the registry within 4 x ttl.
read -r FACADE_PORT FACADE2_PORT REGISTRY_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
export FACADE_PORT FACADE2_PORT REGISTRY_PORT TTL=4s
export SVC_SECRETS_DIR="$WORK/secrets"
scripts/compose-secrets.sh "$SVC_SECRETS_DIR" >/dev/null || fail "scripts/compose-secrets.sh"
FACADE="http://127.0.0.1:$FACADE_PORT"
FACADE2="http://127.0.0.1:$FACADE2_PORT"
REGISTRY="http://127.0.0.1:$REGISTRY_PORT"

"${DC[@]}" config -q || fail "docker-compose config -q"
ok "docker-compose config -q"

t0=$SECONDS
COMPOSE_UP=1
if ! "${DC[@]}" up -d --build >"$WORK/up.log" 2>&1; then
  tail -40 "$WORK/up.log"
  fail "docker-compose up -d --build"
fi
ok "docker-compose up -d --build in $((SECONDS - t0)) s"

# wait_for SECONDS WHAT CMD...: run CMD every second until it succeeds.
wait_for() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || fail "$what: not within $limit s"
    sleep 1
  done
}

all_healthy() {
  local ids id n=0 state
  ids=$("${DC[@]}" ps -q) || return 1
  for id in $ids; do
    state=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null) || return 1
    [ "$state" = healthy ] || return 1
    n=$((n + 1))
  done
  [ "$n" -eq 8 ]
}
t0=$SECONDS
wait_for 120 "8 containers healthy" all_healthy
ok "8 containers healthy $((SECONDS - t0)) s after up"

# count_passing NAME: passing instances of NAME in the registry.
count_passing() {
  curl -sf --max-time 5 "$REGISTRY/v1/services?name=$1&health=passing" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["services"]))'
}
registered() {
  [ "$(count_passing logging-service)" = 3 ] &&
    [ "$(count_passing messages-service)" = 2 ] &&
    [ "$(count_passing facade-service)" = 2 ]
}
wait_for 30 "3 logging, 2 messages, 2 facades registered" registered
# Every instance advertises its container address, not loopback.
hosts=$(curl -sf --max-time 5 "$REGISTRY/v1/services" |
  python3 -c 'import json, sys; print(" ".join(sorted(s["host"] for s in json.load(sys.stdin)["services"])))')
case " $hosts " in
  *" 127."*|*" 0.0.0.0 "*) fail "an instance advertises a loopback/wildcard host: $hosts" ;;
esac
ok "registry lists 3 logging, 2 messages, 2 facades, at $hosts"

# --- 5. POST and GET through the published port ------------------------
reply=$(curl -s --max-time 30 -X POST "$FACADE/facade" -H 'Content-Type: application/json' \
  -d '{"msg": "hello from the compose test"}')
case "$reply" in
  *'"status":"success"'*) ;;
  *) fail "POST /facade answered: $reply" ;;
esac
reply=$(curl -s --max-time 15 "$FACADE/facade")
case "$reply" in
  *'"hello from the compose test"'*'"message":"not implemented yet"'*) ;;
  *) fail "GET /facade answered: $reply" ;;
esac
ok "POST then GET through 127.0.0.1:$FACADE_PORT: $reply"

# --- 5a. two facades: what one stored, the other reads -------------------
# cross FROM TO TEXT: POST TEXT to facade FROM, then GET /facade of TO
# must list it (TO syncs its merged view with every logging instance on
# each GET, so no wait is needed).
cross() {
  local reply
  reply=$(curl -s --max-time 30 -X POST "$1/facade" -H 'Content-Type: application/json' \
    -d "{\"msg\": \"$3\"}")
  case "$reply" in
    *'"status":"success"'*) ;;
    *) fail "POST /facade to $1 answered: $reply" ;;
  esac
  reply=$(curl -s --max-time 15 "$2/facade")
  case "$reply" in
    *"\"$3\""*) ;;
    *) fail "GET /facade of $2 does not list \"$3\" POSTed to $1: $reply" ;;
  esac
}
cross "$FACADE" "$FACADE2" "posted to facade 1, read from facade 2"
cross "$FACADE2" "$FACADE" "posted to facade 2, read from facade 1"
facade_hosts=$(curl -sf --max-time 5 "$REGISTRY/v1/services?name=facade-service" |
  python3 -c 'import json, sys; print(len({s["host"] for s in json.load(sys.stdin)["services"]}))')
[ "$facade_hosts" = 2 ] || fail "the two facades are not registered from two hosts: $facade_hosts"
ok "two facades (127.0.0.1:$FACADE_PORT, 127.0.0.1:$FACADE2_PORT): each reads what the other stored"

# --- 5b. writes without a token are refused ----------------------------
# status METHOD URL [BODY]: the HTTP status of one call without a token; the
# body goes to $WORK/reply.
status() {
  curl -s -o "$WORK/reply" -w '%{http_code}' --max-time 10 -X "$1" "$2" \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}
code=$(status POST "$REGISTRY/v1/services" '{"name":"logging-service","host":"10.9.9.9","port":5001}')
[ "$code" = 403 ] || fail "register without a token answered $code: $(cat "$WORK/reply")"
[ "$(count_passing logging-service)" = 3 ] || fail "a register without a token changed the registry"
some_id=$(curl -sf --max-time 5 "$REGISTRY/v1/services?name=logging-service" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["services"][0]["id"])')
code=$(status DELETE "$REGISTRY/v1/services/$some_id")
[ "$code" = 403 ] || fail "deregister without a token answered $code: $(cat "$WORK/reply")"
curl -sf --max-time 5 "$REGISTRY/v1/services/$some_id" >/dev/null ||
  fail "$some_id is gone after a refused deregister"
# From inside the network (logging's port is not published): bash's
# /dev/tcp in the facade's container, no token.
intruder='{"uuid":"00000000-0000-4000-8000-000000000001","msg":"intruder"}'
answer=$("$DOCKER" exec "$("${DC[@]}" ps -q facade-service)" bash -c '
  exec 3<>/dev/tcp/logging-1/5001 &&
  printf "POST /logging HTTP/1.1\r\nHost: logging-1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" "${#1}" "$1" >&3 &&
  head -n1 <&3' _ "$intruder") || fail "POST /logging from the facade's container"
case "$answer" in
  "HTTP/1.1 403"*) ;;
  *) fail "POST /logging without the peer token answered: $answer" ;;
esac
reply=$(curl -s --max-time 15 "$FACADE/facade")
case "$reply" in
  *intruder*) fail "the refused message is in GET /facade: $reply" ;;
esac
ok "without a token: register 403, deregister 403, POST /logging 403, nothing changed"

# --- 6. one logging container killed in the middle of a batch ---------
victim=$("${DC[@]}" ps -q logging-2)
victim_ip=$("$DOCKER" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$victim")
victim_id=$(curl -sf --max-time 5 "$REGISTRY/v1/services?name=logging-service" |
  python3 -c 'import json, sys
for s in json.load(sys.stdin)["services"]:
    if s["host"] == sys.argv[1]: print(s["id"])' "$victim_ip")
[ -n "$victim_id" ] || fail "no registration found for logging-2 at $victim_ip"
timeout 300 python3 tests/compose/traffic.py batch "$FACADE" "$WORK/batch.json" \
  --count 100 --kill-at 50 --workers 4 --interval 0.05 -- "$DOCKER" kill "$victim" ||
  fail "batch of 100 POSTs with logging-2 killed after 50"
ok "100 POSTs answered, logging-2 ($victim_ip) killed after 50"
timeout 60 python3 tests/compose/traffic.py verify "$FACADE" "$WORK/batch.json" ||
  fail "GET /facade after the kill"
ok "every acknowledged message returned exactly once"

victim_gone() {
  local list
  list=$(curl -sf --max-time 5 "$REGISTRY/v1/services?name=logging-service") || return 1
  case "$list" in *"\"$victim_id\""*) return 1 ;; esac
}
t0=$SECONDS
wait_for 40 "registry drops the killed instance" victim_gone
ok "registry dropped $victim_id $((SECONDS - t0)) s after the batch (ttl 4 s)"
timeout 60 python3 tests/compose/traffic.py verify "$FACADE" "$WORK/batch.json" ||
  fail "GET /facade once the killed instance is gone"
ok "GET still returns every acknowledged message exactly once"

# --- 7. stopping deregisters; down leaves nothing -----------------------
"${DC[@]}" stop -t 10 facade-service facade-2 logging-1 logging-3 messages-service >/dev/null 2>&1 ||
  fail "docker-compose stop"
left=$(curl -sf --max-time 5 "$REGISTRY/v1/services" |
  python3 -c 'import json, sys; print(" ".join(s["id"] for s in json.load(sys.stdin)["services"]))')
[ -z "$left" ] || fail "registrations left after stopping the services: $left"
ok "services stopped (SIGTERM), no registration left"

"${DC[@]}" down -v --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 ||
  { cat "$WORK/down.log"; fail "docker-compose down -v"; }
COMPOSE_UP=0
[ -z "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] ||
  fail "containers left after down"
[ -z "$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] ||
  fail "volumes left after down -v"
ok "docker-compose down -v removed containers, network and volumes"

# --- 8. a further test on the same engine -------------------------------
# SVC_COMPOSE_NEXT=SCRIPT runs SCRIPT now, with SVC_COMPOSE_DOCKER_HOST set
# to this engine, so it reuses the images built above (.ci/run runs
# tests/compose/run_ha.sh so); its failure fails this run.
if [ -n "${SVC_COMPOSE_NEXT:-}" ]; then
  SVC_COMPOSE_DOCKER_HOST=$DOCKER_HOST "$SVC_COMPOSE_NEXT" || fail "$SVC_COMPOSE_NEXT"
  ok "$SVC_COMPOSE_NEXT"
fi
