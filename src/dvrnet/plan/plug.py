"""Plugging a router port into a node bridge (PlanConfig.port_kind; docs/port-kinds.md):
- "veth" (default): a veth whose namespace end carries the port's name, MAC and MTU, and whose
  `dv-` end sits in the bridge namespace, enslaved to the network's bridge;
- "macvlan": a macvlan device (mode bridge) whose lower device is the network's bridge itself,
  created from the bridge namespace straight into the router's namespace with the port's name,
  MAC and MTU. Nothing of it lives in the bridge namespace (the kernel adds the port's MAC to the
  bridge as a local FDB entry, so frames for it are never flooded); the bridge namespace is still
  part of the desired state (with no links) so the reader resolves the lower device and leftover
  `dv-` ends of an earlier veth plug are removed.
`Link.peer_netns`/`Link.peer` name the veth's other end, or the macvlan's lower device.
The `dv-` end's MAC is derived from the host and the port (`NsBuilder.host`): a router interface
port is plugged on every node hosting its router, and a MAC shared between nodes on a bridge port
would be the "own address" of every node's bridge (and flap between switch ports upstream)."""
from __future__ import annotations

from ..model import Port
from . import names
from .builder import NsBuilder
from .config import PlanConfig
from .state import Link

PORT_KINDS = ("veth", "macvlan")


def plug(ns: NsBuilder, bridges: NsBuilder, dev: str, port: Port, bridge: str, mtu: int, cfg: PlanConfig) -> None:
    if cfg.port_kind == "macvlan":
        ns.link(Link(name=dev, kind="macvlan", peer_netns=bridges.name, peer=bridge,
                     mac=port.mac_address or None, mtu=mtu))
        bridges.used = True
        return
    if cfg.port_kind != "veth":
        raise ValueError(f"port kind {cfg.port_kind!r}: one of {', '.join(PORT_KINDS)}")
    outer = names.bridge_side_dev(port.id)
    ns.link(Link(name=dev, kind=cfg.port_kind, peer_netns=bridges.name, peer=outer,
                 mac=port.mac_address or None, mtu=mtu))
    bridges.link(Link(name=outer, kind=cfg.port_kind, peer_netns=ns.name, peer=dev,
                      mac=names.local_mac(f"dv:{bridges.host}:{port.id}"), mtu=mtu, master=bridge))
