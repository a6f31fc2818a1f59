#!/usr/bin/env python3
"""Instructions per request, cutover against a bare Pingora proxy.

Wall-clock and CPU-time figures on a shared two-core machine move by 10-20 %
from run to run; instruction counts under valgrind's callgrind do not. This
runs each proxy under callgrind twice — once serving N requests, once
serving none — and reports (I_N - I_0) / N: the user-space instructions one
request costs, which is what cutover adds on top of Pingora (the kernel's
work per request is the same for both: the same system calls, counted with
strace in the README).

The bare Pingora proxy (examples/bare_pingora.rs) runs three ways: as it
ships; with the upstream timeouts cutover sets (Pingora has none by
default); and also adding the X-Forwarded-* headers cutover adds. The last
is the like-for-like baseline for what cutover's own features cost.

With --h2c the requests come from an HTTP/2 client instead (h2load, one
h2c connection, 8 streams at a time), through cutover's HTTP/2 path and
through Pingora's (`fast_path = false`).

Usage: benches/instructions.py [--requests N] [--keep DIR] [--h2c]
       (needs valgrind and nginx; build first with
        cargo build --release --bin cutover --example bare_pingora)
"""

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port  # noqa: E402


# Concurrent streams on the h2c connection (--streams).
STREAMS = 8


def drive_h2(port, requests):
    """`requests` GETs over one h2c connection, STREAMS at a time (h2load)."""
    out = subprocess.run(
        ["h2load", "-n", str(requests), "-c1", f"-m{STREAMS}", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    if f"{requests} succeeded" not in out:
        raise SystemExit(f"h2load: {out}")


def run(argv, port, requests, out, env=None, h2=False):
    p = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--trace-children=no"] + argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    if not wait_port(port, timeout=120):  # valgrind starts slowly
        raise SystemExit(f"nothing listens on {port}")
    if h2 and requests:
        drive_h2(port, requests)
        requests = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(requests):
        conn.request("GET", "/", headers={"Host": "bench"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"status {r.status}")
    conn.close()
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    total = 0
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--binary", help="the cutover binary to count (default: target/release/cutover)")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind profiles here (for callgrind_annotate)")
    ap.add_argument(
        "--h2c",
        action="store_true",
        help="HTTP/2 clients (h2load, one h2c connection, 8 streams): cutover's HTTP/2 path, and Pingora's (fast_path = false)",
    )
    ap.add_argument("--streams", type=int, default=8, help="with --h2c: concurrent streams (default 8)")
    args = ap.parse_args()
    global STREAMS
    STREAMS = args.streams
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    d = tempfile.mkdtemp(prefix="cutover-instr-")
    b1 = free_port()
    with open(f"{d}/b.conf", "w") as f:
        f.write(
            f"worker_processes 1; daemon off; pid {d}/b.pid; error_log stderr error;\n"
            f"events {{ worker_connections 1024; }}\n"
            f'http {{ access_log off; server {{ listen 127.0.0.1:{b1}; location / {{ return 200 "ok\\n"; }} }} }}\n'
        )
    backend = subprocess.Popen([nginx, "-c", f"{d}/b.conf", "-p", d], stderr=subprocess.DEVNULL)
    if not wait_port(b1, timeout=120):
        raise SystemExit(f"nothing listens on {b1}")
    results = {}
    try:
        if args.h2c:
            names = ["cutover", "cutover-pingora-path"]
        elif args.binary:
            names = ["cutover"]
        else:
            names = ["pingora", "pingora+timeouts", "pingora+timeouts+xff", "cutover"]
        for name in names:
            port, admin = free_port(), free_port()
            if name.startswith("cutover"):
                own = "" if name == "cutover" else "fast_path = false\n"
                cfg = f"{d}/c/cutover.toml"
                os.makedirs(os.path.dirname(cfg), exist_ok=True)
                with open(cfg, "w") as f:
                    f.write(
                        f'[proxy]\nlisten = ["127.0.0.1:{port}"]\nthreads = 1\n{own}[admin]\nlisten = "127.0.0.1:{admin}"\n'
                        f'[pools.onprem]\nbackends = ["127.0.0.1:{b1}"]\n[pools.cloud]\nbackends = ["127.0.0.1:{b1}"]\n'
                        f'[[routes]]\nname = "app"\nsplit = {{ onprem = 80, cloud = 20 }}\n'
                    )
                argv = [args.binary or os.path.join(ROOT, "target/release/cutover"), "run", "-c", cfg]
                env = dict(os.environ, MIMALLOC_ARENA_EAGER_COMMIT="0")
            else:
                argv = [os.path.join(ROOT, "target/release/examples/bare_pingora"), f"127.0.0.1:{port}", "1", f"127.0.0.1:{b1}"]
                env = dict(
                    os.environ,
                    BARE_TIMEOUTS="1" if "timeouts" in name else "0",
                    BARE_FORWARDED="1" if "xff" in name else "0",
                )
            i0 = run(argv, port, 0, f"{d}/{name}.0", env)
            i1 = run(argv, port, args.requests, f"{d}/{name}.1", env, h2=args.h2c)
            results[name] = (i1 - i0) / args.requests
            print(f"{name:21} {results[name]:10.0f} instructions per request", flush=True)
        for base in [b for b in ["pingora", "pingora+timeouts", "pingora+timeouts+xff"] if b in results]:
            print(f"cutover vs {base}: {results['cutover'] / results[base] - 1:+.1%} instructions per request")
        if "cutover-pingora-path" in results:
            print(f"HTTP/2 path vs Pingora's: {results['cutover'] / results['cutover-pingora-path'] - 1:+.1%} instructions per request")
    finally:
        # SIGTERM to the master lets nginx stop its worker too (SIGKILL would
        # orphan it, holding our stdout open).
        backend.terminate()
        backend.wait()
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for name in results:
                shutil.copy(f"{d}/{name}.1", os.path.join(args.keep, f"{name}.callgrind"))
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
