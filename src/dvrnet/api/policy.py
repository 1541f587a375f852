"""Who may see and change what (token mode; in `auth=none` everyone is admin).

- admin sees and changes everything;
- a project sees its own resources, every shared or external network, the subnets of those
  networks (so it can pick a FIP subnet or a gateway), and the ports on networks it owns;
- a project changes only its own resources: what it cannot see is 404 (as Neutron answers,
  so ids of other projects do not leak), what it can see but does not own is 403;
- admin-only attributes are listed in `schema.py` (`admin_rule`), and these extra rules:
  subnets only on networks the project owns; ports only on networks it owns or shared ones;
  a `network:*` device_owner only on networks it owns; a router-owned port's device_id never
  another project's router (`DeviceIDNotOwnedByTenant`, 409 as in Neutron); agents, hosts and
  host views are admin-only.
"""
from __future__ import annotations

from typing import Any

from ..model import Cloud, DeviceOwner
from ..model.errors import NotFound
from ..model.resources import ROUTER_INTERFACE_OWNERS
from .auth import Context
from .errors import PolicyNotAuthorized

# Owners whose device_id is a router (Neutron's router_device_owners, without floating IPs).
ROUTER_PORT_OWNERS = ROUTER_INTERFACE_OWNERS | {DeviceOwner.ROUTER_GATEWAY.value, DeviceOwner.ROUTER_SNAT.value}

KIND_NAME = {"networks": "Network", "subnets": "Subnet", "routers": "Router", "ports": "Port",
             "floatingips": "Floating IP"}


def visible(ctx: Context, cloud: Cloud, kind: str, obj: Any) -> bool:
    if ctx.is_admin or obj.project_id == ctx.project_id:
        return True
    if kind == "networks":
        return obj.shared or obj.external
    if kind == "subnets":
        net = cloud.networks.get(obj.network_id)
        return net is not None and (net.shared or net.external or net.project_id == ctx.project_id)
    if kind == "ports":
        net = cloud.networks.get(obj.network_id)
        return net is not None and net.project_id == ctx.project_id
    return False


def get(ctx: Context, cloud: Cloud, kind: str, id_: str) -> Any:
    """The object, if `ctx` may see it; else NotFound (also for ids that do not exist)."""
    obj = getattr(cloud, kind).get(id_)
    if obj is None or not visible(ctx, cloud, kind, obj):
        raise NotFound(KIND_NAME[kind], id_)
    return obj


def get_owned(ctx: Context, cloud: Cloud, kind: str, id_: str, action: str) -> Any:
    obj = get(ctx, cloud, kind, id_)
    if not ctx.is_admin and obj.project_id != ctx.project_id:
        raise PolicyNotAuthorized(f"rule:{action}_{KIND_NAME[kind].lower().replace(' ', '')}")
    return obj


def require_admin(ctx: Context, rule: str) -> None:
    if not ctx.is_admin:
        raise PolicyNotAuthorized(rule)
