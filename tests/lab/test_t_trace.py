"""`dvrnet trace` on the seed lab (root): vm1 -> 192.0.2.10 and vm2 -> 192.0.2.10 agree with the
kernel hop by hop and leave by the red resp. green gateway — and the gateway counters see the
packets go exactly there; a FIP -> FIP trace crosses the segment to the other node without a
gateway; `trace --inbound FIP` walks from the FIP node's fg- (proxy ARP, asked for real from the
gateway) to the VM and back out for every FIP, and names the first wrong hop for each fault
planted one at a time (a missing /32, a missing map element, proxy ARP off, a wrong neighbour);
on one node from the server's view (`--host`, as on a real node); a deliberately broken table
makes the trace report the disagreeing hop; the CLI exits 1 on disagreement."""
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
from dvrnet.trace import lab_tracer

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
    tr = lab_tracer(info)
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
    tr = lab_tracer(info)
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


def _ns_of(info, node: str, kind: str) -> list[str]:
    return [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
            if n.startswith(info.node(node).prefix + kind)]


def _sh(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True)


def test_inbound_every_fip_both_ways(lab):
    info = lab
    steps.wait_converged(info)
    tr = lab_tracer(info)
    for v in info.vms:
        if not v.fip:
            continue
        t = tr.inbound(v.fip, info.internet_address)
        assert t.agree and t.first_wrong is None, t.text()
        assert [h.leg for h in t.hops] == ["in", "in", "out", "out"], t.text()
        assert {h.node for h in t.hops} == {v.node}, t.text()
        first = t.hops[0]
        assert first.iif.startswith("fg-") and "-fip-" in first.ns
        asked = [c for c in first.checks if c.what.startswith(f"ARP for {v.fip}")]
        assert asked and asked[0].ok, t.text()              # the gateway really got one answer, from fg-
        assert f"by {first.iif} of {v.node}" in t.entry
        assert t.hops[1].dst == v.fixed_ip and t.hops[2].src == v.fixed_ip and t.hops[3].src == v.fip
        assert t.end.startswith(f"delivered to {v.fixed_ip}") and t.gateway == v.fip_subnet, t.text()


def test_inbound_names_each_planted_fault(lab):
    """Faults planted one at a time on vm1's path (its node's agent stopped so it does not repair
    them): each is named as the first wrong hop, with the object at fault; restored, the trace
    is right again."""
    import signal
    info = lab
    steps.wait_converged(info)
    v = info.vm("vm1")
    node = info.node(v.node)
    healthy = lab_tracer(info).inbound(v.fip, info.internet_address)
    assert healthy.agree, healthy.text()
    fip_ns, q_ns = healthy.hops[0].ns, healthy.hops[1].ns
    fg, fpr, qr = healthy.hops[0].iif, healthy.hops[0].dev, healthy.hops[1].dev
    rfp_ip = healthy.hops[0].via
    faults = [
        ("missing /32", 1, f"{v.fip} routed out of another device",
         ("ip", "route", "del", f"{v.fip}/32", "table", "main", "proto", "dvrnet"),
         ("ip", "route", "replace", f"{v.fip}/32", "via", rfp_ip, "dev", fpr, "onlink", "proto", "dvrnet"), fip_ns),
        ("missing map element", 2, f"fip2fixed[{v.fip}]",
         ("nft", "delete", "element", "ip", "dvrnet", "fip2fixed", f"{{ {v.fip} }}"),
         ("nft", "add", "element", "ip", "dvrnet", "fip2fixed", f"{{ {v.fip} : {v.fixed_ip} }}"), q_ns),
        ("proxy ARP off", 1, f"proxy ARP on {fg}",
         ("sysctl", "-qw", f"net.ipv4.conf.{fg}.proxy_arp=0"),
         ("sysctl", "-qw", f"net.ipv4.conf.{fg}.proxy_arp=1"), fip_ns),
        ("wrong neighbour", 2, f"neighbour {v.fixed_ip} on {qr}",
         ("ip", "neigh", "replace", v.fixed_ip, "lladdr", "02:00:00:00:0d:0d", "dev", qr, "nud", "permanent"),
         ("ip", "neigh", "replace", v.fixed_ip, "lladdr", v.mac, "dev", qr, "nud", "permanent"), q_ns),
    ]
    os.kill(node.agent_pid, signal.SIGSTOP)
    try:
        for name, hop, what, plant, restore, ns in faults:
            _sh(ns, *plant)
            try:
                t = lab_tracer(info).inbound(v.fip, info.internet_address)
                assert not t.agree and t.first_wrong == hop, (name, t.text())
                bad = t.hops[hop - 1]
                assert bad.ns == ns, (name, t.text())
                assert any(c.what.startswith(what) and not c.ok for c in bad.checks), (name, t.text())
                assert f"first wrong hop: {hop} " in t.text() and what in t.text().split("first wrong hop:")[1]
                out = json.loads(t.to_json())
                assert out["first_wrong"] == hop and out["agree"] is False
            finally:
                _sh(ns, *restore)
            t = lab_tracer(info).inbound(v.fip, info.internet_address)
            assert t.agree, (f"after restoring {name}", t.text())
    finally:
        os.kill(node.agent_pid, signal.SIGCONT)
    steps.wait_converged(info)


def test_inbound_on_one_node_from_the_server_view(lab):
    """`--host`: what `dvrnet trace` does on a real node — only that node's desired state (from the
    server's view of it) and its kernel; a FIP of another node ends at the edge, exit 1."""
    info = lab
    v = info.vm("vm1")
    env = {**os.environ, "DVRNET_LAB_STATE": info.state_dir}
    cli = subprocess.run([sys.executable, "-m", "dvrnet.cli", "trace", "--host", v.node, "--server", info.server_url,
                          "--netns-prefix", info.node(v.node).prefix, "--bridge-netns", info.node(v.node).bridge_netns,
                          "--dvr-mac", info.node(v.node).node_mac, "--inbound", v.fip, "--json"],
                         capture_output=True, text=True, timeout=60, check=False, env=env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    out = json.loads(cli.stdout)
    assert out["agree"] and out["direction"] == "inbound" and len(out["hops"]) == 4
    assert out["dst"] == next(g.address for g in info.gateways if g.name == v.fip_subnet)   # default --from
    assert not any(c["what"].startswith("ARP for") for c in out["hops"][0]["checks"])      # no segment here
    other = next(x for x in info.vms if x.fip and x.node != v.node)
    cli = subprocess.run([sys.executable, "-m", "dvrnet.cli", "trace", "--host", v.node, "--inbound", other.fip],
                         capture_output=True, text=True, timeout=60, check=False, env=env)
    assert cli.returncode == 1 and f"hosted on {other.node}: not visible from here" in cli.stdout, cli.stdout + cli.stderr
    bad = subprocess.run([sys.executable, "-m", "dvrnet.cli", "trace", "--inbound", "203.0.113.250",
                          "--state-dir", info.state_dir], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "no floating IP 203.0.113.250" in bad.stderr, bad.stderr


def test_show_svg_of_compute1_with_the_inbound_path(lab, tmp_path):
    """`dvrnet show compute1 --svg FILE --inbound FIP` on the running lab: a group per namespace the
    node really has, an edge per link, the path of vm1's FIP highlighted, nothing marked as differing."""
    import xml.etree.ElementTree as ET
    info = lab
    steps.wait_converged(info)
    v = info.vm("vm1")
    out = tmp_path / "compute1.svg"
    env = {**os.environ, "DVRNET_LAB_STATE": info.state_dir}
    cli = subprocess.run([sys.executable, "-m", "dvrnet.cli", "show", "compute1", "--svg", str(out),
                          "--inbound", v.fip, "--from", info.internet_address],
                         capture_output=True, text=True, timeout=60, check=False, env=env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "0 objects differing" in cli.stdout, cli.stdout
    root = ET.parse(out).getroot()
    ns_tag = "{http://www.w3.org/2000/svg}"
    groups = {g.get("data-ns") for g in root.iter(f"{ns_tag}g") if "ns" in (g.get("class") or "").split()}
    node = info.node("compute1")
    real = {n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
            if n.startswith(node.prefix) and n != node.bridge_netns}
    assert groups == real | {node.bridge_netns}, groups ^ (real | {node.bridge_netns})
    ports = {(n, lk["ifname"]) for n in real for lk in steps.kernel(n).links
             if lk.get("ifname", "").startswith(("fg-", "qg-", "qr-", "sg-", "rfp-", "fpr-"))}
    links = [p for p in root.iter(f"{ns_tag}path") if "link" in (p.get("class") or "").split()]
    # every router port has exactly one link (to its bridge's dv- end); an rfp-/fpr- pair shares one
    n_rfp = sum(1 for _, d in ports if d.startswith("rfp-"))
    assert len(links) == len(ports) - n_rfp, (len(links), len(ports), n_rfp)
    ends = {e for p in links for e in (p.get("data-a"), p.get("data-b"))}
    assert all(f"{n}/{d}" in ends for n, d in ports)
    hot = [p for p in links if "on-path" in p.get("class").split()]
    assert len(hot) == 3, [(p.get("data-a"), p.get("data-b")) for p in hot]
    numbered = {g.get("data-port"): g.get("data-hops") for g in root.iter(f"{ns_tag}g") if g.get("data-hops")}
    assert sorted(numbered.values()) == ["1,4", "1,4", "2,3", "2,3"], numbered


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
    t = lab_tracer(info).trace("vm2", info.internet_address)
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
