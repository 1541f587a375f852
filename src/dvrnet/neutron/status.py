"""Floating IP statuses for `update_floatingip_statuses`, from what the kernel holds. Pure.

A FIP this host serves is ACTIVE or ERROR as `reconcile.status.fips_found` finds it in the state
read back after a pass (the computation `dvrnet agent`'s reports use too: its `/32` in the main
table of its `fip-` namespace, its DNAT map element in its qrouter); a FIP that cannot be served
here (`RouterGraph.skipped_fips`) is ERROR. A FIP the server no longer sends to this host
(disassociated, deleted, moved) is not listed: `update_floatingip_statuses` sets DOWN every FIP
last known on the router that has no router any more, so each router is reported again after
every fetch of it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..plan.state import HostState
from ..reconcile.status import ACTIVE, ERROR, Held, fips_found
from .translate import RouterGraph

DOWN = "DOWN"
__all__ = ["ACTIVE", "DOWN", "ERROR", "changed", "fip_statuses"]


def fip_statuses(graphs: Iterable[RouterGraph], observed: HostState, prefix: str = "") -> dict[str, dict[str, str]]:
    """router id -> {fip id: ACTIVE|ERROR} for every FIP this host serves or was meant to."""
    held = Held(observed, prefix)
    out: dict[str, dict[str, str]] = {}
    for g in graphs:
        st = {fid: found.status for fid, found in fips_found(held, g.router.id, g.fips).items()}
        for fid in g.skipped_fips:
            st[fid] = ERROR
        out[g.router.id] = st
    return out


def changed(last: Mapping[str, Mapping[str, str]], now: Mapping[str, Mapping[str, str]],
            refetched: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """The reports to send: routers whose statuses differ from the last ones sent, plus every
    router fetched again since (so the server marks its disassociated FIPs DOWN)."""
    again = set(refetched)
    return {rid: dict(st) for rid, st in now.items() if rid in again or last.get(rid) != st}
