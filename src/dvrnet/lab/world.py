"""The lab's physical world: what a data centre gives a DVR cloud, built from namespaces on one machine.

Namespaces (every one starts with the lab prefix L, e.g. `dvl-`; node N's prefix is `L<short>-`):
- `Lext`   the external segment: bridge `br-seg`; ports `gw-<subnet>`, `n-<short>`, `probe`, `sink`.
- `Lgw-<subnet>` one upstream gateway per external subnet with a gateway: `seg0` (gateway address,
  plus `<service subnet> dev seg0`, because `fg-` ARPs with its service-subnet address and the gateway
  runs rp_filter=1), `inet0` (a /30 to the internet host), ip_forward=1; nft table `inet dvlab` with
  dynamic counter sets keyed (address . protocol): `in_src`/`in_dst` for packets entering from the
  segment, `out_src`/`out_dst` for packets leaving onto it.
- `Linet`  the internet host: its address on `lo`, one /30 per gateway, a route back to each external
  subnet via that subnet's own gateway with `src <address>`.
- `Lprobe`, `Lsink` hosts on the segment for the negative checks (addresses .253/.252 of each
  external subnet; keep them out of allocation pools); the sink counts what reaches it.
- `Lul`    the underlay: bridge `br-ul`; each node has `ul0` = 10.99.0.<n>/24 in its bridge namespace.
- `<P>node` node N's bridge namespace: `br-ex` (uplinked to `br-seg` by `uplink`), `ul0`, and per
  tenant network `brq<net[:11]>` with a VXLAN port `vx-<net[:11]>` (VNI per network, head-end
  replication to every other node). Every bridge has a MAC of its own (`bridge_mac`). The
  distributed gateway's L2 guard (ARP for the tenant gateway addresses never crosses a VXLAN port;
  frames leaving by VXLAN with a router-interface MAC get the node's own MAC) is the agent's
  `bridge dvrnet` table (plan/l2.py; the lab gives each agent `--dvr-mac` = the node MAC);
  `sync_bridge_rules` loads the same table in a world without agents.
- `L<vm>`  one per VM: `eth0` (veth; the node side `tap<port[:11]>` on the network's bridge), the
  port's MAC and fixed IP, default route via the subnet gateway, and a TCP responder.

Every step is idempotent (iproute2 `-force` batches ignoring "File exists"; nft tables replaced whole
in one transaction), so `build_world` can be re-run on a half-built lab. Nothing outside the lab's
namespaces is touched.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..plan.l2 import uplink_guard
from ..plan.names import local_mac, tenant_bridge
from ..reconcile.nft_text import table_script
from . import responder
from .info import GatewayInfo, LabInfo, NodeInfo
from .sh import Cmd, LabError, add_netns, bridge_batch, ip_batch, netns_exec, nft, parallel, run, sysctl

MARKER = ".dvrnet-lab"
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,11}-$")
NO_V6 = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
NO_BRNF = {"net.bridge.bridge-nf-call-iptables": 0, "net.bridge.bridge-nf-call-ip6tables": 0,
           "net.bridge.bridge-nf-call-arptables": 0}


@dataclass(frozen=True)
class NodeSpec:
    name: str
    short: str
    mode: str


@dataclass(frozen=True)
class ExternalSubnet:
    name: str
    cidr: str
    gateway: str | None


@dataclass(frozen=True)
class WorldSpec:
    prefix: str = "dvl-"
    state_dir: str = "/var/lib/dvrnet/lab"
    nodes: tuple[NodeSpec, ...] = (NodeSpec("compute1", "c1", "dvr"), NodeSpec("compute2", "c2", "dvr"),
                                   NodeSpec("network1", "n1", "dvr_snat"))
    external: tuple[ExternalSubnet, ...] = (ExternalSubnet("red", "203.0.113.0/24", "203.0.113.1"),
                                            ExternalSubnet("green", "198.51.100.0/24", "198.51.100.1"))
    service_subnet: str = "100.64.0.0/24"
    internet_address: str = "192.0.2.10"
    tcp_port: int = 5007
    underlay_cidr: str = "10.99.0.0/24"
    underlay_mtu: int = 1500
    probe_host: int = 253
    sink_host: int = 252
    port_kind: str = "veth"          # the agents' --port-kind; ovs/ovs-veth also run Open vSwitch (ovs_world.py)

    def __post_init__(self) -> None:
        if not PREFIX_RE.match(self.prefix):
            raise ValueError(f"lab prefix {self.prefix!r}: 2-12 lowercase letters/digits then '-', e.g. 'dvl-'")
        if self.port_kind not in ("veth", "macvlan", "ovs", "ovs-veth"):
            raise ValueError(f"port kind {self.port_kind!r}: one of veth, macvlan, ovs, ovs-veth")

    @property
    def ovs(self) -> bool:
        """The nodes run Open vSwitch (an OVS port kind)."""
        return self.port_kind in ("ovs", "ovs-veth")

    def ovs_instance(self, node: NodeSpec):
        from .ovs_world import instance
        return instance(self.state_dir, self.bridge_ns(node), node.short)

    # --- names ---------------------------------------------------------------------------------
    def ns(self, what: str) -> str:
        return f"{self.prefix}{what}"

    @property
    def segment_ns(self) -> str:
        return self.ns("ext")

    @property
    def underlay_ns(self) -> str:
        return self.ns("ul")

    @property
    def internet_ns(self) -> str:
        return self.ns("inet")

    @property
    def probe_ns(self) -> str:
        return self.ns("probe")

    @property
    def sink_ns(self) -> str:
        return self.ns("sink")

    def gateway_ns(self, sub: ExternalSubnet) -> str:
        return self.ns(f"gw-{sub.name}")

    def node_prefix(self, node: NodeSpec) -> str:
        return f"{self.prefix}{node.short}-"

    def bridge_ns(self, node: NodeSpec) -> str:
        return f"{self.node_prefix(node)}node"

    def node_index(self, node: NodeSpec) -> int:
        return self.nodes.index(node) + 1

    def underlay_ip(self, node: NodeSpec) -> str:
        return str(ipaddress.ip_network(self.underlay_cidr)[self.node_index(node)])

    def node_mac(self, node: NodeSpec) -> str:
        return f"fa:16:3f:00:00:{self.node_index(node):02x}"

    def bridge_mac(self, ns: str, bridge: str) -> str:
        """A bridge's own MAC, set when it is created: unique per namespace and name. (A bridge
        without one takes its lowest port's MAC, and ports of one router interface exist on every
        node: the nodes' bridges would then share it.)"""
        return local_mac(f"lab-bridge:{ns}:{bridge}")

    def node_by_name(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in the lab (nodes: {', '.join(n.name for n in self.nodes)})")

    @property
    def gateways(self) -> tuple[ExternalSubnet, ...]:
        return tuple(s for s in self.external if s.gateway)

    def host_addr(self, cidr: str, host: int) -> str:
        return str(ipaddress.ip_network(cidr)[host])

    @property
    def pid_dir(self) -> str:
        return os.path.join(self.state_dir, "pids")

    def metadata_socket(self, node: NodeSpec) -> str:
        """The stand-in metadata agent's socket for NODE (lab/metadata_agent.py)."""
        return os.path.join(self.state_dir, f"metadata-{node.short}.sock")

    def static_namespaces(self) -> list[str]:
        return ([self.segment_ns, self.underlay_ns, self.internet_ns, self.probe_ns, self.sink_ns]
                + [self.gateway_ns(g) for g in self.gateways] + [self.bridge_ns(n) for n in self.nodes])


# ----------------------------------------------------------------------------------------------
# nft texts (pure)

def gateway_counters_nft(seg_if: str = "seg0") -> str:
    sets = "".join(f"  set {s} {{ type ipv4_addr . inet_proto; size 65535; flags dynamic; counter; }}\n"
                   for s in ("in_src", "in_dst", "out_src", "out_dst"))
    return (
        "table inet dvlab {}\ndelete table inet dvlab\n"
        "table inet dvlab {\n" + sets +
        "  chain pre { type filter hook prerouting priority -300; policy accept;\n"
        f"    iifname \"{seg_if}\" update @in_src {{ ip saddr . meta l4proto }}\n"
        f"    iifname \"{seg_if}\" update @in_dst {{ ip daddr . meta l4proto }}\n"
        "  }\n"
        "  chain post { type filter hook postrouting priority 300; policy accept;\n"
        f"    oifname \"{seg_if}\" update @out_src {{ ip saddr . meta l4proto }}\n"
        f"    oifname \"{seg_if}\" update @out_dst {{ ip daddr . meta l4proto }}\n"
        "  }\n}\n")


def _set(items: Iterable[str], quote: bool = False) -> str:
    xs = sorted(set(items))
    return "{ " + ", ".join(f'"{x}"' if quote else x for x in xs) + " }"


def bridge_rules_nft(gateway_ips: Iterable[str], router_macs: Iterable[str], node_mac: str) -> str:
    """design-validation §C.2, as the product does it (plan/l2.py, the agent's `bridge dvrnet` table):
    ARP for the distributed gateway addresses never crosses an uplink (VXLAN) port, and frames leaving
    by one with a router-interface MAC get the node's own MAC. For a world without agents (the lab's
    own tests); with agents running, they own the table."""
    t = uplink_guard(sorted(set(gateway_ips)), sorted({m.lower() for m in router_macs}), node_mac)
    return table_script(t) if t is not None else "add table bridge dvrnet\ndelete table bridge dvrnet\n"


# ----------------------------------------------------------------------------------------------
# the static world

def _write_marker(spec: WorldSpec) -> None:
    os.makedirs(spec.pid_dir, exist_ok=True)
    with open(os.path.join(spec.state_dir, MARKER), "w") as f:
        f.write(spec.prefix + "\n")


def build_world(spec: WorldSpec) -> LabInfo:
    """External segment, gateways with counters, internet host, probe/sink, underlay, node bridge
    namespaces. Returns (and saves) the LabInfo without VMs and routers."""
    _write_marker(spec)
    add_netns(spec.static_namespaces())
    seg, ul, inet = spec.segment_ns, spec.underlay_ns, spec.internet_ns
    # 1. sysctls before any link exists (no IPv6 on lab links; bridged traffic skips ip hooks)
    cmds = [sysctl(n, NO_V6) for n in (inet, spec.probe_ns, spec.sink_ns)]
    cmds += [sysctl(n, {**NO_V6, **NO_BRNF}) for n in (seg, ul) + tuple(spec.bridge_ns(x) for x in spec.nodes)]
    cmds += [sysctl(spec.gateway_ns(g), {**NO_V6, "net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 1,
                                         "net.ipv4.conf.default.rp_filter": 1}) for g in spec.gateways]
    parallel(cmds)
    # 2. the namespaces that create links (each end of a veth is born in its namespace)
    seg_lines = [f"link add br-seg address {spec.bridge_mac(seg, 'br-seg')} type bridge", "link set br-seg up"]
    peers = [(f"gw-{g.name}", "seg0", spec.gateway_ns(g)) for g in spec.gateways]
    peers += [(f"n-{n.short}", "uplink", spec.bridge_ns(n)) for n in spec.nodes]
    peers += [("probe", "seg0", spec.probe_ns), ("sink", "seg0", spec.sink_ns)]
    for mine, theirs, ns in peers:
        seg_lines += [f"link add {mine} type veth peer name {theirs} netns {ns}", f"link set {mine} master br-seg up"]
    ul_lines = [f"link add br-ul address {spec.bridge_mac(ul, 'br-ul')} type bridge",
                f"link set br-ul mtu {spec.underlay_mtu} up"]
    for n in spec.nodes:
        ul_lines += [(f"link add n-{n.short} mtu {spec.underlay_mtu} type veth peer name ul0 mtu {spec.underlay_mtu} "
                     f"netns {spec.bridge_ns(n)}"), f"link set n-{n.short} master br-ul up"]
    inet_lines = ["link set lo up", f"addr add {spec.internet_address}/32 dev lo"]
    for i, g in enumerate(spec.gateways, start=1):
        inet_lines += [f"link add gw-{g.name} type veth peer name inet0 netns {spec.gateway_ns(g)}",
                       f"addr add 10.255.{i}.2/30 dev gw-{g.name}", f"link set gw-{g.name} up"]
    _batches([ip_batch(seg, seg_lines, force=True), ip_batch(ul, ul_lines, force=True),
              ip_batch(inet, inet_lines, force=True)])
    # 3. the other ends
    cmds = []
    for i, g in enumerate(spec.gateways, start=1):
        plen = ipaddress.ip_network(g.cidr).prefixlen
        cmds.append(ip_batch(spec.gateway_ns(g), [
            "link set lo up", f"addr add {g.gateway}/{plen} dev seg0", "link set seg0 up",
            f"addr add 10.255.{i}.1/30 dev inet0", "link set inet0 up",
            f"route replace {spec.service_subnet} dev seg0 scope link",
            f"route replace {spec.internet_address}/32 via 10.255.{i}.2 dev inet0"], force=True))
    for i, g in enumerate(spec.gateways, start=1):
        cmds.append(ip_batch(inet, [f"route replace {g.cidr} via 10.255.{i}.1 dev gw-{g.name} src {spec.internet_address}"],
                             force=True))
    for n in spec.nodes:
        cmds.append(ip_batch(spec.bridge_ns(n), [
            "link set lo up", f"link add br-ex address {spec.bridge_mac(spec.bridge_ns(n), 'br-ex')} type bridge",
            "link set br-ex up", "link set uplink master br-ex up",
            f"addr add {spec.underlay_ip(n)}/{ipaddress.ip_network(spec.underlay_cidr).prefixlen} dev ul0",
            "link set ul0 up"], force=True))
    for ns, host in ((spec.probe_ns, spec.probe_host), (spec.sink_ns, spec.sink_host)):
        lines = ["link set lo up", "link set seg0 up"]
        lines += [f"addr add {spec.host_addr(s.cidr, host)}/{ipaddress.ip_network(s.cidr).prefixlen} dev seg0"
                  for s in spec.external]
        cmds.append(ip_batch(ns, lines, force=True))
    _batches(cmds)
    # 4. counters
    parallel([nft(spec.gateway_ns(g), gateway_counters_nft()) for g in spec.gateways] + [nft(spec.sink_ns, gateway_counters_nft())])
    responder.start(spec.pid_dir, [inet], spec.tcp_port)
    info = world_info(spec)
    info.save()
    return info


def world_info(spec: WorldSpec) -> LabInfo:
    return LabInfo(
        prefix=spec.prefix, state_dir=spec.state_dir, segment_netns=spec.segment_ns,
        internet_netns=spec.internet_ns, internet_address=spec.internet_address, tcp_port=spec.tcp_port,
        probe_netns=spec.probe_ns, probe_addresses={s.cidr: spec.host_addr(s.cidr, spec.probe_host) for s in spec.external},
        sink_netns=spec.sink_ns, sink_addresses={s.cidr: spec.host_addr(s.cidr, spec.sink_host) for s in spec.external},
        service_subnet=spec.service_subnet, port_kind=spec.port_kind,
        nodes=[NodeInfo(name=n.name, short=n.short, mode=n.mode, prefix=spec.node_prefix(n),
                        bridge_netns=spec.bridge_ns(n), underlay_ip=spec.underlay_ip(n), node_mac=spec.node_mac(n),
                        ovs_db=spec.ovs_instance(n).db if spec.ovs else None)
               for n in spec.nodes],
        gateways=[GatewayInfo(name=g.name, subnet=g.cidr, address=g.gateway or "", netns=spec.gateway_ns(g))
                  for g in spec.gateways])


_BENIGN = ("File exists", "Address already assigned")


def _batches(cmds: list[Cmd]) -> None:
    """Run -force batches in parallel; 'File exists' is success (re-runs), anything else is an error."""
    for cmd, p in zip(cmds, parallel(cmds)):
        errs = [ln for ln in p.stderr.splitlines()
                if ln.strip() and not ln.startswith("Command failed") and not any(b in ln for b in _BENIGN)]
        if errs:
            raise LabError(f"[{cmd.ns}] {' '.join(cmd.argv)}: {'; '.join(errs)}")


# ----------------------------------------------------------------------------------------------
# tenant L2

@dataclass(frozen=True)
class TenantNet:
    id: str
    vni: int
    mtu: int = 1450

    @property
    def bridge(self) -> str:
        return tenant_bridge(self.id)

    @property
    def vxlan(self) -> str:
        return ("vx-" + self.id)[:14]


def add_tenant_networks(spec: WorldSpec, nets: Sequence[TenantNet]) -> None:
    """On every node: `brq<net>` + its VXLAN port with head-end replication to every other node."""
    if not nets:
        return
    if max(n.mtu for n in nets) + 50 > spec.underlay_mtu:
        raise LabError(f"tenant MTU {max(n.mtu for n in nets)} + 50 (VXLAN) exceeds the underlay MTU {spec.underlay_mtu}")
    links, fdbs = [], []
    for node in spec.nodes:
        lines = []
        for net in nets:
            mac = spec.bridge_mac(spec.bridge_ns(node), net.bridge)
            lines += [f"link add {net.bridge} address {mac} mtu {net.mtu} type bridge", f"link set {net.bridge} up",
                      (f"link add {net.vxlan} mtu {net.mtu} type vxlan id {net.vni} local {spec.underlay_ip(node)} "
                      f"dstport 4789 dev ul0"), f"link set {net.vxlan} master {net.bridge} up"]
        links.append(ip_batch(spec.bridge_ns(node), lines, force=True))
        fdbs.append(bridge_batch(spec.bridge_ns(node), [
            f"fdb append 00:00:00:00:00:00 dev {net.vxlan} dst {spec.underlay_ip(other)} self permanent"
            for net in nets for other in spec.nodes if other != node]))
    _batches(links)
    parallel(fdbs)   # -force: an existing entry is fine


def sync_bridge_rules(spec: WorldSpec, gateway_ips: Iterable[str], router_macs: Iterable[str],
                      nodes: Iterable[NodeSpec] | None = None) -> None:
    """(Re)load the distributed-gateway table on each node, for a world without agents: call it
    before any qr- stand-in exists. With agents, `lab up` leaves the table to them."""
    gateway_ips, router_macs = list(gateway_ips), list(router_macs)
    parallel([nft(spec.bridge_ns(n), bridge_rules_nft(gateway_ips, router_macs, spec.node_mac(n)))
              for n in (nodes or spec.nodes)])


# ----------------------------------------------------------------------------------------------
# VMs

@dataclass(frozen=True)
class VmSpec:
    name: str
    node: str
    network_id: str
    mac: str
    ip: str
    prefixlen: int
    gateway: str | None
    mtu: int = 1450
    port_id: str = ""

    @property
    def tap(self) -> str:
        return ("tap" + (self.port_id or self.name).replace("-", ""))[:14]


def vm_ns(spec: WorldSpec, vm: VmSpec) -> str:
    return spec.ns(vm.name)


def add_vms(spec: WorldSpec, vms: Sequence[VmSpec]) -> None:
    """One namespace per VM, eth0 plugged into its node's tenant bridge, a TCP responder in each."""
    if not vms:
        return
    add_netns(vm_ns(spec, v) for v in vms)
    parallel([sysctl(vm_ns(spec, v), NO_V6) for v in vms])
    _batches([ip_batch(vm_ns(spec, v), [
        (f"link add eth0 address {v.mac} mtu {v.mtu} type veth peer name {v.tap} mtu {v.mtu} "
        f"netns {spec.bridge_ns(spec.node_by_name(v.node))}")], force=True) for v in vms])
    per_node: dict[str, list[str]] = {}
    for v in vms:
        per_node.setdefault(spec.bridge_ns(spec.node_by_name(v.node)), []).append(
            f"link set {v.tap} master {tenant_bridge(v.network_id)} up")
    cmds = [ip_batch(ns, lines, force=True) for ns, lines in per_node.items()]
    for v in vms:
        lines = ["link set lo up", f"addr add {v.ip}/{v.prefixlen} dev eth0", "link set eth0 up"]
        if v.gateway:
            lines.append(f"route replace default via {v.gateway} dev eth0")
        cmds.append(ip_batch(vm_ns(spec, v), lines, force=True))
    _batches(cmds)
    responder.start(spec.pid_dir, [vm_ns(spec, v) for v in vms], spec.tcp_port)


def wait_l2(spec: WorldSpec, src: VmSpec, dst: VmSpec, timeout: float = 5.0) -> bool:
    """Ping until the first reply (or timeout): VXLAN/ARP warm-up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = run(netns_exec(vm_ns(spec, src), "ping", "-c", "1", "-W", "1", "-q", dst.ip))
        if p.returncode == 0:
            return True
    return False


# ----------------------------------------------------------------------------------------------
# growing the world while it runs (T5: a new external subnet; T6: a second external network)

def add_external_segment(spec: WorldSpec, name: str, node_bridge: str, uplink: str) -> str:
    """A second external segment: namespace `L<name>` with bridge `br-seg`, and on every node a
    bridge NODE_BRIDGE (e.g. `br-ex2`) uplinked to it by veth UPLINK (`n-<short>` on the segment
    side). Returns the segment's namespace. Idempotent."""
    seg = spec.ns(name)
    add_netns([seg])
    parallel([sysctl(seg, {**NO_V6, **NO_BRNF})])
    lines = [f"link add br-seg address {spec.bridge_mac(seg, 'br-seg')} type bridge", "link set br-seg up"]
    for n in spec.nodes:
        lines += [f"link add n-{n.short} type veth peer name {uplink} netns {spec.bridge_ns(n)}",
                  f"link set n-{n.short} master br-seg up"]
    _batches([ip_batch(seg, lines, force=True)])
    _batches([ip_batch(spec.bridge_ns(n), [_bridge_add(spec, spec.bridge_ns(n), node_bridge), f"link set {node_bridge} up",
                                           f"link set {uplink} master {node_bridge} up"], force=True)
              for n in spec.nodes])
    return seg


def _bridge_add(spec: WorldSpec, ns: str, bridge: str) -> str:
    return f"link add {bridge} address {spec.bridge_mac(ns, bridge)} type bridge"


def _next_inet_index(spec: WorldSpec) -> int:
    """The first i with 10.255.i.0/30 unused in the internet host (one /30 per gateway)."""
    p = run(Cmd(("ip", "-j", "-n", spec.internet_ns, "addr", "show"), None, spec.internet_ns))
    used = set()
    for link in json.loads(p.stdout or "[]"):
        for a in link.get("addr_info", []):
            m = re.match(r"^10\.255\.(\d+)\.", a.get("local", ""))
            if m:
                used.add(int(m.group(1)))
    return next(i for i in range(1, 255) if i not in used)


def add_gateway(spec: WorldSpec, sub: ExternalSubnet, segment_ns: str | None = None,
                service_subnets: Iterable[str] | None = None) -> GatewayInfo:
    """An upstream gateway for an external subnet added while the lab runs: namespace `Lgw-<name>`
    on SEGMENT_NS (default: the first external segment), the gateway address on `seg0`, on-link
    routes to SERVICE_SUBNETS (default: the lab's service subnet; `fg-` ARPs from there and the
    gateway runs rp_filter=1), a /30 to the internet host, which routes SUB back through it, and
    the same counters as every other gateway. Returns its GatewayInfo (the caller adds it to the
    LabInfo so checks count it). Name: at most 11 characters."""
    if not sub.gateway:
        raise LabError(f"subnet {sub.cidr} has no gateway address")
    if len(f"gw-{sub.name}") > 15:
        raise LabError(f"gateway name {sub.name!r} is too long for a link name")
    seg = segment_ns or spec.segment_ns
    gw_ns = spec.gateway_ns(sub)
    services = list(service_subnets) if service_subnets is not None else [spec.service_subnet]
    i = _next_inet_index(spec)
    add_netns([gw_ns])
    parallel([sysctl(gw_ns, {**NO_V6, "net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 1,
                             "net.ipv4.conf.default.rp_filter": 1})])
    _batches([ip_batch(seg, [f"link add gw-{sub.name} type veth peer name seg0 netns {gw_ns}",
                             f"link set gw-{sub.name} master br-seg up"], force=True),
              ip_batch(spec.internet_ns, [f"link add gw-{sub.name} type veth peer name inet0 netns {gw_ns}",
                                          f"addr add 10.255.{i}.2/30 dev gw-{sub.name}",
                                          f"link set gw-{sub.name} up"], force=True)])
    plen = ipaddress.ip_network(sub.cidr).prefixlen
    _batches([ip_batch(gw_ns, ["link set lo up", f"addr add {sub.gateway}/{plen} dev seg0", "link set seg0 up",
                               f"addr add 10.255.{i}.1/30 dev inet0", "link set inet0 up",
                               *(f"route replace {c} dev seg0 scope link" for c in services),
                               f"route replace {spec.internet_address}/32 via 10.255.{i}.2 dev inet0"], force=True),
              ip_batch(spec.internet_ns, [(f"route replace {sub.cidr} via 10.255.{i}.1 dev gw-{sub.name} "
                                          f"src {spec.internet_address}")], force=True)])
    parallel([nft(gw_ns, gateway_counters_nft())])
    return GatewayInfo(name=sub.name, subnet=sub.cidr, address=sub.gateway, netns=gw_ns)


__all__ = [
    "MARKER",
    "ExternalSubnet",
    "LabError",
    "NodeSpec",
    "TenantNet",
    "VmSpec",
    "WorldSpec",
    "add_external_segment",
    "add_gateway",
    "add_tenant_networks",
    "add_vms",
    "bridge_rules_nft",
    "build_world",
    "gateway_counters_nft",
    "sync_bridge_rules",
    "vm_ns",
    "wait_l2",
    "world_info",
]
