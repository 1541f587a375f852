"""Taking the seed's nodes over from neutron-l3-agent (issue 13 item 2): the lab's nodes are built
the way upstream's agent leaves them (lab/upstream_layout.py) with a few foreign objects planted,
then
- an agent without --adopt-neutron-state refuses with one line naming the first upstream object,
  and the node is byte-for-byte as it was;
- `agent --once --adopt-neutron-state` on every node at once, under ping every 10 ms to every
  FIP from the internet host: each FIP's gap is measured and reported; afterwards no upstream
  object is left, the foreign ones are untouched, `lab check` passes (with the gateways' strict
  reverse-path filter back on) and the metadata service answers through dvrnet's proxies."""
from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dvrnet.agent.feed import Feed
from dvrnet.kernel.takeover import NeutronState, haproxies
from dvrnet.lab import upstream_layout
from dvrnet.lab.traffic import Traffic, fip_flows, summary
from dvrnet.lab.world import sync_bridge_rules
from dvrnet.plan.state import HostState, Namespace

from .conftest import record, unique_prefix
from .helpers import agent_argv, api, gone, host_diff, netns, ok, spec, wait_converged

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make deb)")]
NODES = ("compute1", "compute2", "network1")


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


def rp_filter(info, value: int) -> None:
    """Upstream's replies for FIPs outside its fg- subnet leave by that subnet's gateway (the
    notes' §3): a strict reverse-path filter on the lab's gateways drops them."""
    for g in info.gateways:
        devs = [ln.split(":")[1].split("@")[0].strip() for ln in sh("ip", "-n", g.netns, "-o", "link").splitlines()]
        keys = [f"net.ipv4.conf.{d}.rp_filter={value}" for d in ["all", "default", *devs]]
        sh("ip", "netns", "exec", g.netns, "sysctl", "-q", "-w", *keys)


@pytest.fixture(scope="module")
def upstream_lab(tmp_path_factory):
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = unique_prefix()
    state = str(tmp_path_factory.mktemp("takeover") / "state")
    try:
        info = up(prefix, state, agents=False)
        with api(info) as c:
            qr = [p for p in ok(c.get("/v2.0/ports"))["ports"]
                  if p["device_owner"] == "network:router_interface_distributed"]
        # the L2 agent's part of upstream's DVR: gateway ARP stays on the node, routed frames leave
        # with the node's MAC (the same table dvrnet's agents take over)
        sync_bridge_rules(spec(info), [f["ip_address"] for p in qr for f in p["fixed_ips"]],
                          [p["mac_address"] for p in qr])
        layouts = {}
        for n in info.nodes:
            cloud = Feed(info.server_url, n.name, n.mode, max_backoff=0).fetch_once().cloud
            layouts[n.name] = upstream_layout.build(cloud, n.name, n.prefix, n.bridge_netns,
                                                    f"{state}/neutron-{n.short}", n.metadata_socket)
        planted = {}
        for ns in (next(x for x in layouts["compute1"].namespaces if "qrouter-" in x),
                   next(x for x in layouts["compute1"].namespaces if "fip-" in x),
                   next(x for x in layouts["network1"].namespaces if "snat-" in x)):
            planted[ns] = upstream_layout.plant_foreign(ns)
        rp_filter(info, 0)
        yield info, layouts, planted
    finally:
        down(prefix, state)
        left = [n for n in sh("ip", "netns", "list").split() if n.startswith(prefix)]
        assert not left, f"namespaces left behind: {left}"


def snapshot(info) -> dict[str, str]:
    """Everything the agent could change on the nodes, in a comparable text form."""
    out = {}
    for ns in netns(info, None):
        if not any(ns.startswith(n.prefix) for n in info.nodes):
            continue
        parts = [sh("ip", "-n", ns, "link"), sh("ip", "-n", ns, "addr"),
                 sh("ip", "-n", ns, "route", "show", "table", "all"), sh("ip", "-n", ns, "rule"),
                 sh("ip", "-n", ns, "neigh", "show", "nud", "permanent"),
                 sh("ip", "netns", "exec", ns, "nft", "-s", "list", "ruleset"),
                 sh("ip", "netns", "exec", ns, "sysctl", "-a", "-r", r"^net\.ipv[46]\.conf\.", check=False)]
        for tool in ("iptables-save", "ip6tables-save"):
            text = sh("ip", "netns", "exec", ns, tool)
            parts.append("\n".join(re.sub(r"\[\d+:\d+\]", "", ln) for ln in text.splitlines() if not ln.startswith("#")))
        out[ns] = "\n".join(parts)
    # the haproxies living in this lab's namespaces (other labs on the machine start and stop theirs)
    mine = set()
    for ns in out:
        try:
            st = os.stat(f"/run/netns/{ns}")
        except OSError:
            continue
        mine.add((st.st_dev, st.st_ino))
    out["haproxy"] = " ".join(f"{p}:{' '.join(a)}" for p, a, i in sorted(haproxies()) if i in mine)
    return out


def test_without_the_option_the_agent_refuses_and_nothing_changes(upstream_lab):
    info, layouts, _planted = upstream_lab
    before = snapshot(info)
    p = subprocess.run(agent_argv(info, "compute1", "--once"), capture_output=True, text=True, timeout=60, check=False)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not re.match(r"\d{4}-\d\d-\d\d ", ln)]  # not log lines
    assert p.returncode == 1, p.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("dvrnet: "), p.stderr[-2000:]
    first = min(layouts["compute1"].proxies)
    assert f"{first}: metadata proxy process {layouts['compute1'].proxies[first]} (haproxy -f " in lines[0], lines[0]
    assert "neutron-l3-agent" in lines[0] and "--adopt-neutron-state" in lines[0]
    after = snapshot(info)
    changed = {k: "\n".join(difflib.unified_diff(before[k].splitlines(), after.get(k, "").splitlines(), lineterm="", n=0))
               for k in before if before[k] != after.get(k)}
    assert after.keys() == before.keys() and not changed, f"the refusing agent changed the node: {changed}"


def test_takeover_under_ping_every_fip(upstream_lab):
    info, layouts, planted = upstream_lab
    flows = fip_flows(info)
    assert len(flows) == 6
    with Traffic(flows, info.state_dir, interval=0.01) as tr:     # warm-up: every FIP answers upstream's way
        time.sleep(0.5)
        def takeover(h: str) -> tuple[subprocess.CompletedProcess, float]:
            t0 = time.monotonic()
            r = subprocess.run(agent_argv(info, h, "--once", "--adopt-neutron-state"),
                               capture_output=True, text=True, timeout=120, check=False)
            return r, time.monotonic() - t0
        with ThreadPoolExecutor(len(NODES)) as ex:
            timed = list(ex.map(takeover, NODES))
        time.sleep(1.0)
        results = tr.stop()
    record("takeover from neutron-l3-agent", "agent --once --adopt-neutron-state", results, zero=set())
    print("\ntakeover of compute1, compute2, network1 under ping every 10 ms to every FIP:\n" + summary(results))
    for name, res in results.items():
        print(f"  {name}: outages (probes lost, gap ms): "
              + (", ".join(f"({o['lost']}, {o['gap_s'] * 1000:.0f})" for o in res.outages if o.get("gap_s")) or "none"))
    for h, (r, secs) in zip(NODES, timed):
        taken = re.search(r"removing (\d+) of its objects in (\d+) namespaces", r.stderr)
        print(f"  {h}: agent --once --adopt-neutron-state took {secs:.1f} s"
              + (f", removed {taken.group(1)} upstream objects in {taken.group(2)} namespaces" if taken else ""))
        assert r.returncode == 0, f"{h}: {r.stderr[-3000:]}"
        assert taken, f"{h}: the agent did not take anything over: {r.stderr[-2000:]}"
    for name, res in results.items():
        assert res.error is None and res.received > 0, res.line()
        assert res.outages == [] or all(o.get("gap_s") is not None for o in res.outages), res.line()
        assert res.max_gap_s < 2.0, f"{name}: no traffic for {res.max_gap_s * 1000:.0f} ms: {res.line()}"

    # no upstream object left (the reader of the takeover itself, on every node)
    for n in info.nodes:
        names = [x for x in netns(info, n.name) if "-node" not in x]
        obs = HostState(n.name, {x: Namespace(x) for x in names})
        desired = host_diff(info, n.name)[1]          # sysctls dvrnet sets itself are not upstream's
        assert NeutronState(n.prefix).scan(desired, obs) == [], n.name
        assert all(gone(pid) for pid in layouts[n.name].proxies.values()), f"{n.name}: upstream haproxy left"
        links = [ln.split(":")[1].split("@")[0].strip() for ln in sh("ip", "-n", n.bridge_netns, "-o", "link").splitlines()]
        left = [x for x in links if re.fullmatch(r"tap[0-9a-f]{8}-[0-9a-f]{2}", x)]
        assert not left, f"{n.name}: the bridge ends of upstream's ports are left: {left}"
    # the foreign objects are untouched
    for ns in planted:
        routes = json.loads(sh("ip", "-j", "-n", ns, "route", "show", "table", "all"))
        assert any(r.get("dst") == "192.0.2.200" and r.get("type") == "blackhole"
                   and str(r.get("protocol")) in ("99", "openr") for r in routes), ns
        assert "1000:\tfrom 192.0.2.0/24 lookup 200" in sh("ip", "-n", ns, "rule"), ns
        assert "table inet lab_audit" in sh("ip", "netns", "exec", ns, "nft", "list", "tables"), ns
        ipt = sh("ip", "netns", "exec", ns, "iptables-save")
        assert "-A INPUT -j lab-audit" in ipt and "-A lab-audit -s 192.0.2.0/24 -j RETURN" in ipt, ns
        assert "neutron" not in ipt, ipt

    # dvrnet's layout is whole: the kernel matches the model, lab check passes with strict gateways
    wait_converged(info, timeout=10)
    rp_filter(info, 1)
    from dvrnet.lab.checks import run_checks
    rows = run_checks(info)
    bad = [r for r in rows if not r.passed]
    assert not bad, "\n".join(str(r) for r in bad)
    vm = info.vms[0]
    got = subprocess.run(["ip", "netns", "exec", vm.netns, "curl", "-s", "-m", "3", "http://169.254.169.254/x"],
                         capture_output=True, text=True, check=False).stdout
    rid = info.router(vm.router).id
    assert f'"x-neutron-router-id": "{rid}"' in got and f'"x-forwarded-for": "{vm.fixed_ip}"' in got, got
