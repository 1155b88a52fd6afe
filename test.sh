#!/usr/bin/env bash
# test.sh: install what is missing, build and run every test with ctest.
#   ./test.sh            the default build (build/)
#   ./test.sh --sanitize the same tests under AddressSanitizer + UBSan (build-asan/)
#   ./test.sh --fuzz N   only the libFuzzer harnesses, N seconds split between them (clang)
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh --test

dir=build type=RelWithDebInfo fuzz=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) dir=build-asan type=Asan ;;
    --fuzz) fuzz="${2:?--fuzz needs seconds}"; shift ;;
    *) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$fuzz" = 0 ]; then
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DSVC_WERROR=ON >/dev/null
  cmake --build "$dir" -j"$(nproc)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd "$dir" && ctest --output-on-failure -j2)
else
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSVC_FUZZ=ON -DSVC_TESTS=ON >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target fuzz_spec fuzz_jsonflat fuzz_journal \
    fuzz_request fuzz_config fuzz_watch fuzz_action fuzz_dns fuzz_consul
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # fuzz_one NAME SEED_DIR SECONDS: run fuzz_NAME on a scratch copy of its
  # seed corpus (at least 1 s: libFuzzer reads 0 as "no limit").
  fuzz_one() {
    mkdir "$work/$1"
    cp tests/fuzz/"$2"/* "$work/$1"/
    build-fuzz/bin/fuzz_"$1" -max_total_time="$(($3 > 0 ? $3 : 1))" -print_final_stats=1 "$work/$1"
  }
  # N seconds split across the nine; the last takes the remainder
  fuzz_one spec corpus $((fuzz / 9))
  fuzz_one jsonflat corpus_jsonflat $((fuzz / 9))
  fuzz_one journal corpus_journal $((fuzz / 9))
  fuzz_one request corpus_request $((fuzz / 9))
  fuzz_one config corpus_config $((fuzz / 9))
  fuzz_one watch corpus_watch $((fuzz / 9))
  fuzz_one action corpus_action $((fuzz / 9))
  fuzz_one dns corpus_dns $((fuzz / 9))
  fuzz_one consul corpus_consul $((fuzz - 8 * (fuzz / 9)))
fi
