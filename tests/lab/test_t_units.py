"""Pure pieces behind T6 and `dvrnet trace` (no root): bridge mappings in the plan and the CLI,
and the trace's NAT helpers."""
from __future__ import annotations

import click
import pytest

from dvrnet.cli import _bridge_mappings
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.names import AGENT_GW_DEV, ROUTER_GW_DEV
from dvrnet.scenarios.seed import build
from dvrnet.trace.tracer import _snat_to


def _masters(state, cfg):
    bridges = state.namespaces[cfg.bridge_netns]
    out = {}
    for ns in state.namespaces.values():
        for l in ns.links.values():
            if l.name.startswith((AGENT_GW_DEV, ROUTER_GW_DEV)):
                out[l.name] = bridges.links[l.peer].master
    return out


def test_bridge_mapping_moves_only_that_networks_ports():
    cloud = build()
    ext = next(n for n in cloud.networks.values() if n.external)
    plain = PlanConfig(netns_prefix="x-")
    mapped = PlanConfig(netns_prefix="x-", bridge_mappings=(("other-net", "br-zz"), (ext.id, "br-ex2")))
    assert mapped.bridge_for(ext.id) == "br-ex2" and mapped.bridge_for("nope") == "br-ex"
    for host in ("compute1", "network1"):
        a, b = _masters(plan_host(cloud, host, plain), plain), _masters(plan_host(cloud, host, mapped), mapped)
        assert a and set(a.values()) == {"br-ex"}
        assert set(b) == set(a) and set(b.values()) == {"br-ex2"}


def test_bridge_mapping_option_parsing():
    assert _bridge_mappings(["n1=br-a", " n2 = br-b "]) == (("n1", "br-a"), ("n2", "br-b"))
    assert _bridge_mappings(()) == ()
    for bad in ("n1", "=br", "n1="):
        with pytest.raises(click.BadParameter):
            _bridge_mappings([bad])


def test_snat_to_reads_the_snat_rule():
    cloud = build()
    st = plan_host(cloud, "network1", PlanConfig())
    snat = next(ns for n, ns in st.namespaces.items() if n.startswith("snat-"))
    gw = next(iter(a for a in snat.addresses if a.dev.startswith("qg-"))).ip
    tenant = next(a for a in snat.addresses if a.dev.startswith("sg-")).ip
    assert _snat_to(snat, tenant) == gw
    assert _snat_to(snat, "192.0.2.99") is None
