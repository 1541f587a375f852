"""`dvrnet lab up --port-kind ovs-veth` and `dvrnet lab check` as an operator runs them (issue 14):
every node runs its own ovs-vswitchd (userspace datapath) in its bridge namespace, router ports
are veth pairs whose bridge end is a port of br-int with Neutron's external_ids, the namespace
end transmits with checksum offload off, the stand-in L2 agent moved every port out of the dead
VLAN, and every traffic check passes. An ovs-vswitchd killed and started again leaves the veths
in place: traffic is back once it runs. `lab down` stops every daemon by pid."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvrnet.lab import ovs as labovs
from dvrnet.lab.info import LabInfo
from dvrnet.lab.traffic import Traffic, fip_flows
from dvrnet.plan.names import OVS_OWNER_KEY

from .conftest import unique_prefix

pytestmark = pytest.mark.root
DVRNET = [sys.executable, "-m", "dvrnet.cli"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    prefix = unique_prefix()
    state = str(tmp_path_factory.mktemp("ovs") / "state")
    try:
        p = subprocess.run([*DVRNET, "lab", "up", "--prefix", prefix, "--state-dir", state, "--port-kind", "ovs-veth"],
                           capture_output=True, text=True, timeout=180, check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        yield LabInfo.load(state)
    finally:
        d = subprocess.run([*DVRNET, "lab", "down", "--prefix", prefix, "--state-dir", state],
                           capture_output=True, text=True, timeout=120, check=False)
        assert d.returncode == 0, d.stderr
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
        assert not [n for n in names if n.startswith(prefix)]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        assert prefix not in ps and state not in ps, "lab processes (agents, ovs daemons) left behind"


def _vsctl(db: str, *args: str) -> str:
    return subprocess.run(["ovs-vsctl", f"--db={db}", *args], capture_output=True, text=True, check=True).stdout


def test_lab_check_passes_with_ovs_veth_ports(lab):
    info = lab
    assert info.port_kind == "ovs-veth"
    for n in info.nodes:
        assert n.ovs_db and os.path.exists(n.ovs_db.split(":", 1)[1])
        pids = subprocess.run(["ip", "netns", "pids", n.bridge_netns], capture_output=True, text=True,
                              check=False).stdout.split()
        daemons = sorted(Path(f"/proc/{p}/comm").read_text().strip() for p in pids if os.path.exists(f"/proc/{p}/comm"))
        assert daemons.count("ovs-vswitchd") == 1 and daemons.count("ovsdb-server") == 1, daemons
        ifs = json.loads(_vsctl(n.ovs_db, "-f", "json", "--columns=name,type,external_ids", "list", "Interface"))
        ports = json.loads(_vsctl(n.ovs_db, "-f", "json", "--columns=name,tag", "list", "Port"))
        tags = {r[0]: r[1] for r in ports["data"]}
        mine = {r[0]: dict(r[2][1]) for r in ifs["data"] if r[0].startswith("dv-")}
        assert mine and all(ids.get(OVS_OWNER_KEY) == n.prefix and ids.get("iface-status") == "active"
                            and ids.get("iface-id") and ids.get("attached-mac") for ids in mine.values()), mine
        assert all(isinstance(tags[p], int) and tags[p] != 4095 for p in mine), tags
        assert all(r[1] == "" for r in ifs["data"] if r[0] in mine)
    p = subprocess.run([*DVRNET, "lab", "check", "--state-dir", info.state_dir, "--json"],
                       capture_output=True, text=True, timeout=180, check=False)
    out = json.loads(p.stdout)
    bad = [r for r in out["rows"] if not r["passed"]]
    assert p.returncode == 0 and out["passed"] and not bad and len(out["rows"]) > 60, bad


def test_veth_ports_survive_an_ovs_vswitchd_restart(lab):
    info = lab
    n = info.node("compute1")
    inst = labovs.Instance(n.bridge_netns, os.path.dirname(n.ovs_db.split(":", 1)[1]))
    flows = fip_flows(info, [v.name for v in info.vms if v.node == "compute1"])
    with Traffic(flows, info.state_dir) as tr:
        time.sleep(0.5)
        t = time.monotonic()
        labovs.kill_vswitchd(inst)
        time.sleep(1.0)
        labovs.start_vswitchd(inst)
        down_s = time.monotonic() - t
        time.sleep(4)
        results = tr.stop()
    for r in results.values():
        print(f"{r.name}: gap {r.max_gap_s:.2f} s with ovs-vswitchd down {down_s:.2f} s")
        assert r.received > 0 and not r.error and r.max_gap_s - down_s < 5.0, r.line()


def test_trace_both_ways_on_ovs_veth_ports(lab):
    """`dvrnet trace` on an OVS lab (issue 14): the trace plans each node as its agent does (the
    lab's port kind: fg-/qr- are veths whose bridge ends are ports of br-int), so every VM's path
    out and every FIP's path in agree with the kernel hop by hop; the inbound first hop checks
    fg-'s port on br-int (type, Neutron's external_ids, as OVSDB has them) and the gateway's real
    ARP for the FIP, answered through br-int by exactly fg-'s MAC. The CLI exits 0 on both."""
    from dvrnet.trace import lab_tracer
    info = lab
    tr = lab_tracer(info)
    assert info.port_kind in ("ovs", "ovs-veth")
    assert all(n.cfg is not None and n.cfg.port_kind == info.port_kind for n in tr.nodes.values())
    gw_of = {g.address: g.name for g in info.gateways}
    for v in info.vms:
        t = tr.trace(v.name, info.internet_address)
        assert t.agree and t.gateway in gw_of.values(), t.text()
    fipped = [v for v in info.vms if v.fip]
    assert fipped
    for v in fipped:
        t = tr.inbound(v.fip or "", info.internet_address)
        assert t.agree, t.text()
        assert t.end.startswith(f"delivered to {v.fixed_ip} on qr-"), t.end
        first = t.hops[0]
        assert first.node == v.node and first.iif.startswith("fg-")
        plug = next(c for c in first.checks if c.what == f"Open vSwitch port of {first.iif}")
        if info.port_kind == "ovs-veth":      # the veth's bridge end is the port
            assert plug.ok and plug.got.startswith("dv-") and " on br-int, type system, " in plug.got, plug
        else:                                 # fg- itself, an internal port moved into the namespace
            assert plug.ok and plug.got.startswith(f"{first.iif} on br-int, type internal, "), plug
        arp = next(c for c in first.checks if c.what.startswith(f"ARP for {v.fip} from "))
        mac = next(c for c in first.checks if c.what == f"MAC of {first.iif}")
        assert arp.ok and arp.got == mac.got, t.text()
    v = fipped[0]
    env = {**os.environ, "DVRNET_LAB_STATE": info.state_dir}
    for argv in (["--inbound", v.fip or "", "--from", info.internet_address], [v.name, info.internet_address]):
        p = subprocess.run([*DVRNET, "trace", "--state-dir", info.state_dir, *argv], capture_output=True, text=True,
                           env=env, timeout=60, check=False)
        assert p.returncode == 0 and "model and kernel agree on every hop" in p.stdout, p.stdout + p.stderr
