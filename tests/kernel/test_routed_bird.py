"""Routed mode on real namespaces with real BIRDs: the routed seed's compute1 planned and applied
by the reconciler next to a ToR namespace (lab/tor.py) on the same segment bridge.

Checks the Process life cycle (plan/process.py): start; an agent restarted beside it adopts it
(same pid, nothing withdrawn); kill -9 is noticed and it is started again (re-announced); a
configuration change is a reload (same pid, new digest); no longer routed -> stopped and
withdrawn; namespaces deleted -> no process left. And what is announced: exactly the FIPs with
compute1's fg- address as next hop, never the default, the service subnet or a blackhole."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import replace

import pytest

from dvrnet.kernel import Reconciler
from dvrnet.kernel.process import scan
from dvrnet.lab import tor
from dvrnet.model.resources import ROUTED_TAG
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.config import BgpConfig
from dvrnet.plan.names import tenant_bridge
from dvrnet.plan.numbers import MAIN_TABLE_ID
from dvrnet.plan.process import RUN_DIR
from dvrnet.plan.state import HostState, Route
from dvrnet.reconcile.ownership import Ownership
from dvrnet.scenarios.seed import ROUTED, build

pytestmark = [pytest.mark.root, pytest.mark.skipif(not os.path.exists("/usr/sbin/bird"), reason="bird2 not installed")]


def sh(*a: str) -> str:
    return subprocess.run(a, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def world(netns_prefix, tmp_path):
    p = netns_prefix
    br, tor_ns = f"{p}br", f"{p}tor"
    for cmd in (["ip", "netns", "add", br], ["ip", "netns", "add", tor_ns],
                ["ip", "-n", br, "link", "add", "br-ex", "type", "bridge"], ["ip", "-n", br, "link", "set", "br-ex", "up"],
                ["ip", "-n", br, "link", "add", "tor0", "type", "veth", "peer", "name", "eth0", "netns", tor_ns],
                ["ip", "-n", br, "link", "set", "tor0", "master", "br-ex", "up"],
                ["ip", "-n", tor_ns, "addr", "add", "100.64.0.254/24", "dev", "eth0"],
                ["ip", "-n", tor_ns, "link", "set", "eth0", "up"], ["ip", "-n", tor_ns, "link", "set", "lo", "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    tor_pid, _ctl = tor.start(tor_ns, str(tmp_path), "100.64.0.254", "100.64.0.0/24", ["203.0.113.0/24", "198.51.100.0/24"])
    yield p, br, tor_ns
    pids = [tor_pid] + [pid for _ns, pid, _a, _h in scan(Ownership(p))]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for d in glob.glob(os.path.join(RUN_DIR, glob.escape(p) + "*")):
        shutil.rmtree(d, ignore_errors=True)


def tor_routes(tor_ns: str) -> dict[str, str]:
    out = json.loads(sh("ip", "-j", "-n", tor_ns, "route", "show", "proto", "bird"))
    return {r["dst"]: r.get("gateway", "") for r in out}


def wait_routes(tor_ns: str, want: dict[str, str], timeout: float = 15.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if tor_routes(tor_ns) == want:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"ToR routes {tor_routes(tor_ns)} != {want}")


def bird_of(state: HostState):
    (ns,) = [n for n in state.namespaces.values() if "bird" in n.processes]
    return ns.name, ns.processes["bird"]


def test_bird_life_cycle_and_what_is_announced(world):
    p, br, tor_ns = world
    cloud = build(ROUTED)
    cfg = PlanConfig(netns_prefix=p, bridge_netns=br, bgp=BgpConfig(local_as=65101))
    want = plan_host(cloud, "compute1", cfg)
    fip_name, proc = bird_of(want)
    fg_ip = next(a.ip for a in want.namespaces[fip_name].addresses if a.dev.startswith("fg-"))
    fips = sorted(r.dst for r in want.namespaces[fip_name].routes if r.table == MAIN_TABLE_ID)
    expected = {f.removesuffix("/32"): fg_ip for f in fips}

    for n in cloud.networks.values():
        if not n.external:
            sh("ip", "-n", br, "link", "add", tenant_bridge(n.id), "type", "bridge")
    r = Reconciler(p)
    res = r.sync(want)
    assert res.ok, str(res)
    took = wait_routes(tor_ns, expected)
    print(f"\nfrom a fresh namespace to {len(fips)} FIPs on the ToR: {took * 1000:.0f} ms after apply")
    # a blackhole and a default of dvrnet's own protocol are never announced
    sh("ip", "-n", fip_name, "route", "add", "blackhole", "203.0.113.99/32", "proto", "94")
    time.sleep(0.3)
    assert tor_routes(tor_ns) == expected
    sh("ip", "-n", fip_name, "route", "del", "blackhole", "203.0.113.99/32", "proto", "94")
    (pid,) = [x[1] for x in scan(Ownership(p))]

    # an agent restarted beside it adopts it: nothing to do, same pid
    r2 = Reconciler(p)
    plan = r2.plan(want)
    assert not [op for op in plan if "Proc" in type(op).__name__], str(plan)
    assert [x[1] for x in scan(Ownership(p))] == [pid]

    # kill -9: the next pass starts it again and the FIPs come back
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    t0 = time.monotonic()
    res = r2.sync(want)
    assert res.ok, str(res)
    wait_routes(tor_ns, expected)
    print(f"BIRD killed: restarted and re-announced in {(time.monotonic() - t0) * 1000:.0f} ms after the pass began")
    (pid2,) = [x[1] for x in scan(Ownership(p))]
    assert pid2 != pid

    # another configuration (BFD interval): a reload, same process
    cfg2 = replace(cfg, bgp=replace(cfg.bgp, bfd_ms=200))
    want2 = plan_host(cloud, "compute1", cfg2)
    plan = r2.plan(want2)
    assert [type(op).__name__ for op in plan] == ["ProcReload"], str(plan)
    assert r2.sync(want2).ok
    assert [x[1] for x in scan(Ownership(p))] == [pid2]
    assert bird_of(r2.observe(want2))[1].digest == bird_of(want2)[1].digest != proc.digest

    # a FIP added is no reload: the configuration lists subnets, not FIPs
    extra = Route(MAIN_TABLE_ID, "198.51.100.77/32", dev=next(n for n in want2.namespaces[fip_name].links
                                                            if n.startswith("fpr-")), scope="link")
    ns2 = replace(want2.namespaces[fip_name], routes=want2.namespaces[fip_name].routes | {extra})
    want3 = HostState(want2.host, {**want2.namespaces, fip_name: ns2})
    t0 = time.monotonic()
    res = r2.sync(want3)
    assert res.ok and [type(op).__name__ for op in res.plan] == ["RouteReplace"], str(res.plan)
    wait_routes(tor_ns, {**expected, "198.51.100.77": fg_ip})
    print(f"one FIP /32 added: on the ToR {(time.monotonic() - t0) * 1000:.0f} ms after the pass began")

    # the network is no longer routed: BIRD is stopped and its FIPs withdrawn
    net = next(n for n in cloud.networks.values() if n.routed)
    l2 = cloud.with_(networks={**cloud.networks, net.id: replace(net, tags=tuple(t for t in net.tags if t != ROUTED_TAG))})
    res = r2.sync(plan_host(l2, "compute1", cfg2))
    assert res.ok, str(res)
    assert scan(Ownership(p)) == []
    wait_routes(tor_ns, {})

    # routed again, then everything removed: the namespace's BIRD is stopped before it goes
    assert r2.sync(want2).ok
    assert len(scan(Ownership(p))) == 1
    res = r2.sync(HostState("compute1", {}))
    assert res.ok, str(res)
    assert scan(Ownership(p)) == []


def tor_paths(ctl: str) -> dict[str, str]:
    """prefix -> BGP AS path on the ToR (its BIRD's `show route all`)."""
    from dvrnet.kernel.bird import command
    out, net = {}, None
    for _code, text in command(ctl, "show route all"):
        parts = text.split()
        if parts and "/" in parts[0] and parts[0][0].isdigit():
            net = parts[0]
        elif text.strip().startswith("BGP.as_path:") and net:
            out[net.removesuffix("/32")] = text.split(":", 1)[1].strip()
    return out


def test_watchdog_marks_announcements_stale_when_the_lease_lapses(world, tmp_path):
    """The watchdog (plan/watchdog.py) of a routed namespace: while the lease is renewed nothing
    changes; once it lapses its BIRD announces every FIP with the AS path prepended (nothing
    withdrawn, same next hop); a pass with the lease renewed reloads the normal configuration."""
    from dvrnet.kernel.bird import bgp_lines
    from dvrnet.kernel.watchdog import command as watchdog_command
    p, br, tor_ns = world
    ctl = os.path.join(str(tmp_path), "tor", "ctl")
    cloud = build(ROUTED)
    cfg = PlanConfig(netns_prefix=p, bridge_netns=br,
                     bgp=BgpConfig(local_as=65101, lease_s=1.0, watchdog=watchdog_command()))
    want = plan_host(cloud, "compute1", cfg)
    fip_name = bird_of(want)[0]
    assert set(want.namespaces[fip_name].processes) == {"bird", "watchdog"}
    fg_ip = next(a.ip for a in want.namespaces[fip_name].addresses if a.dev.startswith("fg-"))
    expected = {r.dst.removesuffix("/32"): fg_ip for r in want.namespaces[fip_name].routes if r.table == MAIN_TABLE_ID}
    for n in cloud.networks.values():
        if not n.external:
            sh("ip", "-n", br, "link", "add", tenant_bridge(n.id), "type", "bridge")
    r = Reconciler(p)
    stop = threading.Event()

    def renew():                # what the agent does at every pass and upkeep wake-up
        while not stop.wait(0.2):
            r.processes.renew(time.monotonic())
    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        assert r.sync(want).ok
        wait_routes(tor_ns, expected)
        assert len([x for x in scan(Ownership(p)) if x[3]]) == 2         # BIRD and its watchdog
        time.sleep(1.5)         # renewed: stays normal (one AS in the path)
        assert set(tor_paths(ctl).values()) == {"65101"}
        # what `dvrnet show` prints of it
        (line,) = bgp_lines([fip_name])
        assert line == f"bgp {fip_name} tor0_100_64_0_254: up Established, {len(expected)} prefixes announced", line
    finally:
        stop.set()
        renewer.join()
    # lapsed: within lease + a tick, every FIP prepended, none withdrawn, same next hop
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and set(tor_paths(ctl).values()) != {"65101 65101 65101 65101"}:
        time.sleep(0.05)
    took = time.monotonic() - t0
    assert set(tor_paths(ctl).values()) == {"65101 65101 65101 65101"}, tor_paths(ctl)
    assert tor_routes(tor_ns) == expected
    (line,) = bgp_lines([fip_name])
    assert line.startswith(f"bgp {fip_name} tor0_100_64_0_254: up Established, {len(expected)} prefixes announced, "
                           "stale"), line
    print(f"\nlease of 1 s lapsed: announcements stale on the ToR {took * 1000:.0f} ms after the last renewal")
    assert took >= 0.75          # the last renewal was at most 0.2 s before t0
    # the agent back: renews first, then its pass sees the stale digest and reloads
    r2 = Reconciler(p)
    r2.observe(want, full=True)
    r2.processes.renew(time.monotonic())
    plan = r2.plan(want)
    assert [type(op).__name__ for op in plan] == ["ProcReload"], str(plan)
    assert r2.sync(want).ok
    r2.processes.renew(time.monotonic())
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5 and set(tor_paths(ctl).values()) != {"65101"}:
        time.sleep(0.05)
    assert set(tor_paths(ctl).values()) == {"65101"}
    # a watchdog killed is started again; removing the namespaces stops both
    dog = next(pid for _ns, pid, argv, _h in scan(Ownership(p)) if "--lease" in argv)
    os.kill(dog, signal.SIGKILL)
    time.sleep(0.1)
    res = r2.sync(want)
    assert res.ok and [type(op).__name__ for op in res.plan] == ["ProcStart"], str(res.plan)
    assert r2.sync(HostState("compute1", {})).ok
    assert scan(Ownership(p)) == []
