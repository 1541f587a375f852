"""Workspace: the owners the server manages are never set or cleared through the port API
(issue 10, items 1, 2 and 4); a refused change leaves the workspace as it was."""
import pytest
from test_ops import AGW, DVR_IF, GW, SNAT, Lab

from dvrnet.model import InvalidInput
from dvrnet.ops import errors

MANAGED = [GW, SNAT, DVR_IF, "network:router_interface", AGW, "network:floatingip"]


def test_managed_owners_are_refused_on_create_and_update():
    lab = Lab()
    r = lab.router("r", [lab.ts1])
    vm = lab.vm("vm", lab.t1, "compute1")
    before = lab.ws.snapshot()
    for owner in MANAGED:
        for dev in ("", r, "compute1"):
            with pytest.raises(InvalidInput) as e:
                lab.ws.create_port(lab.t1, device_owner=owner, device_id=dev)
            assert e.value.field == "device_owner"
        with pytest.raises(InvalidInput):
            lab.ws.update_port(vm, device_owner=owner)
    assert lab.ws.snapshot() == before
    assert lab.ws.update_port(vm, device_owner="network:dhcp").device_owner == "network:dhcp"


def test_server_made_ports_keep_owner_device_and_host():
    lab = Lab()
    r = lab.router("r", [lab.ts1])
    lab.vm("vm", lab.t1, "compute1")
    ports = [lab.ports(o, r)[0] for o in (GW, SNAT, DVR_IF)] + [lab.fg("compute1")]
    before = lab.ws.snapshot()
    for p in ports:
        for change in ({"device_owner": ""}, {"device_id": ""}, {"device_id": "x"}, {"host": "compute2"},
                       {"device_owner": "compute:nova"}):
            with pytest.raises(errors.L3PortInUse):
                lab.ws.update_port(p.id, **change)
        assert lab.ws.update_port(p.id, name="renamed").name == "renamed"
    assert {i: replace_name(p) for i, p in lab.ws.snapshot().ports.items()} == \
        {i: replace_name(p) for i, p in before.ports.items()}
    for owner in (SNAT, DVR_IF):
        p = lab.ports(owner, r)[0]
        with pytest.raises(errors.IPAddressChangeNotAllowed):
            lab.ws.update_port(p.id, fixed_ips=[{"subnet_id": lab.ts1, "ip_address": "10.1.0.77"}])
        assert lab.ws.update_port(p.id, fixed_ips=list(p.fixed_ips)).fixed_ips == p.fixed_ips   # no change is fine


def replace_name(p):
    return (p.network_id, p.device_owner, p.device_id, p.host, p.fixed_ips, p.mac_address)
