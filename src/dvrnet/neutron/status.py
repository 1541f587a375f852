"""Floating IP statuses for `update_floatingip_statuses`, from what the kernel holds. Pure.

A FIP this host serves is ACTIVE when, read back from the kernel after a pass, its `/32` is in the
main table of its `fip-` namespace (towards its router) and its address maps to its fixed IP in
the qrouter's DNAT map; otherwise ERROR (the pass failed to put it there, or it cannot be served
here: `RouterGraph.skipped_fips`). A FIP the server no longer sends to this host (disassociated,
deleted, moved) is not listed: `update_floatingip_statuses` sets DOWN every FIP last known on the
router that has no router any more, so each router is reported again after every fetch of it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..plan import names
from ..plan.numbers import MAIN_TABLE_ID, NFT_TABLE
from ..plan.state import HostState, ipstr
from .translate import RouterGraph

ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"


def fip_statuses(graphs: Iterable[RouterGraph], observed: HostState, prefix: str = "") -> dict[str, dict[str, str]]:
    """router id -> {fip id: ACTIVE|ERROR} for every FIP this host serves or was meant to."""
    out: dict[str, dict[str, str]] = {}
    main: dict[str, set[str]] = {}          # external network -> destinations in its fip- main table
    for g in graphs:
        qr = observed.namespaces.get(names.qrouter_ns(prefix, g.router.id))
        dnat: set = set()
        if qr is not None:
            table = qr.nft.get(("ip", NFT_TABLE))
            if table is not None:
                for m in table.maps:
                    if m.name == "fip2fixed":
                        dnat = set(m.elements)
        st: dict[str, str] = {}
        for f in g.fips:
            net = f.floating_network_id
            if net not in main:
                fns = observed.namespaces.get(names.fip_ns(prefix, net))
                main[net] = {r.dst for r in fns.routes if r.table == MAIN_TABLE_ID} if fns is not None else set()
            routed = ipstr(f.floating_ip_address) + "/32" in main[net]
            natted = (ipstr(f.floating_ip_address), ipstr(f.fixed_ip_address)) in dnat
            st[f.id] = ACTIVE if routed and natted else ERROR
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
