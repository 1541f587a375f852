"""Model values -> Neutron-shaped JSON objects (what GET returns), full field sets.

Every object carries id, project_id and tenant_id (equal), status, description, tags (a network's
own; [] for the others), created_at,
updated_at and revision_number (from the store's bookkeeping). A FIP's and a router gateway port's
status come from the agents' reports (status.py). Subnets always carry
allocation_pools, dns_nameservers and host_routes as lists. A router's
`external_gateway_info.external_fixed_ips` shows the addresses its gateway port holds (what IPAM
gave it), falling back to the requested ones before the port exists.
"""
from __future__ import annotations

import uuid
from typing import Any

from ..model import Cloud, FloatingIP, Host, Network, Port, Router, Subnet
from ..model.resources import FixedIP
from ..store import State
from .status import fip_status, port_status

AGENT_NAMESPACE = uuid.UUID("6f1b5a0e-8d7c-4c47-9a51-3d1e0f5a7c21")


def _std(state: State, kind: str, id_: str, project_id: str) -> dict[str, Any]:
    m = state.meta_of(kind, id_)
    return {"project_id": project_id, "tenant_id": project_id, "description": m.description,
            "tags": [], "created_at": m.created_at, "updated_at": m.updated_at,
            "revision_number": m.revision_number}


def _ips(ips: tuple[FixedIP, ...]) -> list[dict[str, str]]:
    return [{"subnet_id": f.subnet_id, "ip_address": str(f.ip_address)} for f in ips]


def network(state: State, n: Network) -> dict[str, Any]:
    return {"id": n.id, "name": n.name, "status": "ACTIVE", "admin_state_up": True,
            "subnets": [s.id for s in state.cloud.subnets_of(n.id)], "shared": n.shared,
            "router:external": n.external, "mtu": n.mtu, "port_security_enabled": False,
            "availability_zones": [], "availability_zone_hints": [],
            "ipv4_address_scope": None, "ipv6_address_scope": None, "l2_adjacency": True,
            **_std(state, "networks", n.id, n.project_id), "tags": list(n.tags)}


def subnet(state: State, s: Subnet) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "network_id": s.network_id, "cidr": str(s.cidr),
            "ip_version": 4, "gateway_ip": None if s.gateway_ip is None else str(s.gateway_ip),
            "enable_dhcp": s.enable_dhcp,
            "allocation_pools": [{"start": str(p.start), "end": str(p.end)} for p in s.allocation_pools],
            "dns_nameservers": list(s.dns_nameservers), "host_routes": [],
            "service_types": list(s.service_types), "ipv6_ra_mode": None, "ipv6_address_mode": None,
            "subnetpool_id": None, "segment_id": None,
            **_std(state, "subnets", s.id, s.project_id)}


def router(state: State, r: Router) -> dict[str, Any]:
    gw_info = None
    if r.gateway is not None:
        port = state.cloud.gateway_port(r.id)
        ips = port.fixed_ips if port is not None else r.gateway.external_fixed_ips
        gw_info = {"network_id": r.gateway.network_id, "enable_snat": r.gateway.enable_snat,
                   "external_fixed_ips": _ips(ips)}
    return {"id": r.id, "name": r.name, "status": "ACTIVE", "admin_state_up": r.admin_state_up,
            "external_gateway_info": gw_info, "routes": [], "distributed": r.distributed, "ha": False,
            "availability_zones": [], "availability_zone_hints": [], "flavor_id": None,
            **_std(state, "routers", r.id, r.project_id)}


def port(state: State, p: Port) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
            "fixed_ips": _ips(p.fixed_ips), "device_id": p.device_id, "device_owner": p.device_owner,
            "binding:host_id": p.host, "binding:vnic_type": "normal",
            "binding:vif_type": "ovs" if p.host else "unbound", "binding:vif_details": {},
            "binding:profile": {}, "admin_state_up": p.admin_state_up,
            "status": port_status(state.cloud, state.statuses, p), "security_groups": [],
            "port_security_enabled": False, "allowed_address_pairs": [], "extra_dhcp_opts": [],
            "connection_limit": p.connection_limit,
            **_std(state, "ports", p.id, p.project_id)}


def floatingip(state: State, f: FloatingIP) -> dict[str, Any]:
    out = {"id": f.id, "floating_ip_address": str(f.floating_ip_address),
           "floating_network_id": f.floating_network_id, "subnet_id": f.subnet_id,
           "port_id": f.port_id,
           "fixed_ip_address": None if f.fixed_ip_address is None else str(f.fixed_ip_address),
           "router_id": f.router_id, "status": fip_status(state.cloud, state.statuses, f),
           "port_details": None, "qos_policy_id": None,
           **_std(state, "floatingips", f.id, f.project_id)}
    out["description"] = f.description
    return out


def agent_id(host: str) -> str:
    return str(uuid.uuid5(AGENT_NAMESPACE, host))


def agent(state: State, h: Host, heartbeat: str | None, alive: bool) -> dict[str, Any]:
    created = state.host_created.get(h.name, "")
    return {"id": agent_id(h.name), "agent_type": "L3 agent", "binary": "dvrnet-agent",
            "host": h.name, "topic": "l3_agent", "alive": alive, "admin_state_up": True,
            "availability_zone": "nova", "configurations": {"agent_mode": h.mode.value},
            "created_at": created, "started_at": created, "heartbeat_timestamp": heartbeat,
            "description": None, "resources_synced": None}


def host(state: State, h: Host, heartbeat: str | None, alive: bool) -> dict[str, Any]:
    return {"name": h.name, "mode": h.mode.value, "agent_id": agent_id(h.name),
            "created_at": state.host_created.get(h.name, ""), "heartbeat_at": heartbeat, "alive": alive}


RENDER = {"networks": network, "subnets": subnet, "routers": router, "ports": port,
          "floatingips": floatingip}


def render(state: State, kind: str, obj: Any) -> dict[str, Any]:
    return RENDER[kind](state, obj)


def items(cloud: Cloud, kind: str) -> list[Any]:
    return list(getattr(cloud, kind).values())
