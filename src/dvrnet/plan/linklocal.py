"""The /31 link between each qrouter- and its fip- namespace, from 169.254.64.0/18.

A router's slot (0..8191) is derived from its id (sha256 mod 8192, probing upwards on collision,
routers taken in id order), so a fresh host needs no state file. Once a pair is in the kernel it
is kept: the agent reads the `fpr-` (else `rfp-`) addresses back (`hints_from_state`) and passes
them as hints, so adding a router whose derived slot collides never renumbers a router that
already has a link.
Invariant: within one fip- namespace no two routers share a slot; even address on rfp-, odd on fpr-.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Interface

from . import names
from .numbers import LINK_LOCAL_CIDR
from .state import HostState

SLOTS = LINK_LOCAL_CIDR.num_addresses // 2


def derived_slot(router_id: str) -> int:
    return int.from_bytes(hashlib.sha256(router_id.encode()).digest()[:4], "big") % SLOTS


def assign_slots(router_ids: Iterable[str], hints: Mapping[str, int] | None = None) -> dict[str, int]:
    hints = hints or {}
    ids = sorted(set(router_ids))
    out: dict[str, int] = {}
    taken: set[int] = set()
    for rid in ids:
        h = hints.get(rid)
        if h is not None and 0 <= h < SLOTS and h not in taken:
            out[rid] = h
            taken.add(h)
    if len(ids) > SLOTS:
        raise ValueError(f"{len(ids)} routers on one external network of one host: at most {SLOTS} fit in {LINK_LOCAL_CIDR}")
    for rid in ids:
        if rid in out:
            continue
        s = derived_slot(rid)
        while s in taken:
            s = (s + 1) % SLOTS
        out[rid] = s
        taken.add(s)
    return out


def pair(slot: int) -> tuple[IPv4Address, IPv4Address]:
    """(rfp- address, fpr- address) of a slot."""
    base = LINK_LOCAL_CIDR.network_address + 2 * slot
    return base, base + 1


def slot_of(ip: IPv4Address) -> int | None:
    if ip not in LINK_LOCAL_CIDR:
        return None
    return (int(ip) - int(LINK_LOCAL_CIDR.network_address)) // 2


def hints_from_state(observed: HostState, router_ids: Iterable[str]) -> dict[str, int]:
    """Slots of routers whose link-local pair is already in the kernel: from the fpr- end's
    address (fip- namespace), else from the rfp- end's (qrouter- namespace), so a router keeps its
    pair also when its fip- namespace could not be read (the reconciler leaves it out)."""
    ids = list(router_ids)
    fpr = {names.fpr_dev(rid): rid for rid in ids}
    rfp = {names.rfp_dev(rid): rid for rid in ids}
    out: dict[str, int] = {}
    fallback: dict[str, int] = {}
    for ns in observed.namespaces.values():
        for a in ns.addresses:
            rid, into = fpr.get(a.dev), out
            if rid is None:
                rid, into = rfp.get(a.dev), fallback
            if rid is None:
                continue
            s = slot_of(IPv4Interface(a.cidr).ip)
            if s is not None:
                into.setdefault(rid, s)
    return {**fallback, **out}


def veth_mac(router_id: str, side: str) -> str:
    """A stable MAC for the rfp-/fpr- ends, so both sides can hold a permanent neighbour entry
    for the other."""
    return names.local_mac(f"{side}:{router_id}")
