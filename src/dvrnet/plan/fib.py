"""A pure model of the kernel's IPv4 policy routing over a `Namespace`: which route a packet
takes. Used by tests to prove paths on planned state without a kernel, and by `dvrnet trace` to
explain them. Semantics follow Linux: rules in priority order (the implicit `32766 main` and
`32767 default` included; the local table is not modelled), a rule matches on from/to/iif/fwmark,
`lookup` takes the longest prefix match in its table and falls through to the next rule when the
table has none; blackhole/unreachable/prohibit end the lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, ip_network

from .numbers import MAIN_TABLE_ID
from .state import Namespace, Route, Rule

_IMPLICIT = (Rule(32766, table=MAIN_TABLE_ID), Rule(32767, table=253))


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    route: Route | None          # None when the rule's action ended the lookup
    action: str                  # "route" | "blackhole" | "unreachable" | "prohibit" | "no route"

    @property
    def table(self) -> int | None:
        return self.rule.table


def _in(prefix: str | None, ip: IPv4Address | None) -> bool:
    if prefix is None:
        return True
    if ip is None:
        return False
    return ip in ip_network("0.0.0.0/0" if prefix == "default" else prefix)


def _matches(rule: Rule, dst: IPv4Address, src: IPv4Address | None, iif: str | None, mark: int) -> bool:
    if rule.iif is not None and rule.iif != iif:
        return False
    if rule.fwmark is not None and (mark & (rule.fwmask if rule.fwmask is not None else 0xffffffff)) != rule.fwmark:
        return False
    return _in(rule.src, src) and _in(rule.dst, dst)


def longest_match(ns: Namespace, table: int, dst: IPv4Address) -> Route | None:
    best: Route | None = None
    best_len = -1
    for r in ns.routes:
        if r.table != table:
            continue
        net = ip_network("0.0.0.0/0" if r.dst == "default" else r.dst)
        if dst in net and net.prefixlen > best_len:
            best, best_len = r, net.prefixlen
    return best


def lookup(ns: Namespace, dst: str, src: str | None = None, iif: str | None = None, mark: int = 0) -> Verdict:
    d = IPv4Address(dst)
    s = IPv4Address(src) if src else None
    rules = sorted(list(ns.rules) + list(_IMPLICIT), key=Rule.sort_key)
    for rule in rules:
        if not _matches(rule, d, s, iif, mark):
            continue
        if rule.action != "lookup":
            return Verdict(rule, None, rule.action)
        if rule.table is None:
            continue
        route = longest_match(ns, rule.table, d)
        if route is not None:
            return Verdict(rule, route, "route" if route.type == "unicast" else route.type)
    return Verdict(_IMPLICIT[-1], None, "no route")
