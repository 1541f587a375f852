"""The planner: rule counts independent of routers and FIPs, each FIP leaving by its own subnet's
gateway, determinism."""
from __future__ import annotations

from dvrnet.plan import PlanConfig, plan_host, render
from dvrnet.plan.fib import lookup
from dvrnet.plan.linklocal import assign_slots, derived_slot, hints_from_state, pair
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


def test_link_local_hints_come_from_either_end():
    """The kernel's slots are read from the fpr- end (fip- namespace), else from the rfp- end
    (qrouter- namespace): a router whose fip- namespace was left out of a pass (unreadable) keeps
    its pair instead of being renumbered on the side that could be read."""
    from dataclasses import replace

    from dvrnet.plan import names
    from dvrnet.plan.state import Address, HostState
    cloud = scale_cloud(routers=3, fips=3)
    cfg = PlanConfig(netns_prefix="c1-", bridge_netns="c1-node")
    ids = sorted(cloud.routers)
    kept = {rid: 100 + i for i, rid in enumerate(ids)}         # slots no derivation would give
    state = plan_host(cloud, "compute1", cfg, kept)
    assert hints_from_state(state, ids) == kept
    no_fip = HostState(state.host, {n: ns for n, ns in state.namespaces.items() if "-fip-" not in n})
    assert hints_from_state(no_fip, ids) == kept
    # both ends read, disagreeing: the fpr- end wins
    rid = ids[0]
    fip_name = next(n for n in state.namespaces if "-fip-" in n)
    qr_name = next(n for n, ns in state.namespaces.items()
                   if "-qrouter-" in n and any(a.dev == names.rfp_dev(rid) for a in ns.addresses))
    qr = state.namespaces[qr_name]
    rfp_other, _ = pair(7)
    moved = replace(qr, addresses=frozenset(a for a in qr.addresses if a.dev != names.rfp_dev(rid))
                    | {Address(names.rfp_dev(rid), f"{rfp_other}/31")})
    odd = HostState(state.host, {**state.namespaces, qr_name: moved})
    assert hints_from_state(odd, ids)[rid] == kept[rid]
    assert hints_from_state(HostState(state.host, {qr_name: moved}), ids)[rid] == 7
    assert hints_from_state(HostState(state.host, {fip_name: state.namespaces[fip_name]}), ids) == kept
