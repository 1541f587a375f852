"""Plugging a router port into a node bridge (PlanConfig.port_kind; docs/port-kinds.md):
- "veth" (default): a veth whose namespace end carries the port's name, MAC and MTU, and whose
  `dv-` end sits in the bridge namespace, enslaved to the network's bridge;
- "macvlan": a macvlan device (mode bridge) whose lower device is the network's bridge itself,
  created from the bridge namespace straight into the router's namespace with the port's name,
  MAC and MTU. Nothing of it lives in the bridge namespace (the kernel adds the port's MAC to the
  bridge as a local FDB entry, so frames for it are never flooded); the bridge namespace is still
  part of the desired state (with no links) so the reader resolves the lower device and leftover
  `dv-` ends of an earlier veth plug are removed;
- "ovs": an Open vSwitch internal port of the integration bridge (`br-int`) named like the
  device, created by the ovs-vswitchd of the bridge namespace and moved into the router's
  namespace with the port's MAC and MTU (Neutron's OVSInterfaceDriver);
- "ovs-veth": a veth as for "veth" whose `dv-` end is a port of the integration bridge instead
  of a Linux bridge's slave (Neutron's `ovs_use_veth = True`); the namespace end transmits with
  checksum offload off (`tx_csum=False`): the userspace datapath reads the veth with a packet
  socket and forwards what it reads as it is, so a partial checksum would leave unfinished.
With the OVS kinds every port plugs into `integration_bridge` whatever its network (the L2 agent
maps networks to local VLANs there and reaches them through its own patch ports), and its
`OvsPort` — `external_ids` as Neutron's driver sets them (iface-id = the port id, iface-status =
active, attached-mac = the port's MAC) plus dvrnet's owner marker, `mtu_request` = the MTU — is
part of the bridge namespace's desired state.
`Link.peer_netns`/`Link.peer` name the veth's other end, the macvlan's lower device, or for "ovs"
the bridge namespace and the OVS bridge.
The `dv-` end's MAC is derived from the host and the port (`NsBuilder.host`): a router interface
port is plugged on every node hosting its router, and a MAC shared between nodes on a bridge port
would be the "own address" of every node's bridge (and flap between switch ports upstream)."""
from __future__ import annotations

from ..model import Port
from . import names
from .builder import NsBuilder
from .config import PlanConfig
from .state import Link, OvsPort

PORT_KINDS = ("veth", "macvlan", "ovs", "ovs-veth")
OVS_KINDS = ("ovs", "ovs-veth")


def neutron_external_ids(port: Port, cfg: PlanConfig) -> tuple[tuple[str, str], ...]:
    """What Neutron's OVS interface driver sets on a router port's interface, plus dvrnet's marker."""
    ids = {"iface-id": port.id, "iface-status": "active", names.OVS_OWNER_KEY: names.ovs_owner(cfg.netns_prefix)}
    if port.mac_address:
        ids["attached-mac"] = port.mac_address
    return tuple(sorted(ids.items()))


def plug(ns: NsBuilder, bridges: NsBuilder, dev: str, port: Port, bridge: str, mtu: int, cfg: PlanConfig) -> None:
    mac = port.mac_address or None
    if cfg.port_kind == "macvlan":
        ns.link(Link(name=dev, kind="macvlan", peer_netns=bridges.name, peer=bridge, mac=mac, mtu=mtu))
        bridges.used = True
        return
    if cfg.port_kind == "ovs":
        br = cfg.integration_bridge
        ns.link(Link(name=dev, kind="ovs", peer_netns=bridges.name, peer=br, mac=mac, mtu=mtu))
        bridges.ovs_port(OvsPort(dev, br, "internal", neutron_external_ids(port, cfg), mtu))
        bridges.used = True
        return
    if cfg.port_kind not in ("veth", "ovs-veth"):
        raise ValueError(f"port kind {cfg.port_kind!r}: one of {', '.join(PORT_KINDS)}")
    outer = names.bridge_side_dev(port.id)
    on_ovs = cfg.port_kind == "ovs-veth"
    ns.link(Link(name=dev, kind="veth", peer_netns=bridges.name, peer=outer, mac=mac, mtu=mtu,
                 tx_csum=False if on_ovs else None))
    bridges.link(Link(name=outer, kind="veth", peer_netns=ns.name, peer=dev,
                      mac=names.local_mac(f"dv:{bridges.host}:{port.id}"), mtu=mtu,
                      master=None if on_ovs else bridge, ovs=cfg.integration_bridge if on_ovs else None))
    if on_ovs:
        bridges.ovs_port(OvsPort(outer, cfg.integration_bridge, "", neutron_external_ids(port, cfg), mtu))
