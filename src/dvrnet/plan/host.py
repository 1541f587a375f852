"""plan_host: the model + one host -> the exact kernel state of every namespace on that host.

Pure and deterministic: the same (cloud, host, config, hints) gives an equal `HostState`, and
`render()` of it is byte-identical. `hints` are link-local slots read back from the kernel
(`linklocal.hints_from_state`); without them slots are derived from router ids.

What is planned:
- one qrouter- per distributed router on the host (`placement.routers_on_host`);
- one fip- per external network of those routers, when the host's agent-gateway port for it
  exists (the server creates it; until then those routers have no fip- link);
- one snat- per router whose SNAT is scheduled here (dvr_snat hosts);
- the bridge namespace (not owned) with the `dv-` end of every plugged port, and the L2 guard
  of the distributed gateway (`l2.bridge_guard`) when the host has `qr-` ports on Linux bridges.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..model import Cloud
from ..model.placement import routers_on_host, snat_routers_on_host
from .builder import NsBuilder
from .config import DEFAULT_CONFIG, PlanConfig
from .fip import fip_namespace
from .l2 import bridge_guard
from .linklocal import assign_slots
from .qrouter import qrouter_namespace
from .snat import snat_namespace
from .state import HostState


def plan_host(cloud: Cloud, host: str, cfg: PlanConfig = DEFAULT_CONFIG,
              hints: Mapping[str, int] | None = None) -> HostState:
    if host not in cloud.hosts:
        return HostState(host, {})
    bridges = NsBuilder(cfg.bridge_netns, managed=False, host=host)
    out: list[NsBuilder] = []
    routers = routers_on_host(cloud, host)

    by_net: dict[str, list] = {}
    for r in routers:
        if r.gateway is not None:
            by_net.setdefault(r.gateway.network_id, []).append(r)
    slots: dict[str, int] = {}
    for net_id in sorted(by_net):
        fg = cloud.agent_gateway_port(host, net_id)
        if fg is None:
            continue
        rs = by_net[net_id]
        net_slots = assign_slots([r.id for r in rs], {r.id: hints[r.id] for r in rs if hints and r.id in hints})
        slots.update(net_slots)
        out.append(fip_namespace(cloud, host, cloud.network(net_id), fg, rs, net_slots, bridges, cfg))

    for r in routers:
        out.append(qrouter_namespace(cloud, host, r, slots.get(r.id), bridges, cfg))
    for r in snat_routers_on_host(cloud, host):
        ns = snat_namespace(cloud, r, bridges, cfg)
        if ns is not None:
            out.append(ns)

    namespaces = {b.name: b.freeze() for b in out}
    guard = bridge_guard(namespaces.values(), host, cfg.port_kind, cfg.dvr_mac, cfg.uplinks)
    if guard is not None:
        bridges.table(guard)
    if bridges.links or bridges.used or bridges.nft:
        namespaces[bridges.name] = bridges.freeze()
    return HostState(host, dict(sorted(namespaces.items())))
