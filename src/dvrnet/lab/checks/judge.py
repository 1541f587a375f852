"""Judging (pure): counter deltas and the traffic a check saw → a row's observed text and verdict.

A flow through gateway G as external address A passes when G counts A entering from the segment
(`in_src`) and leaving to it (`out_dst`), no other gateway counts A, and no gateway counts A as a
hairpin (`in_dst`, `out_src`); a flat flow passes when no gateway counts its addresses at all. The
traffic itself must succeed (every ping answered, the TCP responder reached and seeing the expected
source). Unit-tested with fabricated counters (tests/lab/test_checks_unit.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# (gateway or sink name, set, address, protocol) -> packets
Counters = dict[tuple[str, str, str, str], int]


@dataclass
class Row:
    check: str
    expected: str
    observed: str
    passed: bool
    group: str = ""


@dataclass
class Traffic:
    sent: int = 0
    received: int = 0
    peer: str | None = None        # TCP: the source address the responder saw
    error: str | None = None


def delta(before: Counters, after: Counters) -> Counters:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def per_gateway(d: Counters, addr: str, proto: str) -> dict[str, dict[str, int]]:
    """{gateway: {set: packets}} for one (address, protocol), nonzero only."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for (gw, st, a, p), n in d.items():
        if a == addr and p == proto and n:
            out[gw][st] = out[gw].get(st, 0) + n
    return dict(out)


def _fmt_gw(seen: dict[str, dict[str, int]]) -> str:
    if not seen:
        return "no gateway"
    return "; ".join(f"{gw}(" + ",".join(f"{k}={v}" for k, v in sorted(sets.items())) + ")"
                     for gw, sets in sorted(seen.items()))


def _fmt_traffic(t: Traffic, proto: str) -> str:
    if t.error:
        return t.error
    if proto == "tcp":
        return f"tcp ok, peer saw {t.peer}" if t.peer else "tcp failed"
    return f"{t.received}/{t.sent} replies"


def _traffic_ok(t: Traffic, proto: str, expect_peer: str | None) -> tuple[bool, str]:
    if t.error:
        return False, t.error
    if proto == "tcp":
        if not t.peer:
            return False, "no TCP answer"
        if expect_peer and t.peer != expect_peer:
            return False, f"peer saw {t.peer}, expected {expect_peer}"
        return True, ""
    if t.sent == 0 or t.received < t.sent:
        return False, f"{t.received}/{t.sent} replies"
    return True, ""


def _traffic_problems(t: Traffic, proto: str, expect_peer: str | None) -> list[str]:
    ok, why = _traffic_ok(t, proto, expect_peer)
    if ok or why == _fmt_traffic(t, proto) or (t.error and why == t.error):
        return [] if ok else ["traffic failed"]
    return [why]

def judge_gateway_path(addr: str, proto: str, via: str, gateways: Iterable[str], d: Counters, t: Traffic,
                       expect_peer: str | None = None) -> tuple[str, bool]:
    """The flow of ADDR must cross gateway VIA both ways and no other gateway, never hairpin."""
    seen = per_gateway(d, addr, proto)
    problems = _traffic_problems(t, proto, expect_peer)
    mine = seen.get(via, {})
    if mine.get("in_src", 0) < 1:
        problems.append(f"nothing from {addr} entered {via}")
    if mine.get("out_dst", 0) < 1:
        problems.append(f"nothing for {addr} left {via}")
    if proto == "icmp" and t.received and (mine.get("in_src", 0) < t.received or mine.get("out_dst", 0) < t.received):
        problems.append(f"{via} saw fewer packets than the {t.received} replies")
    for gw in gateways:
        if gw != via and seen.get(gw):
            problems.append(f"also crossed {gw}")
    for gw, sets in seen.items():
        if sets.get("in_dst") or sets.get("out_src"):
            problems.append(f"hairpin at {gw}")
    observed = f"{_fmt_traffic(t, proto)}; {_fmt_gw(seen)}"
    return (observed + ("" if not problems else " — " + "; ".join(dict.fromkeys(problems))), not problems)


def judge_flat(addrs: Sequence[str], proto: str, d: Counters, t: Traffic,
               expect_peer: str | None = None) -> tuple[str, bool]:
    """The flow must succeed and leave every gateway counter of ADDRS flat."""
    problems = _traffic_problems(t, proto, expect_peer)
    seen_all = {}
    for a in addrs:
        seen = per_gateway(d, a, proto)
        if seen:
            seen_all[a] = seen
            problems.append(f"{a} crossed {', '.join(sorted(seen))}")
    gw_txt = "gateways flat" if not seen_all else "; ".join(f"{a}: {_fmt_gw(s)}" for a, s in seen_all.items())
    observed = f"{_fmt_traffic(t, proto)}; {gw_txt}"
    return (observed + ("" if not problems else " — " + "; ".join(dict.fromkeys(problems))), not problems)


def judge_arp(replies: Sequence[str], expect_macs: Sequence[str] | None, error: str | None = None) -> tuple[str, bool]:
    """expect_macs None: no answer allowed; else exactly those MACs (one FIP: the fg- MAC of its node)."""
    if error:
        return error, False
    macs = sorted({m.lower() for m in replies})
    observed = f"{len(replies)} replies" + (f" from {', '.join(macs)}" if macs else "")
    if expect_macs is None:
        return observed, not replies
    return observed, bool(replies) and macs == sorted({m.lower() for m in expect_macs})


def judge_fg(t: Traffic, sink_delta: int, gw_seen: dict[str, dict[str, int]], control: bool = False,
             error: str | None = None) -> tuple[str, bool]:
    """A packet sent to a node's fg- MAC for an address the node does not host: no reply, nothing at
    the sink, nothing at the gateways. control=True: the node hosts the address, a reply is expected."""
    if error:
        return error, False
    observed = f"{t.received}/{t.sent} replies; sink +{sink_delta}; {_fmt_gw(gw_seen)}"
    if control:
        return observed, t.sent > 0 and t.received > 0
    return observed, t.sent > 0 and t.received == 0 and sink_delta == 0 and not gw_seen
