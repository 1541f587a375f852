"""Time in the desired state, kept out of `diff()`: the migration blackholes of routed mode.

When a FIP leaves a node in routed mode (moved to another port, its VM migrated), the old node
must not simply delete the /32: packets still in flight, and those the ToR sends before it has
converged on the new node's announcement, would follow the old node's default route back to the
ToR and loop until their TTL runs out. So the old node replaces the /32 with a blackhole for a
fixed time (`BgpConfig.blackhole_s`, 3 s by default), then removes it. The blackhole is dvrnet's
(protocol 94), never announced (BIRD exports only unicast routes) and removed by the timer.

How the timer stays out of the pure layers:
- a *hold* is ((namespace, /32), expiry); `departures(holds, desired, observed, now, seconds)`
  is pure: it keeps the holds that have not expired, and adds one for every unicast /32 the
  kernel still holds in the main table of a routed namespace (one that runs BIRD) that the plan
  no longer wants there; a FIP that comes back ends its hold;
- `overlay(desired, holds)` adds the blackhole routes to the desired state; `diff()` then sees
  plain routes: unicast -> blackhole is one `ip route replace` (make-before-break), and once a
  hold has expired the blackhole is an owned route nobody wants, so it is deleted;
- the agent passes `now` (time.monotonic()) and keeps the holds between passes, and runs a pass
  at the earliest expiry (`next_expiry`). Nothing is on disk: an agent that restarts adopts the
  blackholes it finds (a blackhole /32 in a routed namespace's main, not desired) with a fresh
  expiry, so one lives at most twice its time across a restart;
- a reader of the state that has no holds (`dvrnet show`, the lab's convergence check) calls
  `lenient_holds(desired, observed)`: blackholes found are accepted as in flight.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from .bird import ROLE as BIRD_ROLE
from .numbers import MAIN_TABLE_ID
from .state import HostState, Namespace, Route

Holds = Mapping[tuple[str, str], float]


def routed(ns: Namespace) -> bool:
    return BIRD_ROLE in ns.processes


def _main_dsts(ns: Namespace) -> set[str]:
    return {r.dst for r in ns.routes if r.table == MAIN_TABLE_ID}


def departures(holds: Holds, desired: HostState, observed: HostState, now: float, seconds: float) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    wanted: dict[str, set[str]] = {}
    for name, d in desired.namespaces.items():
        if not routed(d):
            continue
        want = wanted[name] = _main_dsts(d)
        o = observed.namespaces.get(name)
        if o is None:
            continue
        for r in o.routes:
            if r.table == MAIN_TABLE_ID and r.dst.endswith("/32") and r.dst not in want \
                    and r.type in ("unicast", "blackhole"):
                out[(name, r.dst)] = now + seconds
    for k, t in holds.items():
        if t > now and k[0] in wanted and k[1] not in wanted[k[0]]:
            out[k] = t                          # an older hold keeps its own expiry
    return out


def lenient_holds(desired: HostState, observed: HostState) -> dict[tuple[str, str], float]:
    """Holds for every blackhole /32 found in a routed namespace that the plan does not want:
    for readers that do not run the timers (they accept a blackhole in flight)."""
    out: dict[tuple[str, str], float] = {}
    for name, d in desired.namespaces.items():
        o = observed.namespaces.get(name)
        if o is None or not routed(d):
            continue
        want = _main_dsts(d)
        for r in o.routes:
            if r.table == MAIN_TABLE_ID and r.type == "blackhole" and r.dst not in want:
                out[(name, r.dst)] = math.inf
    return out


def overlay(desired: HostState, holds: Holds) -> HostState:
    """DESIRED plus a blackhole /32 for every hold (the same object when there is none)."""
    if not holds:
        return desired
    by_ns: dict[str, list[Route]] = {}
    for (name, dst), _t in sorted(holds.items()):
        if name in desired.namespaces:
            by_ns.setdefault(name, []).append(Route(MAIN_TABLE_ID, dst, type="blackhole"))
    if not by_ns:
        return desired
    out = dict(desired.namespaces)
    for name, routes in by_ns.items():
        out[name] = replace(out[name], routes=out[name].routes | frozenset(routes))
    return HostState(desired.host, out, desired.orphans)


def next_expiry(holds: Holds) -> float | None:
    finite = [t for t in holds.values() if t != math.inf]
    return min(finite) if finite else None
