#!/usr/bin/env bash
# run.sh: install what is missing, build and run the registry in
# the foreground with its SQLite file ./registry.db. Ctrl-C stops it.
# Extra arguments go to the registry, e.g. ./run.sh --port 8600.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/bin/registry --data ./registry.db "$@"
