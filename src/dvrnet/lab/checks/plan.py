"""Planning (pure): a `LabInfo` → the checks to run, and the rounds they run in.

Per protocol (ICMP, TCP): internet → each FIP and each FIP → internet through the FIP's own
subnet's gateway; FIP → FIP on the same node and across nodes (gateways flat); each VM without a
FIP → internet through SNAT, and SNAT → a FIP on another node (gateways flat). A check the lab
cannot attempt carries `error` and fails with it. `schedule` puts checks whose counter keys are
disjoint into one round (they run in parallel between two counter snapshots).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..info import LabInfo, VmInfo


@dataclass(frozen=True)
class Check:
    """One flow. kind: 'gw' (must cross `via` as address `addr`), 'flat' (addresses `flat` must not
    touch any gateway). proto: 'icmp' or 'tcp'. expect_peer: the source address the TCP responder
    must see (None: don't care). error: set when the lab cannot even attempt the check (the row
    fails with it)."""
    name: str
    group: str
    kind: str
    proto: str
    src_ns: str
    dst: str
    port: int = 0
    via: str | None = None
    addr: str | None = None
    flat: tuple[str, ...] = ()
    expect_peer: str | None = None
    expected: str = ""
    error: str | None = None

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        addrs = set(self.flat) | ({self.addr} if self.addr else set())
        return frozenset((a, self.proto) for a in addrs)


def _proto_label(p: str) -> str:
    return p.upper()


def _router_snat(info: LabInfo, vm: VmInfo) -> tuple[str | None, str | None]:
    r = info.router(vm.router)
    if r is None:
        return None, f"{vm.name} has no router"
    ext = [a for a in r.snat_ips if info.gateway_for(a)]
    if not ext:
        return None, f"router {r.name} has no SNAT address in an external subnet with a gateway"
    return ext[0], None


def _pairs(info: LabInfo) -> list[tuple[VmInfo, VmInfo, str]]:
    """For each VM with a FIP: one FIP target on the same node and one on another node, preferring a
    FIP of the other external subnet (the S4 hairpin case)."""
    fipped = [v for v in info.vms if v.fip]
    out, seen = [], set()
    for src in fipped:
        for where in ("same node", "other node"):
            cands = [v for v in fipped if v is not src and ((v.node == src.node) == (where == "same node"))]
            cands.sort(key=lambda v: (v.fip_subnet == src.fip_subnet, v.name))
            if cands and (src.name, cands[0].name) not in seen:
                seen.add((src.name, cands[0].name))
                out.append((src, cands[0], where))
    return out


def plan_checks(info: LabInfo) -> list[Check]:
    out: list[Check] = []
    inet, port = info.internet_address, info.tcp_port

    def gw_name(addr: str | None) -> str | None:
        g = info.gateway_for(addr)
        return g.name if g else None

    for proto in ("icmp", "tcp"):
        P = _proto_label(proto)
        for vm in info.vms:
            if not vm.fip:
                continue
            via = gw_name(vm.fip)
            err = None if via else f"FIP {vm.fip} is in no external subnet with a gateway"
            out.append(Check(f"internet → {vm.name} FIP {vm.fip} ({P})", "internet → FIP", "gw", proto,
                             info.internet_netns, vm.fip, port, via, vm.fip, expect_peer=inet,
                             expected=f"via {via} both ways, {vm.name} sees {inet}", error=err))
            out.append(Check(f"{vm.name} → internet as {vm.fip} ({P})", "FIP → internet", "gw", proto,
                             vm.netns, inet, port, via, vm.fip, expect_peer=vm.fip,
                             expected=f"via {via} both ways, internet sees {vm.fip}", error=err))
        for src, dst, where in _pairs(info):
            out.append(Check(f"{src.name} → {dst.name} FIP {dst.fip}, {where} ({P})", f"FIP → FIP {where}", "flat",
                             proto, src.netns, dst.fip or "", port, flat=(src.fip or "", dst.fip or ""),
                             expect_peer=src.fip, expected=f"direct over the segment, gateways flat, {dst.name} sees {src.fip}"))
        no_fip = [v for v in info.vms if not v.fip]
        targets = [v for v in info.vms if v.fip]
        for vm in no_fip:
            snat, err = _router_snat(info, vm)
            via = gw_name(snat)
            out.append(Check(f"{vm.name} (no FIP) → internet via SNAT ({P})", "SNAT → internet", "gw", proto,
                             vm.netns, inet, port, via, snat, expect_peer=snat,
                             expected=f"snat on {_snat_node(info, vm)} as {snat}, via {via}", error=err))
            other = [t for t in targets if t.node != vm.node] or targets
            if other:
                t = other[0]
                out.append(Check(f"{vm.name} (SNAT) → {t.name} FIP {t.fip} ({P})", "SNAT → FIP", "flat", proto,
                                 vm.netns, t.fip or "", port,
                                 flat=tuple(x for x in (snat, t.fip) if x), expect_peer=snat,
                                 expected=f"snat ns → {t.node} fip ns directly, gateways flat, {t.name} sees {snat}",
                                 error=err))
    return out


def _snat_node(info: LabInfo, vm: VmInfo) -> str:
    r = info.router(vm.router)
    return (r.snat_node if r and r.snat_node else "network node")


def schedule(checks: Sequence[Check]) -> list[list[Check]]:
    """Greedy rounds: checks in one round share no (address, protocol) counter key."""
    rounds: list[tuple[set, list[Check]]] = []
    for c in checks:
        for keys, members in rounds:
            if not (keys & c.keys):
                keys |= c.keys
                members.append(c)
                break
        else:
            rounds.append((set(c.keys), [c]))
    return [m for _, m in rounds]
