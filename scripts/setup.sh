#!/usr/bin/env bash
# Install the system packages cutover's build and tests need, if missing.
# Usage: scripts/setup.sh [build|test|fleet|deploy|bench]...
# (fleet: etcd for `cutover demo --fleet`; deploy: the Kubernetes schema
# validator for tests/deploy.rs, in a virtualenv under target/)
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run repeatedly.
set -euo pipefail

want=()
deploy_venv=""
kv_version=1.37.0  # kubernetes-validate, for `deploy`
for what in "${@:-build}"; do
  case "$what" in
    build)
      command -v cmake >/dev/null 2>&1 || want+=(cmake)
      # The etcd client's gRPC code is generated at build time.
      command -v protoc >/dev/null 2>&1 || want+=(protobuf-compiler)
      [ -f /usr/include/google/protobuf/descriptor.proto ] || want+=(libprotobuf-dev)
      ;;
    test)
      command -v cmake >/dev/null 2>&1 || want+=(cmake)
      command -v protoc >/dev/null 2>&1 || want+=(protobuf-compiler)
      [ -f /usr/include/google/protobuf/descriptor.proto ] || want+=(libprotobuf-dev)
      command -v etcd >/dev/null 2>&1 || want+=(etcd-server)
      # The status page is tested in a real headless browser.
      command -v chromium >/dev/null 2>&1 || want+=(chromium fonts-dejavu-core)
      command -v promtool >/dev/null 2>&1 || want+=(prometheus)
      # tests/import.rs validates its corpus with, and runs it in, the
      # real nginx and HAProxy.
      command -v nginx >/dev/null 2>&1 || want+=(nginx-light)
      command -v haproxy >/dev/null 2>&1 || want+=(haproxy)
      ;;
    fleet)
      # `cutover demo --fleet` runs a real etcd on loopback.
      command -v etcd >/dev/null 2>&1 || want+=(etcd-server)
      ;;
    bench)
      command -v cmake >/dev/null 2>&1 || want+=(cmake)
      command -v protoc >/dev/null 2>&1 || want+=(protobuf-compiler)
      [ -f /usr/include/google/protobuf/descriptor.proto ] || want+=(libprotobuf-dev)
      command -v nginx >/dev/null 2>&1 || want+=(nginx-light)
      command -v haproxy >/dev/null 2>&1 || want+=(haproxy)
      command -v wrk >/dev/null 2>&1 || want+=(wrk)
      command -v h2load >/dev/null 2>&1 || want+=(nghttp2-client)
      command -v valgrind >/dev/null 2>&1 || want+=(valgrind)
      ;;
    deploy)
      # tests/deploy.rs validates deploy/k8s with kubernetes-validate, in a
      # virtualenv at target/deploy-venv; it ships the Kubernetes schemas, so
      # validating needs no network.
      deploy_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/deploy-venv"
      if [ "$("$deploy_venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$kv_version" ]; then
        command -v python3 >/dev/null 2>&1 || want+=(python3)
        python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || want+=(python3-venv)
      else
        deploy_venv=""
      fi
      ;;
    *) echo "setup.sh: unknown target $what" >&2; exit 2 ;;
  esac
done

if [ ${#want[@]} -gt 0 ]; then
  echo "setup: installing ${want[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >&2
fi

if [ -n "$deploy_venv" ]; then
  echo "setup: installing kubernetes-validate $kv_version into target/deploy-venv" >&2
  [ -x "$deploy_venv/bin/python" ] || python3 -m venv "$deploy_venv"
  "$deploy_venv/bin/python" -m pip install -q --disable-pip-version-check \
    "kubernetes-validate==$kv_version" >&2
fi

command -v cargo >/dev/null 2>&1 || {
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
}
