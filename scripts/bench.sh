#!/usr/bin/env bash
# The load comparison against nginx and HAProxy (see benches/load.py), and
# the hot-path micro-benchmarks. Installs nginx, HAProxy and wrk if missing.
#   scripts/bench.sh            # full run (a few minutes)
#   scripts/bench.sh --smoke    # one short round, to check it works
#   scripts/bench.sh --micro    # only the criterion micro-benchmarks
#   scripts/bench.sh --instructions  # user-space instructions per request
#                               # under callgrind, cutover vs bare Pingora
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench
if [ "${1:-}" = "--micro" ]; then
  shift
  exec cargo bench --locked --bench hot_path -- "$@"
fi
cargo build --locked --release --bin cutover --example bare_pingora
if [ "${1:-}" = "--instructions" ]; then
  shift
  exec python3 benches/instructions.py "$@"
fi
exec python3 benches/load.py "$@"
