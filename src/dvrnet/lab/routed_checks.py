"""`lab check` of a routed lab (`lab up --routed`, info.tor set): what routed mode promises.

- every FIP answers the internet host (ICMP, and TCP with the VM seeing the internet's address:
  no NAT on the way in) and the VM reaches the internet as its FIP;
- the ToR's route for every FIP points at the private address of the node hosting the VM (the
  route BGP gave it: `proto bird`), and for every router's SNAT address at its SNAT node's qg-;
- no public address (one inside a public subnet) on any fg- or qg- port of any node;
- VMs without a FIP reach the internet through SNAT, seen as their router's SNAT address;
- FIP->FIP between nodes goes through the ToR and works.
Each row names what it expected and what it saw; nothing passes vacuously (no FIP, no route, no
fg- port found are failures).
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from .checks import Row
from .checks.run import ping
from .checks.run import tcp as tcp_probe
from .info import LabInfo
from .sh import Cmd, list_netns, parallel, run, run_threads


def tor_routes(info: LabInfo) -> dict[str, str]:
    assert info.tor is not None
    p = run(Cmd(("ip", "-j", "-n", info.tor["netns"], "route", "show", "proto", "bird"), None, info.tor["netns"], check=False))
    return {r["dst"]: r.get("gateway", "") for r in json.loads(p.stdout or "[]")}


def expected_tor_routes(info: LabInfo) -> dict[str, str | None]:
    """Address -> the next hop the ToR must have for it: every VM's FIP via its node's private
    address, every router's public SNAT address via its qg- (private) address (None: unknown)."""
    node_addr = {n.name: n.private_address for n in info.nodes}
    out: dict[str, str | None] = {v.fip: node_addr.get(v.node) for v in info.vms if v.fip}
    svc = ipaddress.ip_network(info.service_subnet)
    for r in info.routers:
        pub = [a for a in r.snat_ips if ipaddress.ip_address(a) not in svc]
        priv = [a for a in r.snat_ips if ipaddress.ip_address(a) in svc]
        if pub:
            out[pub[0]] = priv[0] if priv else None
    return out


def wait_tor_routes(info: LabInfo, timeout: float = 60.0) -> tuple[float, dict[str, str | None]]:
    """Wait until the ToR routes every expected address via its next hop (BGP sessions come up
    after the agents have built the namespaces and started their BIRDs). Returns the seconds
    waited and what is still missing or wrong ({} when everything arrived)."""
    import time
    t0 = time.monotonic()
    want = expected_tor_routes(info)
    while True:
        routes = tor_routes(info)
        missing = {a: via for a, via in want.items() if via is None or routes.get(a) != via}
        if not missing or time.monotonic() - t0 > timeout:
            return time.monotonic() - t0, missing
        time.sleep(0.1)


def tor_paths(info: LabInfo) -> dict[str, str]:
    """FIP (or SNAT address) -> the AS path of the ToR's best route for it (its BIRD's `show
    route all`): one AS normally, the node's AS repeated when its watchdog marked it stale."""
    import os

    from ..kernel.bird import command
    assert info.tor is not None
    out: dict[str, str] = {}
    net = None
    for _code, text in command(os.path.join(info.state_dir, "tor", "ctl"), "show route all"):
        parts = text.split()
        if parts and "/" in parts[0] and parts[0][0].isdigit():
            net = parts[0].removesuffix("/32")
        elif text.strip().startswith("BGP.as_path:") and net:
            out.setdefault(net, text.split(":", 1)[1].strip())     # the first route listed is the best
    return out


def port_addresses(info: LabInfo) -> list[tuple[str, str, str, list[str]]]:
    """(node, namespace, device, IPv4 addresses) of every fg-/qg- port of every node."""
    names = list_netns()
    jobs = [(n.name, ns) for n in info.nodes for ns in names
            if ns.startswith((n.prefix + "fip-", n.prefix + "snat-"))]
    res = parallel([Cmd(("ip", "-j", "-n", ns, "addr", "show"), None, ns, check=False) for _, ns in jobs])
    out = []
    for (node, ns), p in zip(jobs, res):
        for link in json.loads(p.stdout or "[]"):
            if link.get("ifname", "").startswith(("fg-", "qg-")):
                out.append((node, ns, link["ifname"], [a["local"] for a in link.get("addr_info", [])
                                                        if a.get("family") == "inet"]))
    return out


def _public(info: LabInfo) -> list[ipaddress.IPv4Network]:
    assert info.tor is not None
    return [ipaddress.ip_network(c) for c in info.tor.get("public", [])]


def judge_tor(addr: str, want_via: str | None, routes: dict[str, str]) -> tuple[str, bool]:
    """The ToR must route ADDR via WANT_VIA (pure)."""
    got = routes.get(addr)
    if want_via is None:
        return f"route via {got or 'nothing'}; the hosting node has no private address", False
    return (f"route via {got}" if got else "no route"), got == want_via


def run_routed_checks(info: LabInfo) -> list[Row]:
    rows: list[Row] = []
    inet, port = info.internet_address, info.tcp_port
    routes = tor_routes(info)
    want = expected_tor_routes(info)
    fipped = [v for v in info.vms if v.fip]
    if not fipped:
        rows.append(Row("the routed lab has FIPs", "at least one VM with a FIP", "none", False, "routed"))
    for v in fipped:
        obs, ok = judge_tor(v.fip or "", want.get(v.fip or ""), routes)
        rows.append(Row(f"ToR route for {v.name} FIP {v.fip}", f"via {v.node} ({want.get(v.fip or '')})", obs, ok,
                        "ToR routes"))
    snat_of: dict[str, str] = {}
    svc = ipaddress.ip_network(info.service_subnet)
    for r in info.routers:
        pub = [a for a in r.snat_ips if ipaddress.ip_address(a) not in svc]
        priv = [a for a in r.snat_ips if ipaddress.ip_address(a) in svc]
        if pub:
            snat_of[r.name] = pub[0]
            obs, ok = judge_tor(pub[0], want.get(pub[0]), routes)
            rows.append(Row(f"ToR route for {r.name} SNAT {pub[0]}", f"via {r.snat_node}'s qg- ({priv[0] if priv else '?'})",
                            obs, ok, "ToR routes"))
    public = _public(info)
    ports = port_addresses(info)
    if not ports:
        rows.append(Row("fg-/qg- ports", "some", "none found", False, "private addresses"))
    for node, ns, dev, addrs in ports:
        bad = [a for a in addrs if any(ipaddress.ip_address(a) in n for n in public)]
        rows.append(Row(f"{node} {dev} holds no public address", f"only {info.service_subnet}",
                        ", ".join(addrs) or "no address", not bad and bool(addrs), "private addresses"))
    jobs: list[tuple[str, str, object]] = []
    for v in fipped:
        jobs.append((f"internet → {v.name} FIP {v.fip} (ICMP)", "icmp", (info.internet_netns, v.fip, None)))
        jobs.append((f"internet → {v.name} FIP {v.fip} (TCP)", "tcp", (info.internet_netns, v.fip, inet)))
        jobs.append((f"{v.name} → internet as {v.fip} (TCP)", "tcp", (v.netns, inet, v.fip)))
    for v in info.vms:
        if not v.fip and v.router in snat_of:
            jobs.append((f"{v.name} (no FIP) → internet via SNAT (TCP)", "tcp", (v.netns, inet, snat_of[v.router])))
            jobs.append((f"{v.name} (no FIP) → internet via SNAT (ICMP)", "icmp", (v.netns, inet, None)))
    for src in fipped:
        dst = next((d for d in fipped if d.node != src.node), None)
        if dst is not None:
            jobs.append((f"{src.name} → {dst.name} FIP {dst.fip}, other node, via the ToR (TCP)", "tcp",
                         (src.netns, dst.fip, src.fip)))
            break
    results = run_threads([(lambda j=j: _probe(j[1], *j[2], port)) for j in jobs])     # type: ignore[misc]  # the default argument binds each job to its lambda
    for (name, proto, (_ns, _dst, peer)), res in zip(jobs, results):
        if isinstance(res, Exception):
            rows.append(Row(name, "answered", f"{type(res).__name__}: {res}", False, "traffic"))
            continue
        obs, ok = res
        rows.append(Row(name, f"answered{', peer saw ' + peer if peer else ''}", obs, ok, "traffic"))
    return rows


def _probe(proto: str, ns: str, dst: str, peer: str | None, port: int) -> tuple[str, bool]:
    if proto == "icmp":
        t = ping(ns, dst)
        return (t.error or f"{t.received}/{t.sent} replies"), (not t.error and t.sent > 0 and t.received == t.sent)
    t = tcp_probe(ns, dst, port)
    if t.error or not t.peer:
        return (t.error or "no TCP answer"), False
    return f"tcp ok, peer saw {t.peer}", peer is None or t.peer == peer


def summary(rows: Sequence[Row]) -> str:
    return f"{sum(r.passed for r in rows)}/{len(rows)} passed"
