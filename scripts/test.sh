#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, unit, property and
# end-to-end tests (real sockets, the real binary). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test deploy

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
cargo test --locked --all-targets
# The behaviour suites once more, every request through Pingora's path
# (`fast_path = false`): one list of cases, both request paths. (The edge
# suites, tests/edge*.rs, run both paths within themselves.)
CUTOVER_TEST_FAST_PATH=false cargo test --locked \
  --test proxy_core --test failover --test shift --test reload --test lifecycle --test admin --test fleet
