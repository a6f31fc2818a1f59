#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit, property and
# end-to-end tests (real sockets, the real binary). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
