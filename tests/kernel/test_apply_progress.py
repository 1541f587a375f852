"""A big cold apply shows its progress (issue 17 item 5): the agent's pass with at least
`BIG_APPLY` ops reports through its Progress while `kernel.apply.execute` runs (root, real
namespaces under the test's prefix); a pass below the threshold says nothing."""
from __future__ import annotations

import subprocess

import pytest

from dvrnet.agent import loop
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.progress import Progress
from dvrnet.scenarios.scale import scale_cloud

pytestmark = pytest.mark.root


def test_big_cold_apply_reports_progress(netns_prefix, monkeypatch):
    cloud = scale_cloud(routers=2, fips=300)
    cfg = PlanConfig(netns_prefix=netns_prefix, bridge_netns=netns_prefix + "br")
    want = plan_host(cloud, "compute1", cfg)
    br = netns_prefix + "br"
    subprocess.run(["ip", "netns", "add", br], check=True)
    for b in sorted({lk.master for lk in want.namespaces[br].links.values() if lk.master}):
        subprocess.run(["ip", "-n", br, "link", "add", b, "type", "bridge"], check=True)
        subprocess.run(["ip", "-n", br, "link", "set", b, "up"], check=True)
    lines: list[str] = []
    monkeypatch.setattr(loop, "BIG_APPLY", 200)
    agent = loop.Agent("compute1", None, cfg, progress=Progress.plain(lines.append, every=0))
    try:
        first = agent.reconcile(cloud)
        assert first.ok, first
        n = first.ops
        assert n >= 600
        assert lines[0] == f"applying {n:,} ops: 0/{n:,}", lines[:3]
        assert lines[-1].startswith(f"applying {n:,} ops: {n:,}/{n:,} in "), lines[-3:]
        assert len(lines) > 3                      # counts while it ran (one line per finished run)
        counts = [int(x.split(": ", 1)[1].split("/")[0].replace(",", "")) for x in lines[1:-1]]
        assert counts == sorted(counts) and all(0 < c <= n for c in counts)
        lines.clear()
        again = agent.reconcile(cloud)
        assert again.ok and again.ops < 200 and lines == []
    finally:
        agent.close()


def test_ipv6_off_holds_on_a_kernel_without_ipv6(netns_prefix, monkeypatch):
    """disable_ipv6 (planned on every port) on a host booted with ipv6.disable=1: no /proc/sys/net/ipv6,
    so the key reads as 1 and writing it is a no-op — the agent converges instead of failing each pass.
    With IPv6 present, a missing key is still an error."""
    from dvrnet.kernel import sysctl
    ns = netns_prefix + "v6"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    key = "net.ipv6.conf.nosuchdev.disable_ipv6"
    assert sysctl.read(ns, [key]) == {} and key in sysctl.write(ns, [(key, "1")])
    monkeypatch.setattr(sysctl, "_ipv6_absent", lambda: True)
    assert sysctl.read(ns, [key]) == {key: "1"} and sysctl.write(ns, [(key, "1")]) == {}
    other = "net.ipv4.conf.nosuchdev.rp_filter"
    assert key not in sysctl.read(ns, [other]) and other in sysctl.write(ns, [(other, "1")])
