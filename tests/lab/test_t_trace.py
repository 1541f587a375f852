"""`dvrnet trace` on the seed lab (root): vm1 -> 192.0.2.10 and vm2 -> 192.0.2.10 agree with the
kernel hop by hop and leave by the red resp. green gateway — and the gateway counters see the
packets go exactly there; a FIP -> FIP trace crosses the segment to the other node without a
gateway; a deliberately broken table makes the trace report the disagreeing hop; the CLI exits 1
on disagreement."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dvrnet.lab import steps
from dvrnet.lab.checks import run_checks
from dvrnet.plan import names
from dvrnet.plan.numbers import subnet_table
from dvrnet.trace import Tracer

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = f"dvr{os.getpid() % 100000}-"
    state = str(tmp_path_factory.mktemp("trace") / "state")
    try:
        yield up(prefix, state)
    finally:
        down(prefix, state)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
                if n.startswith(prefix)]
        assert not left, left


def test_trace_vm1_vm2_to_the_internet(lab):
    info = lab
    steps.wait_converged(info)
    tr = Tracer(info)
    for vm, gw in (("vm1", "red"), ("vm2", "green")):
        t = tr.trace(vm, info.internet_address)
        assert t.agree, t.text()
        assert t.gateway == gw, t.text()
        v = info.vm(vm)
        kinds = [h.ns[len(info.node(v.node).prefix):].split("-")[0] for h in t.hops]
        assert kinds == ["qrouter", "fip"], t.text()
        assert all(h.node == v.node for h in t.hops)
        assert t.hops[0].mark and t.hops[1].src == v.fip and t.hops[1].via == info.gateways[
            [g.name for g in info.gateways].index(gw)].address
    # the packets really take that path (gateway counters, both directions)
    rows = run_checks(info, steps.vm_checks(info, ["vm1", "vm2"], groups=("FIP → internet",)), segment=False)
    rows = [r for r in rows if r.group == "FIP → internet"]
    assert len(rows) == 4 and all(r.passed for r in rows), [(r.check, r.observed) for r in rows]
    assert all(("red" if r.check.startswith("vm1") else "green") in r.observed for r in rows)


def test_trace_fip_to_fip_and_snat(lab):
    info = lab
    tr = Tracer(info)
    vm1, vm2, vm3 = info.vm("vm1"), info.vm("vm2"), info.vm("vm3")
    t = tr.trace("vm1", vm2.fip)
    assert t.agree and t.gateway is None, t.text()
    assert [h.node for h in t.hops] == ["compute1", "compute1", "compute2", "compute2"], t.text()
    assert t.end.startswith(f"delivered to {vm2.fixed_ip}"), t.text()
    t = tr.trace("vm3", info.internet_address)          # no FIP: SNAT on network1
    assert t.agree, t.text()
    assert [h.node for h in t.hops] == ["compute1", "network1"], t.text()
    assert t.gateway == info.gateway_for(info.router("router1").snat_ips[0]).name
    assert vm1.node == vm3.node


def test_trace_reports_a_broken_hop(lab):
    info = lab
    green = next(g for g in info.gateways if g.name == "green")
    red = next(g for g in info.gateways if g.name == "red")
    ns = next(n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
              if n.startswith(info.node("compute2").prefix + "fip-"))
    fg = next(iter(steps.kernel(ns).addresses("fg-")))
    table = str(subnet_table(__import__("ipaddress").ip_network(green.subnet)))
    # stop compute2's agent first so it does not repair the table under us
    steps.stop_process(info.node("compute2").agent_pid)
    subprocess.run(["ip", "-n", ns, "route", "replace", "default", "via", red.address, "dev", fg, "onlink",
                    "table", table, "proto", "dvrnet"], check=True)
    t = Tracer(info).trace("vm2", info.internet_address)
    assert not t.agree, t.text()
    bad = [h for h in t.hops if not h.agree]
    assert len(bad) == 1 and bad[0].ns == ns and bad[0].kernel.gateway == red.address and bad[0].via == green.address
    assert "DISAGREE" in t.text()
    cli = subprocess.run([sys.executable, "-m", "dvrnet.cli", "trace", "vm2", info.internet_address,
                          "--state-dir", info.state_dir, "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert cli.returncode == 1, cli.stderr
    out = json.loads(cli.stdout)
    assert out["agree"] is False and out["gateway"] == "green"
    ok = subprocess.run([sys.executable, "-m", "dvrnet.cli", "trace", "vm1", info.internet_address,
                         "--state-dir", info.state_dir], capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0 and "leaves by gateway red" in ok.stdout, ok.stdout + ok.stderr
    assert names.FIP_NS in ok.stdout
