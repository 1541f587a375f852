"""The metadata proxy (plan/metadata.py), kernel side: what a running proxy runs and when a
started one is ready. Started, adopted, restarted and stopped by `process.py` like every owned
process.

- `digest(proc)`: the digest its command line names (its configuration file is named after it),
  so an agent restarted beside a running proxy adopts it without asking it anything;
- `wait_ready(ns)`: haproxy binds its port before it daemonizes and writes its pid file, so once
  the starting command has returned, a live pid in the pid file means it is serving;
- a proxy never reloads: another configuration is another command line, hence a restart.
"""
from __future__ import annotations

import time

from dvrnet.plan.metadata import argv_digest, paths
from dvrnet.plan.state import Process


def digest(proc: Process, ns: str) -> str:
    return argv_digest(proc.argv)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_ready(ns: str, timeout: float = 2.0) -> str | None:
    path = paths(ns)["pid"]
    end = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pids = []
        if pids and all(_alive(p) for p in pids):
            return None
        if time.monotonic() > end:
            return f"metadata proxy not running after {timeout:.0f}s (pid file {path}: {pids or 'none'})"
        time.sleep(0.01)


def reload(proc: Process, ns: str) -> str | None:
    return ("the metadata proxy is never reloaded (its configuration is named on its command line): "
            "a changed configuration is a restart")


__all__ = ["digest", "reload", "wait_ready"]
