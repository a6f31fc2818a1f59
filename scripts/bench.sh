#!/usr/bin/env bash
# The load comparison against nginx and HAProxy (see benches/load.py), and
# the hot-path micro-benchmarks. Installs nginx, HAProxy and wrk if missing.
#   scripts/bench.sh            # full run (a few minutes)
#   scripts/bench.sh --smoke    # one short round, to check it works
#   scripts/bench.sh --micro    # only the criterion micro-benchmarks
#   scripts/bench.sh --instructions  # user-space instructions per request
#                               # under callgrind, cutover vs bare Pingora
#   scripts/bench.sh --stalled  # stalled clients: memory per connection and
#                               # when the proxy closes them (benches/stalled.py;
#                               # more options after it, e.g. --proxy all)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench
if [ "${1:-}" = "--micro" ]; then
  shift
  exec cargo bench --locked --bench hot_path -- "$@"
fi
if [ "${1:-}" = "--stalled" ]; then
  shift
  cargo build --locked --release --bin cutover
  exec python3 benches/stalled.py "$@"
fi
cargo build --locked --release --bin cutover --example bare_pingora
if [ "${1:-}" = "--instructions" ]; then
  shift
  exec python3 benches/instructions.py "$@"
fi
exec python3 benches/load.py "$@"
