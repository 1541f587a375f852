"""Connection limits as planned (plan/connlimit.py): defaults from the conntrack limit, agent
options, per-port overrides, buckets, and the table's element-only changes."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dvrnet.model import Cloud
from dvrnet.plan import plan_host
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.connlimit import BUCKET, MAX_BUCKETS, buckets
from dvrnet.reconcile import diff
from dvrnet.reconcile import ops as O
from dvrnet.scenarios.seed import build


def _table(state, prefix):
    (ns,) = [n for name, n in state.namespaces.items() if name.startswith(prefix)][:1]
    return ns.nft[("ip", "dvrnet")]


def _maps(t):
    return {m.name: m for m in t.maps}


def test_defaults_derive_from_the_conntrack_limit():
    cfg = PlanConfig(conntrack_max=262144)
    assert (cfg.router_limit(), cfg.vm_limit()) == (229376, 57344)
    assert PlanConfig(conntrack_max=1000).vm_limit() == 875 // 4
    assert PlanConfig(router_conn_limit=0).vm_limit() == 57344          # VM limit stays without a router one
    assert (PlanConfig(conn_limits=False).router_limit(), PlanConfig(conn_limits=False).vm_limit()) == (0, 0)
    with pytest.raises(ValueError, match="vm_conn_limit"):
        PlanConfig(vm_conn_limit=-1)


@pytest.mark.parametrize("limit", [1, 3, 1024, 1025, 57344, 229376, 10**6])
def test_buckets_never_exceed_the_limit(limit):
    k, per = buckets(limit)
    assert 1 <= k <= MAX_BUCKETS and per >= 1 and k * per <= limit
    assert limit - k * per < k                                           # at most K-1 below it
    assert per <= BUCKET or k == MAX_BUCKETS                             # short lists: cheap walks


def test_qrouter_and_snat_limits_and_their_rules():
    cloud = build()
    qr = _table(plan_host(cloud, "compute1"), "qrouter-")
    (pre,) = [c for c in qr.chains if c.name == "pre_mangle"]           # after DNAT, before routing
    assert (pre.hook, pre.priority, pre.rules[-1]) == ("prerouting", -90, "ct state new jump conn_limit_new")
    (chain,) = [c for c in qr.chains if c.name == "conn_limit_new"]   # new connections only
    assert chain.hook == "" and any("ct status dnat ip daddr @vms" in r for r in chain.rules)
    m = _maps(qr)
    assert m["vm_conns"].dynamic and m["vm_drops"].dynamic and m["rt_conns"].dynamic
    assert not m["vm_conns"].elements and m["vms"].elements
    sn = _table(plan_host(cloud, "network1"), "snat-")
    (base,) = [c for c in sn.chains if c.name == "conn_limit"]
    assert (base.hook, base.rules) == ("forward", ("ct state new jump conn_limit_new",))
    (chain,) = [c for c in sn.chains if c.name == "conn_limit_new"]
    assert not any("ct status dnat" in r for r in chain.rules)           # no DNAT in snat-
    off = plan_host(cloud, "compute1", PlanConfig(conn_limits=False))
    assert not any(c.name.startswith("conn_limit") or "jump" in " ".join(c.rules)
                   for c in _table(off, "qrouter-").chains)


def test_port_override_makes_its_own_class_and_zero_removes_the_vm():
    cloud = build()
    t = _table(plan_host(cloud, "compute1"), "qrouter-")
    ip = min(k for k, _ in _maps(t)["vms"].elements)
    port = next(p for p in cloud.ports.values() if any(str(f.ip_address) == ip for f in p.fixed_ips))
    for lim, where in ((5000, "vms_l5000"), (0, None)):
        c2 = _replace_port(cloud, replace(port, connection_limit=lim))
        m = _maps(_table(plan_host(c2, "compute1"), "qrouter-"))
        assert (ip, None) not in m["vms"].elements
        if where:
            assert (ip, None) in m[where].elements and m["vm_conns_l5000"].dynamic
        else:
            assert not any(k.startswith("vms_") for k in m)


def _replace_port(cloud, port):
    ports = dict(cloud.ports)
    ports[port.id] = port
    return Cloud.of(cloud.networks.values(), cloud.subnets.values(), cloud.routers.values(), ports.values(),
                    cloud.floatingips.values(), cloud.hosts.values())


def test_a_new_vm_is_an_element_change_not_a_table_replace():
    cloud = build()
    before = plan_host(cloud, "compute1")
    t = _table(before, "qrouter-")
    ip = min(k for k, _ in _maps(t)["vms"].elements)
    port = next(p for p in cloud.ports.values() if any(str(f.ip_address) == ip for f in p.fixed_ips))
    after = plan_host(_replace_port(cloud, replace(port, connection_limit=None)), "compute1")
    assert not diff(after, before)                                       # same value: nothing
    gone = plan_host(_replace_port(cloud, replace(port, host="compute2")), "compute1")
    kinds = {type(op) for op in diff(gone, before)}
    assert O.NftReplaceTable not in kinds and O.NftElements in kinds


def test_stateless_fips_plan_rewrites_without_conntrack_nat():
    cloud = build()
    t = _table(plan_host(cloud, "compute1", PlanConfig(stateless_fips=True)), "qrouter-")
    chains = {c.name: c for c in t.chains}
    assert {"raw_pre", "post_stateless", "conn_limit", "conn_limit_new"} <= set(chains)
    assert not {"pre_nat", "post_nat", "pre_mangle"} & set(chains)       # no conntrack NAT
    assert chains["raw_pre"].priority == -300 and all("notrack" in r for r in chains["raw_pre"].rules[2:])
    assert any("ip daddr set ip daddr map @fip2fixed" in r for r in chains["raw_pre"].rules)
    assert chains["post_stateless"].rules[0].endswith("ip saddr set ip saddr map @fixed2fip")
    stateful = _table(plan_host(cloud, "compute1"), "qrouter-")
    assert {m.name: m.elements for m in t.maps} == {m.name: m.elements for m in stateful.maps}   # same maps
    assert all("maxseg size set 1360" in r for r in chains["raw_pre"].rules[:2])
