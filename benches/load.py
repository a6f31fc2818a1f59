#!/usr/bin/env python3
"""Load comparison: cutover against nginx, HAProxy and a bare Pingora proxy.

All proxies run on the same machine, in front of the same two nginx backends
(weights 80/20, upstream keep-alive, access logs off), and are driven by the
same `wrk` in interleaved rounds, so that drift of the machine hits them all
alike. For each proxy it reports requests per second, p50 and p99 latency,
and the CPU time its own processes spent per request (from /proc/PID/stat),
plus ratios to nginx and HAProxy. The bare Pingora proxy runs twice: as it
ships, and with cutover's upstream timeouts and X-Forwarded-* headers
("pingora-eq"), the like-for-like baseline. Then, per proxy, the resident memory with
10,000 idle keep-alive client connections; and, for cutover, the time from a
config file write to the new split serving.

Usage: benches/load.py [--mode http|tls|h2|h2c|post|chunked] [--size BYTES]
                       [--rounds N] [--duration S] [--connections C]
                       [--threads T] [--smoke] [--skip-idle] [--baseline BINARY]
                       [--mirror PERCENT]
--mirror adds "cutover-mirror": the same cutover with `[routes.mirror]`
copying PERCENT of the on-prem requests to the cloud pool (its figures are
printed after the table), so the client's cost of shadow traffic is
measured in the same run.
Modes other than http (see benches/loadmodes.py) load nginx, HAProxy and
cutover only, each set up for the same job (TLS, HTTP/2, h2c, bodies).
Run through scripts/bench.sh, which installs nginx, HAProxy and wrk and
builds the release binaries.
"""

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Proc, free_port, raise_fd_limit, rss_kb  # noqa: E402
import loadmodes  # noqa: E402
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total


def parse_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000}[unit]


# A wrk Lua script (set by --post): every request a POST with a body.
WRK_SCRIPT = None


def wrk(port, duration, connections, mode="http"):
    script = ["-s", WRK_SCRIPT] if WRK_SCRIPT else []
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", *script, loadmodes.url(mode, port)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    dist = out.split("Latency Distribution", 1)[1]
    p50 = parse_ms(re.search(r"\n\s*50%\s+(\S+)", dist).group(1))
    p99 = parse_ms(re.search(r"\n\s*99%\s+(\S+)", dist).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": total,
        "p50": p50,
        "p99": p99,
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sock_err.group(1) if sock_err else "",
    }


NGINX_BACKENDS = """
worker_processes 1;
daemon off;
pid {dir}/backends.pid;
error_log stderr error;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{b1} backlog=4096; location / {{ return 200 "backend 1 ok\\n"; }} }}
  server {{ listen 127.0.0.1:{b2} backlog=4096; location / {{ return 200 "backend 2 ok\\n"; }} }}
  {tls_servers}
}}
"""

NGINX_PROXY = """
worker_processes {threads};
daemon off;
pid {dir}/proxy.pid;
error_log stderr error;
worker_rlimit_nofile 65536;
events {{ worker_connections 30000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{b1} weight=4; server 127.0.0.1:{b2} weight=1; keepalive 128; }}
  client_max_body_size 0;
  proxy_request_buffering off;
  server {{
    {listen}
    location / {{ proxy_pass {scheme}://app; proxy_http_version 1.1; proxy_set_header Connection ""; {proxy_ssl} }}
  }}
}}
"""

HAPROXY = """
global
  nbthread {threads}
  # As many connections as this sandbox's 20,000-descriptor hard limit lets
  # HAProxy accept (it reserves two per connection).
  maxconn 9950
  ulimit-n 20000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  http-reuse always
frontend fe
  {bind}
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:{b1} weight 4{ssl}
  server b2 127.0.0.1:{b2} weight 1{ssl}
"""

CUTOVER = """
[proxy]
listen = {listen}
threads = {threads}
{tls}
[admin]
listen = "127.0.0.1:{admin}"
[log]
access = "off"
[pools.onprem]
backends = ["127.0.0.1:{b1}"]
{pool_tls}
[pools.cloud]
backends = ["127.0.0.1:{b2}"]
{pool_tls}
[[routes]]
name = "app"
split = {{ onprem = {on}, cloud = {cl} }}
"""


def idle_rss(proc, n, mode="http"):
    """RSS of `proc` with `n` idle keep-alive client connections, each after
    one request: HTTP/1.1, or HTTP/2 (h2c, or h2 over TLS by ALPN)."""
    before = rss_kb(proc.pids())
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        if mode == "h2":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s)
        if mode in ("h2", "h2c"):
            loadmodes.h2_one_request(s)
        else:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            s.recv(4096)
        conns.append(s)
    time.sleep(1.0)
    after = rss_kb(proc.pids())
    for s in conns:
        s.close()
    return before, after


def reload_latency(proc, cfg_path, admin_port, text_for, n):
    """Time from writing a new config to the proxy serving it."""
    times = []
    for i in range(n):
        text = text_for(i)
        start = time.perf_counter()
        tmp = cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, cfg_path)
        want = fnv(text)
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status") as r:
                if json.load(r)["config"]["hash"] == want:
                    break
            if time.perf_counter() - start > 10:
                raise SystemExit("reload never applied")
            time.sleep(0.001)
        times.append((time.perf_counter() - start) * 1000)
    return times


def fnv(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=None, help="client connections (default 64; 16 for h2 and h2c)")
    ap.add_argument("--threads", type=int, default=2, help="nginx workers, HAProxy threads, Pingora threads")
    ap.add_argument("--cutover-threads", type=int, default=None)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="one short round, few idle connections")
    ap.add_argument("--only", default="", help="comma-separated proxies to load (default: all)")
    ap.add_argument("--skip-reload", action="store_true")
    ap.add_argument("--post", type=int, default=0, metavar="BYTES", help="POST a body of BYTES instead of GET (= --mode post --size BYTES)")
    ap.add_argument("--mode", choices=loadmodes.MODES, default="http")
    ap.add_argument("--size", type=int, default=1 << 20, help="body size for --mode post and chunked")
    ap.add_argument("--streams", type=int, default=8, help="concurrent streams per connection for h2 and h2c")
    ap.add_argument("--baseline", metavar="BINARY", help="also load another cutover build as cutover-base")
    ap.add_argument("--mirror", type=float, default=None, metavar="PERCENT", help="also load cutover with shadow traffic to the cloud pool")
    ap.add_argument(
        "--backend-tls",
        action="store_true",
        help="the proxies reach the backends over TLS (HTTPS pools); cutover-plainbe, on plain ones, is the same run's baseline",
    )
    args = ap.parse_args()
    raise_fd_limit()
    if args.smoke:
        args.rounds, args.duration, args.idle = 1, 2, 200
    cut_threads = args.cutover_threads or args.threads
    for tool in ["nginx", "haproxy", "wrk"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing: run scripts/bench.sh")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    cutover = os.path.join(ROOT, "target/release/cutover")
    bare = os.path.join(ROOT, "target/release/examples/bare_pingora")

    d = tempfile.mkdtemp(prefix="cutover-bench-")
    if args.post:
        args.mode, args.size = "post", args.post
    mode = args.mode
    h2 = mode in ("h2", "h2c")
    if h2 and not shutil.which("h2load"):
        raise SystemExit("h2load is missing: run scripts/bench.sh")
    global WRK_SCRIPT
    WRK_SCRIPT = loadmodes.wrk_script(mode, d, args.size)
    cert, key, both = loadmodes.make_cert(d)
    b1, b2 = free_port(), free_port()
    # HTTPS listeners of the same backends, for --backend-tls.
    t1, t2 = free_port(), free_port()
    ports = {
        k: free_port()
        for k in [
            "nginx", "haproxy", "pingora", "pingora-eq", "cutover", "admin", "cutover-1t", "admin-1t",
            "cutover-base", "admin-base", "cutover-plainbe", "admin-plainbe",
            "cutover-mirror", "admin-mirror",
        ]
    }
    tls_servers = "".join(
        f'server {{ listen 127.0.0.1:{port} ssl backlog=4096; ssl_certificate {cert}; ssl_certificate_key {key}; '
        f'ssl_protocols TLSv1.3; location / {{ return 200 "backend {n} ok\\n"; }} }}\n  '
        for n, port in ((1, t1), (2, t2))
    )
    # The backends the proxies use: HTTPS with --backend-tls.
    u1, u2 = (t1, t2) if args.backend_tls else (b1, b2)
    procs = []
    try:
        with open(f"{d}/backends.conf", "w") as f:
            f.write(NGINX_BACKENDS.format(dir=d, b1=b1, b2=b2, tls_servers=tls_servers))
        procs.append(Proc("backends", [nginx, "-c", f"{d}/backends.conf", "-p", d], b1))
        with open(f"{d}/proxy.conf", "w") as f:
            f.write(
                NGINX_PROXY.format(
                    dir=d,
                    b1=u1,
                    b2=u2,
                    threads=args.threads,
                    listen=loadmodes.nginx_listen(mode, ports["nginx"], cert, key),
                    scheme="https" if args.backend_tls else "http",
                    # nginx offers TLS 1.2 at most to backends unless told.
                    proxy_ssl="proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_session_reuse on;" if args.backend_tls else "",
                )
            )
        with open(f"{d}/haproxy.cfg", "w") as f:
            ssl = " ssl verify none" if args.backend_tls else ""
            f.write(
                HAPROXY.format(b1=u1, b2=u2, ssl=ssl, threads=args.threads, bind=loadmodes.haproxy_bind(mode, ports["haproxy"], both))
            )

        def cutover_text(port, admin, threads, on, backend_tls=args.backend_tls):
            listen, tls = loadmodes.cutover_listen(mode, port, cert, key)
            c1, c2 = (t1, t2) if backend_tls else (b1, b2)
            pool_tls = "tls = { verify = false }" if backend_tls else ""
            return CUTOVER.format(
                listen=listen, tls=tls, admin=admin, threads=threads, b1=c1, b2=c2, on=on, cl=100 - on, pool_tls=pool_tls
            )

        cut_text = lambda on: cutover_text(ports["cutover"], ports["admin"], cut_threads, on)
        cfg_path = f"{d}/cutover.toml"
        with open(cfg_path, "w") as f:
            f.write(cut_text(80))
        proxies = [
            Proc("nginx", [nginx, "-c", f"{d}/proxy.conf", "-p", d], ports["nginx"]),
            Proc("haproxy", [haproxy, "-f", f"{d}/haproxy.cfg"], ports["haproxy"]),
            Proc("pingora", [bare, f"127.0.0.1:{ports['pingora']}", str(cut_threads), f"127.0.0.1:{b1}", f"127.0.0.1:{b2}"], ports["pingora"]),
            # The same bare proxy with cutover's upstream timeouts and
            # X-Forwarded-* headers: the like-for-like baseline.
            Proc(
                "pingora-eq",
                [bare, f"127.0.0.1:{ports['pingora-eq']}", str(cut_threads), f"127.0.0.1:{b1}", f"127.0.0.1:{b2}"],
                ports["pingora-eq"],
                env={"BARE_TIMEOUTS": "1", "BARE_FORWARDED": "1"},
            ),
            Proc("cutover", [cutover, "run", "-c", cfg_path], ports["cutover"]),
        ]
        if cut_threads > 1:
            # One proxy thread leaves the second core to the load generator
            # and the backends sharing this machine.
            cfg_1t = f"{d}/cutover-1t.toml"
            with open(cfg_1t, "w") as f:
                f.write(cutover_text(ports["cutover-1t"], ports["admin-1t"], 1, 80))
            proxies.append(Proc("cutover-1t", [cutover, "run", "-c", cfg_1t], ports["cutover-1t"]))
        if args.baseline:
            # Another cutover build (an earlier commit's), same config, same
            # run: a before/after in one table.
            cfg_base = f"{d}/cutover-base.toml"
            with open(cfg_base, "w") as f:
                f.write(cutover_text(ports["cutover-base"], ports["admin-base"], cut_threads, 80))
            proxies.append(Proc("cutover-base", [args.baseline, "run", "-c", cfg_base], ports["cutover-base"]))
        if args.mirror is not None:
            # The same cutover copying a share of its on-prem requests to
            # the cloud pool and comparing the answers.
            cfg_mirror = f"{d}/cutover-mirror.toml"
            with open(cfg_mirror, "w") as f:
                f.write(cutover_text(ports["cutover-mirror"], ports["admin-mirror"], cut_threads, 80))
                f.write(f'[routes.mirror]\nto = "cloud"\npercent = {args.mirror}\n')
            proxies.append(Proc("cutover-mirror", [cutover, "run", "-c", cfg_mirror], ports["cutover-mirror"]))
        if args.backend_tls:
            # The same cutover on the plain backends: what TLS to the
            # backends costs, measured in the same run.
            cfg_plain = f"{d}/cutover-plainbe.toml"
            with open(cfg_plain, "w") as f:
                f.write(cutover_text(ports["cutover-plainbe"], ports["admin-plainbe"], cut_threads, 80, backend_tls=False))
            proxies.append(Proc("cutover-plainbe", [cutover, "run", "-c", cfg_plain], ports["cutover-plainbe"]))
        procs.extend(proxies)
        if mode != "http" or args.backend_tls:
            # The bare Pingora example serves plain HTTP/1 only.
            for p in proxies:
                if p.name.startswith("pingora"):
                    p.stop()
            proxies = [p for p in proxies if not p.name.startswith("pingora")]
        if args.connections is None:
            args.connections = 16 if h2 else 64

        def drive(p, duration):
            if h2:
                return loadmodes.h2load(p.port, mode, duration, args.connections, args.streams, d)
            return wrk(p.port, duration, args.connections, mode)

        if args.only:
            keep = set(args.only.split(","))
            for p in proxies:
                if p.name not in keep:
                    p.stop()
            proxies = [p for p in proxies if p.name in keep]
        for p in proxies:  # warm up connection pools
            drive(p, 1)

        results = {p.name: [] for p in proxies}
        for r in range(args.rounds):
            for p in proxies:
                pids = p.pids()
                t0 = cpu_ticks(pids)
                w = drive(p, args.duration)
                used = cpu_ticks(pids) - t0
                w["cpu_us"] = used * 1e6 / TICK / max(w["requests"], 1)
                results[p.name].append(w)
                print(
                    f"round {r + 1} {p.name:10} {w['rps']:9.0f} rps  p50 {w['p50']:6.2f} ms  p99 {w['p99']:6.2f} ms"
                    f"  {w['cpu_us']:6.1f} us CPU/req  non-2xx {w['errors']} {w['socket_errors']}",
                    flush=True,
                )

        med = {n: {k: statistics.median(x[k] for x in rs) for k in ["rps", "p50", "p99", "cpu_us"]} for n, rs in results.items()}
        base = {k: med.get(k) or next(iter(med.values())) for k in ["nginx", "haproxy", "pingora", "pingora-eq", "cutover"]}
        if "nginx" not in med or "haproxy" not in med:
            print("(ratios are to the first proxy measured where nginx or HAProxy was not)")
        print()
        client = f"h2load -t2 -c{args.connections} -m{args.streams}" if h2 else f"wrk -t2 -c{args.connections}"
        body = f", {args.size}-byte bodies" if mode in ("post", "chunked") else ""
        print(f"mode {mode}{body}: median of {args.rounds} rounds, {client} -d{args.duration}s, {args.threads} workers/threads (cutover {cut_threads})")
        print(f"{'proxy':10} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'rps/nginx':>10} {'cpu/haproxy':>12} {'p99/haproxy':>12}")
        for n, m in med.items():
            print(
                f"{n:10} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['cpu_us']:11.1f} "
                f"{m['rps'] / base['nginx']['rps']:10.2f} {m['cpu_us'] / base['haproxy']['cpu_us']:12.2f} "
                f"{m['p99'] / base['haproxy']['p99']:12.2f}"
            )
        for b, label in [("pingora", "bare Pingora"), ("pingora-eq", "bare Pingora with timeouts and X-Forwarded-*")]:
            if b not in med or "cutover" not in med:
                continue
            print(
                f"cutover vs {label}: CPU per request {base['cutover']['cpu_us'] / base[b]['cpu_us'] - 1:+.1%}, "
                f"rps {base['cutover']['rps'] / base[b]['rps'] - 1:+.1%}"
            )

        if "cutover-mirror" in med and "cutover" in med:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin-mirror']}/routes/app/mirror", timeout=5) as r:
                f = json.load(r)["figures"]
            m, c = med["cutover-mirror"], med["cutover"]
            print(
                f"cutover with a {args.mirror} % mirror vs without: rps {m['rps'] / c['rps'] - 1:+.1%}, "
                f"p99 {m['p99'] / c['p99'] - 1:+.1%}, CPU per request {m['cpu_us'] / c['cpu_us'] - 1:+.1%}; "
                f"copies: {f['mirrored']} sent, {f['compared']} compared, {f['dropped']} dropped (queue full), "
                f"{f['too_large']} too large, {f['errors']} mirror errors"
            )

        if not args.skip_idle and mode in ("http", "h2", "h2c"):
            print()
            print(f"RSS with {args.idle} idle {mode} client connections (one request each, then idle):")
            for p in proxies:
                n = min(args.idle, 9900) if p.name == "haproxy" else args.idle
                before, after = idle_rss(p, n, mode)
                print(
                    f"{p.name:10} {n:6} conns: {before / 1024:7.1f} MB -> {after / 1024:7.1f} MB"
                    f"  ({(after - before) / n:6.2f} KB per connection)",
                    flush=True,
                )

        if args.skip_reload or mode != "http" or "cutover" not in [p.name for p in proxies]:
            return
        cut = next(p for p in proxies if p.name == "cutover")
        times = reload_latency(cut, cfg_path, ports["admin"], lambda i: cut_text(70 if i % 2 == 0 else 80), 10 if args.smoke else 40)
        times.sort()
        print()
        print(
            f"cutover config write -> new split serving: median {statistics.median(times):.1f} ms, "
            f"p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, max {times[-1]:.1f} ms ({len(times)} reloads, polled every 1 ms)"
        )
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
