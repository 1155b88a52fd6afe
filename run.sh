#!/usr/bin/env bash
# run.sh: install what is missing, build, and run the whole suite in the
# foreground: registry (:8500, SQLite file ./run-data/registry.db), two
# logging-service instances (:5001, :5003, journals in ./run-data),
# messages-service (:5002) and facade-service (:5000). Every line is
# prefixed with the process it came from. Ctrl-C stops them all (facade
# first, registry last, so each deregisters cleanly).
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

mkdir -p run-data
pids=()

# start LABEL BINARY ARGS...: run one process with its output prefixed.
start() {
  local label=$1 bin=$2
  shift 2
  # setsid: Ctrl-C reaches only this script, which then stops the
  # processes in order.
  setsid "build/bin/$bin" "$@" > >(sed -u "s/^/$(printf '%-10s|' "$label") /") 2>&1 &
  pids+=($!)
}

stop_all() {
  trap - INT TERM
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  exit 0
}
trap stop_all INT TERM

reg=http://127.0.0.1:8500
start registry registry --port 8500 --data run-data/registry.db
sleep 0.3
start logging1 logging-service --port 5001 --registry "$reg" --data-dir run-data
start logging2 logging-service --port 5003 --registry "$reg" --data-dir run-data
start messages messages-service --port 5002 --registry "$reg"
start facade facade-service --port 5000 --registry "$reg"
wait
