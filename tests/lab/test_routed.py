"""Routed mode end to end (`lab up --routed`): a ToR running BIRD, one agent per node announcing
its FIPs. `lab check` passes (every FIP from the internet, the ToR's route for each FIP via its
node, no public address on fg-/qg-, SNAT); a FIP moved to a VM on another node under ping every
10 ms (gap counted: the ToR switches next hop when the new node announces, the old node
blackholes it meanwhile); kill -9 of an agent withdraws nothing and loses nothing, and the
restarted agent adopts the running BIRD (same pid)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from .conftest import unique_prefix

pytestmark = [pytest.mark.root, pytest.mark.skipif(not shutil.which("bird"), reason="bird2 not installed")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = unique_prefix()
    state = str(tmp_path_factory.mktemp("routed") / "state")
    try:
        yield up(prefix=prefix, state_dir=state, routed=True)
    finally:
        down(prefix, state)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                          check=False).stdout.split() if n.startswith(prefix)]
        assert not left, f"namespaces left behind: {left}"


def _bird_pids(lab) -> dict[str, int]:
    from dvrnet.kernel.process import scan
    from dvrnet.reconcile.ownership import Ownership
    return {ns: pid for n in lab.nodes for ns, pid, _a, home in scan(Ownership(n.prefix)) if home}


def test_lab_check_passes(lab):
    from dvrnet.lab.routed_checks import run_routed_checks
    assert lab.tor == {**lab.tor, "address": "100.64.0.254", "asn": 65000} and lab.tor["netns"].startswith(lab.prefix)
    assert all(n.private_address and n.private_address.startswith("100.64.0.") for n in lab.nodes if n.mode == "dvr")
    rows = run_routed_checks(lab)
    bad = [f"{r.check}: expected {r.expected}, saw {r.observed}" for r in rows if not r.passed]
    assert not bad, "\n".join(bad)
    assert len(rows) >= 30


def test_fip_move_across_nodes_under_ping(lab):
    """vm2's FIP (compute2) moves to vm3 (compute1, same router): ping every 10 ms from the internet."""
    from dvrnet.lab.routed_checks import tor_routes
    from dvrnet.lab.steps import api, ok, refresh
    from dvrnet.lab.traffic import Flow, Traffic
    vm2, vm3 = lab.vm("vm2"), lab.vm("vm3")
    fip = vm2.fip
    c = api(lab)
    f = next(x for x in ok(c.get("/v2.0/floatingips"))["floatingips"] if x["floating_ip_address"] == fip)
    c1 = lab.node("compute1").private_address
    with Traffic([Flow("inet→fip", "icmp", lab.internet_netns, fip)], lab.state_dir) as tr:
        time.sleep(1.0)
        t0 = time.monotonic()
        ok(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": vm3.port_id}}))
        while tor_routes(lab).get(fip) != c1 and time.monotonic() - t0 < 10:
            time.sleep(0.005)
        switched = time.monotonic() - t0
        time.sleep(1.5)
        res = tr.stop()["inet→fip"]
    print(f"\nFIP move across nodes: ToR next hop switched {switched * 1000:.0f} ms after the API call; "
          f"{res.lost} of {res.sent} pings (10 ms) lost, longest gap {res.max_gap_s * 1000:.0f} ms")
    assert tor_routes(lab).get(fip) == c1
    assert res.sent > 200 and res.lost <= 30, res      # the gap is counted; the target (<=100 ms) is a bench row
    ok(c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": vm2.port_id}}))
    refresh(lab, c)
    c.close()


def test_agent_kill9_withdraws_nothing_and_adopts_bird(lab):
    from dvrnet.lab.routed_checks import tor_routes
    from dvrnet.lab.steps import restart_agents
    from dvrnet.lab.traffic import Traffic, fip_flows
    # the previous test moved a FIP back: let the ToR settle on every FIP via its node first
    want = {v.fip: lab.node(v.node).private_address for v in lab.vms if v.fip}
    end = time.monotonic() + 15
    while time.monotonic() < end and {a: tor_routes(lab).get(a) for a in want} != want:
        time.sleep(0.05)
    before, pids = tor_routes(lab), _bird_pids(lab)
    assert {a: before.get(a) for a in want} == want, before
    assert len(pids) == 4                        # compute1, compute2 fip-; network1's two snat-
    n = lab.node("compute1")
    with Traffic(fip_flows(lab, ["vm1"]), lab.state_dir) as tr:
        time.sleep(0.5)
        os.kill(n.agent_pid, signal.SIGKILL)
        time.sleep(1.5)
        assert tor_routes(lab) == before          # BIRD runs on: nothing withdrawn
        restart_agents(lab)
        time.sleep(1.0)
        res = tr.stop()["inet→vm1"]
    assert res.lost == 0, res
    assert _bird_pids(lab) == pids         # adopted, never restarted
    assert tor_routes(lab) == before
