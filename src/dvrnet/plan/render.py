"""The canonical text form of a `HostState`: sorted, one object per line, `ip`-like.

Used for golden files, `dvrnet plan`, and `dvrnet show --desired/--actual`. Invariant: equal
states render to identical bytes; every line names one kernel object, so a textual diff of two
renderings is a readable diff of the states.
"""
from __future__ import annotations

from .numbers import MAIN_TABLE_ID
from .state import (
    Address,
    HostState,
    Link,
    Namespace,
    Neighbour,
    NftTable,
    OvsPort,
    Process,
    Route,
    Rule,
    prefix_sort_key,
)


def link_line(l: Link) -> str:
    parts = [f"link {l.name} {l.kind}"]
    if l.peer:
        parts.append(f"peer {l.peer_netns or ''}/{l.peer}")
    if l.master:
        parts.append(f"master {l.master}")
    if l.ovs:
        parts.append(f"ovs-bridge {l.ovs}")
    if l.mac:
        parts.append(f"address {l.mac}")
    if l.mtu:
        parts.append(f"mtu {l.mtu}")
    if not l.up:
        parts.append("down")
    if not l.carrier:
        parts.append("no-carrier")
    if l.tx_csum is not None:
        parts.append(f"tx {'on' if l.tx_csum else 'off'}")
    return " ".join(parts)


def ovs_port_line(p: OvsPort) -> str:
    parts = [f"ovs-port {p.name} bridge {p.bridge} type {p.type or 'system'}"]
    if p.mtu_request:
        parts.append(f"mtu_request {p.mtu_request}")
    parts += [f"external_ids:{k}={v}" for k, v in p.external_ids]
    return " ".join(parts)


def address_line(a: Address) -> str:
    return f"addr {a.cidr} dev {a.dev}" + (" noprefixroute" if a.noprefixroute else "")


def table_name(t: int) -> str:
    return "main" if t == MAIN_TABLE_ID else str(t)


def route_line(r: Route) -> str:
    parts = ["route"]
    if r.type != "unicast":
        parts.append(r.type)
    parts.append(r.dst)
    if r.via:
        parts.append(f"via {r.via}")
    if r.dev:
        parts.append(f"dev {r.dev}")
    if r.table != MAIN_TABLE_ID:
        parts.append(f"table {r.table}")
    if r.scope != "global":
        parts.append(f"scope {r.scope}")
    if r.src:
        parts.append(f"src {r.src}")
    if r.metric:
        parts.append(f"metric {r.metric}")
    if r.onlink:
        parts.append("onlink")
    return " ".join(parts)


def rule_line(r: Rule) -> str:
    parts = [f"rule {r.priority}"]
    parts.append(f"from {r.src}" if r.src else "from all")
    if r.dst:
        parts.append(f"to {r.dst}")
    if r.iif:
        parts.append(f"iif {r.iif}")
    if r.fwmark is not None:
        parts.append(f"fwmark {r.fwmark:#x}" + (f"/{r.fwmask:#x}" if r.fwmask is not None else ""))
    parts.append(f"lookup {table_name(r.table)}" if r.action == "lookup" and r.table is not None else r.action)
    return " ".join(parts)


def neighbour_line(n: Neighbour) -> str:
    return f"neigh {n.ip} lladdr {n.mac} dev {n.dev} permanent"


def nft_lines(t: NftTable) -> list[str]:
    out = [f"nft table {t.family} {t.name}"]
    for c in sorted(t.chains, key=lambda c: c.name):
        out.append(f"  chain {c.name} {{ type {c.type} hook {c.hook} priority {c.priority}; policy {c.policy}; }}"
                   if c.hook else f"  chain {c.name} {{ }}")
        out.extend(f"    {r}" for r in c.rules)
    for m in sorted(t.maps, key=lambda m: m.name):
        typ = f"{m.key_type} : {m.data_type}" if m.data_type else m.key_type
        extra = (f" size {m.size};" if m.size is not None else "") + (" flags dynamic;" if m.dynamic else "")
        out.append(f"  {'map' if m.data_type else 'set'} {m.name} {{ type {typ};{extra} }}")
        for k, v in sorted(m.elements, key=lambda e: (_addr_key(e[0]), e[1] or "")):
            out.append(f"    element {k} : {v}" if v is not None else f"    element {k}")
    return out


def _addr_key(s: str):
    try:
        return (0, prefix_sort_key(s))
    except ValueError:
        return (1, s)


def process_lines(p: Process) -> list[str]:
    head = f"process {p.role} digest {p.digest or '?'}" + (f" pid {p.pid}" if p.pid else "") + ": " + " ".join(p.argv)
    return [head] + [f"  file {path} ({len(text.splitlines())} lines)" for path, text in p.files]


def namespace_lines(ns: Namespace) -> list[str]:
    out = [f"netns {ns.name}" + ("" if ns.managed else " (not owned: dvrnet changes only the objects listed)")]
    out += [f"  {link_line(l)}" for _, l in sorted(ns.links.items())]
    out += [f"  {ovs_port_line(p)}" for _, p in sorted(ns.ovs_ports.items())]
    out += [f"  {address_line(a)}" for a in sorted(ns.addresses, key=lambda a: (a.dev, _addr_key(a.cidr.split('/')[0])))]
    out += [f"  {route_line(r)}" for r in sorted(ns.routes, key=Route.sort_key)]
    out += [f"  {rule_line(r)}" for r in sorted(ns.rules, key=Rule.sort_key)]
    out += [f"  {neighbour_line(n)}" for n in sorted(ns.neighbours, key=lambda n: (n.dev, _addr_key(n.ip)))]
    out += [f"  sysctl {k} = {v}" for k, v in sorted(ns.sysctls.items())]
    for _, t in sorted(ns.nft.items()):
        out += [f"  {line}" for line in nft_lines(t)]
    for _, p in sorted(ns.processes.items()):
        out += [f"  {line}" for line in process_lines(p)]
    return out


def render(state: HostState, header: bool = True) -> str:
    lines = [f"# dvrnet state of host {state.host}"] if header else []
    for _, ns in sorted(state.namespaces.items()):
        lines += namespace_lines(ns)
    for name, p in state.orphans:
        lines += [f"orphan in {name}: {line}" for line in process_lines(p)]
    return "\n".join(lines) + "\n"
