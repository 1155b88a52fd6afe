#!/usr/bin/env bash
# style.sh: the C style of .clang-format over every tracked .c and .h file.
#   scripts/style.sh          check only: list what differs, exit 1 if anything does
#   scripts/style.sh --fix    rewrite the files in place
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.c' '*.h')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
  echo "style: ${#files[@]} files match .clang-format"
fi
