#!/usr/bin/env python3
"""Stalled clients: what a proxy pays for them and when it lets them go.

For each stalled state below, a fresh proxy process is started (so memory
figures of different states do not mix) in front of one nginx backend that
serves `/` small and `/big` as a 16 MiB file. The bench opens N client
connections (1,000 by default) on loopback, sends each the state's bytes and
then stalls. It reports:

* memory per stalled connection: the proxy's resident memory (VmRSS from
  /proc/PID/status, summed over the proxy's processes) once every connection
  is open and has settled for a second, minus its RSS before, divided by the
  number of connections open at that moment;
* when the proxy closed each connection: the time from the connection's last
  byte sent (for `idle`, from the end of the TCP handshake) to the close seen
  by the client (EOF or RST on a non-blocking socket, all watched from one
  `selectors` loop), as min / median / max, and how many were still open
  when the wait ended (by default four times the expected deadline, so that
  a proxy closing at some multiple of its timeout, as HAProxy and nginx do
  clients that do not read, still shows up as closed);
* what the proxy answered before closing (e.g. `408`), and how many
  connections the backend has ESTABLISHED (counted in /proc/net/tcp by the
  backend's port) while the clients stall and when the wait ends: above all
  for `non-reading`, since a client that does not read should not hold a
  backend connection (and for `partial-body`, whose head may have been
  forwarded already).

States (the deadline each is expected to close at, from cutover's config):

  idle          connect, send nothing                          idle_timeout   5s
  partial-head  "GET / HTTP/1.1\\r\\nHost: h\\r\\n", no blank line  header_timeout 3s (408)
  blank-lines   "\\r\\n\\r\\n" only (skipped as empty lines)        header_timeout 3s
  partial-body  POST head with Content-Length 65536, no body   body_timeout   4s
  h2c-preface   h2c preface + empty SETTINGS, then nothing     idle_timeout   5s
  h2c-partial   "PRI * HTTP/2.0" only                          header_timeout 3s (or 400)
  non-reading   "GET /big", 16 MiB response, never read        send_timeout   6s

A client that never reads cannot see a FIN: it is queued behind the response
bytes the client does not read. So for `non-reading` a connection also
counts as closed once the proxy's own end of it leaves ESTABLISHED in
/proc/net/tcp (the proxy closed or shut down its socket), besides a client
side RST or FIN seen through TCP_INFO; none of this reads from the socket.

Proxies (`--proxy`): cutover with header_timeout 3s, idle_timeout 5s,
read_timeout 3s, max_header_bytes 8192, body_timeout 4s and send_timeout 6s
(the last two are new: if `cutover check` rejects them they are dropped
with a note, so the bench also measures a binary from before them); nginx
with client_header_timeout 3s, keepalive_timeout 5s, client_body_timeout 4s,
send_timeout 6s, proxy_read_timeout 3s (and proxy_max_temp_file_size 0, so
that it buffers a response in memory as the others do instead of spooling
16 MiB per client to disk; its plain HTTP/1 listener does not speak h2c);
HAProxy with timeout http-request 3s, http-keep-alive 5s, client 6s,
server 3s (it spots the h2 preface on an HTTP/1 listener by itself). Each
runs two workers/threads.

Usage: benches/stalled.py [--proxy cutover|nginx|haproxy|all] [--conns N]
                          [--states a,b,...] [--binary PATH] [--json FILE]
Run through `scripts/bench.sh --stalled`, which installs nginx and HAProxy
and builds the release binary first.
"""

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BIG_BYTES = 16 << 20
# Proxy settings, in seconds; the expected deadlines are taken from these.
HEADER, IDLE, READ, BODY, SEND = 3, 5, 3, 4, 6
# Keys cutover is gaining; a binary from before them rejects them.
NEW_KEYS = ["body_timeout", "send_timeout"]

H2_SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
STATES = {
    # name: (bytes sent, deadline, config key the deadline comes from)
    "idle": (b"", IDLE, "idle_timeout"),
    "partial-head": (b"GET / HTTP/1.1\r\nHost: h\r\n", HEADER, "header_timeout"),
    "blank-lines": (b"\r\n\r\n", HEADER, "header_timeout"),
    "partial-body": (b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n", BODY, "body_timeout"),
    "h2c-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + H2_SETTINGS_EMPTY, IDLE, "idle_timeout"),
    "h2c-partial": (b"PRI * HTTP/2.0", HEADER, "header_timeout"),
    "non-reading": (b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n", SEND, "send_timeout"),
}

# A small receive buffer for the non-reading client, so the response backs
# up into the proxy at once instead of into the client's kernel buffer (the
# kernel doubles it and enforces its own minimum).
NON_READING_RCVBUF = 4096
SETTLE = 1.0  # seconds between the last connection's bytes and the RSS sample
BATCH = 64  # connections opened between looks at the proxy's accept queue
POLL = 0.1  # seconds between /proc/net/tcp scans and between wait-loop wakeups

TCP_ESTABLISHED, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LISTEN = 1, 7, 8, 10


# --- processes and /proc -----------------------------------------------------

from benchlib import LIVE, Proc, free_port, raise_fd_limit, rss_kb  # noqa: E402



def tcp_table():
    """(local port, remote port, state) of every IPv4 TCP socket."""
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            rows.append((int(parts[1].rsplit(":", 1)[1], 16), int(parts[2].rsplit(":", 1)[1], 16), int(parts[3], 16)))
    return rows


def accept_queue(port):
    """Connections waiting in the accept queue of the listener on `port`
    (a LISTEN socket's rx_queue in /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if int(parts[3], 16) == TCP_LISTEN and int(parts[1].rsplit(":", 1)[1], 16) == port:
                return int(parts[4].split(":")[1], 16)
    return 0


def established_on(port, table=None):
    """ESTABLISHED sockets whose local port is `port` (a server's side)."""
    return sum(1 for lp, _, st in (table or tcp_table()) if lp == port and st == TCP_ESTABLISHED)


# --- configs -----------------------------------------------------------------

# The backend: long timeouts of its own, so that what the bench sees is the
# proxy's timers. `/p` is proxied to itself only so that nginx reads the
# whole request body before answering (a plain `return` would answer at once
# and end the request for the proxy, whatever the client does).
NGINX_BACKEND = """
worker_processes 1;
daemon off;
pid {dir}/backend.pid;
error_log stderr error;
worker_rlimit_nofile 65536;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  client_body_timeout 300s;
  send_timeout 300s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {dir}/www;
    location = / {{ return 200 "ok\\n"; }}
    location = /big {{ default_type application/octet-stream; }}
    location = /p {{ proxy_pass http://127.0.0.1:{port}/; proxy_read_timeout 300s; }}
  }}
}}
"""

CUTOVER = """
[proxy]
listen = ["127.0.0.1:{port}"]
threads = 2
header_timeout = "{header}s"
idle_timeout = "{idle}s"
read_timeout = "{read}s"
max_header_bytes = 8192
body_timeout = "{body}s"
send_timeout = "{send}s"

[admin]
listen = "127.0.0.1:{admin}"

[log]
access = "off"

[pools.backend]
backends = ["127.0.0.1:{backend}"]

[[routes]]
name = "all"
split = {{ backend = 100 }}
"""

# proxy_max_temp_file_size 0: with its default (1 GiB per response) nginx
# would spool every 16 MiB response to disk, 16 GB for 1,000 clients; with 0
# it buffers in memory (proxy_buffers) like the other proxies and holds the
# backend connection while the client does not read.
NGINX_PROXY = """
worker_processes 2;
daemon off;
pid {dir}/proxy.pid;
error_log stderr crit;
worker_rlimit_nofile 65536;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_header_timeout {header}s;
  keepalive_timeout {idle}s;
  client_body_timeout {body}s;
  send_timeout {send}s;
  large_client_header_buffers 4 8k;
  upstream app {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout {read}s;
      proxy_connect_timeout 2s;
      proxy_max_temp_file_size 0;
    }}
  }}
}}
"""

HAPROXY = """
global
  nbthread 2
  maxconn {maxconn}
defaults
  mode http
  timeout connect 2s
  timeout http-request {header}s
  timeout http-keep-alive {idle}s
  timeout client {send}s
  timeout server {read}s
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  server b1 127.0.0.1:{backend}
"""


class Proxies:
    """Starts a fresh proxy of a kind for each state."""

    def __init__(self, dir, backend_port, binary, conns):
        self.dir, self.backend, self.binary, self.conns = dir, backend_port, binary, conns
        self.nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.dropped = None  # new cutover keys this binary rejects
        self.runs = 0

    def timeouts(self):
        return dict(header=HEADER, idle=IDLE, read=READ, body=BODY, send=SEND)

    def cutover_config(self, port):
        """The config for the binary, without the new keys it rejects."""
        path = f"{self.dir}/cutover-{port}.toml"
        text = CUTOVER.format(port=port, admin=free_port(), backend=self.backend, **self.timeouts())
        dropped = []
        for _ in range(len(NEW_KEYS) + 1):  # at most one retry per new key
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([self.binary, "check", "-c", path], capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                break
            out = r.stdout + r.stderr
            m = re.search(r"unknown field `(\w+)`", out)
            key = m.group(1) if m else next((k for k in NEW_KEYS if k in out and k not in dropped), None)
            if key not in NEW_KEYS or key in dropped:
                raise SystemExit(f"cutover check rejected the bench config:\n{out}")
            dropped.append(key)
            text = re.sub(rf"(?m)^{key} = .*\n", "", text)
        else:
            raise SystemExit("cutover check kept rejecting the bench config")
        if self.dropped is None:
            self.dropped = dropped
            if dropped:
                print(f"note: {self.binary} rejects {', '.join(dropped)}; running without them", flush=True)
        return path

    def start(self, kind):
        self.runs += 1
        port = free_port()
        if kind == "cutover":
            return Proc("cutover", [self.binary, "run", "-c", self.cutover_config(port)], port)
        d = f"{self.dir}/{kind}-{self.runs}"
        os.makedirs(d)
        if kind == "nginx":
            with open(f"{d}/nginx.conf", "w") as f:
                f.write(NGINX_PROXY.format(dir=d, port=port, backend=self.backend, **self.timeouts()))
            return Proc("nginx", [self.nginx, "-c", f"{d}/nginx.conf", "-p", d], port)
        with open(f"{d}/haproxy.cfg", "w") as f:
            # maxconn counts client connections: room for all of them and the
            # bench's own probes (HAProxy sizes its descriptors from it).
            f.write(HAPROXY.format(port=port, backend=self.backend, maxconn=self.conns + 500, **self.timeouts()))
        return Proc("haproxy", [self.haproxy, "-f", f"{d}/haproxy.cfg"], port)


# --- one state ---------------------------------------------------------------


def get(port, path="/"):
    """One request through the proxy; its status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
        data = b""
        end = time.monotonic() + 5
        while b"\r\n" not in data and time.monotonic() < end:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def reply_of(data):
    """A short name for the first bytes the proxy sent."""
    if not data:
        return "-"
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if m:
        return m.group(1).decode()
    if len(data) >= 9 and data[3] == 4:  # an HTTP/2 frame header, SETTINGS first
        return "h2"
    return "other"


class Conn:
    __slots__ = ("sock", "port", "sent_at", "closed_at", "how", "first")

    def __init__(self, sock):
        self.sock, self.port = sock, sock.getsockname()[1]
        self.sent_at = self.closed_at = None
        self.how, self.first = "", b""


def open_conns(port, n, payload, non_reading):
    """n connections, each sent `payload`; (conns, failures)."""
    conns, failed = [], 0
    for i in range(n):
        if i and i % BATCH == 0:
            # Let the proxy accept what it has before connecting more: a
            # burst that overflows its accept queue has the kernel drop
            # handshakes, which complete a second or more later, and the
            # proxy's timers would start that much after the client's.
            until = time.monotonic() + 2
            while accept_queue(port) > BATCH // 4 and time.monotonic() < until:
                time.sleep(0.002)
        s = socket.socket()
        if non_reading:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NON_READING_RCVBUF)
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            if payload and s.send(payload) != len(payload):
                raise OSError("short send")
        except OSError:
            s.close()
            failed += 1
            continue
        c = Conn(s)
        c.sent_at = time.monotonic()
        conns.append(c)
    return conns, failed


def drain(c, now):
    """Read what is there; mark the connection closed on EOF or RST."""
    for _ in range(64):  # at most 4 MiB per wakeup; the rest on the next one
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            c.closed_at, c.how = now, "rst"
            return True
        if not data:
            c.closed_at, c.how = now, "fin"
            return True
        if len(c.first) < 64:
            c.first += data[: 64 - len(c.first)]
    return False


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def poll_non_reading(open_, proxy_port, now):
    """Closed without reading: the proxy's end left ESTABLISHED, or the
    client's end saw a FIN or RST."""
    proxy_side = {rp: st for lp, rp, st in tcp_table() if lp == proxy_port}
    for c in list(open_):
        st = tcp_state(c.sock)
        if st == TCP_CLOSE:
            c.how = "rst"
        elif st == TCP_CLOSE_WAIT:
            c.how = "fin"
        elif proxy_side.get(c.port) != TCP_ESTABLISHED:
            c.how = "proxy-closed"
        else:
            continue
        c.closed_at = now
        open_.discard(c)


def run_state(proxies, kind, state, n, margin):
    payload, deadline, key = STATES[state]
    non_reading = state == "non-reading"
    proxy = proxies.start(kind)
    conns = []
    sel = selectors.DefaultSelector()
    try:
        # One request first, so that what a proxy sets up on its first
        # request (an upstream connection, lazy tables) is in "before".
        warm = get(proxy.port)
        if " 200" not in warm:
            print(f"  warning: {kind} answered the warm-up GET with {warm!r}", flush=True)
        time.sleep(0.5)
        before = rss_kb(proxy.pids())
        backend_base = established_on(proxies.backend)

        conns, failed = open_conns(proxy.port, n, payload, non_reading)
        if not conns:
            raise SystemExit(f"{kind}: no connection could be opened")
        first_sent, last_sent = conns[0].sent_at, conns[-1].sent_at
        open_ = set(conns)
        if not non_reading:
            for c in conns:
                sel.register(c.sock, selectors.EVENT_READ, c)

        def watch_until(t_end, stop_when_all_closed):
            while open_ and time.monotonic() < t_end:  # bounded by t_end
                now = time.monotonic()
                if non_reading:
                    poll_non_reading(open_, proxy.port, now)
                    time.sleep(min(POLL, max(0, t_end - now)))
                    continue
                for k, _ in sel.select(timeout=min(POLL, max(0, t_end - now))):
                    c = k.data
                    if drain(c, time.monotonic()):
                        sel.unregister(c.sock)
                        open_.discard(c)
            if not stop_when_all_closed:
                rest = t_end - time.monotonic()
                if rest > 0:
                    time.sleep(rest)

        # Settle, but sample before the first connection could reach its
        # deadline, so the sample holds (nearly) all of them.
        sample_at = min(last_sent + SETTLE, first_sent + deadline - 0.5)
        watch_until(sample_at, stop_when_all_closed=False)
        after = rss_kb(proxy.pids())
        open_at_sample = len(open_)
        table = tcp_table()
        backend_settle = established_on(proxies.backend, table)

        margin = 3 * deadline if margin is None else margin
        watch_until(last_sent + deadline + margin, stop_when_all_closed=True)
        end_t = time.monotonic()
        backend_end = established_on(proxies.backend)

        times = sorted(c.closed_at - c.sent_at for c in conns if c.closed_at is not None)
        replies, seen = {}, {}
        for c in conns:
            if not non_reading:
                r = reply_of(c.first)
                replies[r] = replies.get(r, 0) + 1
            h = c.how or "open"
            seen[h] = seen.get(h, 0) + 1
        return {
            "state": state,
            "conns": len(conns),
            "failed_to_open": failed,
            "open_at_sample": open_at_sample,
            "rss_before_kb": before,
            "rss_after_kb": after,
            # None when the proxy had already closed them all (nginx's
            # immediate 400s): there is nothing stalled to divide by.
            "kb_per_conn": (after - before) / open_at_sample if open_at_sample else None,
            "closed": len(times),
            "still_open": len(conns) - len(times),
            "close_min_s": times[0] if times else None,
            "close_median_s": statistics.median(times) if times else None,
            "close_max_s": times[-1] if times else None,
            "open_s": last_sent - first_sent,
            "waited_s": end_t - first_sent,
            "expected_s": deadline,
            "wait_s": deadline + margin,
            "expected_key": key,
            "key_applied": kind != "cutover" or key not in (proxies.dropped or []),
            "replies": replies,
            "seen": seen,
            "backend_baseline": backend_base,
            "backend_held_settle": backend_settle,
            "backend_held_end": backend_end,
        }
    finally:
        sel.close()
        for c in conns:
            # Reset rather than close: no TIME_WAIT piling up across states,
            # and a non-reading socket has unread bytes anyway.
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            c.sock.close()
        proxy.stop()


# --- output ------------------------------------------------------------------


def fmt_s(v):
    return "-" if v is None else f"{v:.2f}"


def counts(d):
    return " ".join(f"{k}×{v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "-"


def print_table(kind, rows, header_note):
    print()
    print(f"{kind}: {header_note}")
    print(
        f"{'state':13} {'conns':>5} {'open':>5} {'KB/conn':>8} {'closed':>11} {'min s':>6} {'median s':>8}"
        f" {'max s':>6} {'expect s':>8}  {'reply':12} {'seen':20} {'backend held':>15}"
    )
    for r in rows:
        expect = f"{r['expected_s']}" + ("" if r["key_applied"] else "*")
        kb = "-" if r["kb_per_conn"] is None else f"{r['kb_per_conn']:.2f}"
        held = f"{r['backend_held_settle']} -> {r['backend_held_end']} ({r['backend_baseline']})"
        print(
            f"{r['state']:13} {r['conns']:5} {r['open_at_sample']:5} {kb:>8} {r['closed']:>5}/{r['conns']:<5}"
            f" {fmt_s(r['close_min_s']):>6} {fmt_s(r['close_median_s']):>8} {fmt_s(r['close_max_s']):>6}"
            f" {expect:>8}  {counts(r['replies']) if r['replies'] else 'n/a':12} {counts(r['seen']):20} {held:>15}",
            flush=True,
        )


LEGEND = """\
open: connections still open when RSS was sampled, {settle:g} s after the last one's bytes; KB/conn: RSS growth
divided by them. closed: closed by the proxy within the wait ({wait}); min/median/max: seconds
from each connection's last byte sent to its close. reply: the proxy's first bytes (HTTP status, h2 frames,
- for none, n/a: not read). seen: how the close showed (fin, rst, proxy-closed: the proxy's end of the socket
left ESTABLISHED). backend held: the backend's ESTABLISHED connections after settling -> at the end of the
wait (before the clients connected)."""


def main():
    default_target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--proxy", default="cutover", choices=["cutover", "nginx", "haproxy", "all"])
    ap.add_argument("--conns", type=int, default=1000, help="stalled connections per state (default 1000)")
    ap.add_argument("--states", default=",".join(STATES), help="comma-separated, from: " + ", ".join(STATES))
    ap.add_argument("--binary", default=os.path.join(default_target, "release", "cutover"))
    ap.add_argument(
        "--margin", type=float, default=None, help="seconds to wait past a state's deadline (default: 3 x the deadline; at most 60)"
    )
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    states = [s for s in args.states.split(",") if s]
    unknown = [s for s in states if s not in STATES]
    if unknown:
        raise SystemExit(f"unknown state(s) {', '.join(unknown)}; known: {', '.join(STATES)}")
    if not 1 <= args.conns <= 9000:
        raise SystemExit("--conns must be 1 to 9000 (the descriptor limit)")
    if args.margin is not None:
        args.margin = min(max(args.margin, 0.0), 60.0)
    kinds = ["cutover", "nginx", "haproxy"] if args.proxy == "all" else [args.proxy]
    if "cutover" in kinds and not os.access(args.binary, os.X_OK):
        raise SystemExit(f"{args.binary} not found: build it (scripts/bench.sh --stalled) or pass --binary")
    for tool in {"nginx"} | ({"haproxy"} & set(kinds)):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing: run scripts/setup.sh bench")

    raise_fd_limit()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.conns + 100:
        raise SystemExit(f"descriptor limit {soft} is too low for --conns {args.conns}")

    # Ctrl-C and SIGTERM both unwind through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

    d = tempfile.mkdtemp(prefix="cutover-stalled-")
    results = {}
    try:
        os.makedirs(f"{d}/www")
        with open(f"{d}/www/big", "wb") as f:
            f.truncate(BIG_BYTES)  # sparse: its content does not matter
        # nginx's workers drop root for an unprivileged user, and mkdtemp's
        # directory is private to us.
        os.chmod(d, 0o755)
        os.chmod(f"{d}/www", 0o755)
        os.chmod(f"{d}/www/big", 0o644)
        backend_port = free_port()
        with open(f"{d}/backend.conf", "w") as f:
            f.write(NGINX_BACKEND.format(dir=d, port=backend_port))
        os.makedirs(f"{d}/backend")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        Proc("backend", [nginx, "-c", f"{d}/backend.conf", "-p", f"{d}/backend"], backend_port)
        status = get(backend_port, "/big")
        if " 200" not in status:
            raise SystemExit(f"the backend answers GET /big with {status!r}")
        proxies = Proxies(d, backend_port, os.path.abspath(args.binary), args.conns)

        for kind in kinds:
            if kind == "cutover":
                version = subprocess.run([proxies.binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
                proxies.cutover_config(free_port())  # the note on dropped keys, once, up front
            else:
                exe = proxies.nginx if kind == "nginx" else proxies.haproxy
                out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
                version = (out.stdout + out.stderr).strip().splitlines()[0]
            rows = []
            for state in states:
                print(f"{kind:8} {state:13} ...", end=" ", flush=True)
                r = run_state(proxies, kind, state, args.conns, args.margin)
                failed = f", {r['failed_to_open']} failed to open" if r["failed_to_open"] else ""
                print(
                    f"opened in {r['open_s']:.2f} s{failed}, closed {r['closed']}/{r['conns']} in {r['waited_s']:.1f} s",
                    flush=True,
                )
                rows.append(r)
            note = f"{version}; {args.conns} connections per state, a fresh proxy per state"
            if kind == "cutover" and proxies.dropped:
                note += f"\n  * not configurable in this binary ({', '.join(proxies.dropped)} dropped): the deadline is the target"
            print_table(kind, rows, note)
            results[kind] = {"version": version, "dropped_keys": proxies.dropped if kind == "cutover" else [], "states": rows}
        print()
        wait = "4 x deadline" if args.margin is None else f"deadline + {args.margin:g} s"
        print(LEGEND.format(settle=SETTLE, wait=wait))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"conns": args.conns, "margin_s": args.margin, "results": results}, f, indent=2)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        for p in list(LIVE):
            p.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
