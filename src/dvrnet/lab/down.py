"""`lab down`: remove everything the lab created, by name, also after a crashed run.

1. processes: every pid in `<state dir>/pids/*.pid` whose command line names the lab prefix (or
   `dvrnet`), every pid in `<state dir>/ovs-*/*.pid` (the nodes' Open vSwitch daemons) whose
   command line names the state dir, every running `dvrnet agent` of one of the lab's nodes
   (`agents.agent_pids`: also one restarted without a pid file), and every process living in a
   namespace whose name starts with the prefix (`ip netns pids`); SIGTERM, then SIGKILL after a
   grace period;
2. namespaces whose name starts with the prefix (the veths, bridges, VXLAN devices and nft tables die
   with them; the lab never creates anything in the root namespace), and the runtime directories
   of their daemons (`/run/dvrnet/<prefix>*`, routed mode's BIRDs and watchdogs);
3. the state directory, if it carries the lab marker for this prefix.
Returns what it removed. Running it on nothing is a no-op.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .agents import agent_pids
from .sh import Cmd, list_netns, netns_pids, netns_with_prefix, run
from .world import MARKER, PREFIX_RE


@dataclass
class DownReport:
    killed: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    state_dir_removed: bool = False
    leftover_namespaces: list[str] = field(default_factory=list)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _kill(pids: set[int], grace: float = 1.0) -> list[int]:
    me = os.getpid()
    pids = {p for p in pids if p != me and p > 1}
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + grace
    alive = set(pids)
    while alive and time.monotonic() < end:
        for p in list(alive):
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
            if not os.path.exists(f"/proc/{p}") or _zombie(p):
                alive.discard(p)
        if alive:
            time.sleep(0.02)
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return sorted(pids)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def down(prefix: str, state_dir: str | None = None) -> DownReport:
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"refusing lab prefix {prefix!r}")
    rep = DownReport()
    pids: set[int] = set()
    if state_dir:       # the daemons of a Neutron lab first, each its own way (lab/daemons.py)
        from .daemons import stop_from_pid_files
        rep.killed += stop_from_pid_files(os.path.join(state_dir, "pids"))
    if state_dir:
        for pf in glob.glob(os.path.join(state_dir, "pids", "*.pid")):
            try:
                pid = int(Path(pf).read_text().strip())
            except (OSError, ValueError):
                continue
            cl = _cmdline(pid)
            if prefix.encode() in cl or b"dvrnet" in cl:
                pids.add(pid)
        for pf in glob.glob(os.path.join(state_dir, "ovs-*", "*.pid")):
            try:
                pid = int(Path(pf).read_text().strip())
            except (OSError, ValueError):
                continue
            if os.path.abspath(state_dir).encode() in _cmdline(pid):
                pids.add(pid)
    for node_pids in agent_pids(prefix).values():     # agents restarted by anyone, pid file or not
        pids.update(node_pids)
    namespaces = netns_with_prefix(prefix)
    for ns in namespaces:
        pids.update(netns_pids(ns))
    rep.killed += _kill(pids)
    if namespaces:
        run(Cmd(("ip", "-force", "-batch", "-"), "".join(f"netns del {n}\n" for n in namespaces), "root", check=False))
    rep.namespaces = namespaces
    rep.leftover_namespaces = [n for n in list_netns() if n.startswith(prefix)]
    from ..plan.process import RUN_DIR  # the owned daemons' runtime directories (BIRDs, watchdogs, metadata proxies)
    for d in glob.glob(os.path.join(RUN_DIR, glob.escape(prefix) + "*")):
        shutil.rmtree(d, ignore_errors=True)
    if state_dir and os.path.isdir(state_dir):
        marker = os.path.join(state_dir, MARKER)
        try:
            ours = Path(marker).read_text().strip() == prefix
        except OSError:
            ours = False
        if ours:
            shutil.rmtree(state_dir, ignore_errors=True)
            rep.state_dir_removed = True
    return rep
