#!/usr/bin/env bash
# Build cutover and run its built-in demo (about a minute, ends by itself).
# Extra arguments go to `cutover demo` (e.g. --duration 30s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build fleet
cargo build --locked --quiet
exec target/debug/cutover demo "$@"
