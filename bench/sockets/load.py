#!/usr/bin/env python3
"""Restarts under load: a steady loopback HTTP load against one service while it is
restarted (`daemonic restart`) and crashed (`GET /crash`: it answers, then aborts), in
turn, RESTARTS times. Prints one line of counts (key=value) for bench/sockets/run.sh.

    load.py --daemonic BIN --fixture BIN --mode held|own --state DIR
            [--restarts 50] [--clients 4] [--startup-ms 20]

held: the supervisor holds the socket (`--socket web=tcp:127.0.0.1:PORT`) and passes it to
every start. own: the program binds 127.0.0.1:PORT itself (`socket-http --bind PORT`).
Each client thread sends one request per connection, back to back, and counts: sent,
answered (a 200 with a body), refused (ECONNREFUSED), other failures (reset, timeout). No
client retries. Times are measured, not asserted: `elapsed_s` is the wall time of the
restart loop.
"""
import argparse
import errno
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=10.0):
    """The response body, or raises OSError."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise OSError(f"bad response {data!r}")
    return body.decode()


def pid_of(body):
    return next(w[4:] for w in body.split() if w.startswith("pid="))


class Load:
    def __init__(self, port, clients):
        self.port, self.stop = port, threading.Event()
        self.lock = threading.Lock()
        self.counts = dict(sent=0, answered=0, refused=0, failed=0)
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    def add(self, key):
        with self.lock:
            self.counts[key] += 1

    def client(self):
        while not self.stop.is_set():
            self.add("sent")
            try:
                get(self.port, "/")
                self.add("answered")
            except ConnectionRefusedError:
                self.add("refused")
            except OSError as e:
                if getattr(e, "errno", None) == errno.ECONNREFUSED:
                    self.add("refused")
                else:
                    self.add("failed")

    def answered(self):
        with self.lock:
            return self.counts["answered"]


def wait_new_program(port, old_pid, load, before, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            pid = pid_of(get(port, "/", timeout=2.0))
            if pid != old_pid and load.answered() > before:
                return pid
        except OSError:
            pass
        time.sleep(0.002)
    sys.exit(f"no new program answered within {limit}s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemonic", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--mode", choices=["held", "own"], required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--restarts", type=int, default=50)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--startup-ms", type=int, default=20)
    a = ap.parse_args()
    port = free_port()
    env = dict(os.environ, DAEMONIC_STATE_DIR=a.state)
    d = lambda *args: subprocess.run([a.daemonic, *args], env=env, capture_output=True, text=True)
    cmd = ["start", "--name", "web", "--restart", "always", "--backoff", "0s"]
    prog = [a.fixture, "--startup-ms", str(a.startup_ms)]
    if a.mode == "held":
        cmd += ["--socket", f"web=tcp:127.0.0.1:{port}", "--", *prog]
    else:
        cmd += ["--ready", f"tcp:127.0.0.1:{port}", "--", *prog, "--bind", str(port)]
    out = d(*cmd)
    if out.returncode != 0:
        sys.exit(f"start failed: {out.stderr}")
    try:
        pid = pid_of(get(port, "/"))
        load = Load(port, a.clients)
        for t in load.threads:
            t.start()
        began = time.monotonic()
        for i in range(a.restarts):
            before = load.answered()
            if i % 2 == 0:
                out = d("restart", "web")
                if out.returncode != 0:
                    sys.exit(f"restart {i} failed: {out.stderr}")
            else:
                try:
                    get(port, "/crash")
                except OSError:
                    pass  # refused or reset: counted by nobody, the load counts its own
            pid = wait_new_program(port, pid, load, before)
        elapsed = time.monotonic() - began
        load.stop.set()
        for t in load.threads:
            t.join()
    finally:
        d("stop", "web")
    c = load.counts
    print(f"mode={a.mode} restarts={a.restarts} clients={a.clients} startup_ms={a.startup_ms} "
          f"sent={c['sent']} answered={c['answered']} refused={c['refused']} "
          f"failed={c['failed']} elapsed_s={elapsed:.2f}")


if __name__ == "__main__":
    main()
