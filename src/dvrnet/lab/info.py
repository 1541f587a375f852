"""What the lab is, as data: every name and address a probe needs (issue 5, item 3), saved as JSON
in the lab's state directory so `lab check`, `lab info --json` and outside tools read the same thing
(`info_text`: the same for people, `lab info`).

Fields:
- LabInfo: prefix (every namespace/link/file the lab creates is named with it), state_dir,
  server_url (None until the server runs), segment_netns (the external segment's bridge namespace),
  internet_netns / internet_address, tcp_port (the TCP responder's port in every VM and the
  internet host), probe_netns / probe_addresses (a host on the segment used by the negative checks,
  one address per external subnet) and sink_netns / sink_addresses (a host on the segment that
  counts what reaches it), nodes, gateways, vms, routers.
- NodeInfo: name, short, mode, prefix (`<lab prefix><short>-`), bridge_netns (`<prefix>node`),
  underlay_ip, node_mac (source MAC of routed frames leaving the node by VXLAN), agent_pid,
  private_address (routed mode: the fg- address, next hop of the node's FIPs on the ToR), ovs_db
  (the node's Open vSwitch database when the lab runs OVS, else None), metadata_socket (the
  stand-in metadata agent's socket for this node, lab/metadata_agent.py: the agent's
  `--metadata-socket`).
- tor (routed mode, `lab up --routed`): {"netns", "address", "asn"} of the top-of-rack router
  (lab/tor.py); None in L2 mode.
- port_kind: the agents' router-port kind (veth, macvlan, ovs, ovs-veth).
- GatewayInfo: name, subnet (CIDR), address, netns.
- VmInfo: name, node, netns, network, network_id, port_id, mac, fixed_ip, prefixlen, gateway_ip,
  fip (or None), fip_subnet (external subnet name, or None), router (name, or None).
- RouterInfo: name, id, snat_node, snat_ips (the router gateway port's fixed IPs), networks.
"""
from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, fields

INFO_FILE = "lab.json"


@dataclass
class NodeInfo:
    name: str
    short: str
    mode: str
    prefix: str
    bridge_netns: str
    underlay_ip: str
    node_mac: str
    agent_pid: int | None = None
    private_address: str | None = None   # routed mode: the node's fg- address (BGP next hop of its FIPs)
    ovs_db: str | None = None
    metadata_socket: str | None = None   # the stand-in metadata agent's socket for this node

    def metadata(self):
        """The agent's metadata settings in the lab (lab/up.py `_agent_args`)."""
        from ..plan.config import MetadataConfig
        return MetadataConfig(socket=self.metadata_socket)


@dataclass
class GatewayInfo:
    name: str
    subnet: str
    address: str
    netns: str


@dataclass
class VmInfo:
    name: str
    node: str
    netns: str
    network: str
    network_id: str
    port_id: str
    mac: str
    fixed_ip: str
    prefixlen: int
    gateway_ip: str
    fip: str | None = None
    fip_subnet: str | None = None
    router: str | None = None


@dataclass
class RouterInfo:
    name: str
    id: str
    snat_node: str | None
    snat_ips: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


@dataclass
class LabInfo:
    prefix: str
    state_dir: str
    segment_netns: str
    internet_netns: str
    internet_address: str
    tcp_port: int
    probe_netns: str
    probe_addresses: dict[str, str]      # external subnet CIDR -> probe address in it
    sink_netns: str
    sink_addresses: dict[str, str]       # external subnet CIDR -> sink address in it
    service_subnet: str
    nodes: list[NodeInfo] = field(default_factory=list)
    gateways: list[GatewayInfo] = field(default_factory=list)
    vms: list[VmInfo] = field(default_factory=list)
    routers: list[RouterInfo] = field(default_factory=list)
    server_url: str | None = None
    tor: dict | None = None              # routed mode: {"netns", "address", "asn"} of the ToR
    port_kind: str = "veth"

    # --- lookups -------------------------------------------------------------------------------
    def node(self, name: str) -> NodeInfo:
        return next(n for n in self.nodes if n.name == name)

    def vm(self, name: str) -> VmInfo:
        return next(v for v in self.vms if v.name == name)

    def router(self, name: str | None) -> RouterInfo | None:
        return next((r for r in self.routers if r.name == name), None)

    def gateway_for(self, address: str | None) -> GatewayInfo | None:
        """The upstream gateway of the external subnet holding ADDRESS, if any."""
        if not address:
            return None
        a = ipaddress.ip_address(address)
        return next((g for g in self.gateways if a in ipaddress.ip_network(g.subnet)), None)

    # --- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> LabInfo:
        kinds = {"nodes": NodeInfo, "gateways": GatewayInfo, "vms": VmInfo, "routers": RouterInfo}
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k, typ in kinds.items():
            tnames = {f.name for f in fields(typ)}
            kw[k] = [typ(**{a: b for a, b in x.items() if a in tnames}) for x in d.get(k, [])]
        return cls(**kw)

    def save(self) -> str:
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, INFO_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.to_json() + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, state_dir: str) -> LabInfo:
        with open(os.path.join(state_dir, INFO_FILE)) as f:
            return cls.from_dict(json.load(f))


def info_text(info: LabInfo) -> str:
    """`lab info` for people: one line per server, host, gateway, node, router and VM."""
    def table(rows: list[list[str]]) -> list[str]:
        n = max((len(r) for r in rows), default=0)
        widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(n)]
        return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out = [f"lab {info.prefix} (state in {info.state_dir})",
           f"server: {info.server_url or 'not running'}",
           f"internet host: {info.internet_address} in {info.internet_netns} (TCP responder on port {info.tcp_port})",
           f"external segment: {info.segment_netns}; service subnet {info.service_subnet}",
           f"probe: {info.probe_netns} " + ", ".join(sorted(info.probe_addresses.values()))
           + f"; sink: {info.sink_netns} " + ", ".join(sorted(info.sink_addresses.values())),
           "gateways:"]
    if info.tor:
        out.insert(-1, f"top-of-rack router (routed mode): {info.tor.get('address')} AS {info.tor.get('asn')} "
                       f"in {info.tor.get('netns')}")
    out += table([[g.name, g.subnet, f"via {g.address}", g.netns] for g in info.gateways])
    out.append("nodes:")
    out += table([[n.name, n.mode, f"prefix {n.prefix}", f"bridges {n.bridge_netns}", f"underlay {n.underlay_ip}",
                   *([f"private {n.private_address}"] if n.private_address else []),
                   f"agent pid {n.agent_pid}" if n.agent_pid else "agent not running"] for n in info.nodes])
    out.append("routers:")
    out += table([[r.name, r.id, f"snat on {r.snat_node or '-'}", "as " + (", ".join(r.snat_ips) or "-"),
                   "networks " + (", ".join(r.networks) or "-")] for r in info.routers])
    out.append("vms:")
    out += table([[v.name, v.node, f"{v.fixed_ip}/{v.prefixlen} on {v.network}",
                   f"FIP {v.fip} ({v.fip_subnet})" if v.fip else "no FIP", f"router {v.router or '-'}", v.netns]
                  for v in info.vms])
    return "\n".join(out) + "\n"
