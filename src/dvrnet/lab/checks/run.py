"""Running: traffic, gateway counters and what the agents built, in the lab's namespaces → rows.

Checks run in the rounds `plan.schedule` makes, one counter snapshot before and after each round;
then each router's SNAT address is looked up in the `snat-` namespaces, and the negative checks
run from the probe host on the segment (ARP for addresses that are not FIPs, packets sent to an
`fg-` MAC for addresses its node does not host). Verdicts come from `judge`. Read-only towards
the agents' namespaces: only the probe host's routes and rules are changed.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..info import LabInfo
from ..sh import Cmd, in_netns, ip_batch, netns_exec, parallel, run, run_threads
from .judge import Counters, Row, Traffic, delta, judge_arp, judge_fg, judge_flat, judge_gateway_path, per_gateway
from .plan import Check, plan_checks, schedule

SETS = ("in_src", "in_dst", "out_src", "out_dst")
PING_COUNT = 2


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


@dataclass
class FgPort:
    node: str
    netns: str
    dev: str
    mac: str
    addresses: list[str] = field(default_factory=list)


def discover_fg(info: LabInfo) -> dict[str, list[FgPort]]:
    from ..sh import list_netns
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
    from ..sh import list_netns
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
