"""Requests -> Workspace operations, with the policy checks that need the current cloud.

Each function runs inside `Store.write` (so under the write lock, on the committed state) and
receives a `Txn`: the Workspace to apply the operation to, the cloud before it, and a place for
descriptions (bookkeeping the model does not hold). All Neutron semantics are the Workspace's;
this module only maps attribute names and enforces who may do what (`policy.py`).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ..model import AllocationPool, Cloud
from ..model.errors import NotFound
from ..ops import UNSET, IpRequest, Workspace
from . import policy
from .auth import Context
from .errors import BadInput, DeviceIDNotOwnedByTenant, HTTPBadRequest, PolicyNotAuthorized


@dataclass
class Txn:
    ws: Workspace
    cloud: Cloud
    descriptions: dict[tuple[str, str], str] = field(default_factory=dict)


def new_id() -> str:
    return str(uuid.uuid4())


# Admin-only attributes, as Neutron's policy checks them: on POST only when set to something other
# than their default; on PUT whenever they are in the body (an update may set the default).
_DEFAULTS = {"router:external": False, "shared": False, "service_types": [], "distributed": True,
             "binding:host_id": "", "connection_limit": None}


def check_admin_attrs(ctx: Context, spec, attrs: dict[str, Any], method: str) -> None:
    if ctx.is_admin:
        return
    for k, v in attrs.items():
        rule = spec.attrs[k].admin_rule
        if rule and (method == "PUT" or k not in _DEFAULTS or v != _DEFAULTS[k]):
            if method == "PUT":
                rule = rule.replace("create_", "update_", 1)
            raise PolicyNotAuthorized(f"rule:{rule}")


def _project(ctx: Context, attrs: dict[str, Any]) -> str:
    pid = attrs.get("project_id", attrs.get("tenant_id"))
    if pid is None:
        return ctx.project_id
    if not ctx.is_admin and pid != ctx.project_id:
        raise HTTPBadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated "
                             "project in request requires admin privileges")
    return pid


def _opt(attrs: dict[str, Any], key: str) -> Any:
    return attrs.get(key, UNSET)


def _describe(txn: Txn, kind: str, id_: str, attrs: dict[str, Any]) -> None:
    if "description" in attrs:
        txn.descriptions[(kind, id_)] = attrs["description"]


def _ip_requests(items: list[dict]) -> list[IpRequest]:
    return [IpRequest(subnet_id=d.get("subnet_id"), ip_address=d.get("ip_address")) for d in items]


def _pools(items: list[tuple]) -> list[AllocationPool]:
    return [AllocationPool(a, b) for a, b in items]


def _gateway(ctx: Context, txn: Txn, info: dict | None, field_name: str = "external_gateway_info") -> dict | None:
    if info is None:
        return None
    net = txn.cloud.networks.get(info["network_id"])
    if net is None or not policy.visible(ctx, txn.cloud, "networks", net):
        raise NotFound("Network", info["network_id"])
    if not net.external:
        raise BadInput(field_name, f"network {net.id} is not an external network")
    if "external_fixed_ips" in info and not ctx.is_admin:
        raise PolicyNotAuthorized("rule:create_router:external_gateway_info:external_fixed_ips")
    out: dict[str, Any] = {"network_id": net.id}
    if "external_fixed_ips" in info:
        out["external_fixed_ips"] = _ip_requests(info["external_fixed_ips"])
    if "enable_snat" in info:
        out["enable_snat"] = info["enable_snat"]
    return out


# ---- networks -------------------------------------------------------------------------
def create_network(ctx: Context, txn: Txn, a: dict[str, Any]) -> str:
    id_ = new_id()
    kw = {k2: a[k1] for k1, k2 in (("name", "name"), ("router:external", "external"), ("mtu", "mtu"),
                                   ("shared", "shared")) if k1 in a}
    txn.ws.create_network(project_id=_project(ctx, a), id=id_, **kw)
    _describe(txn, "networks", id_, a)
    return id_


def update_network(ctx: Context, txn: Txn, id_: str, a: dict[str, Any]) -> None:
    policy.get_owned(ctx, txn.cloud, "networks", id_, "update")
    if any(k in a for k in ("name", "router:external", "mtu")):
        txn.ws.update_network(id_, name=_opt(a, "name"), external=_opt(a, "router:external"), mtu=_opt(a, "mtu"))
    _describe(txn, "networks", id_, a)


def delete_network(ctx: Context, txn: Txn, id_: str) -> None:
    policy.get_owned(ctx, txn.cloud, "networks", id_, "delete")
    txn.ws.delete_network(id_)


# ---- subnets --------------------------------------------------------------------------
def create_subnet(ctx: Context, txn: Txn, a: dict[str, Any]) -> str:
    net = policy.get(ctx, txn.cloud, "networks", a["network_id"])
    if not ctx.is_admin and net.project_id != ctx.project_id:
        raise PolicyNotAuthorized("rule:create_subnet (only the network's owner or admin may add subnets)")
    id_ = new_id()
    kw: dict[str, Any] = {}
    if "gateway_ip" in a:
        kw["gateway_ip"] = a["gateway_ip"]
    if "allocation_pools" in a:
        kw["allocation_pools"] = _pools(a["allocation_pools"])
    for k in ("name", "enable_dhcp"):
        if k in a:
            kw[k] = a[k]
    if "service_types" in a:
        kw["service_types"] = tuple(a["service_types"])
    if "dns_nameservers" in a:
        kw["dns_nameservers"] = tuple(a["dns_nameservers"])
    txn.ws.create_subnet(net.id, a["cidr"], project_id=_project(ctx, a), id=id_, **kw)
    _describe(txn, "subnets", id_, a)
    return id_


def update_subnet(ctx: Context, txn: Txn, id_: str, a: dict[str, Any]) -> None:
    policy.get_owned(ctx, txn.cloud, "subnets", id_, "update")
    kw: dict[str, Any] = {}
    for k in ("name", "gateway_ip"):
        if k in a:
            kw[k] = a[k]
    if "allocation_pools" in a:
        kw["allocation_pools"] = _pools(a["allocation_pools"])
    if "dns_nameservers" in a:
        kw["dns_nameservers"] = tuple(a["dns_nameservers"])
    if "service_types" in a:
        kw["service_types"] = tuple(a["service_types"])
    if kw:
        txn.ws.update_subnet(id_, **kw)
    _describe(txn, "subnets", id_, a)


def delete_subnet(ctx: Context, txn: Txn, id_: str) -> None:
    policy.get_owned(ctx, txn.cloud, "subnets", id_, "delete")
    txn.ws.delete_subnet(id_)


# ---- routers --------------------------------------------------------------------------
def create_router(ctx: Context, txn: Txn, a: dict[str, Any]) -> str:
    id_ = new_id()
    kw: dict[str, Any] = {}
    if "name" in a:
        kw["name"] = a["name"]
    if "distributed" in a:
        kw["distributed"] = a["distributed"]
    if a.get("external_gateway_info") is not None:
        kw["external_gateway_info"] = _gateway(ctx, txn, a["external_gateway_info"])
    txn.ws.create_router(project_id=_project(ctx, a), id=id_, **kw)
    _describe(txn, "routers", id_, a)
    return id_


def update_router(ctx: Context, txn: Txn, id_: str, a: dict[str, Any]) -> None:
    policy.get_owned(ctx, txn.cloud, "routers", id_, "update")
    kw: dict[str, Any] = {}
    if "name" in a:
        kw["name"] = a["name"]
    if "external_gateway_info" in a:
        kw["external_gateway_info"] = _gateway(ctx, txn, a["external_gateway_info"])
    if kw:
        txn.ws.update_router(id_, **kw)
    _describe(txn, "routers", id_, a)


def delete_router(ctx: Context, txn: Txn, id_: str) -> None:
    policy.get_owned(ctx, txn.cloud, "routers", id_, "delete")
    txn.ws.delete_router(id_)


def router_interface(ctx: Context, txn: Txn, id_: str, body: Any, add: bool) -> dict[str, Any]:
    action = "add_router_interface" if add else "remove_router_interface"
    router = policy.get_owned(ctx, txn.cloud, "routers", id_, "update")
    if not isinstance(body, dict):
        raise HTTPBadRequest(f"Bad {action} request: the body must be an object with subnet_id or port_id")
    unknown = sorted(set(body) - {"subnet_id", "port_id"})
    if unknown:
        raise HTTPBadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    has_s, has_p = "subnet_id" in body, "port_id" in body
    if has_s == has_p:
        raise HTTPBadRequest(f"Bad {action} request: Either subnet_id or port_id must be specified, not both")
    key = "subnet_id" if has_s else "port_id"
    value = body[key]
    if not isinstance(value, str):
        raise BadInput(key, f"{value!r} is not a valid string")
    if has_s:
        policy.get(ctx, txn.cloud, "subnets", value)
    else:
        policy.get(ctx, txn.cloud, "ports", value)
    if add:
        port = txn.ws.add_router_interface(router.id, subnet_id=value if has_s else None,
                                           port_id=value if has_p else None)
    else:
        port = txn.ws.remove_router_interface(router.id, subnet_id=value if has_s else None,
                                              port_id=value if has_p else None)
    subnet_ids = [f.subnet_id for f in port.fixed_ips] or ([value] if has_s else [])
    return {"id": router.id, "tenant_id": router.project_id, "project_id": router.project_id,
            "port_id": port.id, "network_id": port.network_id,
            "subnet_id": subnet_ids[0] if subnet_ids else None, "subnet_ids": subnet_ids}


# ---- ports ----------------------------------------------------------------------------
def _check_port_device(ctx: Context, txn: Txn, method: str, net: Any, project_id: str,
                       owner: str, device_id: str, a: dict[str, Any]) -> None:
    """Neutron's port policy for what a port is attached to:
    - a `network:*` device_owner is admin's or the network owner's (`<method>_port:device_owner`);
    - a router-owned port's device_id may not be another project's router
      (`DeviceIDNotOwnedByTenant`, Neutron's `_enforce_device_owner_not_router_intf_or_device_id`)."""
    if ctx.is_admin:
        return
    if "device_owner" in a and owner.startswith("network:") and net.project_id != ctx.project_id:
        raise PolicyNotAuthorized(f"rule:{method}_port:device_owner (only admin or the network's owner may "
                                  f"set a network:* owner)")
    if ("device_owner" in a or "device_id" in a) and owner in policy.ROUTER_PORT_OWNERS and device_id:
        router = txn.cloud.routers.get(device_id)
        if router is not None and router.project_id != project_id:
            raise DeviceIDNotOwnedByTenant(device_id)


def create_port(ctx: Context, txn: Txn, a: dict[str, Any]) -> str:
    net = policy.get(ctx, txn.cloud, "networks", a["network_id"])
    if not ctx.is_admin and net.project_id != ctx.project_id and not net.shared:
        raise PolicyNotAuthorized("rule:create_port (the network is neither yours nor shared)")
    project_id = _project(ctx, a)
    _check_port_device(ctx, txn, "create", net, project_id, a.get("device_owner", ""), a.get("device_id", ""), a)
    id_ = new_id()
    kw: dict[str, Any] = {}
    for k in ("device_owner", "device_id", "name", "mac_address", "connection_limit"):
        if k in a:
            kw[k] = a[k]
    if "binding:host_id" in a:
        kw["host"] = a["binding:host_id"]
    if "fixed_ips" in a:
        kw["fixed_ips"] = _ip_requests(a["fixed_ips"])
    txn.ws.create_port(net.id, project_id=project_id, id=id_, **kw)
    _describe(txn, "ports", id_, a)
    return id_


def update_port(ctx: Context, txn: Txn, id_: str, a: dict[str, Any]) -> None:
    port = policy.get_owned(ctx, txn.cloud, "ports", id_, "update")
    _check_port_device(ctx, txn, "update", txn.cloud.networks[port.network_id], port.project_id,
                       a.get("device_owner", port.device_owner), a.get("device_id", port.device_id), a)
    kw: dict[str, Any] = {}
    for k in ("device_owner", "device_id", "name", "connection_limit"):
        if k in a:
            kw[k] = a[k]
    if "binding:host_id" in a:
        kw["host"] = a["binding:host_id"]
    if "fixed_ips" in a:
        kw["fixed_ips"] = _ip_requests(a["fixed_ips"])
    if kw:
        txn.ws.update_port(id_, **kw)
    _describe(txn, "ports", id_, a)


def delete_port(ctx: Context, txn: Txn, id_: str) -> None:
    policy.get_owned(ctx, txn.cloud, "ports", id_, "delete")
    txn.ws.delete_port(id_)


# ---- floating IPs ---------------------------------------------------------------------
def _check_fip_port(ctx: Context, txn: Txn, a: dict[str, Any]) -> None:
    if a.get("port_id") is not None:
        policy.get_owned(ctx, txn.cloud, "ports", a["port_id"], "update")


def create_floatingip(ctx: Context, txn: Txn, a: dict[str, Any]) -> str:
    net = policy.get(ctx, txn.cloud, "networks", a["floating_network_id"])
    if not net.external:
        raise BadInput("floating_network_id", f"network {net.id} is not an external network")
    if a.get("subnet_id") is not None:
        policy.get(ctx, txn.cloud, "subnets", a["subnet_id"])
    _check_fip_port(ctx, txn, a)
    id_ = new_id()
    kw = {k: a[k] for k in ("subnet_id", "floating_ip_address", "port_id", "fixed_ip_address", "description")
          if k in a}
    txn.ws.create_floatingip(net.id, project_id=_project(ctx, a), id=id_, **kw)
    return id_


def update_floatingip(ctx: Context, txn: Txn, id_: str, a: dict[str, Any]) -> None:
    policy.get_owned(ctx, txn.cloud, "floatingips", id_, "update")
    _check_fip_port(ctx, txn, a)
    kw = {k: a[k] for k in ("port_id", "fixed_ip_address", "description") if k in a}
    if "port_id" in a and a["port_id"] is None and "fixed_ip_address" not in a:
        kw["fixed_ip_address"] = None
    if kw:
        txn.ws.update_floatingip(id_, **kw)


def delete_floatingip(ctx: Context, txn: Txn, id_: str) -> None:
    policy.get_owned(ctx, txn.cloud, "floatingips", id_, "delete")
    txn.ws.delete_floatingip(id_)


CREATE = {"networks": create_network, "subnets": create_subnet, "routers": create_router,
          "ports": create_port, "floatingips": create_floatingip}
UPDATE = {"networks": update_network, "subnets": update_subnet, "routers": update_router,
          "ports": update_port, "floatingips": update_floatingip}
DELETE = {"networks": delete_network, "subnets": delete_subnet, "routers": delete_router,
          "ports": delete_port, "floatingips": delete_floatingip}
