"""The lab's physical world with real packets (root): VXLAN across nodes, the internet behind the
gateways, the distributed-gateway bridge rules, and a clean `down`."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from waiting import wait_for

from .conftest import run_in, unique_prefix

pytestmark = pytest.mark.root


def ping_ok(ns: str, dst: str, count: int = 2) -> bool:
    return run_in(ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "1", "-w", "3", dst).returncode == 0


def arp_replies(ns: str, target: str, src: str) -> list[str]:
    import re
    p = run_in(ns, "arping", "-c", "3", "-W", "0.1", "-w", "1", "-i", "eth0", "-S", src, target)
    return re.findall(r"from ([0-9a-fA-F:]{17})", p.stdout)


def test_world_namespaces_and_info(world):
    spec, info, _, _ = world
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split())
    for ns in spec.static_namespaces() + [f"{spec.prefix}vm1", f"{spec.prefix}vm2", f"{spec.prefix}vm3"]:
        assert ns in names
    assert {n.prefix for n in info.nodes} == {f"{spec.prefix}c1-", f"{spec.prefix}c2-", f"{spec.prefix}n1-"}
    saved = json.loads(Path(spec.state_dir, "lab.json").read_text())
    assert saved["internet_address"] == "192.0.2.10"
    assert {g["address"] for g in saved["gateways"]} == {"203.0.113.1", "198.51.100.1"}
    # every node's bridge namespace has br-ex uplinked to the segment, and the tenant bridges
    for n in info.nodes:
        links = {l["ifname"]: l for l in json.loads(subprocess.run(
            ["ip", "-j", "-n", n.bridge_netns, "link"], capture_output=True, text=True, check=False).stdout)}
        assert links["uplink"].get("master") == "br-ex"
        assert links["br-ex"]["operstate"] in ("UP", "UNKNOWN")
        for net in world[2]:
            assert links[net.vxlan].get("master") == net.bridge
            assert links[net.vxlan]["mtu"] == 1450


def test_vm_to_vm_across_nodes_over_vxlan(world):
    spec, _, _, vms = world
    assert ping_ok(f"{spec.prefix}vm1", vms[1].ip)       # compute1 -> compute2, same network
    assert ping_ok(f"{spec.prefix}vm2", vms[0].ip)
    # a full-size tenant frame (MTU 1450) crosses the VXLAN without fragmentation
    p = run_in(f"{spec.prefix}vm1", "ping", "-n", "-q", "-c", "1", "-W", "1", "-M", "do", "-s", "1422", vms[1].ip)
    assert p.returncode == 0, p.stdout + p.stderr
    # networks are isolated: vm3 (net2) does not reach net1 on L2
    assert run_in(f"{spec.prefix}vm3", "ping", "-n", "-q", "-c", "1", "-W", "0.3", vms[1].ip).returncode != 0


def test_internet_and_gateways(world):
    _spec, info, _, _ = world
    inet = info.internet_netns
    for g in info.gateways:
        assert ping_ok(inet, g.address), g
        assert ping_ok(g.netns, info.internet_address), g
    # a host on the segment reaches the internet through a gateway, which counts it both ways
    red = next(g for g in info.gateways if g.name == "red")
    run_in(info.probe_netns, "ip", "route", "replace", "192.0.2.10/32", "via", red.address, check=True)
    from dvrnet.lab.checks import delta, per_gateway, read_counters
    cns = {g.name: g.netns for g in info.gateways}
    before = read_counters(cns)
    assert ping_ok(info.probe_netns, info.internet_address, count=3)
    d = delta(before, read_counters(cns))
    seen = per_gateway(d, info.probe_addresses[red.subnet], "icmp")
    assert seen.get("red", {}).get("in_src", 0) >= 3 and seen.get("red", {}).get("out_dst", 0) >= 3
    assert "green" not in seen
    run_in(info.probe_netns, "ip", "route", "del", "192.0.2.10/32")


def _add_qr(spec, node_name: str, net, mac: str, ip: str) -> str:
    """A stand-in for a qr- port: a namespace holding the tenant gateway address with the shared MAC,
    plugged into NODE's tenant bridge."""
    node = spec.node_by_name(node_name)
    ns = f"{spec.prefix}qr{node.short}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    run_in(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=True)
    cmds = [["ip", "-n", ns, "link", "add", "qr", "address", mac, "mtu", "1450", "type", "veth", "peer", "name",
             f"dvq{node.short}", "netns", spec.bridge_ns(node)],
            ["ip", "-n", spec.bridge_ns(node), "link", "set", f"dvq{node.short}", "master", net.bridge, "up"],
            ["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "qr"],
            ["ip", "-n", ns, "link", "set", "qr", "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]]
    for c in cmds:
        subprocess.run(c, check=True)
    return ns


def test_distributed_gateway_bridge_rules(world):
    """design-validation §C: each VM's gateway resolves to its own node's qr (ARP for the gateway never
    crosses VXLAN), and frames routed out of a qr toward another node carry that node's own MAC."""
    spec, _info, nets, vms = world
    net1, mac = nets[0], "fa:16:3e:00:00:01"
    q1 = _add_qr(spec, "compute1", net1, mac, "10.0.1.1")
    wait_for(lambda: arp_replies(f"{spec.prefix}vm1", "10.0.1.1", vms[0].ip), 5, "vm1 to resolve its local gateway")
    # only compute1 has a qr: vm2 on compute2 must NOT resolve the gateway across VXLAN
    assert arp_replies(f"{spec.prefix}vm2", "10.0.1.1", vms[1].ip) == []
    q2 = _add_qr(spec, "compute2", net1, mac, "10.0.1.1")
    wait_for(lambda: arp_replies(f"{spec.prefix}vm2", "10.0.1.1", vms[1].ip), 5, "vm2 to resolve its local gateway")
    r1 = arp_replies(f"{spec.prefix}vm1", "10.0.1.1", vms[0].ip)
    r2 = arp_replies(f"{spec.prefix}vm2", "10.0.1.1", vms[1].ip)
    assert len(r1) == 3 and len(r2) == 3      # one reply per request: the local qr only
    # a frame routed by compute1's qr to vm2 leaves compute1 with compute1's node MAC
    subprocess.run(["ip", "-n", q1, "neigh", "replace", vms[1].ip, "lladdr", vms[1].mac, "dev", "qr", "nud", "permanent"],
                   check=True)
    run_in(q1, "ping", "-n", "-q", "-c", "2", "-i", "0.05", "-W", "0.3", vms[1].ip)
    c2 = spec.bridge_ns(spec.node_by_name("compute2"))
    fdb = subprocess.run(["bridge", "-n", c2, "-j", "fdb", "show", "br", net1.bridge], capture_output=True, text=True, check=False).stdout
    entries = json.loads(fdb)
    node1_mac = spec.node_mac(spec.node_by_name("compute1"))
    assert any(e["mac"] == node1_mac and e["ifname"] == net1.vxlan for e in entries), entries
    assert not any(e["mac"] == mac and e["ifname"] == net1.vxlan for e in entries), "gateway MAC flapped onto VXLAN"
    # the VXLAN default remote (head-end replication) is intact
    vx = subprocess.run(["bridge", "-n", c2, "fdb", "show", "dev", net1.vxlan], capture_output=True, text=True, check=False).stdout
    assert "00:00:00:00:00:00 dst" in vx
    for ns in (q1, q2):
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_kernel_log_names_a_mac_shared_between_nodes(world):
    """The detector of the L2 hygiene test (lab/kmsg.py) against the kernel itself: two stand-in
    ports with one MAC and IPv6 on, on compute1 and compute2 of one tenant network (a MAC the guard
    does not rewrite), make the kernel log both complaints for exactly those devices."""
    from dvrnet.lab.kmsg import KernelLog, l2_complaints
    spec, _info, nets, _vms = world
    net2, mac = nets[1], "02:dd:00:00:00:61"
    log = KernelLog()
    made = []
    try:
        for short in ("c1", "c2"):
            node = next(n for n in spec.nodes if n.short == short)
            ns, port = f"{spec.prefix}s6{short}", f"dvs6{short}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
            run_in(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
                   check=True)
            # compute2's bridge-side end carries the MAC too: a local address of compute2's bridge
            peer_mac = ["address", mac] if short == "c2" else []
            subprocess.run(["ip", "-n", ns, "link", "add", "eth0", "address", mac, "mtu", "1450", "type", "veth",
                            "peer", "name", port, *peer_mac, "mtu", "1450", "netns", spec.bridge_ns(node)], check=True)
            subprocess.run(["ip", "-n", spec.bridge_ns(node), "link", "set", port, "master", net2.bridge, "up"],
                           check=True)
        for ns in made:
            subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        want = {"own address", "duplicate address"}
        seen: list = []

        def both_complaints() -> bool:
            run_in(made[0], "arping", "-c", "1", "-w", "0.2", "-I", "eth0", "-U", "10.0.2.99")
            seen.extend(l2_complaints(log.new(), {"eth0", net2.bridge, net2.vxlan}))
            return {c.kind for c in seen} == want
        wait_for(both_complaints, 6, "the kernel to log both complaints", step=0.2)
        assert {c.kind for c in seen} == want, [c.text for c in seen]
        assert all(set(c.devices) & {"eth0", net2.bridge, net2.vxlan} for c in seen)
    finally:
        log.close()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_rebuild_is_idempotent(world):
    from dvrnet.lab.world import add_tenant_networks, add_vms, build_world
    spec, _, nets, vms = world
    t = time.monotonic()
    build_world(spec)
    add_tenant_networks(spec, nets)
    add_vms(spec, vms)
    assert time.monotonic() - t < 5
    assert ping_ok(f"{spec.prefix}vm1", vms[1].ip)


def test_down_leaves_nothing(tmp_path):
    from dvrnet.lab.down import down
    from dvrnet.lab.world import TenantNet, VmSpec, WorldSpec, add_tenant_networks, add_vms, build_world
    prefix = unique_prefix()
    spec = WorldSpec(prefix=prefix, state_dir=str(tmp_path / "state"))
    try:
        t = time.monotonic()
        build_world(spec)
        net = TenantNet("33333333-aaaa-4bbb-8ccc-000000000003", 2003)
        add_tenant_networks(spec, [net])
        add_vms(spec, [VmSpec("vm1", "compute2", net.id, "fa:16:3e:bb:00:01", "10.0.3.11", 24, "10.0.3.1")])
        build_s = time.monotonic() - t
        assert build_s < 10, build_s
        pids = [int(Path(spec.pid_dir, f).read_text()) for f in os.listdir(spec.pid_dir) if f.endswith(".pid")]
        assert len(pids) == 2 and all(os.path.exists(f"/proc/{p}") for p in pids)
    finally:
        rep = down(prefix, spec.state_dir)
    assert rep.leftover_namespaces == []
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
    assert not [n for n in names if n.startswith(prefix)]

    def stopped(p: int) -> bool:
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass
        stat = Path(f"/proc/{p}/stat").read_text() if os.path.exists(f"/proc/{p}/stat") else ""
        return not stat or stat.rsplit(")", 1)[1].split()[0] == "Z"
    for p in pids:
        wait_for(lambda p=p: stopped(p), 5, f"process {p} to stop")
    assert not os.path.exists(spec.state_dir)
    # down again (e.g. after a crash that already lost everything) is a no-op
    assert down(prefix, spec.state_dir).namespaces == []
