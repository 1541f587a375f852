"""What still differs after an apply, one line per object, nmstate-style:

    fip-X table 3405803776 default: desired via 203.0.113.1, found via 198.51.100.1

Pure: renders the ops of a (verify) plan as differences; an empty plan means "converged".
"""
from __future__ import annotations

from .ops import (
    AddrAdd,
    AddrDel,
    EthtoolSet,
    Garp,
    LinkAdd,
    LinkDel,
    LinkSet,
    NeighDel,
    NeighReplace,
    NetnsAdd,
    NetnsDel,
    NftDelTable,
    NftElements,
    NftReplaceTable,
    Op,
    OvsPlug,
    OvsPortDel,
    OvsPortSet,
    Plan,
    ProcReload,
    ProcStart,
    ProcStop,
    RouteDel,
    RouteReplace,
    RuleAdd,
    RuleDel,
    SysctlSet,
    route_words,
    rule_words,
)

_ROUTE_FIELDS = ("type", "via", "dev", "scope", "onlink", "src")


def _route_attrs(r) -> str:
    words = route_words(r)
    words = words[: words.index("table")]
    words.remove(r.dst)
    return " ".join(words) or "a route"


def _fieldwise(want, have, names) -> tuple[str, str]:
    d, f = [], []
    for n in names:
        a, b = getattr(want, n), getattr(have, n)
        if a != b:
            d.append(_word(n, a))
            f.append(_word(n, b))
    return " ".join(d), " ".join(f)


def _word(name: str, v) -> str:
    if isinstance(v, bool):
        return name if v else f"no {name}"
    if v is None:
        return f"no {name}"
    return f"{name} {v}"


def describe(op: Op) -> str | None:
    ns = op.ns
    if isinstance(op, RouteReplace):
        r = op.route
        head = f"{ns} table {r.table} {r.dst}" + (f" metric {r.metric}" if r.metric else "")
        if op.old is None:
            return f"{head}: desired {_route_attrs(r)}, found nothing"
        d, f = _fieldwise(r, op.old, _ROUTE_FIELDS)
        return f"{head}: desired {d}, found {f}"
    if isinstance(op, RouteDel):
        r = op.route
        return f"{ns} table {r.table} {r.dst}: desired nothing, found {_route_attrs(r)}"
    if isinstance(op, RuleAdd):
        return f"{ns} rule {' '.join(rule_words(op.rule)[:-2])}: desired, found nothing"
    if isinstance(op, RuleDel):
        return f"{ns} rule {' '.join(rule_words(op.rule)[:-2])}: desired nothing, found it"
    if isinstance(op, AddrAdd):
        a = op.addr
        if op.old is None:
            return f"{ns} address {a.ip} on {a.dev}: desired {a.cidr}, found nothing"
        d, f = _fieldwise(a, op.old, ("cidr", "noprefixroute"))
        return f"{ns} address {a.ip} on {a.dev}: desired {d}, found {f}"
    if isinstance(op, AddrDel):
        return f"{ns} address {op.addr.cidr} on {op.addr.dev}: desired nothing, found it"
    if isinstance(op, NeighReplace):
        n = op.neigh
        found = op.old.mac if op.old else "nothing"
        return f"{ns} neighbour {n.ip} on {n.dev}: desired lladdr {n.mac}, found {found}"
    if isinstance(op, NeighDel):
        return f"{ns} neighbour {op.neigh.ip} on {op.neigh.dev}: desired nothing, found {op.neigh.mac}"
    if isinstance(op, SysctlSet):
        return f"{ns} sysctl {op.key}: desired {op.value}, found {op.old if op.old is not None else 'nothing'}"
    if isinstance(op, LinkAdd):
        return f"{op.into or ns} link {op.link.name}: desired {op.link.kind}, found nothing"
    if isinstance(op, LinkDel):
        return f"{ns} link {op.name}: " + ("desired nothing, found it" if op.why == "obsolete" else op.why)
    if isinstance(op, LinkSet):
        parts = [_word(n, getattr(op, n)) for n in ("mac", "mtu", "master", "up") if getattr(op, n) is not None]
        return f"{ns} link {op.name}: desired {' '.join(parts)}, found otherwise"
    if isinstance(op, NftReplaceTable):
        t = op.table
        return f"{ns} nft table {t.family} {t.name}: " + (
            "structure differs (chains, rules or map declarations)" if op.exists else "desired, found nothing")
    if isinstance(op, NftElements):
        return (f"{ns} nft table {op.family} {op.table}: {len(op.add)} elements missing, "
                f"{len(op.delete)} unexpected: " + op.line()[4:])
    if isinstance(op, NftDelTable):
        return f"{ns} nft table {op.family} {op.name}: desired nothing, found it"
    if isinstance(op, NetnsAdd):
        return f"{ns}: namespace desired, found nothing"
    if isinstance(op, NetnsDel):
        return f"{ns}: namespace desired nothing, found it"
    if isinstance(op, ProcStart):
        if op.old is not None:
            return f"{ns} process {op.proc.role}: desired {' '.join(op.proc.argv)}, found {' '.join(op.old.argv)}"
        return f"{ns} process {op.proc.role}: desired running, found nothing"
    if isinstance(op, ProcReload):
        return (f"{ns} process {op.proc.role}: desired configuration {op.proc.digest}, "
                f"found {(op.old.digest if op.old else '') or 'an unknown one'}")
    if isinstance(op, ProcStop):
        return f"{ns} process {op.proc.role} pid {op.proc.pid}: desired nothing, found it running"
    if isinstance(op, OvsPlug):
        return f"{op.into} link {op.link.name}: desired ovs (internal port of {op.port.bridge} in {ns}), found nothing"
    if isinstance(op, OvsPortSet):
        p = op.port
        if op.old is None:
            return f"{ns} OVS port {p.name}: desired on {p.bridge}, found nothing"
        d, f = _fieldwise(p, op.old, ("external_ids", "mtu_request"))
        return f"{ns} OVS port {p.name}: desired {d}, found {f}"
    if isinstance(op, OvsPortDel):
        return f"{ns} OVS port {op.name} on {op.bridge}: " + ("desired nothing, found it" if op.why == "obsolete"
                                                               else f"to be re-created ({op.why})")
    if isinstance(op, EthtoolSet):
        return f"{ns} link {op.dev}: desired tx-checksumming {'on' if op.tx else 'off'}, found otherwise"
    if isinstance(op, Garp):
        return None                              # an announcement, not state
    return str(op)


def describe_plan(plan: Plan) -> tuple[str, ...]:
    out = [s for s in (describe(op) for op in plan) if s is not None]
    return tuple(out) + tuple(plan.conflicts)
