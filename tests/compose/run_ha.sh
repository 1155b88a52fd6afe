#!/usr/bin/env bash
# tests/compose/run_ha.sh: the container test of the HA stack
# (docker-compose.ha.yaml, Dockerfile.etcd), run for real (root):
#   1. on the engine of SVC_COMPOSE_DOCKER_HOST (tests/compose/run.sh hands
#      over its own, with svcmesh:latest and the base images in it: see
#      SVC_COMPOSE_NEXT there); without one, runs tests/compose/run.sh with
#      SVC_COMPOSE_NEXT set to this script, so the first stack's test runs
#      first and this one after it in the same engine;
#   2. docker-compose config -q, up -d --build (builds only svcmesh-etcd;
#      svcmesh:latest is reused, or built once if the engine lacks it),
#      waits for 12 healthy containers: three etcd nodes in one cluster, two
#      registry replicas, every instance registered and listed with the same
#      ids by both replicas;
#   3. the replicas are one registry: a key written through registry-1 is
#      read on registry-2; a message POSTed to each facade is read back from
#      the other;
#   4. 200 POSTs from 4 threads; after 50 answers `docker kill` of etcd-1
#      (the first endpoint of both replicas), after 120 `docker kill` of
#      registry-1 (the first URL of every service); registry-2 still lists
#      the same ids; a GET at once is shown (it fails the test only with
#      SVC_HA_STRICT=1: a lease can lapse while a renewal times out);
#   5. registry-2, the survivor, lists all of them passing again once their
#      renewals fail over to it, and then every acknowledged message comes
#      back exactly once from both facades; a register, a key write and a
#      deregister through it are acknowledged with two etcd nodes of three;
#   6. docker-compose down -v; no container or volume left.
# Cleanup (logs on failure, down -v) runs on failure too. Ends with
# "compose-ha: N passed, M failed" and PASS or FAIL; exit 0 on PASS.
# Kept out of ctest: .ci/run runs it through tests/compose/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T_START=$SECONDS

if [ -z "${SVC_COMPOSE_DOCKER_HOST:-}" ]; then
  exec env SVC_COMPOSE_NEXT="$ROOT/tests/compose/run_ha.sh" "$ROOT/tests/compose/run.sh"
fi

PASSED=0
FAILED=0
say() { printf '%s compose-ha: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
ok() { PASSED=$((PASSED + 1)); say "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); say "FAILED - $*"; exit 1; }

DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
export DOCKER_HOST=$SVC_COMPOSE_DOCKER_HOST
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 COMPOSE_HTTP_TIMEOUT=120

WORK=$(mktemp -d "${TMPDIR:-/tmp}/svcmesh-compose-ha.XXXXXX")
PROJECT="svcmeshha$$"
DC=(timeout 600 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.ha.yaml")
COMPOSE_UP=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$rc" -ne 0 ] && [ "$COMPOSE_UP" = 1 ]; then
    say "services' logs (last 100 lines each):"
    timeout 60 "${DC[@]:2}" logs --no-color --tail=100 2>&1
    timeout 30 "${DC[@]:2}" ps 2>&1
  fi
  if [ "$COMPOSE_UP" = 1 ]; then
    timeout 120 "${DC[@]:2}" down -v --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 ||
      { say "docker-compose down failed:"; cat "$WORK/down.log"; }
  fi
  rm -rf "$WORK"
  say "compose-ha: $PASSED passed, $FAILED failed"
  if [ "$rc" -eq 0 ]; then
    echo "PASS tests/compose/run_ha.sh ($((SECONDS - T_START)) s)"
  else
    echo "FAIL tests/compose/run_ha.sh ($((SECONDS - T_START)) s)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 20 "$DOCKER" version >/dev/null || fail "no engine answers at $DOCKER_HOST"
ok "engine at $DOCKER_HOST"

# --- 2. bring-up -------------------------------------------------------
export SVC_SECRETS_DIR="$WORK/secrets"
scripts/compose-secrets.sh "$SVC_SECRETS_DIR" >/dev/null || fail "scripts/compose-secrets.sh"
OPS_TOKEN=$(head -n1 "$SVC_SECRETS_DIR/registry-ops.token")
if ! "$DOCKER" image inspect svcmesh:latest >/dev/null 2>&1; then
  t0=$SECONDS
  timeout 1500 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yaml" build registry \
    >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "build of svcmesh:latest"; }
  ok "svcmesh:latest was not in the engine: built in $((SECONDS - t0)) s"
fi
# Free host ports on 127.0.0.1; TTL 4 s as in the first stack's test.
read -r HA_REGISTRY1_PORT HA_REGISTRY2_PORT HA_FACADE_PORT HA_FACADE2_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
export HA_REGISTRY1_PORT HA_REGISTRY2_PORT HA_FACADE_PORT HA_FACADE2_PORT TTL=4s
REG1="http://127.0.0.1:$HA_REGISTRY1_PORT"
REG2="http://127.0.0.1:$HA_REGISTRY2_PORT"
FACADE="http://127.0.0.1:$HA_FACADE_PORT"
FACADE2="http://127.0.0.1:$HA_FACADE2_PORT"

"${DC[@]}" config -q || fail "docker-compose -f docker-compose.ha.yaml config -q"
ok "docker-compose -f docker-compose.ha.yaml config -q"

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
  [ "$n" -eq 12 ]
}
t0=$SECONDS
wait_for 180 "12 containers healthy" all_healthy
ok "12 containers healthy $((SECONDS - t0)) s after up (3 etcd, 2 registries, 7 services)"

# etcdctl in a node: its members, and who leads.
etcdctl() {
  "$DOCKER" exec "$("${DC[@]}" ps -q "$1")" etcdctl --command-timeout=5s \
    --endpoints=http://etcd-1:2379,http://etcd-2:2379,http://etcd-3:2379 "${@:2}"
}
members=$(etcdctl etcd-2 member list | wc -l) || fail "etcdctl member list"
[ "$members" = 3 ] || fail "the etcd cluster has $members members, not 3"
say "etcd cluster:"
etcdctl etcd-2 endpoint status -w table || fail "etcdctl endpoint status"
ok "one etcd cluster of 3 members"

# ids REGISTRY [HEALTH]: the sorted ids the replica lists (of HEALTH only).
ids() {
  curl -sf --max-time 5 "$1/v1/services${2:+?health=$2}" |
    python3 -c 'import json, sys; print(" ".join(sorted(s["id"] for s in json.load(sys.stdin)["services"])))'
}
# count REGISTRY NAME: instances of NAME the replica lists passing.
count() {
  curl -sf --max-time 5 "$1/v1/services?name=$2&health=passing" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["services"]))'
}
registered() {
  [ "$(count "$1" logging-service)" = 3 ] &&
    [ "$(count "$1" messages-service)" = 2 ] &&
    [ "$(count "$1" facade-service)" = 2 ]
}
t0=$SECONDS
wait_for 60 "3 logging, 2 messages, 2 facades passing on registry-1" registered "$REG1"
same_ids() { [ "$(ids "$REG2")" = "$(ids "$REG1")" ]; }
wait_for 10 "registry-2 lists the ids registry-1 lists" same_ids
BEFORE=$(ids "$REG1")
ok "registry-1 lists 3 logging, 2 messages, 2 facades passing ($((SECONDS - t0)) s); registry-2 the same 7 ids"

# --- 3. one registry: KV and the two facades ---------------------------
code=$(curl -s -o "$WORK/reply" -w '%{http_code}' --max-time 10 -X PUT \
  -H "X-Registry-Token: $OPS_TOKEN" --data "written through registry-1" \
  "$REG1/v1/kv/ha-test/first")
[ "$code" = 200 ] || fail "PUT /v1/kv/ha-test/first on registry-1 answered $code: $(cat "$WORK/reply")"
kv_on() { [ "$(curl -sf --max-time 5 "$1/v1/kv/ha-test/$2?raw")" = "$3" ]; }
wait_for 5 "the key written through registry-1 on registry-2" \
  kv_on "$REG2" first "written through registry-1"
ok "a key written through registry-1 is read on registry-2"

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
ok "two facades (127.0.0.1:$HA_FACADE_PORT, 127.0.0.1:$HA_FACADE2_PORT): each reads what the other stored"

# --- 4. an etcd node and a registry replica killed under traffic -------
ETCD_VICTIM=$("${DC[@]}" ps -q etcd-1)
REG_VICTIM=$("${DC[@]}" ps -q registry-1)
timeout 300 python3 tests/compose/traffic.py batch "$FACADE" "$WORK/batch.json" \
  --count 200 --kill-at 50,120 --workers 4 --interval 0.05 \
  -- "$DOCKER" kill "$ETCD_VICTIM" -- "$DOCKER" kill "$REG_VICTIM" ||
  fail "batch of 200 POSTs with etcd-1 killed after 50 and registry-1 after 120"
ok "200 POSTs answered, etcd-1 killed after 50, registry-1 after 120"
after=$(ids "$REG2") || fail "GET /v1/services on registry-2"
[ "$after" = "$BEFORE" ] ||
  fail "registry-2 lists other ids than before the kills: before $BEFORE, after $after"
ok "registry-2 lists the same 7 ids as before the kills"

# Right after the kills: health is shared through etcd leases (README
# "Replicas on a shared store"), but an instance whose renewal was on its
# way to the dead registry-1 renews again only after that request timed
# out; with ttl 4 s its lease can lapse first, and a GET then skips its
# messages until it renews through registry-2 (a clean-clone run here:
# 5 of 7 passing, 70 of 200 missing; a quiet one: 7 of 7, none missing).
# Shown; a failure only with SVC_HA_STRICT=1.
say "at once after the kills: passing on registry-2: $(ids "$REG2" passing | wc -w) of 7"
if timeout 60 python3 tests/compose/traffic.py verify "$FACADE" "$WORK/batch.json"; then
  ok "at once after the kills: every acknowledged message returned exactly once"
elif [ "${SVC_HA_STRICT:-0}" = 1 ]; then
  fail "GET /facade at once after the kills (SVC_HA_STRICT=1)"
else
  say "known gap - at once after the kills GET /facade misses messages of instances whose lease lapsed while their renewal to registry-1 timed out"
fi

# --- 5. the survivor -------------------------------------------------------
say "etcd after the kill:"
etcdctl etcd-2 endpoint status -w table 2>&1 || true
t0=$SECONDS
wait_for 40 "every instance passing on registry-2" registered "$REG2"
[ "$(ids "$REG2")" = "$BEFORE" ] || fail "registry-2's ids changed: $(ids "$REG2")"
ok "every instance passing on registry-2 $((SECONDS - t0)) s after the batch (ttl 4 s), same ids"
timeout 60 python3 tests/compose/traffic.py verify "$FACADE" "$WORK/batch.json" ||
  fail "GET /facade of facade 1 after the kills"
timeout 60 python3 tests/compose/traffic.py verify "$FACADE2" "$WORK/batch.json" ||
  fail "GET /facade of facade 2 after the kills"
ok "every acknowledged message returned exactly once, by both facades"

probe='{"name":"ha-probe","host":"10.9.9.9","port":4000}'
code=$(curl -s -o "$WORK/reply" -w '%{http_code}' --max-time 10 -X POST \
  -H "X-Registry-Token: $OPS_TOKEN" -H 'Content-Type: application/json' -d "$probe" \
  "$REG2/v1/services")
case "$code" in
  200 | 201) ;;
  *) fail "register through registry-2 with etcd-1 down answered $code: $(cat "$WORK/reply")" ;;
esac
probe_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["service_id"])' "$WORK/reply") ||
  fail "register through registry-2: no id in $(cat "$WORK/reply")"
code=$(curl -s -o "$WORK/reply" -w '%{http_code}' --max-time 10 -X PUT \
  -H "X-Registry-Token: $OPS_TOKEN" --data "written through registry-2" \
  "$REG2/v1/kv/ha-test/second")
[ "$code" = 200 ] || fail "PUT /v1/kv/ha-test/second on registry-2 answered $code: $(cat "$WORK/reply")"
kv_on "$REG2" second "written through registry-2" || fail "the key written on registry-2 is not there"
kv_on "$REG2" first "written through registry-1" || fail "the key written before the kills is gone"
code=$(curl -s -o "$WORK/reply" -w '%{http_code}' --max-time 10 -X DELETE \
  -H "X-Registry-Token: $OPS_TOKEN" "$REG2/v1/services/$probe_id")
[ "$code" = 200 ] || fail "deregister through registry-2 answered $code: $(cat "$WORK/reply")"
ok "with 2 etcd nodes of 3: register, key write and deregister through registry-2 acknowledged"
timeout 60 python3 tests/compose/traffic.py verify "$FACADE2" "$WORK/batch.json" ||
  fail "GET /facade once everything is passing on registry-2"
ok "GET still returns every acknowledged message exactly once"

# --- 6. down -----------------------------------------------------------
"${DC[@]}" down -v --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 ||
  { cat "$WORK/down.log"; fail "docker-compose down -v"; }
COMPOSE_UP=0
[ -z "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] ||
  fail "containers left after down"
[ -z "$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] ||
  fail "volumes left after down -v"
ok "docker-compose down -v removed containers, network and volumes"
