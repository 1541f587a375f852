"""The metadata service (issue 13 item 1) in the seed lab: every VM asks http://169.254.169.254/
through its router's proxy and the lab's stand-in metadata agent (lab/metadata_agent.py) answers
with what it received; the proxy is an owned process: adopted by a restarted agent (same pid),
restarted when it dies, stopped when its router leaves the node."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from dvrnet.kernel.process import scan
from dvrnet.plan.metadata import ROLE
from dvrnet.plan.process import marker, runtime_dir
from dvrnet.reconcile.ownership import Ownership

from .helpers import api, gone, kill_agent, log_since, ok, start_agent, wait_converged, wait_for

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make deb)")]


def ask(ns: str, path: str = "/latest/meta-data/instance-id", *headers: str, timeout: float = 3) -> dict | None:
    """GET http://169.254.169.254PATH from inside NS; the stand-in's JSON, or None (no answer)."""
    argv = ["ip", "netns", "exec", ns, "curl", "-s", "-f", "-m", str(timeout)]
    for h in headers:
        argv += ["-H", h]
    p = subprocess.run(argv + [f"http://169.254.169.254{path}"], capture_output=True, text=True, check=False)
    return json.loads(p.stdout) if p.returncode == 0 and p.stdout else None


def proxies(info, host: str) -> dict[str, int]:
    """{qrouter namespace: pid} of HOST's running metadata proxies."""
    prefix = info.node(host).prefix
    out = {}
    for ns, pid, argv, home in scan(Ownership(prefix)):
        m = marker(argv)
        if m is not None and m[1] == ROLE and home:
            out[ns] = pid
    return out


def router_id(info, vm) -> str:
    r = info.router(vm.router)
    assert r is not None
    return r.id


def test_every_vm_gets_its_router_id_and_address_forwarded(live_lab):
    info = live_lab
    for vm in info.vms:
        got = ask(vm.netns, f"/openstack/latest/meta_data.json?vm={vm.name}")
        assert got is not None, f"{vm.name}: no answer from 169.254.169.254"
        h = got["headers"]
        assert got["agent"] == vm.node, f"{vm.name}: answered through {got['agent']}'s proxy, not its own node's"
        assert got["path"] == f"/openstack/latest/meta_data.json?vm={vm.name}" and got["method"] == "GET"
        assert h["x-neutron-router-id"] == router_id(info, vm), (vm.name, h)
        assert h["x-forwarded-for"] == vm.fixed_ip, (vm.name, h)
    # headers a VM sends to pose as another router, network or address do not get through
    vm = info.vms[0]
    got = ask(vm.netns, "/x", "X-Forwarded-For: 10.9.9.9", "X-Neutron-Network-ID: spoofed",
              "X-Neutron-Router-ID: spoofed")
    assert got is not None
    h = got["headers"]
    assert h["x-forwarded-for"] == vm.fixed_ip and h["x-neutron-router-id"] == router_id(info, vm)
    assert "x-neutron-network-id" not in h, h
    # the proxy's own port is not reachable directly, only through the redirect
    p = subprocess.run(["ip", "netns", "exec", vm.netns, "curl", "-s", "-m", "1", f"http://{vm.gateway_ip}:9697/"],
                       capture_output=True, text=True, check=False)
    assert p.returncode != 0 and not p.stdout, "the proxy's port answered a VM directly"


def test_agent_restart_adopts_the_running_proxies(live_lab):
    info = live_lab
    before = proxies(info, "compute1")
    assert len(before) == 2, before              # one per router with interfaces on compute1
    kill_agent(info, "compute1")
    p, mark = start_agent(info, "compute1")
    wait_for(lambda: "converged" in log_since(mark), 20, "the restarted agent's first pass")
    assert proxies(info, "compute1") == before, "a restarted agent started its proxies again"
    vm = next(v for v in info.vms if v.node == "compute1")
    got = ask(vm.netns)
    assert got is not None and got["headers"]["x-neutron-router-id"] == router_id(info, vm)
    assert p.poll() is None


def test_a_killed_proxy_is_started_again(live_lab):
    info = live_lab
    vm = next(v for v in info.vms if v.node == "compute1")
    ns = f"{info.node('compute1').prefix}qrouter-{router_id(info, vm)}"
    old = proxies(info, "compute1")[ns]
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: proxies(info, "compute1").get(ns, old) != old, 10, "the proxy to be started again")
    got = wait_for(lambda: ask(vm.netns, timeout=1), 10, "an answer through the new proxy")
    took = time.monotonic() - t0
    print(f"\nproxy killed: answering again after {took * 1000:.0f} ms")
    assert got["headers"]["x-forwarded-for"] == vm.fixed_ip
    assert got["headers"]["x-neutron-router-id"] == router_id(info, vm)


def test_proxy_stopped_when_its_router_leaves_the_node(live_lab):
    """router2's interfaces removed (its FIPs first, as Neutron requires): its qrouter- goes from
    every node, its proxies stop and their runtime directories are removed."""
    info = live_lab
    r2 = info.router("router2")
    assert r2 is not None
    nodes = ("compute1", "compute2")
    pids = {h: proxies(info, h)[f"{info.node(h).prefix}qrouter-{r2.id}"] for h in nodes}
    with api(info) as c:
        for f in ok(c.get("/v2.0/floatingips"))["floatingips"]:
            if f.get("router_id") == r2.id:
                ok(c.delete(f"/v2.0/floatingips/{f['id']}"))
        for port in ok(c.get("/v2.0/ports", params={"device_id": r2.id}))["ports"]:
            if port["device_owner"] == "network:router_interface_distributed":
                ok(c.put(f"/v2.0/routers/{r2.id}/remove_router_interface",
                         json={"subnet_id": port["fixed_ips"][0]["subnet_id"]}))
    wait_converged(info, timeout=20)
    for h in nodes:
        ns = f"{info.node(h).prefix}qrouter-{r2.id}"
        assert ns not in proxies(info, h)
        assert gone(pids[h]), f"{h}: the proxy of router2 still runs"
        assert not os.path.exists(runtime_dir(ns, ROLE)), f"{h}: runtime directory left behind"
    # router1's VMs are still served
    vm = next(v for v in info.vms if v.router == "router1")
    assert ask(vm.netns) is not None
