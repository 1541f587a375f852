"""Model values <-> table rows. Pure; no connections here.

`Meta` is the Neutron bookkeeping the model does not carry (description, timestamps, per-resource
revision_number). A floating IP's description is a model field and is stored in the same column.
Port fixed IPs and floating IP addresses are rows of `ip_allocations` (`position` keeps the order
of a port's fixed IPs, so a loaded Port equals the Port that was written).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ..model import (
    AllocationPool,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    Network,
    Port,
    Router,
    Subnet,
)
from . import tables as t

KINDS = ("networks", "subnets", "routers", "ports", "floatingips")
TABLES = {"networks": t.networks, "subnets": t.subnets, "routers": t.routers, "ports": t.ports,
          "floatingips": t.floatingips}


@dataclass(frozen=True)
class Meta:
    created_at: str
    updated_at: str
    revision_number: int = 1
    description: str = ""


def _ips(fixed: tuple[FixedIP, ...]) -> str:
    return json.dumps([{"subnet_id": f.subnet_id, "ip_address": str(f.ip_address)} for f in fixed])


def _ips_from(text: str | None) -> tuple[FixedIP, ...]:
    return tuple(FixedIP(d["subnet_id"], IPv4Address(d["ip_address"])) for d in json.loads(text or "[]"))


def to_row(kind: str, obj: Any, meta: Meta) -> dict[str, Any]:
    row: dict[str, Any] = {"created_at": meta.created_at, "updated_at": meta.updated_at,
                           "revision_number": meta.revision_number, "description": meta.description}
    if kind == "networks":
        row.update(id=obj.id, name=obj.name, project_id=obj.project_id, external=obj.external,
                   mtu=obj.mtu, shared=obj.shared, tags=json.dumps(list(obj.tags)))
    elif kind == "subnets":
        row.update(id=obj.id, network_id=obj.network_id, cidr=str(obj.cidr),
                   gateway_ip=None if obj.gateway_ip is None else str(obj.gateway_ip),
                   allocation_pools=json.dumps([[str(p.start), str(p.end)] for p in obj.allocation_pools]),
                   service_types=json.dumps(list(obj.service_types)), name=obj.name,
                   project_id=obj.project_id, enable_dhcp=obj.enable_dhcp,
                   dns_nameservers=json.dumps(list(obj.dns_nameservers)))
    elif kind == "routers":
        gw = obj.gateway
        row.update(id=obj.id, name=obj.name, distributed=obj.distributed, project_id=obj.project_id,
                   admin_state_up=obj.admin_state_up,
                   gw_network_id=gw.network_id if gw else None,
                   gw_external_fixed_ips=_ips(gw.external_fixed_ips) if gw else None,
                   gw_enable_snat=gw.enable_snat if gw else None)
    elif kind == "ports":
        row.update(id=obj.id, network_id=obj.network_id, device_owner=obj.device_owner,
                   device_id=obj.device_id, host=obj.host, mac_address=obj.mac_address, name=obj.name,
                   project_id=obj.project_id, admin_state_up=obj.admin_state_up,
                   connection_limit=obj.connection_limit)
    elif kind == "floatingips":
        row.update(id=obj.id, floating_network_id=obj.floating_network_id,
                   floating_ip_address=str(obj.floating_ip_address), subnet_id=obj.subnet_id,
                   port_id=obj.port_id,
                   fixed_ip_address=None if obj.fixed_ip_address is None else str(obj.fixed_ip_address),
                   router_id=obj.router_id, project_id=obj.project_id, description=obj.description)
    else:
        raise ValueError(f"unknown kind {kind}")
    return row


def allocation_rows(kind: str, obj: Any) -> list[dict[str, Any]]:
    if kind == "ports":
        return [{"network_id": obj.network_id, "ip_address": str(f.ip_address), "subnet_id": f.subnet_id,
                 "port_id": obj.id, "floatingip_id": None, "position": i}
                for i, f in enumerate(obj.fixed_ips)]
    if kind == "floatingips":
        return [{"network_id": obj.floating_network_id, "ip_address": str(obj.floating_ip_address),
                 "subnet_id": obj.subnet_id, "port_id": None, "floatingip_id": obj.id, "position": 0}]
    return []


def meta_from_row(row: Any) -> Meta:
    return Meta(row.created_at, row.updated_at, row.revision_number, row.description)


def from_row(kind: str, row: Any, fixed_ips: tuple[FixedIP, ...] = ()) -> Any:
    if kind == "networks":
        return Network(id=row.id, name=row.name, external=row.external, mtu=row.mtu,
                       project_id=row.project_id, shared=row.shared, tags=tuple(json.loads(row.tags or "[]")))
    if kind == "subnets":
        return Subnet(id=row.id, network_id=row.network_id, cidr=IPv4Network(row.cidr),
                      gateway_ip=None if row.gateway_ip is None else IPv4Address(row.gateway_ip),
                      allocation_pools=tuple(AllocationPool(IPv4Address(a), IPv4Address(b))
                                             for a, b in json.loads(row.allocation_pools)),
                      service_types=tuple(json.loads(row.service_types)), name=row.name,
                      project_id=row.project_id, enable_dhcp=row.enable_dhcp,
                      dns_nameservers=tuple(json.loads(row.dns_nameservers)))
    if kind == "routers":
        gw = None
        if row.gw_network_id is not None:
            gw = ExternalGateway(row.gw_network_id, _ips_from(row.gw_external_fixed_ips),
                                 bool(row.gw_enable_snat))
        return Router(id=row.id, name=row.name, distributed=row.distributed, gateway=gw,
                      project_id=row.project_id, admin_state_up=row.admin_state_up)
    if kind == "ports":
        return Port(id=row.id, network_id=row.network_id, device_owner=row.device_owner,
                    device_id=row.device_id, host=row.host, fixed_ips=fixed_ips,
                    mac_address=row.mac_address, name=row.name, project_id=row.project_id,
                    admin_state_up=row.admin_state_up, connection_limit=row.connection_limit)
    if kind == "floatingips":
        return FloatingIP(id=row.id, floating_network_id=row.floating_network_id,
                          floating_ip_address=IPv4Address(row.floating_ip_address),
                          subnet_id=row.subnet_id, port_id=row.port_id,
                          fixed_ip_address=None if row.fixed_ip_address is None else IPv4Address(row.fixed_ip_address),
                          router_id=row.router_id, project_id=row.project_id, description=row.description)
    raise ValueError(f"unknown kind {kind}")


def host_from_row(row: Any) -> Host:
    return Host(name=row.name, mode=row.mode)
