"""Scenario 4 of issue 6 (S15): router2's external gateway is unset and set again under traffic.
Neutron refuses to remove a gateway that FIPs use, so router2's FIPs are disassociated first and
associated again after; the gateway is set again with the same address (`external_fixed_ips`
pinned), so the end state equals the start state. Asserted: router1's traffic loses 0 packets
throughout; router2's snat- namespace goes and comes back; the rendered `--actual` state of every
node afterwards is byte-identical to the one before, once the names and MACs of the ports the
server re-created (router2's gateway and SNAT ports have new ids) are mapped old -> new."""
from __future__ import annotations

import difflib
import re
import time

import pytest

from dvrnet.lab.traffic import Traffic, fip_flows, outbound_flows, unconcerned_flows

from .conftest import record
from .helpers import HOSTS, actual, api, assert_zero, ext_net, netns, ok, one, wait_converged, wait_for

pytestmark = pytest.mark.root

OWNERS = ("network:router_gateway", "network:router_centralized_snat")


def _router_ports(c, router_id: str) -> dict[tuple[str, str], dict]:
    ports = ok(c.get("/v2.0/ports", params={"device_id": router_id}))["ports"]
    return {(p["device_owner"], p["fixed_ips"][0]["ip_address"]): p for p in ports if p["device_owner"] in OWNERS}


def _renamed(text: str, old: dict, new: dict) -> str:
    """TEXT with every device name and MAC derived from an old port replaced by the new port's."""
    assert set(old) == set(new), (sorted(old), sorted(new))
    for k, p in old.items():
        q = new[k]
        for pre in ("qg-", "sg-", "dv-"):
            text = text.replace(pre + p["id"][:11], pre + q["id"][:11])
        text = text.replace(p["mac_address"], q["mac_address"])
    return text


def _split(text: str) -> tuple[str, list[str]]:
    """(owned part, unowned part): the owned namespaces' text as is; the lines of namespaces dvrnet
    does not own (the node's bridge namespace) sorted and with kernel-chosen MACs masked: the `dv-`
    end of a re-created port gets a new random MAC, a bridge takes the lowest MAC of its ports, and
    links are listed in ifindex order."""
    owned, unowned, in_unowned = [], [], False
    for line in text.splitlines():
        if line.startswith("netns "):
            in_unowned = "(not owned" in line
        if in_unowned:
            unowned.append(re.sub(r" address [0-9a-f:]{17}", " address <kernel>", line) if line.startswith("  link ") else line)
        else:
            owned.append(line)
    return "\n".join(owned), sorted(unowned)


def test_s4_unset_and_set_router_gateway(live_lab):
    info = live_lab
    c = api(info)
    ext = ext_net(c)
    r2 = info.router("router2")
    r2_vms = [v for v in info.vms if v.router == "router2"]
    fips = {v.name: ok(c.get("/v2.0/floatingips", params={"port_id": v.port_id}))["floatingips"][0]
            for v in r2_vms if v.fip}
    router = one(c.get(f"/v2.0/routers/{r2.id}"))
    pinned = [{"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]}
              for f in router["external_gateway_info"]["external_fixed_ips"]]
    wait_converged(info)
    before = {h: actual(info, h) for h in HOSTS}
    old_ports = _router_ports(c, r2.id)
    snat_ns = f"{info.node(r2.snat_node).prefix}snat-{r2.id}"
    assert snat_ns in netns(info)

    unconcerned = unconcerned_flows(info, exclude_routers={"router2"})
    concerned = fip_flows(info, [v.name for v in r2_vms]) + outbound_flows(info, [v.name for v in r2_vms if not v.fip])
    names = {f.name for f in unconcerned}
    with Traffic(unconcerned + concerned, info.state_dir) as tr:
        time.sleep(0.3)
        for f in fips.values():
            one(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))
        one(c.put(f"/v2.0/routers/{r2.id}", json={"router": {"external_gateway_info": {}}}))
        wait_for(lambda: snat_ns not in netns(info), 10, "router2's snat- namespace to go")
        wait_converged(info)
        one(c.put(f"/v2.0/routers/{r2.id}", json={"router": {"external_gateway_info": {
            "network_id": ext["id"], "external_fixed_ips": pinned}}}))
        for vm, f in fips.items():
            one(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": info.vm(vm).port_id}}))
        wait_for(lambda: snat_ns in netns(info), 10, "router2's snat- namespace to come back")
        wait_converged(info)
        time.sleep(1.0)
        results = tr.stop()
    record("4 router gateway unset/set (S15)", "router2 gw off/on, router1 traffic", results, zero=names)
    assert_zero(results, names)
    assert any(results[n].lost for n in results if n not in names), "router2's traffic was never interrupted?"
    # the end state equals the start state: the data plane is byte-identical (ports re-created by the
    # server renamed old -> new)
    new_ports = _router_ports(c, r2.id)
    after = {h: actual(info, h) for h in HOSTS}
    renamed_ids = sum(p["id"] != new_ports[k]["id"] for k, p in old_ports.items())
    for h in HOSTS:
        want, got = _split(_renamed(before[h], old_ports, new_ports)), _split(after[h])
        if want != got:
            d = "\n".join(difflib.unified_diff(want[0].splitlines() + want[1], got[0].splitlines() + got[1],
                                                "before", "after", lineterm=""))
            raise AssertionError(f"{h}: data plane differs after unset+set:\n{d[:4000]}")
    print(f"owned namespaces byte-identical on {len(HOSTS)} nodes after mapping {renamed_ids} re-created ports")
