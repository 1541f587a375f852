"""The planner: rule counts independent of routers and FIPs, each FIP leaving by its own subnet's
gateway, determinism."""
from __future__ import annotations

from dvrnet.plan import PlanConfig, plan_host, render
from dvrnet.plan.fib import lookup
from dvrnet.plan.linklocal import assign_slots, derived_slot, pair
from dvrnet.plan.numbers import FIP_ONLINK_TABLE
from dvrnet.scenarios.scale import scale_cloud


def _ns(state, prefix):
    (ns,) = [n for name, n in state.namespaces.items() if name.startswith(prefix)]
    return ns


def _qrouters(state):
    return [n for name, n in state.namespaces.items() if name.startswith("qrouter-")]


def test_fip_rule_count_depends_on_external_subnets_only():
    base = _ns(plan_host(scale_cloud(routers=1, fips=1), "compute1"), "fip-")
    more_routers = _ns(plan_host(scale_cloud(routers=5, fips=1), "compute1"), "fip-")
    more_fips = _ns(plan_host(scale_cloud(routers=5, fips=500), "compute1"), "fip-")
    assert len(base.rules) == len(more_routers.rules) == len(more_fips.rules)
    more_subnets = _ns(plan_host(scale_cloud(routers=1, fips=1, extra_subnets=2), "compute1"), "fip-")
    assert len(more_subnets.rules) == len(base.rules) + 2


def test_qrouter_rule_count_same_with_1_and_10000_fips():
    one = _qrouters(plan_host(scale_cloud(routers=1, fips=1), "compute1"))[0]
    many = _qrouters(plan_host(scale_cloud(routers=1, fips=10_000), "compute1"))[0]
    assert len(one.rules) == len(many.rules) == 2
    (table,) = many.nft.values()
    nat = {m.name: len(m.elements) for m in table.maps if m.name in ("fip2fixed", "fixed2fip")}
    assert nat == {"fip2fixed": 10_000, "fixed2fip": 10_000}
    assert len({m.name: m for m in table.maps}["vms"].elements) == 10_000     # connection limits
    (small,) = one.nft.values()
    assert [c.rules for c in small.chains] == [c.rules for c in table.chains]  # FIPs and VMs: elements only


def test_fip_main_table_holds_exactly_the_local_fips():
    state = plan_host(scale_cloud(routers=3, fips=30), "compute1")
    fip = _ns(state, "fip-")
    main = sorted(r.dst for r in fip.routes if r.table == 254)
    assert main == sorted(f"100.96.0.{2 + i}/32" for i in range(30))


def test_each_fip_leaves_by_its_own_subnet_gateway_and_fip_to_fip_stays_on_segment():
    state = plan_host(scale_cloud(routers=2, fips=4), "compute1")
    fip = _ns(state, "fip-")
    fpr = next(l for l in fip.links if l.startswith("fpr-"))
    v = lookup(fip, "192.0.2.10", src="100.96.0.2", iif=fpr)
    assert v.route.via == "100.96.0.1"
    v = lookup(fip, "192.0.2.10", src="203.0.113.77", iif=fpr)
    assert v.route.via == "203.0.113.1"
    v = lookup(fip, "192.0.2.10", src="198.51.100.77", iif=fpr)
    assert v.route.via == "198.51.100.1"
    # to a FIP hosted elsewhere in another external subnet: on-link, no gateway
    v = lookup(fip, "198.51.100.200", src="203.0.113.77", iif=fpr)
    assert v.route.table == FIP_ONLINK_TABLE and v.route.via is None
    # a local FIP: main, towards its router
    v = lookup(fip, "100.96.0.3", src="203.0.113.77", iif=fpr)
    assert v.route.table == 254 and v.route.dev.startswith("fpr-")


def test_nothing_transits_from_the_external_segment():
    fip = _ns(plan_host(scale_cloud(routers=1, fips=2), "compute1"), "fip-")
    fg = next(l for l in fip.links if l.startswith("fg-"))
    assert lookup(fip, "100.96.0.2", src="192.0.2.10", iif=fg).action == "route"   # a local FIP
    for dst in ("192.0.2.10", "203.0.113.99", "100.64.0.9", "169.254.64.0"):
        assert lookup(fip, dst, src="203.0.113.1", iif=fg).action == "blackhole", dst


def test_plan_is_deterministic():
    a = render(plan_host(scale_cloud(routers=3, fips=20), "compute1"))
    b = render(plan_host(scale_cloud(routers=3, fips=20), "compute1"))
    assert a == b


def test_netns_prefix_applies_to_every_owned_namespace():
    state = plan_host(scale_cloud(routers=2, fips=2), "compute1", PlanConfig(netns_prefix="c1-", bridge_netns="c1-node"))
    assert set(state.namespaces) >= {"c1-node"}
    assert all(n.startswith("c1-") for n in state.namespaces)


def test_link_local_slots_unique_and_sticky():
    ids = [f"router-{i}" for i in range(300)]
    slots = assign_slots(ids)
    assert len(set(slots.values())) == len(ids)
    # a router whose derived slot is taken by an existing (hinted) router never displaces it
    victim = ids[0]
    newcomer = next(f"x{i}" for i in range(100000) if derived_slot(f"x{i}") == slots[victim])
    again = assign_slots(ids + [newcomer], hints=slots)
    assert again[victim] == slots[victim] and again[newcomer] != slots[victim]
    rfp, fpr = pair(slots[victim])
    assert int(rfp) % 2 == 0 and int(fpr) == int(rfp) + 1
