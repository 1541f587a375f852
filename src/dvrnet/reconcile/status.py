"""What the kernel holds of each FIP and router gateway port a host serves: ACTIVE, or ERROR and
why. Pure: from the state read back after a pass (and that pass's errors and differences).

The one computation behind both agents' reports: `dvrnet agent` (agent/report.py, to the dvrnet
server) and `dvrnet neutron-agent` (neutron/status.py, `update_floatingip_statuses`).

- A FIP is ACTIVE when its `/32` is in the main table of its `fip-<external network>`
  namespace (towards its router; the same in routed mode) and its address maps to its fixed IP in
  the `fip2fixed` DNAT map of its router's `qrouter-` namespace; else ERROR, the reason naming
  what is missing plus the pass's errors and differences that name its address (or, failing
  that, one of those two namespaces).
- A router gateway port (on the router's SNAT node) is ACTIVE when its `qg-` device is in the
  `snat-` namespace with every address the desired state puts on it; else ERROR likewise.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dvrnet.model import FloatingIP, Port
from dvrnet.plan import names
from dvrnet.plan.numbers import MAIN_TABLE_ID, NFT_TABLE
from dvrnet.plan.state import HostState, ipstr

ACTIVE, ERROR = "ACTIVE", "ERROR"
DNAT_MAP = "fip2fixed"          # plan/qrouter.py: FIP -> fixed IP
MAX_REASON = 2000


@dataclass(frozen=True)
class Found:
    status: str
    reason: str | None = None


class Held:
    """What OBSERVED holds that statuses look at, indexed once per pass (lazily, per namespace)."""

    def __init__(self, observed: HostState, prefix: str = ""):
        self.observed, self.prefix = observed, prefix
        self._main: dict[str, set[str]] = {}
        self._dnat: dict[str, set] = {}

    def routed(self, network_id: str, fip: str) -> bool:
        main = self._main.get(network_id)
        if main is None:
            ns = self.observed.namespaces.get(names.fip_ns(self.prefix, network_id))
            main = self._main[network_id] = ({r.dst for r in ns.routes if r.table == MAIN_TABLE_ID}
                                             if ns is not None else set())
        return fip + "/32" in main

    def natted(self, router_id: str, fip: str, fixed: str) -> bool:
        dnat = self._dnat.get(router_id)
        if dnat is None:
            dnat = set()
            ns = self.observed.namespaces.get(names.qrouter_ns(self.prefix, router_id))
            table = ns.nft.get(("ip", NFT_TABLE)) if ns is not None else None
            for m in table.maps if table is not None else ():
                if m.name == DNAT_MAP:
                    dnat = set(m.elements)
            self._dnat[router_id] = dnat
        return (fip, fixed) in dnat


def _word(text: str) -> re.Pattern:
    return re.compile(rf"(?<![\w.]){re.escape(text)}(?![\w])")


def related(problems: Sequence[str], exact: Iterable[str], near: Iterable[str]) -> list[str]:
    """The PROBLEMS (errors, differences) naming one of EXACT (as a whole word, e.g. an address),
    else those naming one of NEAR (e.g. a namespace)."""
    for needles in (exact, near):
        pats = [_word(n) for n in needles]
        hit = [p for p in problems if any(x.search(p) for x in pats)]
        if hit:
            return hit
    return []


def _reason(missing: list[str], rel: list[str]) -> str:
    text = "not in the kernel after the pass: " + "; ".join(missing)
    if rel:
        text += " — " + " | ".join(rel[:3]) + (f" (+{len(rel) - 3} more)" if len(rel) > 3 else "")
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


def fips_found(held: Held, router_id: str, fips: Iterable[FloatingIP], problems: Sequence[str] = ()) -> dict[str, Found]:
    """FIP id -> Found, for the FIPs ROUTER serves on this host."""
    out: dict[str, Found] = {}
    qr = names.qrouter_ns(held.prefix, router_id)
    for f in fips:
        fip, fixed = ipstr(f.floating_ip_address), ipstr(f.fixed_ip_address)
        fns = names.fip_ns(held.prefix, f.floating_network_id)
        missing = []
        if not held.routed(f.floating_network_id, fip):
            missing.append(f"no route {fip}/32 in {fns}")
        if not held.natted(router_id, fip, fixed):
            missing.append(f"no {DNAT_MAP} element {fip} : {fixed} in {qr}")
        out[f.id] = Found(ACTIVE) if not missing else Found(ERROR, _reason(missing, related(problems, [fip], [qr, fns])))
    return out


def gateway_found(desired: HostState, observed: HostState, prefix: str, router_id: str, port: Port,
                  problems: Sequence[str] = ()) -> Found:
    """The router gateway port PORT of ROUTER, on its SNAT node."""
    sns = names.snat_ns(prefix, router_id)
    qg = names.port_dev(names.ROUTER_GW_DEV, port.id)
    want = desired.namespaces.get(sns)
    have = observed.namespaces.get(sns)
    missing = []
    if want is None or qg not in want.links:
        missing.append(f"{qg} is not planned in {sns}")
    elif have is None:
        missing.append(f"no namespace {sns}")
    elif qg not in have.links:
        missing.append(f"no device {qg} in {sns}")
    else:
        wanted = {a.cidr for a in want.addresses if a.dev == qg}
        held = {a.cidr for a in have.addresses if a.dev == qg}
        missing += [f"no address {c} on {qg} in {sns}" for c in sorted(wanted - held)]
    if not missing:
        return Found(ACTIVE)
    addrs = [ipstr(x.ip_address) for x in port.fixed_ips]
    return Found(ERROR, _reason(missing, related(problems, [qg, *addrs], [sns])))
