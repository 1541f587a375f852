"""One agent pass (`Agent.reconcile`, in-process) against real namespaces: the seed's compute1 on
a bridge namespace made for the test. A namespace that cannot be read (its /run/netns file is no
longer a namespace mount, so `ip -n` fails) is left out of the pass and reported; everything else
is reconciled, in watch mode and without."""
from __future__ import annotations

import subprocess

import pytest

from dvrnet.agent.feed import Feed
from dvrnet.agent.loop import Agent
from dvrnet.kernel import read
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.reconcile import diff
from dvrnet.scenarios.seed import build

pytestmark = pytest.mark.root


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def compute1(p: str):
    """The seed cloud, compute1's plan config under prefix P, and its bridge namespace with the
    bridges the plan plugs into."""
    cloud = build()
    cfg = PlanConfig(netns_prefix=p, bridge_netns=f"{p}node")
    want = plan_host(cloud, "compute1", cfg)
    sh("ip", "netns", "add", cfg.bridge_netns)
    for br in sorted({lk.master for lk in want.namespaces[cfg.bridge_netns].links.values() if lk.master}):
        sh("ip", "-n", cfg.bridge_netns, "link", "add", br, "type", "bridge")
        sh("ip", "-n", cfg.bridge_netns, "link", "set", br, "up")
    return cloud, cfg


def unreadable(name: str) -> None:
    """A namespace name whose /run/netns file is a plain file: listed, but `ip -n` cannot enter it."""
    sh("ip", "netns", "add", name)
    sh("umount", f"/run/netns/{name}")


@pytest.mark.parametrize("incremental", [True, False], ids=["watch", "full-reads"])
def test_one_unreadable_namespace_is_reported_and_the_rest_reconciled(netns_prefix, incremental):
    p = netns_prefix
    cloud, cfg = compute1(p)
    broken = f"{p}qrouter-unreadable"
    unreadable(broken)
    agent = Agent("compute1", Feed("http://127.0.0.1:1", "compute1", "dvr"), cfg, incremental=incremental)
    try:
        first = agent.reconcile(cloud)
        assert first.ops > 20 and not first.ok
        assert first.errors and all(broken in e for e in first.errors), first.errors
        assert not first.differences, first.differences
        # everything but the unreadable namespace is what the model asks
        want = plan_host(cloud, "compute1", cfg, agent._hints)
        obs = read.observe(want, p)
        assert set(obs.unreadable) == {broken}
        assert not diff(want, obs.state, p), diff(want, obs.state, p)
        again = agent.reconcile(cloud, full=False)
        assert again.ops == 0 and again.errors and all(broken in e for e in again.errors), again.errors
        # once it is gone, the pass is clean
        sh("ip", "netns", "del", broken)
        last = agent.reconcile(cloud, full=False)
        assert last.ok and last.ops == 0, (last.errors, last.differences)
    finally:
        agent.close()
        agent.feed.close()
