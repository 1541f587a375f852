"""Scenarios 1 and 2 of issue 6 (S13, S14), with continuous traffic to and from every FIP that the
change does not concern (all of the seed's FIPs):
1. a subnet (100.65.0.0/24, gateway 100.65.0.1, with its upstream gateway on the segment) is added
   to the external network in use: every node's fip- namespace gains its table and rule and every
   snat- namespace its on-link route, no router is re-bound, a FIP from it works end to end, and
   0 packets are lost on the other FIPs;
2. removing it while a FIP holds an address in it is refused (409 SubnetInUse); after the FIP is
   released it is removed, and its table, rules and on-link routes disappear from every node;
   0 packets lost elsewhere."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import time

import pytest

from dvrnet.lab.traffic import Flow, Traffic, unconcerned_flows
from dvrnet.lab.world import ExternalSubnet, add_gateway
from dvrnet.plan.numbers import subnet_table

from .conftest import record
from .helpers import (
    HOSTS,
    api,
    assert_zero,
    ext_net,
    netns,
    ok,
    one,
    routes,
    rules,
    spec,
    wait_converged,
    wait_for,
)

pytestmark = pytest.mark.root

BLUE = ExternalSubnet("blue", "100.65.0.0/24", "100.65.0.1")
BLUE_TABLE = subnet_table(ipaddress.ip_network(BLUE.cidr))


def _blue_everywhere(info) -> dict[str, list[str]]:
    """Per node namespace: what it holds of the blue subnet (rules, tables, on-link routes)."""
    out = {}
    for h in HOSTS:
        for ns in netns(info, h):
            if "-fip-" not in ns and "-snat-" not in ns:
                continue
            found = [f"rule from {r['src']}/{r.get('srclen')} lookup {r.get('table')}" for r in rules(ns)
                     if r.get("src") == "100.65.0.0"]
            found += [f"route {r['dst']} table {r.get('table', 'main')} via {r.get('gateway', '-')}"
                      for r in routes(ns) if r.get("dst", "").startswith("100.65.0.") or
                      str(r.get("table")) == str(BLUE_TABLE)]
            out[ns] = found
    return out


def _fip_namespaces(info) -> list[str]:
    return [ns for h in HOSTS for ns in netns(info, h) if "-fip-" in ns]


def _gateway_saw(gw_ns: str, addr: str) -> int:
    """Packets with source ADDR that entered the gateway from the segment (its nft counters)."""
    p = subprocess.run(["ip", "netns", "exec", gw_ns, "nft", "-j", "list", "set", "inet", "dvlab", "in_src"],
                       capture_output=True, text=True, check=False)
    n = 0
    for item in json.loads(p.stdout or "{}").get("nftables", []):
        for e in (item.get("set") or {}).get("elem", []):
            el = e.get("elem", {})
            val = el.get("val", {}).get("concat", [])
            if val and val[0] == addr:
                n += el.get("counter", {}).get("packets", 0)
    return n


@pytest.fixture(scope="module")
def state():
    return {}


def test_s1_add_subnet_under_traffic(live_lab, state):
    info = live_lab
    c = api(info)
    ext = ext_net(c)
    flows = unconcerned_flows(info)
    with Traffic(flows, info.state_dir) as tr:
        time.sleep(0.3)
        gw = add_gateway(spec(info), BLUE)
        info.gateways.append(gw)
        info.save()
        t0 = time.monotonic()
        sub = one(c.post("/v2.0/subnets", json={"subnet": {
            "network_id": ext["id"], "cidr": BLUE.cidr, "gateway_ip": BLUE.gateway, "ip_version": 4,
            "name": "blue", "allocation_pools": [{"start": "100.65.0.2", "end": "100.65.0.239"}]}}))
        state["subnet"] = sub

        def everywhere():
            have = _blue_everywhere(info)
            fips = _fip_namespaces(info)
            return len(fips) >= 2 and all(
                f"rule from 100.65.0.0/24 lookup {BLUE_TABLE}" in have[ns] and
                any(x.startswith(f"route default table {BLUE_TABLE} via 100.65.0.1") for x in have[ns]) and
                any(x.startswith("route 100.65.0.0/24 table 40005") for x in have[ns]) for ns in fips) and all(
                any(x.startswith("route 100.65.0.0/24 table main") for x in v) for ns, v in have.items() if "-snat-" in ns)
        wait_for(everywhere, 10, "the blue table, rule and on-link routes on every node")
        took = time.monotonic() - t0
        wait_converged(info)
        # a FIP from it, end to end (vm3 on compute1 had none)
        vm3 = info.vm("vm3")
        fip = one(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], "subnet_id": sub["id"], "port_id": vm3.port_id}}))
        state["fip"] = fip
        addr = fip["floating_ip_address"]
        assert ipaddress.ip_address(addr) in ipaddress.ip_network(BLUE.cidr)
        wait_converged(info)
        time.sleep(0.5)
        results = tr.stop()
    record("1 subnet added (S13)", "add subnet + FIP from it", results)
    assert_zero(results)
    # the new FIP: in and out, through the blue gateway
    before = _gateway_saw(gw.netns, addr)
    new = [Flow("inet→vm3 (blue FIP)", "icmp", info.internet_netns, addr),
           Flow("vm3→inet (blue FIP)", "icmp", vm3.netns, info.internet_address)]
    with Traffic(new, info.state_dir) as tr:
        time.sleep(1.0)
        r2 = tr.stop()
    record("1 subnet added (S13)", "traffic on the new FIP", r2)
    assert_zero(r2)
    assert _gateway_saw(gw.netns, addr) - before >= r2["inet→vm3 (blue FIP)"].received, \
        "replies of the blue FIP did not leave through the blue gateway"
    print(f"blue subnet everywhere {took:.2f}s after the API call")


def test_s2_remove_subnet_under_traffic(live_lab, state):
    info = live_lab
    if "subnet" not in state:
        pytest.skip("scenario 1 did not add the subnet")
    c = api(info)
    sub, fip = state["subnet"], state["fip"]
    with Traffic(unconcerned_flows(info), info.state_dir) as tr:
        time.sleep(0.3)
        r = c.delete(f"/v2.0/subnets/{sub['id']}")
        assert r.status_code == 409, r.text
        assert r.json()["NeutronError"]["type"] == "SubnetInUse", r.text
        assert _blue_everywhere(info) and all(v for ns, v in _blue_everywhere(info).items() if "-fip-" in ns)
        ok(c.delete(f"/v2.0/floatingips/{fip['id']}"))
        wait_converged(info)
        ok(c.delete(f"/v2.0/subnets/{sub['id']}"))
        wait_for(lambda: not any(_blue_everywhere(info).values()), 10,
                 "the blue table, rules and on-link routes to disappear from every node")
        wait_converged(info)
        time.sleep(0.5)
        results = tr.stop()
    record("2 subnet removed (S14)", "refused, FIP released, removed", results)
    assert_zero(results)
    assert "blue" not in [s["name"] for s in ok(c.get("/v2.0/subnets"))["subnets"]]
