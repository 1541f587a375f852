"""A tiny TCP responder run inside lab namespaces (VMs, the internet host): on every connection it
writes `<peer address> <local address>\\n` and closes. The checks use it to prove TCP works *and*
which source address the far end saw (a FIP, a SNAT address, or the internet host).

Started as `ip netns exec <ns> <python> -I -S -c CODE <port> <ns> <ready file>` (stdlib only, no
package import, ~20 ms); the namespace name is in its command line so `lab down` can recognise it;
its pid goes to `<pid dir>/<ns>.pid`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CODE = r"""
import socket, sys, threading
port, ns, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(128)
open(ready, "w").close()
def serve(c):
    try:
        c.sendall(("%s %s\n" % (c.getpeername()[0], c.getsockname()[0])).encode())
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def pid_file(pid_dir: str, ns: str) -> str:
    return os.path.join(pid_dir, f"{ns}.pid")


def _alive(pid: int, ns: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return ns.encode() in f.read()
    except OSError:
        return False


def start(pid_dir: str, namespaces: list[str], port: int, timeout: float = 5.0) -> None:
    """Start a responder in each namespace that has none running; wait until all listen."""
    os.makedirs(pid_dir, exist_ok=True)
    waiting = []
    for ns in namespaces:
        pf = pid_file(pid_dir, ns)
        if os.path.exists(pf):
            try:
                if _alive(int(Path(pf).read_text().strip()), ns):
                    continue
            except ValueError:
                pass
        ready = os.path.join(pid_dir, f"{ns}.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-I", "-S", "-c", CODE, str(port), ns, ready],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        with open(pf, "w") as f:
            f.write(f"{p.pid}\n")
        waiting.append((ns, ready, p))
    end = time.monotonic() + timeout
    for ns, ready, p in waiting:
        while not os.path.exists(ready):
            if p.poll() is not None:
                raise RuntimeError(f"TCP responder in {ns} exited with {p.returncode}")
            if time.monotonic() > end:
                raise RuntimeError(f"TCP responder in {ns} not listening after {timeout}s")
            time.sleep(0.005)
