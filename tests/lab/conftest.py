"""Lab fixtures: one physical world per test module, under a prefix unique to this run
(`dvl<pid><n>-`), torn down by name at the end, pass or fail."""
from __future__ import annotations

import itertools
import os
import subprocess

import pytest

_n = itertools.count()


def unique_prefix() -> str:
    return f"dvl{os.getpid() % 100000}{next(_n)}-"


def run_in(ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """world + two tenant networks + three VMs (vm1 c1 net1, vm2 c2 net1, vm3 c1 net2) + bridge rules
    for gateways 10.0.1.1/10.0.2.1 with router MAC fa:16:3e:00:00:01."""
    from dvrnet.lab.down import down
    from dvrnet.lab.world import (
        TenantNet,
        VmSpec,
        WorldSpec,
        add_tenant_networks,
        add_vms,
        build_world,
        sync_bridge_rules,
    )
    prefix = unique_prefix()
    spec = WorldSpec(prefix=prefix, state_dir=str(tmp_path_factory.mktemp("lab") / "state"))
    try:
        info = build_world(spec)
        nets = [TenantNet("11111111-aaaa-4bbb-8ccc-000000000001", 2001),
                TenantNet("22222222-aaaa-4bbb-8ccc-000000000002", 2002)]
        add_tenant_networks(spec, nets)
        sync_bridge_rules(spec, ["10.0.1.1", "10.0.2.1"], ["fa:16:3e:00:00:01"])
        vms = [VmSpec("vm1", "compute1", nets[0].id, "fa:16:3e:aa:00:01", "10.0.1.11", 24, "10.0.1.1"),
               VmSpec("vm2", "compute2", nets[0].id, "fa:16:3e:aa:00:02", "10.0.1.12", 24, "10.0.1.1"),
               VmSpec("vm3", "compute1", nets[1].id, "fa:16:3e:aa:00:03", "10.0.2.11", 24, "10.0.2.1")]
        add_vms(spec, vms)
        yield spec, info, nets, vms
    finally:
        down(prefix, spec.state_dir)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
                if n.startswith(prefix)]
        assert not left, f"namespaces left behind: {left}"
