"""May a subnet be deleted, and which addresses go with it.

Invariants (Neutron's `delete_subnet`):
- an address held in the subnet by a router gateway, a floating IP, a router interface
  (`network:router_interface`, `network:router_interface_distributed`), a centralized SNAT port
  (`network:router_centralized_snat`) or any other port (compute or user) blocks the delete:
  `SubnetInUse`, whose message lists the holders grouped by kind;
- addresses of agent-gateway (`network:floatingip_agent_gateway`) and DHCP ports do not block:
  they are released with the subnet; the ports themselves stay, with their other addresses.
Pure: reads a `Cloud`, returns frozen values.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..model import Cloud, FixedIP, SubnetInUse
from ..model.resources import DeviceOwner, is_compute

RELEASED_WITH_SUBNET = frozenset({DeviceOwner.AGENT_GATEWAY.value, DeviceOwner.DHCP.value})

_KINDS = (  # (label, test on device_owner), first match wins
    ("router gateway ports", lambda o: o == DeviceOwner.ROUTER_GATEWAY.value),
    ("router interface ports", lambda o: o in (DeviceOwner.ROUTER_INTERFACE.value,
                                               DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value)),
    ("centralized SNAT ports", lambda o: o == DeviceOwner.ROUTER_SNAT.value),
    ("compute ports", is_compute),
    ("other ports", lambda o: True),
)


@dataclass(frozen=True)
class Released:
    """`port_id` loses `fixed_ips` when the subnet goes."""
    port_id: str
    device_owner: str
    fixed_ips: tuple[FixedIP, ...]


def holder_kind(device_owner: str) -> str:
    for label, test in _KINDS:
        if test(device_owner):
            return label
    raise AssertionError("unreachable")


def check_subnet_delete(cloud: Cloud, subnet_id: str) -> tuple[Released, ...]:
    """Raise `SubnetInUse` if something blocks deleting `subnet_id`; else what is released."""
    cloud.subnet(subnet_id)  # NotFound
    blocking: dict[str, list[str]] = {}
    released: list[Released] = []
    for p in cloud.ports_by_subnet.get(subnet_id, ()):
        ips = tuple(f for f in p.fixed_ips if f.subnet_id == subnet_id)
        if p.device_owner in RELEASED_WITH_SUBNET:
            released.append(Released(p.id, p.device_owner, ips))
        else:
            addrs = ", ".join(str(f.ip_address) for f in ips)
            blocking.setdefault(holder_kind(p.device_owner), []).append(f"{p.id} ({addrs})")
    for f in sorted(cloud.floatingips.values(), key=lambda f: f.floating_ip_address):
        if f.subnet_id == subnet_id:
            blocking.setdefault("floating IPs", []).append(f"{f.id} ({f.floating_ip_address})")
    if blocking:
        order = ["router gateway ports", "floating IPs"] + [k for k, _ in _KINDS[1:]]
        parts = [f"{kind}: {', '.join(blocking[kind])}" for kind in order if kind in blocking]
        raise SubnetInUse(subnet_id, "one or more addresses in it are still in use by " + "; ".join(parts))
    return tuple(sorted(released, key=lambda r: r.port_id))
