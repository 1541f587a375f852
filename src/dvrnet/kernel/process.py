"""Owned processes (plan/process.py) on the system: find them, start, reload and stop them.

Invariants:
- A process is found by its marker (an argument under RUN_DIR/<namespace>/<role>/), never by a
  pid file; it belongs to namespace N only when /proc/<pid>/ns/net is the network namespace
  /run/netns/N names. Anything else carrying an owned marker is an orphan (the namespace was
  deleted, or deleted and created again, behind dvrnet's back) and is stopped.
- What a process runs is asked of the process (`ROLES[role].digest`), its files are written
  from the plan before every start and reload and never read back.
- `ProcessReader` rescans /proc (~4 ms for ~150 processes) only on a full read, after dvrnet
  started, reloaded or stopped something, or when a process it knew has exited (or a desired one
  is not known); otherwise it re-checks that the known pids are the same processes (their start
  time in /proc/<pid>/stat), which costs microseconds.
- Start: the role's daemon is started in a new session (it survives the agent, so an agent
  restart withdraws nothing), inside the namespace (`nsenter --net`), then waited for.
  Stop: SIGTERM, SIGKILL after 2 s, then the runtime directory is removed.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import replace

from dvrnet.plan import watchdog
from dvrnet.plan.process import RUN_DIR, argv_digest, marker, runtime_dir
from dvrnet.plan.state import HostState, Namespace, Process
from dvrnet.reconcile.ops import Op, ProcReload, ProcStart, ProcStop
from dvrnet.reconcile.ownership import Ownership

from . import bird, metadata, netns


class _Role:
    """How dvrnet talks to one kind of daemon."""
    def __init__(self, digest, reload, ready):
        self.digest, self.reload, self.ready = digest, reload, ready


ROLES: dict[str, _Role] = {
    "bird": _Role(bird.digest, bird.reload, lambda ns: bird.wait_ready(ns)),
    # its command line is its whole configuration: a new one is a restart, never a reload
    watchdog.ROLE: _Role(lambda p, ns: argv_digest(p.argv), lambda p, ns: "a watchdog is restarted, not reloaded",
                         lambda ns: None),
    "metadata": _Role(metadata.digest, metadata.reload, lambda ns: metadata.wait_ready(ns)),
}


def _starttime(pid: int) -> str | None:
    """The start time of a live process (None: gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") or len(fields) < 20 else fields[19]


def _ino(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return None


def scan(own: Ownership) -> list[tuple[str, int, tuple[str, ...], bool]]:
    """(namespace, pid, argv, in that namespace) of every owned process."""
    out = []
    head = (RUN_DIR + "/").encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if head not in raw:
            continue
        argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        m = marker(argv)
        if m is None or not own.owns_namespace(m[0]):
            continue
        pid = int(d)
        here = _ino(f"/proc/{pid}/ns/net")
        there = _ino(netns.path(m[0]))
        out.append((m[0], pid, argv, here is not None and here == there))
    return out


class ProcessReader:
    def __init__(self, prefix: str = "") -> None:
        self.own = Ownership(prefix)
        self.dirty = True
        self._known: dict[int, tuple[str, str, Process, bool, str | None]] = {}   # pid -> ns, role, proc, home, start
        self._last: dict[str, tuple[Namespace, Namespace]] = {}                   # ns -> (read, with processes)

    def applied(self, ops) -> None:
        if any(isinstance(op, (ProcStart, ProcReload, ProcStop)) for op in ops):
            self.dirty = True

    def running(self) -> bool:
        """Some owned process was found at the last scan."""
        return bool(self._known)

    def renew(self, now: float) -> int:
        """Renew the lease of every watchdog found (plan/watchdog.py): its mtime := NOW, a
        time.monotonic() value. Returns how many were renewed (a missing lease file is left to
        its watchdog, which creates it)."""
        n = 0
        for ns, role, _p, home, _s in self._known.values():
            if role == watchdog.ROLE and home:
                try:
                    os.utime(watchdog.lease_path(ns), (now, now))
                    n += 1
                except OSError:
                    pass
        return n

    def alive(self) -> bool:
        """Every known process still runs (pid with the same start time): microseconds."""
        return all(_starttime(pid) == start for pid, (_n, _r, _p, _h, start) in self._known.items())

    def _fresh(self, desired: HostState) -> bool:
        for pid, (_ns, _role, _p, _home, start) in self._known.items():
            if _starttime(pid) != start:
                return False
        have = {(ns, role) for ns, role, _p, home, _s in self._known.values() if home}
        return all((n, r) in have for n, d in desired.namespaces.items() for r in d.processes)

    def _rescan(self) -> None:
        known = {}
        for ns, pid, argv, home in scan(self.own):
            m = marker(argv)
            assert m is not None
            role = m[1]
            start = _starttime(pid)
            r = ROLES.get(role)
            dig = r.digest(Process(role, argv), ns) if (r is not None and home) else ""
            known[pid] = (ns, role, Process(role, argv, (), dig, pid), home, start)
        self._known = known
        self.dirty = False

    def attach(self, state: HostState, desired: HostState, full: bool = False) -> HostState:
        """STATE with each namespace's owned processes, and the orphans."""
        if full or self.dirty or not self._fresh(desired):
            self._rescan()
        per_ns: dict[str, dict[str, Process]] = {}
        orphans: list[tuple[str, Process]] = []
        for ns, role, p, home, _s in self._known.values():
            if home and ns in state.namespaces and role not in per_ns.get(ns, {}):
                per_ns.setdefault(ns, {})[role] = p
            else:
                orphans.append((ns, p))
        out: dict[str, Namespace] = {}
        changed = bool(orphans)
        for name, ns in state.namespaces.items():
            procs = dict(sorted(per_ns.get(name, {}).items()))
            if procs == dict(ns.processes):
                out[name] = ns
                continue
            last = self._last.get(name)
            if last is not None and last[0] is ns and dict(last[1].processes) == procs:
                out[name] = last[1]
            else:
                out[name] = replace(ns, processes=procs)
                self._last[name] = (ns, out[name])
            changed = True
        for name in [n for n in self._last if n not in state.namespaces]:
            del self._last[name]
        if not changed:
            return state
        return HostState(state.host, out, tuple(sorted(orphans, key=lambda x: (x[0], x[1].pid or 0))))


def _write_files(p: Process) -> None:
    for path, text in p.files:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)


def terminate(pid: int, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL if PID still lives (or is not yet reaped) after GRACE seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if _starttime(pid) is None:
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop(ns: str, p: Process, grace: float = 2.0) -> str | None:
    if p.pid is not None:
        terminate(p.pid, grace)
    return None


def _start(ns: str, p: Process) -> str | None:
    if not netns.exists(ns):
        return f"missing namespace {ns}"
    d = runtime_dir(ns, p.role)
    os.makedirs(d, exist_ok=True)
    _write_files(p)
    try:
        c = subprocess.run(netns.nsenter(ns) + list(p.argv), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10, start_new_session=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot start {p.argv[0]}: {e}"
    if c.returncode != 0:
        return f"{p.argv[0]} exited with {c.returncode}: {(c.stderr or c.stdout).strip()[:300]}"
    r = ROLES.get(p.role)
    return r.ready(ns) if r is not None else None


def run(op: Op) -> str | None:
    """Execute one process op; None or the reason it failed."""
    if isinstance(op, ProcStop):
        err = _stop(op.ns, op.proc)
        shutil.rmtree(runtime_dir(op.ns, op.proc.role), ignore_errors=True)
        return err
    if isinstance(op, ProcStart):
        if op.old is not None:
            _stop(op.ns, op.old)
        return _start(op.ns, op.proc)
    if isinstance(op, ProcReload):
        _write_files(op.proc)
        r = ROLES.get(op.proc.role)
        return r.reload(op.proc, op.ns) if r is not None else f"no reload for role {op.proc.role}"
    raise ValueError(op)
