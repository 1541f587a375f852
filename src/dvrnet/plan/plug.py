"""Plugging a router port into a node bridge: a veth whose namespace end carries the port's name,
MAC and MTU, and whose `dv-` end sits in the bridge namespace, enslaved to the network's bridge."""
from __future__ import annotations

from ..model import Port
from . import names
from .builder import NsBuilder
from .config import PlanConfig
from .state import Link


def plug(ns: NsBuilder, bridges: NsBuilder, dev: str, port: Port, bridge: str, mtu: int, cfg: PlanConfig) -> None:
    outer = names.bridge_side_dev(port.id)
    ns.link(Link(name=dev, kind=cfg.port_kind, peer_netns=bridges.name, peer=outer,
                 mac=port.mac_address or None, mtu=mtu))
    bridges.link(Link(name=outer, kind=cfg.port_kind, peer_netns=ns.name, peer=dev, mtu=mtu, master=bridge))
