"""Scenario 3 of issue 6: the green subnet's gateway changes from 198.51.100.1 to 198.51.100.250
(a second address on the same upstream gateway), then is cleared (`gateway_ip: null`). Its table
follows on every node (fip- namespaces; snat- where a gateway port has a green address); traffic
that does not concern green (red FIPs, and SNAT when the SNAT address is not green) loses 0."""
from __future__ import annotations

import ipaddress
import subprocess
import time

import pytest

from dvrnet.lab.traffic import Traffic, fip_flows, outbound_flows, tcp_flow
from dvrnet.plan.numbers import subnet_table

from .conftest import record
from .helpers import HOSTS, api, assert_zero, netns, one, routes, rules, subnet_by_name, wait_converged, wait_for

pytestmark = pytest.mark.root

GREEN = "198.51.100.0/24"
NEW_GW = "198.51.100.250"
TABLE = subnet_table(ipaddress.ip_network(GREEN))


def _green_defaults(info) -> dict[str, str | None]:
    """fip-/snat- namespace -> the gateway of its green table (None: no table), and whether the
    `from green` rule is there."""
    out = {}
    for h in HOSTS:
        for ns in netns(info, h):
            if "-fip-" not in ns:
                continue
            via = [r.get("gateway") for r in routes(ns, TABLE) if r.get("dst") == "default"]
            rule = any(r.get("src") == "198.51.100.0" and str(r.get("table")) == str(TABLE) for r in rules(ns))
            out[ns] = (via[0] if via else None, rule)
    return out


def test_s3_change_then_clear_gateway(live_lab):
    info = live_lab
    c = api(info)
    green = subnet_by_name(c, "green")
    gw = next(g for g in info.gateways if g.name == "green")
    subprocess.run(["ip", "-n", gw.netns, "addr", "add", f"{NEW_GW}/24", "dev", "seg0"], check=True)
    red_vms = [v.name for v in info.vms if v.fip_subnet == "red"]
    green_vms = [v.name for v in info.vms if v.fip_subnet == "green"]
    snat_green = any(ipaddress.ip_address(a) in ipaddress.ip_network(GREEN) for r in info.routers for a in r.snat_ips)
    snat_vms = [v.name for v in info.vms if not v.fip] if not snat_green else []
    unconcerned = fip_flows(info, red_vms) + outbound_flows(info, red_vms + snat_vms) + [tcp_flow(info, red_vms[0])]
    concerned = fip_flows(info, green_vms)
    names = {f.name for f in unconcerned}
    assert set(_green_defaults(info).values()) == {("198.51.100.1", True)}

    with Traffic(unconcerned + concerned, info.state_dir) as tr:
        time.sleep(0.3)
        one(c.put(f"/v2.0/subnets/{green['id']}", json={"subnet": {"gateway_ip": NEW_GW}}))
        wait_for(lambda: set(_green_defaults(info).values()) == {(NEW_GW, True)}, 10,
                 "every fip- namespace's green table to point at the new gateway")
        wait_converged(info)
        time.sleep(0.5)
        changed = tr.stop()
    record("3 subnet gateway changed", "gateway .1 -> .250", changed, zero=names)
    assert_zero(changed, names)

    with Traffic(unconcerned, info.state_dir) as tr:
        time.sleep(0.3)
        s = one(c.put(f"/v2.0/subnets/{green['id']}", json={"subnet": {"gateway_ip": None}}))
        assert s["gateway_ip"] is None
        wait_for(lambda: set(_green_defaults(info).values()) == {(None, False)}, 10,
                 "the green table and rule to disappear from every fip- namespace")
        wait_converged(info)
        # green on-link routes stay: the subnet is still on the segment
        for ns in _green_defaults(info):
            assert any(r.get("dst") == GREEN for r in routes(ns, 40005)), ns
        time.sleep(0.5)
        cleared = tr.stop()
    record("3 subnet gateway changed", "gateway cleared (null)", cleared)
    assert_zero(cleared)
    print("green FIPs during the change:", {n: (r.sent, r.lost) for n, r in changed.items() if n not in names})
