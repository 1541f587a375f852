"""The `status` the API shows for a FIP and a router gateway port, from the agents' reports
(`store/statuses.py`), with Neutron's meaning. Pure.

A FIP is
- DOWN while it is not associated, while its port is bound to no host, and while the host its port
  is bound to (the one that serves it: DVR puts a FIP on its VM's node) has not reported it for the
  *current* association (port and fixed IP): a new or moved FIP is DOWN until that node's agent
  has put it in its kernel and read it back;
- ACTIVE once that agent reported it applied and found in the kernel for this association;
- ERROR when that agent reported it could not (the reason is in the admin view).
A router gateway port follows the report of its host (the router's SNAT node) for its current
addresses in the same way; every other port is ACTIVE when bound to a host, else DOWN (what the L2
side would report is not dvrnet's to say).
An agent that dies leaves its last reports, so its FIPs keep their last status (as in Neutron);
its death shows as `alive: false` in the agent list.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..model import Cloud, DeviceOwner, FloatingIP, Port
from ..store.statuses import Reported, Statuses

ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"


@dataclass(frozen=True)
class Shown:
    """A status with why: `host` the node whose report decides it (None: no node serves it now),
    `reported` that node's report (None: none for the current association), `why` one line."""
    status: str
    why: str
    host: str | None = None
    reported: Reported | None = None

    def json(self) -> dict:
        return {"status": self.status, "reason": self.why, "host": self.host,
                "reported": None if self.reported is None else self.reported.json()}


def _from_report(rep: Reported | None, host: str, what: str) -> Shown:
    if rep is None:
        return Shown(DOWN, f"not yet reported by {host} for {what}", host)
    if rep.status == ACTIVE:
        return Shown(ACTIVE, f"{host} reported it in its kernel (view revision {rep.revision})", host, rep)
    return Shown(ERROR, f"{host} could not apply it (view revision {rep.revision}): {rep.reason or 'no reason given'}",
                 host, rep)


def fip_shown(cloud: Cloud, statuses: Statuses, f: FloatingIP) -> Shown:
    if f.port_id is None:
        return Shown(DOWN, "not associated")
    port = cloud.ports.get(f.port_id)
    if port is None or not port.host:
        return Shown(DOWN, f"its port {f.port_id} is bound to no host")
    fixed = None if f.fixed_ip_address is None else str(f.fixed_ip_address)
    rep = statuses.of("floatingips", f.id, port.host)
    if rep is not None and (rep.port_id != f.port_id or rep.addresses != ((fixed,) if fixed else ())):
        rep = None                  # a report of an earlier association says nothing of this one
    return _from_report(rep, port.host, f"port {f.port_id} ({fixed})")


def fip_status(cloud: Cloud, statuses: Statuses, f: FloatingIP) -> str:
    return fip_shown(cloud, statuses, f).status


def gateway_addresses(p: Port) -> tuple[str, ...]:
    return tuple(str(x.ip_address) for x in p.fixed_ips)


def port_shown(cloud: Cloud, statuses: Statuses, p: Port) -> Shown:
    if not p.host:
        return Shown(DOWN, "bound to no host")
    if p.device_owner != DeviceOwner.ROUTER_GATEWAY.value:
        return Shown(ACTIVE, f"bound to {p.host}", p.host)
    rep = statuses.of("ports", p.id, p.host)
    if rep is not None and rep.addresses != gateway_addresses(p):
        rep = None
    return _from_report(rep, p.host, f"addresses {', '.join(gateway_addresses(p)) or 'none'}")


def port_status(cloud: Cloud, statuses: Statuses, p: Port) -> str:
    return port_shown(cloud, statuses, p).status
