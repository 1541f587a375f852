"""Routed mode's watchdog, plan side: the `Process` that bounds how long a node whose agent is
dead keeps winning the ToR for a FIP that has moved elsewhere (issue 15, docs/routed-mode.md).

The problem: an agent killed beside a running BIRD withdraws nothing (wanted: its FIPs keep
working), but when one of its FIPs moves to another node meanwhile, both nodes announce the /32
with AS paths of the same length and the ToR may keep the old one for as long as the agent is
dead, black-holing the FIP.

The mechanism: a lease. The agent renews it (kernel/process.py `ProcessReader.renew`) at every
pass and every upkeep wake-up (1 s) while its feed is healthy; the watchdog of each routed
namespace (kernel/watchdog.py, started and adopted like BIRD) checks it every quarter second and,
once it is older than `BgpConfig.lease_s`, loads its BIRD's *stale* configuration (plan/bird.py):
the same FIPs, announced with a longer AS path. Nothing is withdrawn, so a FIP that did not move
keeps its only path; one that moved is won by its new node's shorter path. Bound: lease_s plus a
tick plus a BGP update (measured in tests/lab/test_routed.py). The agent, back, finds its BIRD's
digest is the stale one and reloads the normal configuration (after it renewed the lease).

The lease is a file whose mtime holds a CLOCK_MONOTONIC time (`os.utime(path, (t, t))`): one
syscall to renew, immune to wall-clock steps. The watchdog's command line is all its
configuration (digest: `argv_digest`), so it is restarted, never reloaded.
"""
from __future__ import annotations

from . import bird
from .config import BgpConfig
from .process import argv_digest, runtime_dir
from .state import Process

ROLE = "watchdog"


def lease_path(ns: str) -> str:
    return f"{runtime_dir(ns, ROLE)}/lease"


def watchdog_process(ns: str, bgp: BgpConfig) -> Process | None:
    """The watchdog of routed namespace NS (None when the agent runs without one)."""
    if not bgp.watchdog or bgp.lease_s <= 0:
        return None
    b = bird.paths(ns)
    argv = (*bgp.watchdog, "--lease", lease_path(ns), "--seconds", f"{bgp.lease_s:g}", "--ctl", b["ctl"],
            "--stale", b["stale"], "--log", f"{runtime_dir(ns, ROLE)}/log")
    return Process(ROLE, argv, (), argv_digest(argv))
