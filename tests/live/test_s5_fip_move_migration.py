"""Scenario 5 of issue 6: (a) vm5's FIP moves to vm6 on the other node; (b) vm7's port moves to
compute2 (live migration: its veth goes to compute2's bridge and `binding:host_id` changes).
Traffic to the FIP resumes within 1 s (the new node's fip- namespace sends a gratuitous ARP, the old
one stops answering); the gap is measured from the probes' timestamps. Other FIPs lose 0."""
from __future__ import annotations

import subprocess
import time

import pytest

from dvrnet.lab.traffic import Flow, Traffic, unconcerned_flows
from dvrnet.plan.names import tenant_bridge

from .conftest import record
from .helpers import api, assert_zero, fip_of, ipj, netns, one, routes, wait_converged, wait_for

pytestmark = pytest.mark.root


def _fip_routes(info, host: str, addr: str) -> bool:
    return any(r.get("dst") == addr for ns in netns(info, host) if "-fip-" in ns for r in routes(ns, "main"))


def _gw_neigh(ns: str, addr: str) -> str | None:
    return next((n.get("lladdr") for n in ipj(ns, "neigh", "show") if n.get("dst") == addr), None)


def test_s5a_fip_moves_to_a_vm_on_another_node(live_lab):
    info = live_lab
    c = api(info)
    src, dst = info.vm("vm5"), info.vm("vm6")
    assert src.node != dst.node and src.router == dst.router and src.fip and not dst.fip
    addr = src.fip
    f = fip_of(c, addr)
    gw = info.gateway_for(addr)
    moving = Flow("inet→FIP vm5→vm6", "icmp", info.internet_netns, addr)
    others = unconcerned_flows(info, exclude_vms={"vm5"})
    with Traffic([moving] + others, info.state_dir) as tr:
        time.sleep(0.5)
        mac_before = _gw_neigh(gw.netns, addr)
        one(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": dst.port_id}}))
        wait_for(lambda: _fip_routes(info, dst.node, addr) and not _fip_routes(info, src.node, addr), 10,
                 "the FIP's /32 to move to the new node")
        wait_converged(info)
        time.sleep(1.5)
        results = tr.stop()
    mac_after = _gw_neigh(gw.netns, addr)
    names = {fl.name for fl in others}
    record("5 FIP move / migration", "FIP moved to other node", results, zero=names)
    assert_zero(results, names)
    r = results[moving.name]
    assert r.received > 0 and r.max_gap_s < 1.0, r.line()
    assert mac_before != mac_after, "the upstream gateway still has the old node's MAC for the FIP"
    print(f"FIP move: {r.lost} probes lost, traffic resumed after {r.max_gap_s * 1000:.0f} ms")
    for v in info.vms:
        if v.name == "vm5":
            v.fip = None
        if v.name == "vm6":
            v.fip = addr


def test_s5b_vm_port_migrates_to_another_node(live_lab):
    info = live_lab
    c = api(info)
    vm = info.vm("vm7")
    assert vm.node == "compute1" and vm.fip
    old, new = info.node("compute1"), info.node("compute2")
    tap = ("tap" + vm.port_id.replace("-", ""))[:14]
    br = tenant_bridge(vm.network_id)
    moving = [Flow("inet→vm7 (migrating)", "icmp", info.internet_netns, vm.fip),
              Flow("vm7→inet (migrating)", "icmp", vm.netns, info.internet_address)]
    others = unconcerned_flows(info, exclude_vms={"vm7"})
    with Traffic(moving + others, info.state_dir) as tr:
        time.sleep(0.5)
        subprocess.run(["ip", "-n", old.bridge_netns, "link", "set", tap, "netns", new.bridge_netns], check=True)
        subprocess.run(["ip", "-n", new.bridge_netns, "link", "set", tap, "master", br, "up"], check=True)
        one(c.put(f"/v2.0/ports/{vm.port_id}", json={"port": {"binding:host_id": new.name}}))
        wait_for(lambda: _fip_routes(info, "compute2", vm.fip) and not _fip_routes(info, "compute1", vm.fip), 10,
                 "vm7's FIP /32 to move to compute2")
        wait_converged(info)
        time.sleep(1.5)
        results = tr.stop()
    vm.node = "compute2"
    names = {fl.name for fl in others}
    record("5 FIP move / migration", "VM port migrated", results, zero=names)
    assert_zero(results, names)
    for fl in moving:
        r = results[fl.name]
        assert r.received > 0 and r.max_gap_s < 1.0, r.line()
    print("migration:", {fl.name: f"{results[fl.name].lost} lost, gap {results[fl.name].max_gap_s * 1000:.0f} ms"
                         for fl in moving})
