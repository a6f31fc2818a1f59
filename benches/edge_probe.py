#!/usr/bin/env python3
"""Edge probe: the raw bytes of the edge-hardening review, sent to a proxy
binary, with what came back, side by side for several proxies.

Each probe sends exact bytes to the proxy (in front of a scripted backend
that records what reaches it) and reports what the client got (statuses,
whether and when the connection was closed) and what the backend saw. Run
it against an older build and the current one to see an item's before and
after, and against nginx for reference:

    benches/edge_probe.py --cutover target/release/cutover --cutover OLD_BINARY --nginx

A cutover binary that rejects the newer config keys (`body_timeout`,
`send_timeout`) is run without them. Limits in every config:
header 3 s, idle 5 s, body 3 s, send 5 s, read 3 s, max head 8 KiB.
Loopback only; every wait is bounded.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_port  # noqa: E402

RESPONSES = {
    "/cl-plus": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "/cl-list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
    "/cl-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "/bare-lf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    "/nul-ext": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x00b\r\nhello\r\n0\r\n\r\n",
    "/204-chunked": b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "/status-000": b"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
    "/http10-chunked": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Backend:
    """A scripted HTTP/1.1 backend that records request heads and bodies."""

    def __init__(self):
        # Two listening ports, one log: a pool of two backends, so that a
        # retry on the second shows.
        self.ports = []
        for _ in range(2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(512)
            self.ports.append(sock.getsockname()[1])
            threading.Thread(target=self.accept, args=(sock,), daemon=True).start()
        self.port = self.ports[0]
        self.log = []
        self.released = None
        self.lock = threading.Lock()

    def accept(self, sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        conn.settimeout(30)
        try:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                    continue
                head = buf[:end].decode("latin-1")
                rest = buf[end + 4 :]
                length = 0
                chunked = False
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                    if name.strip().lower() == "transfer-encoding":
                        chunked = True
                path = head.split(" ")[1] if " " in head else "/"
                if path == "/reset":
                    with self.lock:
                        self.log.append((head, b""))
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()
                    return
                if chunked:
                    while b"\r\n0\r\n\r\n" not in rest and not rest.startswith(b"0\r\n\r\n"):
                        data = conn.recv(65536)
                        if not data:
                            return
                        rest += data
                    cut = rest.find(b"0\r\n\r\n") + 5
                    body, buf = rest[:cut], rest[cut:]
                else:
                    while len(rest) < length:
                        data = conn.recv(65536)
                        if not data:
                            return
                        rest += data
                    body, buf = rest[:length], rest[length:]
                with self.lock:
                    self.log.append((head, body))
                if path == "/big":
                    n = 64 << 20
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                    piece = b"x" * 65536
                    try:
                        for _ in range(n // len(piece)):
                            conn.sendall(piece)
                    except OSError:
                        self.released = time.monotonic()
                        return
                    continue
                conn.sendall(RESPONSES.get(path, OK))
                if path in RESPONSES:
                    return
        except OSError:
            return
        finally:
            conn.close()


class Cutover:
    def __init__(self, binary, backend, fast_path):
        self.dir = tempfile.mkdtemp(prefix="edge-probe-")
        self.port = free_port()
        base = (
            f'[proxy]\nlisten = ["127.0.0.1:{self.port}"]\nthreads = 1\nheader_timeout = "3s"\n'
            f'idle_timeout = "5s"\nread_timeout = "3s"\nmax_header_bytes = 8192\n'
        )
        new = f'body_timeout = "3s"\nsend_timeout = "5s"\nfast_path = {"true" if fast_path else "false"}\n'
        tail = (
            f'[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[pools.app]\nbackends = ["127.0.0.1:{backend.ports[0]}", "127.0.0.1:{backend.ports[1]}"]\noutlier = false\n'
            f'[[routes]]\nname = "all"\nsplit = {{ app = 1 }}\n'
        )
        path = os.path.join(self.dir, "cutover.toml")
        for text in (base + new + tail, base + tail):
            with open(path, "w") as f:
                f.write(text)
            if subprocess.run([binary, "check", "-c", path], capture_output=True).returncode == 0:
                break
        self.newer = "fast_path" in open(path).read()
        self.proc = subprocess.Popen(
            [binary, "run", "-c", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    def __init__(self, backend):
        self.dir = tempfile.mkdtemp(prefix="edge-probe-nginx-")
        self.port = free_port()
        conf = f"""daemon off; worker_processes 1; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; client_header_timeout 3s; keepalive_timeout 5s; client_body_timeout 3s;
  send_timeout 5s; large_client_header_buffers 4 8k; client_body_temp_path {self.dir};
  proxy_temp_path {self.dir}; upstream app {{ server 127.0.0.1:{backend.ports[0]}; server 127.0.0.1:{backend.ports[1]}; keepalive 16; }}
  server {{ listen 127.0.0.1:{self.port}; location / {{ proxy_pass http://app;
    proxy_http_version 1.1; proxy_set_header Connection ""; proxy_read_timeout 3s; }} }} }}
"""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            ["nginx", "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def exchange(port, pieces, pause=0.0, wait=8.0, rcvbuf=None):
    """Send pieces; read until closed or `wait`; (bytes, closed after s or None)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    for i, p in enumerate(pieces):
        if i:
            time.sleep(pause)
        try:
            s.sendall(p)
        except OSError:
            break
    sent = time.monotonic()
    out = b""
    if rcvbuf:
        # A client that never reads: just wait.
        time.sleep(wait)
        s.close()
        return out, None
    s.settimeout(0.2)
    while time.monotonic() - sent < wait:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return out, time.monotonic() - sent
        if not data:
            return out, time.monotonic() - sent
        out += data
    s.close()
    return out, None


def statuses(data):
    text = data.decode("latin-1")
    return [text[i + 9 : i + 12] for i in range(len(text)) if text.startswith("HTTP/1.", i)]


def summary(data, closed):
    sts = ",".join(statuses(data)) or "-"
    when = f"closed {closed:.1f}s" if closed is not None else "open"
    return f"{sts}; {when}"


def probes():
    big_head = b"\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    trickle = [b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n"] + [b"X-%d: 1\r\n" % i for i in range(9)]
    post = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n" + b"b" * 65537
    get_after = b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\nHost: h\r\nX-Big: " + b"c" * 11600 + b"\r\n\r\n"
    first = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    raw = lambda b: ([b], 0.0)
    close = b"Connection: close\r\n\r\n"
    return [
        ("1 CRLFCRLF, silence", [b"\r\n\r\n"], 0.0, None),
        ("1 CRLFCRLF + head, 1 line/s", trickle, 1.0, None),
        ("1 CRLFCRLF + 100 kB head", *raw(big_head), "reach"),
        ("2 PRI * HTTP/2.0, silence", [b"PRI * HTTP/2.0"], 0.0, None),
        ("2 h2c preface + SETTINGS", [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"], 0.0, None),
        ("3 non-reading client, 64 MiB", "big", 0.0, None),
        ("4 POST CL 65536, no body", [b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n"], 0.0, None),
        ("5 resp CL +5", *raw(b"GET /cl-plus HTTP/1.1\r\nHost: h\r\n" + close), None),
        ("5 resp CL 5, 5", *raw(b"GET /cl-list HTTP/1.1\r\nHost: h\r\n" + close), None),
        ("5 resp CL twice", *raw(b"GET /cl-twice HTTP/1.1\r\nHost: h\r\n" + close), None),
        ("6 resp bare-LF chunks", *raw(b"GET /bare-lf HTTP/1.1\r\nHost: h\r\n" + close), b"5\nhello"),
        ("6 resp NUL in chunk ext", *raw(b"GET /nul-ext HTTP/1.1\r\nHost: h\r\n" + close), b"\x00"),
        ("7 resp 204 + chunked", *raw(b"GET /204-chunked HTTP/1.1\r\nHost: h\r\n" + close), b"ransfer-"),
        ("7 resp status 000", *raw(b"GET /status-000 HTTP/1.1\r\nHost: h\r\n" + close), None),
        ("7 resp HTTP/1.0 chunked", *raw(b"GET /http10-chunked HTTP/1.1\r\nHost: h\r\n" + close), None),
        ("8 no Host", *raw(b"GET / HTTP/1.1\r\n" + close), "reach"),
        ("8 Host: x@h", *raw(b"GET / HTTP/1.1\r\nHost: x@h\r\n" + close), "reach"),
        ("8 Host: h, evil", *raw(b"GET / HTTP/1.1\r\nHost: h, evil\r\n" + close), "reach"),
        ("9 X_Forwarded_For", *raw(b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\n" + close), "xff"),
        ("10 CONNECT", *raw(b"CONNECT / HTTP/1.1\r\nHost: h\r\n" + close), "reach"),
        ("10 req CL 5,5", *raw(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\nhello"), "reach"),
        ("10 absolute-form target", *raw(b"GET http://h/x HTTP/1.1\r\nHost: h\r\n" + close), "target"),
        ("11 POST 65537 + GET", *raw(post + get_after), "reach"),
        ("11 11.6 kB head read ahead", *raw(first + second), "reach"),
        ("12 POST reset after head", *raw(b"POST /reset HTTP/1.1\r\nHost: h\r\nContent-Length: 60000\r\n" + close + b"p" * 60000), "reach"),
    ]


def run_probe(port, backend, probe):
    name, pieces, pause, extra = probe
    before = len(backend.log)
    if pieces == "big":
        backend.released = None
        start = time.monotonic()
        exchange(port, [b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n"], wait=9.0, rcvbuf=4096)
        rel = backend.released
        return f"backend {'released %.1fs' % (rel - start) if rel else 'held 9s+'}"
    wait = 12.0 if pause else 8.0
    data, closed = exchange(port, pieces, pause=pause, wait=wait)
    out = summary(data, closed)
    got = backend.log[before:]
    if extra == "reach":
        out += f"; backend got {len(got)}"
    elif extra == "xff":
        out += "; forwarded" if any("6.6.6.6" in h for h, _ in got) else "; dropped"
    elif extra == "target":
        out += "; target " + (got[0][0].split(" ")[1] if got else "-")
    elif isinstance(extra, bytes):
        out += "; relayed" if extra in data else "; not relayed"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cutover", action="append", default=[], help="a cutover binary (repeatable)")
    ap.add_argument("--pingora-path", action="store_true", help="also run each newer cutover with fast_path = false")
    ap.add_argument("--nginx", action="store_true", help="also probe nginx")
    args = ap.parse_args()
    if not args.cutover:
        args.cutover = [os.path.join(ROOT, "target/release/cutover")]
    backend = Backend()
    columns = []
    for binary in args.cutover:
        for fast in [True, False] if args.pingora_path else [True]:
            label = f"{binary}{'' if fast else ' (fast_path = false)'}"
            columns.append((label, lambda b=binary, f=fast: Cutover(b, backend, f)))
    if args.nginx and shutil.which("nginx"):
        columns.append(("nginx", lambda: Nginx(backend)))
    results = {}
    for label, start in columns:
        proxy = start()
        if isinstance(proxy, Cutover) and not proxy.newer and "fast_path = false" in label:
            proxy.stop()
            continue
        print(f"probing {label} …", file=sys.stderr)
        col = []
        for p in probes():
            try:
                col.append(run_probe(proxy.port, backend, p))
            except OSError as e:
                col.append(f"error: {e}")
        proxy.stop()
        results[label] = col
    names = [p[0] for p in probes()]
    width = max(len(n) for n in names)
    print("| probe | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for i, n in enumerate(names):
        print(f"| {n:<{width}} | " + " | ".join(results[c][i] for c in results) + " |")


if __name__ == "__main__":
    main()
