"""lab check against the real world (root). No router data plane exists yet, so:
- with VMs that hold (fabricated) FIPs behind no router, every FIP/SNAT/segment check must FAIL;
- with stand-in "FIP hosts" plugged straight onto the external segment (each holding its FIP, default
  route via its subnet's gateway, on-link routes to the other external subnets — the path a correct
  fip namespace gives), the path checks must PASS from real counters; and after pointing one host's
  default at the wrong gateway, its check must FAIL naming the wrong path."""
from __future__ import annotations

import subprocess
import time

import pytest

from dvrnet.lab import responder
from dvrnet.lab.checks import plan_checks, run_checks
from dvrnet.lab.info import RouterInfo, VmInfo

from .conftest import run_in

pytestmark = pytest.mark.root


def _vm_info(spec, v, fip, fip_subnet, router="router1"):
    return VmInfo(name=v.name, node=v.node, netns=f"{spec.prefix}{v.name}", network="net", network_id=v.network_id,
                  port_id="", mac=v.mac, fixed_ip=v.ip, prefixlen=v.prefixlen, gateway_ip=v.gateway or "",
                  fip=fip, fip_subnet=fip_subnet, router=router)


def test_checks_fail_without_a_router(world):
    spec, info, _, vms = world
    info.vms = [_vm_info(spec, vms[0], "203.0.113.10", "red"), _vm_info(spec, vms[1], "198.51.100.11", "green"),
                _vm_info(spec, vms[2], None, None)]
    info.routers = [RouterInfo("router1", "r1", "network1", ["203.0.113.5"], ["net"])]
    t = time.monotonic()
    rows = run_checks(info)
    took = time.monotonic() - t
    assert rows and not any(r.passed for r in rows), [r for r in rows if r.passed]
    groups = {r.group for r in rows}
    assert {"internet → FIP", "FIP → internet", "FIP → FIP other node", "SNAT → internet", "SNAT → FIP",
            "segment ARP", "fg- MAC"} <= groups
    assert took < 20, took


def _fake_fip_host(spec, name: str, fip: str, plen: int, gw: str, onlink: list[str]) -> str:
    ns = f"{spec.prefix}{name}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    run_in(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=True)
    cmds = [["ip", "-n", spec.segment_ns, "link", "add", name, "type", "veth", "peer", "name", "seg0", "netns", ns],
            ["ip", "-n", spec.segment_ns, "link", "set", name, "master", "br-seg", "up"],
            ["ip", "-n", ns, "addr", "add", f"{fip}/{plen}", "dev", "seg0"],
            ["ip", "-n", ns, "link", "set", "seg0", "up"], ["ip", "-n", ns, "link", "set", "lo", "up"],
            ["ip", "-n", ns, "route", "replace", "default", "via", gw]]
    cmds += [["ip", "-n", ns, "route", "replace", c, "dev", "seg0", "scope", "link"] for c in onlink]
    for c in cmds:
        subprocess.run(c, check=True)
    responder.start(spec.pid_dir, [ns], spec.tcp_port)
    return ns


def test_path_checks_pass_and_fail_on_real_counters(world):
    spec, info, _, _ = world
    a = _fake_fip_host(spec, "fk1", "203.0.113.77", 24, "203.0.113.1", ["198.51.100.0/24"])
    b = _fake_fip_host(spec, "fk2", "198.51.100.78", 24, "198.51.100.1", ["203.0.113.0/24"])
    c = _fake_fip_host(spec, "fk3", "198.51.100.79", 24, "198.51.100.1", ["203.0.113.0/24"])
    mk = lambda name, ns, node, fip, sub: VmInfo(name=name, node=node, netns=ns, network="net", network_id="n",
                                                 port_id="", mac="", fixed_ip=fip, prefixlen=24, gateway_ip="",
                                                 fip=fip, fip_subnet=sub, router=None)
    info.vms = [mk("fk1", a, "compute1", "203.0.113.77", "red"), mk("fk2", b, "compute2", "198.51.100.78", "green"),
                mk("fk3", c, "compute1", "198.51.100.79", "green")]
    info.routers = []
    checks = plan_checks(info)
    assert {c.group for c in checks} == {"internet → FIP", "FIP → internet", "FIP → FIP same node",
                                         "FIP → FIP other node"}
    t = time.monotonic()
    rows = run_checks(info, checks, segment=False)
    took = time.monotonic() - t
    bad = [r for r in rows if not r.passed]
    assert not bad, "\n".join(f"{r.check}: {r.observed}" for r in bad)
    assert took < 5, took
    tcp_in = next(r for r in rows if r.check.startswith("internet → fk2") and "TCP" in r.check)
    assert "peer saw 192.0.2.10" in tcp_in.observed and "green(in_src=" in tcp_in.observed

    # break one thing on purpose: fk2 (green) sends via red's gateway; make red route it so the reply works
    subprocess.run(["ip", "-n", b, "route", "replace", "default", "via", "203.0.113.1", "dev", "seg0", "onlink"], check=True)
    rows = run_checks(info, [c for c in checks if c.src_ns == b or c.dst == "198.51.100.78"], segment=False)
    out = next(r for r in rows if r.check.startswith("fk2 → internet") and "ICMP" in r.check)
    assert not out.passed and "red" in out.observed, out
    # FIP→FIP is still direct (on-link), so those rows still pass: the checks judge each path
    assert all(r.passed for r in rows if r.group.startswith("FIP → FIP")), rows
    for ns in (a, b, c):
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout.split():
            subprocess.run(["kill", pid], check=False)
        subprocess.run(["ip", "netns", "del", ns], check=False)
