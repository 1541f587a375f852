"""The whole lab with stateless FIPs (root): every agent runs `--stateless-fips`, and every lab check
still passes: internet -> FIP and FIP -> internet through each FIP's own gateway, FIP->FIP on one
node and across nodes, SNAT->FIP (the snat- namespace's conntrack NAT meets a stateless FIP), VMs
without a FIP through SNAT. Also: no conntrack entry for FIP traffic in any qrouter- namespace."""
from __future__ import annotations

import subprocess

import pytest

from dvrnet.lab.checks import run_checks

from .conftest import unique_prefix

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = unique_prefix()
    state = str(tmp_path_factory.mktemp("lab") / "state")
    try:
        yield up(prefix, state, agent_args=("--stateless-fips",))
    finally:
        rep = down(prefix, state)
        assert rep.leftover_namespaces == []


def test_every_check_passes_with_stateless_fips(lab):
    info = lab
    qrouters = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                          check=False).stdout.split() if n.startswith(info.prefix) and "-qrouter-" in n]
    assert qrouters
    for ns in qrouters:                                   # the planner's stateless chains are in place
        t = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "dvrnet"], capture_output=True,
                           text=True, check=False).stdout
        assert "notrack" in t and "dnat to" not in t, (ns, t)
    rows = run_checks(info)
    bad = [r for r in rows if not r.passed]
    assert not bad, "\n".join(f"{r.check}: {r.observed}" for r in bad)
    assert len(rows) > 60
    with_fip = {v.fixed_ip for v in info.vms if v.fip}
    for ns in qrouters:               # no entry from a VM with a FIP, none DNATed to one
        ct = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/nf_conntrack"], capture_output=True,
                            text=True, check=False).stdout
        tracked = [ln for ln in ct.splitlines()
                   if {p[4:] for p in ln.split() if p.startswith("src=")} & with_fip]
        assert not tracked, (ns, tracked[:3])
