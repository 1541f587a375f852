"""Scenario 6 of issue 6: compute1's agent is killed with SIGKILL under traffic and started again.
(a) Nothing changed meanwhile: 0 packets lost, and its first pass after the restart does ZERO
    writes (the agent logs "revision N: 0 ops"; a `--once` pass also reports 0 ops).
(b) While it is down: vm3 gets a FIP, a subnet is removed, router2 is deleted. The other nodes
    apply that at once; compute1 keeps its (now stale) state until its agent is back, then applies
    the changes and removes the stale state — from the kernel alone, nothing is stored on the node.
Traffic of router1's FIPs (the changes do not concern them) loses 0 packets throughout."""
from __future__ import annotations

import re
import time

import pytest

from dvrnet.lab.traffic import Flow, Traffic, unconcerned_flows

from .conftest import record
from .helpers import (
    agent_once,
    api,
    assert_zero,
    ext_net,
    fip_of,
    host_diff,
    kill_agent,
    log_since,
    netns,
    ok,
    one,
    rules,
    start_agent,
    subnet_by_name,
    wait_converged,
    wait_for,
)

pytestmark = pytest.mark.root
PASS = re.compile(r"revision (\d+): (\d+) ops")


def _first_pass(mark: str, timeout: float = 20) -> tuple[int, int]:
    m = wait_for(lambda: PASS.search(log_since(mark)), timeout, "the restarted agent's first pass")
    return int(m.group(1)), int(m.group(2))


def _blue_rule(ns: str) -> bool:
    return any(r.get("src") == "100.65.0.0" for r in rules(ns))


def test_s6a_kill_and_restart_nothing_changed(live_lab):
    info = live_lab
    wait_converged(info)
    with Traffic(unconcerned_flows(info), info.state_dir) as tr:
        time.sleep(0.3)
        kill_agent(info, "compute1")
        time.sleep(1.0)
        p, mark = start_agent(info, "compute1")
        info.node("compute1").agent_pid = p.pid
        info.save()
        rev, ops = _first_pass(mark)
        time.sleep(0.5)
        results = tr.stop()
    record("6 agent kill -9 / restart", "nothing changed meanwhile", results)
    assert_zero(results)
    assert ops == 0, f"the restarted agent wrote {ops} ops though nothing changed:\n{log_since(mark)}"
    rc, err = agent_once(info, "compute1")
    assert rc == 0 and PASS.search(err) and PASS.search(err).group(2) == "0", err
    print(f"restart: first pass at revision {rev}: {ops} ops")


def test_s6b_changes_while_down_are_applied_when_back(live_lab):
    info = live_lab
    c = api(info)
    ext = ext_net(c)
    # a subnet to remove later (no gateway namespace needed: nothing sends through it)
    blue = one(c.post("/v2.0/subnets", json={"subnet": {"network_id": ext["id"], "cidr": "100.65.0.0/24",
                                                        "gateway_ip": "100.65.0.1", "ip_version": 4, "name": "blue"}}))
    wait_converged(info)
    c1_fip = next(ns for ns in netns(info, "compute1") if "-fip-" in ns)
    assert _blue_rule(c1_fip)
    r2 = info.router("router2")
    r2_qrouter = f"{info.node('compute1').prefix}qrouter-{r2.id}"
    assert r2_qrouter in netns(info)
    flows = unconcerned_flows(info, exclude_routers={"router2"})
    with Traffic(flows, info.state_dir) as tr:
        time.sleep(0.3)
        kill_agent(info, "compute1")
        # 1. vm3 (compute1) gets a FIP
        vm3 = info.vm("vm3")
        fip = one(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], "subnet_id": subnet_by_name(c, "red")["id"], "port_id": vm3.port_id}}))
        # 2. the blue subnet is removed
        ok(c.delete(f"/v2.0/subnets/{blue['id']}"))
        # 3. router2 is deleted (its FIPs released, its interface removed first)
        for v in info.vms:
            if v.router == "router2" and v.fip:
                ok(c.delete(f"/v2.0/floatingips/{fip_of(c, v.fip)['id']}"))
                v.fip = None
        ok(c.put(f"/v2.0/routers/{r2.id}/remove_router_interface",
                 json={"subnet_id": subnet_by_name(c, "net3-subnet")["id"]}))
        ok(c.delete(f"/v2.0/routers/{r2.id}"))
        wait_converged(info, hosts=("compute2", "network1"))
        time.sleep(1.0)
        # compute1 still holds its stale state: nobody touched it
        assert r2_qrouter in netns(info) and _blue_rule(c1_fip)
        stale = len(host_diff(info, "compute1")[0])
        p, mark = start_agent(info, "compute1")
        info.node("compute1").agent_pid = p.pid
        info.save()
        _rev, ops = _first_pass(mark)
        wait_converged(info, hosts=("compute1",))
        assert r2_qrouter not in netns(info), "router2's qrouter- namespace stayed on compute1"
        assert not _blue_rule(c1_fip), "the removed subnet's rule stayed on compute1"
        time.sleep(0.5)
        results = tr.stop()
    record("6 agent kill -9 / restart", "FIP added, subnet/router removed while down", results)
    assert_zero(results)
    assert ops >= stale > 0, (ops, stale)
    new = [Flow("inet→vm3 (FIP added while down)", "icmp", info.internet_netns, fip["floating_ip_address"])]
    with Traffic(new, info.state_dir) as tr:
        time.sleep(0.5)
        r3 = tr.stop()
    record("6 agent kill -9 / restart", "FIP added while down", r3)
    assert_zero(r3)
    print(f"back after the changes: {stale} differences found, first pass {ops} ops")
