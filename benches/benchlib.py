"""Helpers the benches share: free loopback ports, waiting for a listener,
a process tree's pids and memory, and child processes that are killed with
all their descendants (an nginx master and its workers) however the bench
ends."""

import os
import resource
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def raise_fd_limit():
    """Room for many client connections (root may raise the hard limit)."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def tree(pid):
    """pid and all its descendants (nginx's workers, say)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    pids, i = [pid], 0
    while i < len(pids):  # bounded: each pid is visited once
        pids.extend(children.get(pids[i], []))
        i += 1
    return pids


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Proc:
    """A child process, killed with its descendants by stop()."""

    def __init__(self, name, argv, port, cwd=None, env=None):
        self.name, self.port = name, port
        self.log = tempfile.TemporaryFile()
        # A session of its own: stop() can then kill the process and its
        # workers as one group, and Ctrl-C on the terminal reaches only us
        # (the finally in main stops everything we started).
        self.p = subprocess.Popen(
            argv,
            cwd=cwd,
            env=None if env is None else dict(os.environ, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            preexec_fn=raise_fd_limit,
            start_new_session=True,
        )
        LIVE.append(self)
        if not wait_port(port):
            self.stop()
            raise SystemExit(f"{name} did not start: {self.stderr()}")

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def pids(self):
        return tree(self.p.pid)

    def stop(self):
        if self.p.poll() is None:
            # The parent first: an nginx master that sees a worker die
            # starts another one, which would outlive it.
            pids = self.pids()
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except OSError:
                pass
            for pid in pids[1:]:  # any that left the group
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self in LIVE:
            LIVE.remove(self)


LIVE = []  # processes to kill on the way out, whatever the way out is
