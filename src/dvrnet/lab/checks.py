"""`lab check`: the traffic checks of issue 5 (item 2), proving each packet's PATH with counters.

Every upstream gateway counts, per (address . protocol), packets entering from the external segment
(`in_src`, `in_dst`) and leaving onto it (`out_src`, `out_dst`) — see world.gateway_counters_nft.
For an external address A (a FIP or a SNAT address) a correct flow through gateway G shows on G
`in_src[A] > 0` (A's packets reach G from the segment) and `out_dst[A] > 0` (packets for A leave G to
the segment), and nothing for A anywhere else: no other gateway sees A at all, and no gateway ever
sees A arriving as a destination from the segment (`in_dst`, a hairpin) or leaving as a source
(`out_src`). A flow that must not cross a gateway (FIP→FIP, SNAT→FIP) leaves every counter of its
addresses flat. TCP checks also report the source address the far end saw (the responder echoes it),
so a reply that arrives by the wrong path or with the wrong NAT fails.

Checks are plain data (`Check`), built from a `LabInfo` by `plan_checks`; `run_checks` runs them in
rounds — checks whose (address, protocol) counter keys are disjoint run in parallel within a round,
with one counter snapshot before and after — then the negative checks on the segment (ARP for
non-FIP addresses, packets sent to an `fg-` MAC for addresses its node does not host). A check that
cannot pass (nothing is configured yet, an fg- port is missing, a FIP has no router) reports FAILED
with the reason, never passes vacuously.

The judging functions (`judge_gateway_path`, `judge_flat`, `judge_arp`, `judge_fg`) are pure and
take counter deltas, so the row logic is unit-tested with fabricated values.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from .info import LabInfo, VmInfo
from .sh import Cmd, in_netns, ip_batch, netns_exec, parallel, run, run_threads

SETS = ("in_src", "in_dst", "out_src", "out_dst")
PING_COUNT = 2
# (gateway or sink name, set, address, protocol) -> packets
Counters = dict[tuple[str, str, str, str], int]


@dataclass
class Row:
    check: str
    expected: str
    observed: str
    passed: bool
    group: str = ""


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


@dataclass
class Traffic:
    sent: int = 0
    received: int = 0
    peer: str | None = None        # TCP: the source address the responder saw
    error: str | None = None


# ------------------------------------------------------------------------------------------------
# counters

def parse_counters(name: str, nft_json: str) -> Counters:
    out: Counters = {}
    for obj in json.loads(nft_json).get("nftables", []):
        s = obj.get("set")
        if not s or s.get("name") not in SETS:
            continue
        for e in s.get("elem", []):
            el = e.get("elem", e)
            val = el.get("val", {})
            cat = val.get("concat") if isinstance(val, dict) else None
            if not cat or len(cat) != 2:
                continue
            out[(name, s["name"], str(cat[0]), str(cat[1]))] = int(el.get("counter", {}).get("packets", 0))
    return out


def read_counters(namespaces: dict[str, str]) -> Counters:
    """namespaces: name -> netns holding `table inet dvlab`."""
    items = list(namespaces.items())
    res = parallel([Cmd(("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "dvlab"), None, ns, check=False)
                    for _, ns in items])
    out: Counters = {}
    for (name, _), p in zip(items, res):
        if p.returncode == 0:
            out.update(parse_counters(name, p.stdout))
    return out


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


# ------------------------------------------------------------------------------------------------
# judging (pure)

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


# ------------------------------------------------------------------------------------------------
# traffic

def ping(ns: str, dst: str, count: int = PING_COUNT, mark: int | None = None, wait: float = 1.0) -> Traffic:
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", str(wait), "-w", str(max(1, int(wait)))]
    if mark is not None:
        argv += ["-m", str(mark)]
    p = run(netns_exec(ns, *argv, dst))
    m = re.search(r"(\d+) packets transmitted, (\d+) received", p.stdout)
    if not m:
        return Traffic(sent=count, received=0, error=(p.stderr.strip() or p.stdout.strip() or "ping failed")[:120])
    return Traffic(sent=int(m.group(1)), received=int(m.group(2)))


def tcp(ns: str, dst: str, port: int, timeout: float = 1.0) -> Traffic:
    """Connect from namespace NS (this thread moves there), read the responder's line."""
    try:
        with in_netns(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with s:
            s.settimeout(timeout)
            s.connect((dst, port))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
        parts = data.decode().split()
        return Traffic(sent=1, received=1, peer=parts[0] if parts else None)
    except OSError as e:
        return Traffic(sent=1, received=0, error=f"tcp: {e.strerror or e}")


def arping(ns: str, dev: str, src: str, target: str, count: int = 3) -> list[str]:
    p = run(netns_exec(ns, "arping", "-c", str(count), "-W", "0.1", "-w", "1", "-i", dev, "-S", src, target))
    return re.findall(r"from ([0-9a-fA-F:]{17})", p.stdout)


def _run_check(c: Check) -> Traffic:
    if c.error:
        return Traffic(error=c.error)
    if c.proto == "tcp":
        return tcp(c.src_ns, c.dst, c.port)
    return ping(c.src_ns, c.dst)


# ------------------------------------------------------------------------------------------------
# plan (pure)

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


# ------------------------------------------------------------------------------------------------
# discovery of what the agents built (read-only)

@dataclass
class FgPort:
    node: str
    netns: str
    dev: str
    mac: str
    addresses: list[str] = field(default_factory=list)


def discover_fg(info: LabInfo) -> dict[str, list[FgPort]]:
    from .sh import list_netns
    all_ns = list_netns()
    fip_ns = [(n.name, ns) for n in info.nodes for ns in all_ns if ns.startswith(n.prefix + "fip-")]
    res = parallel([Cmd(("ip", "-j", "-n", ns, "addr", "show"), None, ns, check=False) for _, ns in fip_ns])
    out: dict[str, list[FgPort]] = {n.name: [] for n in info.nodes}
    for (node, ns), p in zip(fip_ns, res):
        try:
            links = json.loads(p.stdout or "[]")
        except ValueError:
            continue
        for link in links:
            if link.get("ifname", "").startswith("fg-"):
                out[node].append(FgPort(node, ns, link["ifname"], link.get("address", ""),
                                        [a["local"] for a in link.get("addr_info", []) if a.get("family") == "inet"]))
    return out


def snat_holder(info: LabInfo, addr: str) -> str | None:
    """The node whose `snat-` namespace holds ADDR, if any."""
    from .sh import list_netns
    all_ns = list_netns()
    cands = [(n.name, ns) for n in info.nodes for ns in all_ns if ns.startswith(n.prefix + "snat-")]
    res = parallel([Cmd(("ip", "-j", "-n", ns, "addr", "show"), None, ns, check=False) for _, ns in cands])
    for (node, _), p in zip(cands, res):
        try:
            for link in json.loads(p.stdout or "[]"):
                if any(a.get("local") == addr for a in link.get("addr_info", [])):
                    return node
        except ValueError:
            continue
    return None


# ------------------------------------------------------------------------------------------------
# running

def _counter_ns(info: LabInfo) -> dict[str, str]:
    d = {g.name: g.netns for g in info.gateways}
    d["sink"] = info.sink_netns
    return d


def _run_rounds(info: LabInfo, checks: Sequence[Check]) -> list[Row]:
    rows: dict[int, Row] = {}
    gw_names = [g.name for g in info.gateways]
    cns = _counter_ns(info)
    index = {id(c): i for i, c in enumerate(checks)}
    for rnd in schedule(checks):
        before = read_counters(cns)
        traffic = run_threads([(lambda c=c: _run_check(c)) for c in rnd])
        time.sleep(0.05)  # let the last TCP ACK/FIN cross the gateways before reading
        d = delta(before, read_counters(cns))
        for c, t in zip(rnd, traffic):
            if isinstance(t, Exception):
                t = Traffic(error=f"{type(t).__name__}: {t}")
            if c.kind == "gw":
                if c.error or not c.via or not c.addr:
                    obs, ok = (c.error or "no gateway for this address"), False
                else:
                    obs, ok = judge_gateway_path(c.addr, c.proto, c.via, gw_names, d, t, c.expect_peer)
            else:
                obs, ok = (c.error, False) if c.error else judge_flat(c.flat, c.proto, d, t, c.expect_peer)
            rows[index[id(c)]] = Row(c.name, c.expected, obs, ok, c.group)
    return [rows[i] for i in range(len(checks))]


def _snat_rows(info: LabInfo) -> list[Row]:
    """Each router's SNAT address must be held by a snat- namespace on its SNAT node."""
    out = []
    routers = {v.router for v in info.vms if not v.fip and v.router}
    for r in info.routers:
        if r.name not in routers:
            continue
        if not r.snat_ips:
            out.append(Row(f"{r.name} SNAT address on {r.snat_node}", f"snat-{r.id[:8]}… on {r.snat_node}",
                           "router has no gateway address", False, "SNAT → internet"))
            continue
        holder = snat_holder(info, r.snat_ips[0])
        out.append(Row(f"{r.name} SNAT address {r.snat_ips[0]} on {r.snat_node}", f"snat- namespace on {r.snat_node}",
                       f"held by {holder}" if holder else "held by no snat- namespace", holder == r.snat_node,
                       "SNAT → internet"))
    return out


def _segment_rows(info: LabInfo) -> list[Row]:
    """Negative checks from the probe host on the segment."""
    fg = discover_fg(info)
    any_fg = any(fg.values())
    rows: list[Row] = []
    probe_src = dict(info.probe_addresses)
    # ARP: a non-FIP address of each external subnet gets no answer; each FIP exactly one (its node's fg-).
    arp_jobs: list[tuple[str, str, str, list[str] | None]] = []
    for g in info.gateways:
        net = ipaddress.ip_network(g.subnet)
        used = {v.fip for v in info.vms} | {a for r in info.routers for a in r.snat_ips} | set(probe_src.values()) \
            | set(info.sink_addresses.values()) | {g.address}
        free = next(str(net[i]) for i in range(net.num_addresses - 3, 1, -1) if str(net[i]) not in used)
        arp_jobs.append((f"ARP who-has {free} (not a FIP, {g.name})", probe_src.get(g.subnet, ""), free, None))
    for v in info.vms:
        if v.fip:
            macs = [p.mac for p in fg.get(v.node, [])]
            sub = info.gateway_for(v.fip)
            arp_jobs.append((f"ARP who-has {v.name} FIP {v.fip}", probe_src.get(sub.subnet if sub else "", ""), v.fip,
                             macs))
    results = run_threads([(lambda j=j: arping(info.probe_netns, "seg0", j[1], j[2])) for j in arp_jobs])
    for (name, src, target, macs), res in zip(arp_jobs, results):
        if isinstance(res, Exception):
            obs, ok = judge_arp([], None, error=str(res))
        elif macs is None and not any_fg:
            obs, ok = judge_arp([], None, error="no fg- port on any node: nothing to test")
        elif macs is not None and not macs:
            obs, ok = judge_arp(res, None, error=f"no fg- port on the FIP's node ({res and 'replies: ' + ','.join(res) or 'no replies'})")
        else:
            obs, ok = judge_arp(res, macs)
        exp = "no answer from any node" if macs is None else "one answer, the fg- MAC of the FIP's node"
        rows.append(Row(name, exp, obs, ok, "segment ARP"))
    rows += _fg_rows(info, fg)
    return rows


def _fg_rows(info: LabInfo, fg: dict[str, list[FgPort]]) -> list[Row]:
    rows: list[Row] = []
    jobs: list[tuple[str, int, str, bool, str]] = []  # (name, mark, dst, control, node)
    setup: list[str] = []
    gw_names = [g.name for g in info.gateways]
    for i, n in enumerate(info.nodes, start=1):
        ports = [p for p in fg.get(n.name, []) if p.addresses and p.mac]
        if not ports:
            hosts_fip = any(v.fip and v.node == n.name for v in info.vms)
            if hosts_fip or not any(fg.values()):
                rows.append(Row(f"packet to {n.name}'s fg- MAC, address it does not host", "not forwarded",
                                f"no fg- port found on {n.name}", False, "fg- MAC"))
            else:
                rows.append(Row(f"{n.name} has no fg- port", "none: it hosts no FIP", "no fg- port", True, "fg- MAC"))
            continue
        p, mark, table = ports[0], i, 900 + i
        dsts: list[tuple[str, bool, str]] = [(a, False, f"sink {a}") for a in info.sink_addresses.values()]
        dsts.append((info.internet_address, False, f"internet {info.internet_address}"))
        for other in info.nodes:
            fv = next((v for v in info.vms if v.fip and v.node == other.name), None)
            if fv and other.name != n.name:
                dsts.append((fv.fip or "", False, f"{fv.name} FIP {fv.fip} (on {other.name})"))
            if fv and other.name == n.name:
                dsts.append((fv.fip or "", True, f"{fv.name} FIP {fv.fip} (hosted here: control)"))
        setup += [f"neigh replace {p.addresses[0]} lladdr {p.mac} dev seg0 nud permanent",
                  f"route flush table {table}", f"rule del pref {table}",
                  f"rule add pref {table} fwmark {mark} lookup {table}"]
        setup += [f"route replace {d}/32 via {p.addresses[0]} dev seg0 onlink table {table}" for d, _, _ in dsts]
        jobs += [(f"probe → {label} via {n.name}'s fg- MAC", mark, d, ctl, n.name) for d, ctl, label in dsts]
    if not jobs:
        return rows
    run(ip_batch(info.probe_netns, setup, force=True))
    cns = _counter_ns(info)
    before = read_counters(cns)
    traffic = run_threads([(lambda j=j: ping(info.probe_netns, j[2], mark=j[1])) for j in jobs])
    time.sleep(0.05)
    d = delta(before, read_counters(cns))
    probe_addrs = list(info.probe_addresses.values())
    for (name, _, dst, ctl, node), t in zip(jobs, traffic):
        if isinstance(t, Exception):
            t = Traffic(error=str(t))
        sink = sum(n for (who, st, a, _), n in d.items() if who == "sink" and st == "in_dst" and a == dst)
        seen: dict[str, dict[str, int]] = {}
        if dst == info.internet_address:
            for a in probe_addrs:
                for gw, sets in per_gateway({k: v for k, v in d.items() if k[0] in gw_names}, a, "icmp").items():
                    seen.setdefault(gw, {}).update(sets)
        obs, ok = judge_fg(t, sink, seen, control=ctl)
        rows.append(Row(name, "answered (the node hosts it)" if ctl else "not forwarded: no reply, sink and gateways flat",
                        obs, ok, "fg- MAC"))
    return rows


def run_checks(info: LabInfo, checks: Sequence[Check] | None = None, segment: bool = True) -> list[Row]:
    checks = plan_checks(info) if checks is None else list(checks)
    rows = _run_rounds(info, checks)
    rows += _snat_rows(info)
    if segment:
        rows += _segment_rows(info)
    if not rows:
        rows.append(Row("lab has checks", "at least one VM", "nothing to check", False, ""))
    return rows


# ------------------------------------------------------------------------------------------------
# output

def rows_json(rows: Sequence[Row]) -> str:
    return json.dumps({"passed": all(r.passed for r in rows), "rows": [asdict(r) for r in rows]}, indent=2)


def render_table(rows: Sequence[Row], console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title="dvrnet lab check", show_lines=False)
    for col in ("check", "expected path", "observed path", "result"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r.check, r.expected, r.observed, "[green]PASS[/]" if r.passed else "[red]FAIL[/]")
    (console or Console()).print(t)
    failed = sum(not r.passed for r in rows)
    (console or Console()).print(f"{len(rows) - failed}/{len(rows)} passed")


__all__ = [
    "Check",
    "Row",
    "Traffic",
    "delta",
    "discover_fg",
    "judge_arp",
    "judge_fg",
    "judge_flat",
    "judge_gateway_path",
    "parse_counters",
    "per_gateway",
    "plan_checks",
    "read_counters",
    "render_table",
    "rows_json",
    "run_checks",
    "schedule",
    "snat_holder",
]

