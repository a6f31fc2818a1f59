#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, unit, property and
# end-to-end tests (real sockets, the real binary). Installs what it needs.
# Ends with one summary line: passed / failed / skipped, and the time taken.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
results="$(mktemp)"
stage="setup"
summary() {
  local code=$?
  local passed failed ignored took
  read -r passed failed ignored < <(awk '/^test result:/ {
      for (i = 1; i <= NF; i++) {
        if ($(i) ~ /^passed;?$/) p += $(i-1)
        if ($(i) ~ /^failed;?$/) f += $(i-1)
        if ($(i) ~ /^ignored;?$/) g += $(i-1)
      }
    } END { print p+0, f+0, g+0 }' "$results")
  took=$((SECONDS - started))
  rm -f "$results"
  if [ "$code" -eq 0 ]; then
    echo "summary: all green: $passed passed, $failed failed, $ignored skipped in $((took / 60))m $((took % 60))s"
  else
    echo "summary: FAILED at $stage: $passed passed, $failed failed, $ignored skipped in $((took / 60))m $((took % 60))s"
  fi
}
trap summary EXIT

scripts/setup.sh test deploy

stage="cargo fmt"
cargo fmt --all -- --check
stage="cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
stage="cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
stage="the tests"
cargo test --locked --all-targets 2>&1 | tee -a "$results"
# The behaviour suites once more, every request through Pingora's path
# (`fast_path = false`): one list of cases, both request paths. (The edge
# suites, tests/edge*.rs, run both paths within themselves.)
stage="the tests on Pingora's path"
suites=(--test proxy_core --test failover --test shift --test reload --test lifecycle --test admin --test fleet --test tls_backends --test mirror)
# The import parity test (the real nginx and HAProxy beside cutover) and the
# migration report run here too; the h2 runs leave out the import test (its
# nginx and HAProxy listeners speak HTTP/1).
CUTOVER_TEST_FAST_PATH=false cargo test --locked "${suites[@]}" --test http2 --test http2_exchange \
  --test import --test report 2>&1 | tee -a "$results"
# And with HTTP/2 clients (h2c by prior knowledge), on each request path:
# cutover's HTTP/2 path, then Pingora's.
stage="the tests with HTTP/2 clients"
CUTOVER_TEST_CLIENT=h2 cargo test --locked "${suites[@]}" --test report 2>&1 | tee -a "$results"
stage="the tests with HTTP/2 clients on Pingora's path"
CUTOVER_TEST_CLIENT=h2 CUTOVER_TEST_FAST_PATH=false cargo test --locked "${suites[@]}" \
  2>&1 | tee -a "$results"
