#!/usr/bin/env bash
# Build cutover and run its built-in demo (about a minute, ends by itself).
# Extra arguments go to `cutover demo` (e.g. --duration 30s, --fleet).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(build)
for a in "$@"; do [ "$a" = "--fleet" ] && targets+=(fleet); done
scripts/setup.sh "${targets[@]}"
if [ ! -x target/debug/cutover ]; then
  echo "building cutover (the first build compiles Pingora: about 5 minutes on 2 cores)..." >&2
fi
cargo build --locked
exec target/debug/cutover demo "$@"
