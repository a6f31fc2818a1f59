"""What `benches/load.py --mode M` loads, and how, beyond plain HTTP/1.

Each mode has the client that drives it (wrk for HTTP/1 and TLS, with a Lua
script for bodies; h2load for HTTP/2) and the listener lines that give
nginx, HAProxy and cutover the same job (TLS with a self-signed certificate
made for the run, HTTP/2 by ALPN, or h2c by prior knowledge).

| mode | client | what each proxy serves |
|---|---|---|
| http | wrk GET | plain HTTP/1.1 |
| tls | wrk GET over https | TLS 1.3, HTTP/1.1 keep-alive |
| h2 | h2load -m8 over https | TLS, HTTP/2 by ALPN |
| h2c | h2load -m8 over http | HTTP/2 by prior knowledge |
| post | wrk POST with a --size body (Content-Length) | plain HTTP/1.1 |
| chunked | wrk POST, the --size body in 16 KiB chunks | plain HTTP/1.1 |
"""

import os
import re
import statistics
import subprocess

MODES = ["http", "tls", "h2", "h2c", "post", "chunked"]


def make_cert(d):
    """A self-signed certificate for 127.0.0.1, and the PEM HAProxy wants."""
    cert, key = f"{d}/cert.pem", f"{d}/key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", key, "-out", cert,
        ],
        check=True,
        capture_output=True,
    )
    both = f"{d}/both.pem"
    with open(both, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return cert, key, both


def nginx_listen(mode, port, cert, key):
    """The `listen` lines of nginx's proxy server block."""
    if mode in ("tls", "h2"):
        return (
            f"listen 127.0.0.1:{port} ssl http2 backlog=4096; ssl_certificate {cert}; ssl_certificate_key {key};"
            " ssl_protocols TLSv1.3; ssl_session_cache shared:tls:10m;"
        )
    if mode == "h2c":
        return f"listen 127.0.0.1:{port} http2 backlog=4096;"
    return f"listen 127.0.0.1:{port} backlog=4096;"


def haproxy_bind(mode, port, both):
    if mode in ("tls", "h2"):
        return f"bind 127.0.0.1:{port} ssl crt {both} alpn h2,http/1.1 ssl-min-ver TLSv1.3"
    if mode == "h2c":
        return f"bind 127.0.0.1:{port} proto h2"
    return f"bind 127.0.0.1:{port}"


def cutover_listen(mode, port, cert, key):
    """cutover's `[proxy] listen` value and any `[[proxy.tls]]` section."""
    if mode in ("tls", "h2"):
        return "[]", f'[[proxy.tls]]\nlisten = "127.0.0.1:{port}"\ncerts = [{{ cert = "{cert}", key = "{key}" }}]\n'
    return f'["127.0.0.1:{port}"]', ""


def wrk_script(mode, d, size):
    """A wrk Lua script for the modes that send bodies, else None."""
    if mode == "post":
        path = f"{d}/post.lua"
        with open(path, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = string.rep("x", {size})\n')
        return path
    if mode == "chunked":
        chunk = 16384
        full, rest = divmod(size, chunk)
        path = f"{d}/chunked.lua"
        with open(path, "w") as f:
            f.write(
                "local chunk = string.format('%x\\r\\n', {c}) .. string.rep('x', {c}) .. '\\r\\n'\n"
                "local body = string.rep(chunk, {n})\n"
                "if {r} > 0 then body = body .. string.format('%x\\r\\n', {r}) .. string.rep('x', {r}) .. '\\r\\n' end\n"
                "body = body .. '0\\r\\n\\r\\n'\n"
                "local req = 'POST / HTTP/1.1\\r\\nHost: bench\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n' .. body\n"
                "request = function() return req end\n".format(c=chunk, n=full, r=rest)
            )
        return path
    return None


def url(mode, port):
    scheme = "https" if mode in ("tls", "h2") else "http"
    return f"{scheme}://127.0.0.1:{port}/"


def h2load(port, mode, duration, connections, streams, d):
    """Drive `port` with h2load for `duration` seconds; wrk-like figures."""
    log = f"{d}/h2load-{port}.log"
    out = subprocess.run(
        [
            "h2load", "-c", str(connections), "-m", str(streams), "-t", "2", "-D", str(duration),
            "--log-file", log, url(mode, port),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    done, failed, errored = int(m.group(3)), int(m.group(5)), int(m.group(6))
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    lat = []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]) / 1000.0)  # µs -> ms
    os.remove(log)
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else float("nan")
    return {
        "rps": rps,
        "requests": done,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": p(0.99),
        "errors": failed + errored + (int(status.group(3)) + int(status.group(4)) if status else 0),
        "socket_errors": "",
    }


def h2_frame(kind, flags, stream, payload=b""):
    """One HTTP/2 frame."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_one_request(s):
    """On socket `s`, as an HTTP/2 client: the preface, SETTINGS, one GET /
    (answered), and the ACK of the server's SETTINGS; then the connection is
    an idle browser's."""
    # :method GET, :scheme http, :path / from the static table; :authority
    # as a literal.
    block = bytes([0x82, 0x86, 0x84, 0x01, 5]) + b"bench"
    s.sendall(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0) + h2_frame(1, 0x5, 1, block)
    )
    buf = b""
    ended = False
    while not ended:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("the proxy closed an HTTP/2 connection")
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            # The answer's last frame ends stream 1.
            if stream == 1 and kind in (0, 1) and flags & 0x1:
                ended = True
            buf = buf[9 + length :]
    s.sendall(h2_frame(4, 0x1, 0))
