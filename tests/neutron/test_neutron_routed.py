"""Routed mode (S6) in Neutron mode (issue 15), against a real neutron-server 25.2.3 with RabbitMQ
and PostgreSQL: `lab up --routed --control neutron` builds the routed figure through Neutron with
the real `openstack` client (the external network tagged `dvrnet:routed` with `network set --tag`,
the private subnet typed `network:floatingip_agent_gateway` + `network:router_gateway` with the
ToR as its gateway, each router gateway set with a private and a public SNAT fixed IP) and one
`dvrnet neutron-agent` per node with the routed settings in its l3_agent.ini; the ToR runs BIRD.

One lab for the module. `lab check` runs the routed checks (every FIP from the internet, the
ToR's route for each FIP via its node, for each SNAT address via its qg-, no public address on
any fg-/qg-, SNAT, FIP->FIP through the ToR); a FIP created with the client is announced by its
node; the tag removed with the client turns the network back to l2 at the agents' next full sync
(the routed lab's `neutron_resync_interval`, lab/neutron.py ROUTED_RESYNC: the tag API notifies
nothing) — the last test, it leaves the lab l2.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import needs
from dvrnet.lab import steps
from dvrnet.lab.checks import ping
from dvrnet.lab.info import LabInfo
from dvrnet.lab.neutron import ROUTED_RESYNC, NeutronLab, openstack
from dvrnet.lab.routed_checks import tor_routes
from waiting import wait_for

pytestmark = pytest.mark.root
DVRNET = [sys.executable, "-m", "dvrnet.cli"]
CONVERGE = 90.0         # one change through Neutron on a loaded 2-core machine


@pytest.fixture(scope="module")
def lab():
    needs.neutron_lab(bird=True)
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = f"dvn{os.getpid() % 100000}-"
    base = tempfile.mkdtemp(prefix=prefix)      # not under pytest's tmp root (0700): PostgreSQL runs as nobody
    os.chmod(base, 0o755)
    state = os.path.join(base, "state")
    try:
        t0 = time.monotonic()
        info = up(prefix, state, routed=True, control="neutron", progress=print)
        print(f"routed neutron lab up in {time.monotonic() - t0:.1f}s")
        yield info
    finally:
        rep = down(prefix, state)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                          check=False).stdout.split() if n.startswith(prefix)]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        shutil.rmtree(base, ignore_errors=True)
        assert not left and not rep.leftover_namespaces, f"namespaces left behind: {left}"
        assert state not in ps, "lab processes left behind"


def client(info: LabInfo, *commands: str) -> list:
    lab = NeutronLab.load(info.state_dir)
    assert lab is not None
    return openstack(lab.api_url, list(commands))


def birds(info: LabInfo) -> list[str]:
    """The command lines of the BIRDs dvrnet runs in the lab's node namespaces."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode()) == "bird" and any(
                f"/run/dvrnet/{n.prefix}".encode() in a for a in argv for n in info.nodes):
            out.append(" ".join(a.decode() for a in argv))
    return out


def test_lab_check_passes(lab):
    p = subprocess.run([*DVRNET, "lab", "check", "--state-dir", lab.state_dir, "--json"], capture_output=True,
                       text=True, timeout=300, check=False)
    doc = json.loads(p.stdout)
    rows = doc["rows"]
    bad = [r for r in rows if not r["passed"]]
    assert p.returncode == 0 and doc["passed"] and not bad, bad or p.stderr
    names = [r["check"] for r in rows]
    fips = [v for v in lab.vms if v.fip]
    assert len(fips) == 6 and all(any(f"FIP {v.fip}" in n and n.startswith("ToR route") for n in names) for v in fips)
    assert sum(n.startswith("ToR route for router") for n in names) == 2        # both SNAT addresses
    assert sum("holds no public address" in n for n in names) == 4     # fg- of both compute nodes, qg- of both routers
    # a BIRD per routed namespace: the compute nodes' fip- and network1's two snat- (network1 hosts no VM)
    assert len(birds(lab)) == 4, birds(lab)


def test_the_client_shows_the_tag_and_the_service_types(lab):
    net, sub = client(lab, "network show public -c tags -f json", "subnet show private -c service_types -f json")
    assert net == {"tags": ["dvrnet:routed"]}
    assert sorted(sub["service_types"]) == ["network:floatingip_agent_gateway", "network:router_gateway"]


def test_a_fip_made_with_the_client_is_announced_by_its_node(lab):
    vm = next(v for v in lab.vms if v.name == "vm3")        # compute1, no FIP
    assert vm.fip is None
    node = lab.node(vm.node)
    t0 = time.monotonic()
    (fip,) = client(lab, "floating ip create --subnet green --port vm3-port --description routed-test public -f json")
    addr = fip["floating_ip_address"]
    try:
        via = wait_for(lambda: tor_routes(lab).get(addr), CONVERGE, f"the ToR's route for {addr}", step=0.1)
        print(f"FIP {addr} on the ToR {time.monotonic() - t0:.2f}s after the client returned")
        assert via == node.private_address, f"ToR routes {addr} via {via}, not {vm.node} ({node.private_address})"
        r = ping(lab.internet_netns, addr)
        assert not r.error and r.received == r.sent > 0, r
        wait_for(lambda: steps.ok(steps.api(lab).get(f"/v2.0/floatingips/{fip['id']}"))["floatingip"]["status"]
                 == "ACTIVE", CONVERGE, "the FIP ACTIVE in Neutron", step=0.5)
    finally:
        client(lab, f"floating ip delete {fip['id']}")
    wait_for(lambda: addr not in tor_routes(lab), CONVERGE, f"{addr} withdrawn from the ToR", step=0.1)


def test_tag_removed_turns_the_network_l2_at_the_next_full_sync(lab):
    assert tor_routes(lab) and birds(lab)
    client(lab, "network unset --tag dvrnet:routed public")
    t0 = time.monotonic()
    wait_for(lambda: not birds(lab) and not tor_routes(lab), ROUTED_RESYNC + CONVERGE,
             "no BIRD on any node and nothing announced to the ToR", step=0.25)
    print(f"tag removed: network l2 on every node {time.monotonic() - t0:.1f}s later "
          f"(neutron_resync_interval {ROUTED_RESYNC:.0f}s)")
    fip = next(v for v in lab.vms if v.fip and v.node == "compute1")
    ns = next(n for n in steps.node_namespaces(lab, "compute1", "fip-"))
    k = steps.kernel(ns)
    fg = next(d for d in k.addresses("fg-"))
    assert any(r.get("dst") == f"{fip.fip}" for r in k.table("main"))      # the FIP's /32 stays (l2 layout)
    proxy = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", f"net.ipv4.conf.{fg}.proxy_arp"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert proxy == "1"                                                      # l2: proxy ARP on fg-
