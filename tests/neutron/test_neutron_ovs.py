"""Neutron mode on Open vSwitch (issue 14): `dvrnet lab up --control neutron --port-kind ovs`, as
an operator runs it. Every node's `l3_agent.ini` says `interface_driver = openvswitch` with
`[OVS] integration_bridge = br-int` and `ovsdb_connection` = that node's own ovsdb-server
(lab/ovs_world.py: ovs-vswitchd on the userspace datapath, the stand-in OVS L2 agent); the agents
plug every router port as an internal port of br-int with Neutron's external_ids, the L2 stand-in
moves each out of the dead VLAN by asking Neutron's API which network the port is on, and the
lab's traffic checks (every FIP in and out, SNAT, FIP to FIP) pass; Neutron shows the FIPs ACTIVE.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import needs
from dvrnet.lab import steps
from dvrnet.lab.info import LabInfo
from dvrnet.plan.names import OVS_OWNER_KEY

pytestmark = pytest.mark.root
DVRNET = [sys.executable, "-m", "dvrnet.cli"]
ROUTER_PORTS = ("qr-", "qg-", "sg-", "fg-")


@pytest.fixture(scope="module")
def lab():
    needs.neutron_lab()
    prefix = f"dvo{os.getpid() % 100000}-"
    base = tempfile.mkdtemp(prefix=prefix)      # not under pytest's tmp root (0700): PostgreSQL runs as nobody
    os.chmod(base, 0o755)
    state = os.path.join(base, "state")
    try:
        p = subprocess.run([*DVRNET, "lab", "up", "--prefix", prefix, "--state-dir", state, "--control", "neutron",
                            "--port-kind", "ovs"], capture_output=True, text=True, timeout=900, check=False)
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
        yield LabInfo.load(state)
    finally:
        d = subprocess.run([*DVRNET, "lab", "down", "--prefix", prefix, "--state-dir", state],
                           capture_output=True, text=True, timeout=180, check=False)
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        shutil.rmtree(base, ignore_errors=True)
        assert d.returncode == 0, d.stderr
        assert not [n for n in names if n.startswith(prefix)]
        assert prefix not in ps and state not in ps, "lab processes (agents, ovs daemons, neutron) left behind"


def _vsctl(db: str, *args: str) -> str:
    return subprocess.run(["ovs-vsctl", f"--db={db}", *args], capture_output=True, text=True, check=True).stdout


def test_router_ports_are_internal_ports_of_br_int_and_fips_ping(lab):
    info = lab
    assert info.port_kind == "ovs"
    from dvrnet.lab.neutron import NeutronLab
    nlab = NeutronLab.load(info.state_dir)
    for n in info.nodes:
        ini = Path(nlab.agent_configs[n.name]).read_text()
        assert "interface_driver = openvswitch" in ini and f"ovsdb_connection = {n.ovs_db}" in ini, ini
    c = steps.api(info)
    try:
        neutron_ports = {p["id"]: p for p in steps.ok(c.get("/v2.0/ports"))["ports"]}
        fips = steps.ok(c.get("/v2.0/floatingips"))["floatingips"]
    finally:
        c.close()
    assert fips and all(f["status"] == "ACTIVE" for f in fips), [(f["floating_ip_address"], f["status"]) for f in fips]
    kinds_seen: set[str] = set()
    for n in info.nodes:
        ifs = json.loads(_vsctl(n.ovs_db, "-f", "json", "--columns=name,type,external_ids", "list", "Interface"))
        tags = {r[0]: r[1] for r in json.loads(_vsctl(n.ovs_db, "-f", "json", "--columns=name,tag", "list", "Port"))["data"]}
        mine = {r[0]: (r[1], dict(r[2][1])) for r in ifs["data"] if r[0].startswith(ROUTER_PORTS)}
        assert mine, f"{n.name}: no router port on br-int"
        for name, (typ, ids) in mine.items():
            assert typ == "internal", (n.name, name, typ)
            assert ids.get(OVS_OWNER_KEY) == n.prefix and ids.get("iface-status") == "active", (name, ids)
            port = neutron_ports.get(ids.get("iface-id"))
            assert port is not None, f"{n.name}: {name}'s iface-id {ids.get('iface-id')} is no Neutron port"
            assert ids.get("attached-mac") == port["mac_address"], (name, ids, port["mac_address"])
            assert isinstance(tags[name], int) and tags[name] != 4095, f"{n.name}: {name} left in the dead VLAN"
            kinds_seen.add(name[:3])
    assert kinds_seen == set(ROUTER_PORTS), kinds_seen
    p = subprocess.run([*DVRNET, "lab", "check", "--state-dir", info.state_dir, "--json"],
                       capture_output=True, text=True, timeout=300, check=False)
    out = json.loads(p.stdout)
    bad = [r for r in out["rows"] if not r["passed"]]
    assert p.returncode == 0 and out["passed"] and not bad, bad
    for f in fips:          # each FIP Neutron has was pinged from the internet through br-int, and passed
        inbound = [r for r in out["rows"] if r["check"].startswith("internet → ") and f"FIP {f['floating_ip_address']} " in r["check"]]
        assert inbound and all(r["passed"] for r in inbound), (f["floating_ip_address"], inbound)
