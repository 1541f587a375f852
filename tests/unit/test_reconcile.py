"""Pure tests of reconcile.diff: ordering, make-before-break, wrong-kind replacement, nft
element-only diffs, ownership. No root, no kernel."""
from __future__ import annotations

import pytest

from dvrnet.plan.state import (
    Address,
    HostState,
    Link,
    Namespace,
    Neighbour,
    NftChain,
    NftMap,
    NftTable,
    OvsPort,
    Process,
    Route,
    Rule,
)
from dvrnet.reconcile import NotOwned, Ownership, describe_plan, diff
from dvrnet.reconcile import ops as O
from dvrnet.reconcile import takeover as T

P = "n1-"
FIP, QR, BR = f"{P}fip-ext", f"{P}qrouter-r1", "bridges"
T203 = 3405803776


def fip_ns(gw="203.0.113.1", fips=("203.0.113.50",), fg_kind="veth", **kw) -> Namespace:
    return Namespace(FIP, links={"fg-1": Link("fg-1", fg_kind, *((BR, "dv-1") if fg_kind == "veth" else ())),
                                 "fpr-r1": Link("fpr-r1", "veth", QR, "rfp-r1")},
                     addresses=frozenset({Address("fg-1", "100.64.0.11/24"), Address("fpr-r1", "169.254.64.1/31")}),
                     routes=frozenset({Route(T203, "default", via=gw, dev="fg-1", onlink=True)}
                                      | {Route(254, f"{f}/32", via="169.254.64.0", dev="fpr-r1", onlink=True)
                                         for f in fips}),
                     rules=frozenset({Rule(40000, "blackhole", iif="fg-1"),
                                      Rule(40010, "lookup", T203, src="203.0.113.0/24")}),
                     sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.fg-1.proxy_arp": "1"}, **kw)


def qr_ns(fips=(("203.0.113.50", "10.0.0.5"),), chain_rule="ip saddr @fixed2fip accept") -> Namespace:
    return Namespace(QR, links={"rfp-r1": Link("rfp-r1", "veth", FIP, "fpr-r1")},
                     nft={("ip", "dvrnet"): NftTable("ip", "dvrnet",
                                                     (NftChain("pre", "filter", "prerouting", -150, (chain_rule,)),),
                                                     (NftMap("fip2fixed", "ipv4_addr", "ipv4_addr", frozenset(fips)),
                                                      NftMap("fixed2fip", "ipv4_addr", "ipv4_addr",
                                                             frozenset((b, a) for a, b in fips))))})


def br_ns(**links) -> Namespace:
    return Namespace(BR, links={"dv-1": Link("dv-1", "veth", FIP, "fg-1", master="brext"), **links}, managed=False)


def br_obs(**links) -> Namespace:
    """The bridge namespace as read: the foreign bridge too."""
    return br_ns(brext=Link("brext", "bridge"), **links)


def host(*nss: Namespace) -> HostState:
    return HostState("h", {n.name: n for n in nss})


def kinds(plan) -> list[str]:
    return [type(op).__name__ for op in plan]


def test_from_empty_creates_in_dependency_order_and_sorted_first_veth_end():
    d = host(fip_ns(), qr_ns(), br_ns())
    plan = diff(d, host(Namespace(BR, links={"brext": Link("brext", "bridge")}, managed=False)), P)
    order = ["NetnsAdd", "LinkAdd", "LinkSet", "AddrAdd", "RouteReplace", "RuleAdd", "SysctlSet",
             "NftReplaceTable", "Garp"]
    seen = [k for k in kinds(plan)]
    assert [k for k in order if k in seen] == sorted(set(seen), key=order.index)
    assert seen == sorted(seen, key=order.index)
    adds = [op for op in plan if isinstance(op, O.LinkAdd)]
    # fg-1/dv-1 pair created once, from ("bridges", "dv-1") which sorts before ("n1-fip-ext", "fg-1")
    assert [(a.ns, a.link.name) for a in adds] == [(BR, "dv-1"), (FIP, "fpr-r1")]
    assert str(adds[0]) == f"{BR}: link add dv-1 type veth peer name fg-1 netns {FIP}"
    assert not any(isinstance(op, (O.NetnsAdd)) and op.ns == BR for op in plan)   # unmanaged: never created
    garps = [op for op in plan if isinstance(op, O.Garp)]
    assert [(g.dev, g.ip) for g in garps] == [("fg-1", "203.0.113.50")]


def test_no_change_is_an_empty_plan():
    d = host(fip_ns(), qr_ns(), br_ns())
    assert len(diff(d, d, P)) == 0


def test_changed_route_is_replaced_in_place_and_changed_rule_added_before_old_deleted():
    old = host(fip_ns(gw="198.51.100.1"), qr_ns(), br_obs())
    new_rule = Rule(40010, "lookup", T203 + 256, src="203.0.113.0/24")
    f = fip_ns()
    f = Namespace(f.name, f.links, f.addresses, f.routes,
                  (f.rules - {Rule(40010, "lookup", T203, src="203.0.113.0/24")}) | {new_rule}, sysctls=f.sysctls)
    plan = diff(host(f, qr_ns(), br_ns()), old, P)
    lines = [str(op) for op in plan]
    assert f"{FIP}: route replace default via 203.0.113.1 dev fg-1 table {T203} proto 94 onlink" in lines
    assert not any(isinstance(op, O.RouteDel) for op in plan)
    i_add = next(i for i, op in enumerate(plan) if isinstance(op, O.RuleAdd))
    i_del = next(i for i, op in enumerate(plan) if isinstance(op, O.RuleDel))
    assert i_add < i_del


def test_deletes_follow_creates_in_reverse_order_and_obsolete_namespaces_last():
    stale = Namespace(f"{P}qrouter-gone")
    obs_f = fip_ns(fips=("203.0.113.50", "203.0.113.51"))
    obs_f = Namespace(FIP, {**obs_f.links, "fpr-old": Link("fpr-old", "dummy")},
                      obs_f.addresses | {Address("fpr-old", "169.254.64.9/31")}, obs_f.routes, obs_f.rules
                      | {Rule(40020, "lookup", 5)}, sysctls=obs_f.sysctls)
    d = host(fip_ns(fips=("203.0.113.52",)), qr_ns(), br_ns())
    plan = diff(d, host(obs_f, qr_ns(), br_obs(), stale), P)
    k = kinds(plan)
    assert k.index("RouteReplace") < k.index("RuleDel") < k.index("RouteDel") < k.index("LinkDel")
    assert k[-1] == "NetnsDel" and plan.ops[-1].ns == f"{P}qrouter-gone"
    assert not any(isinstance(op, O.AddrDel) for op in plan)   # goes with its link


def test_wrong_link_kind_is_deleted_and_recreated_with_its_objects():
    d = host(fip_ns(), qr_ns(), br_ns())
    obs = host(fip_ns(fg_kind="dummy"), qr_ns(), Namespace(BR, links={"brext": Link("brext", "bridge")}, managed=False))
    plan = diff(d, obs, P)
    k = kinds(plan)
    rd = next(op for op in plan if isinstance(op, O.LinkReplaceDel))
    assert (rd.ns, rd.name) == (FIP, "fg-1") and "kind dummy" in rd.why
    assert k.index("LinkReplaceDel") < k.index("LinkAdd")
    readd = {op.addr.cidr for op in plan if isinstance(op, O.AddrAdd)}
    assert "100.64.0.11/24" in readd
    assert any(isinstance(op, O.RouteReplace) and op.route.dev == "fg-1" for op in plan)


def test_wrong_veth_peer_is_replaced():
    d = host(fip_ns(), qr_ns(), br_ns())
    f = fip_ns()
    wrong = Namespace(FIP, {**f.links, "fpr-r1": Link("fpr-r1", "veth", FIP, "fpr-zz")}, f.addresses,
                      f.routes, f.rules, sysctls=f.sysctls)
    plan = diff(d, host(wrong, Namespace(QR, nft=qr_ns().nft), br_obs()), P)
    assert any(isinstance(op, O.LinkReplaceDel) and op.name == "fpr-r1" for op in plan)
    assert [op.link.name for op in plan if isinstance(op, O.LinkAdd)] == ["fpr-r1"]


def test_one_new_fip_is_a_small_element_only_nft_change():
    before = qr_ns()
    after = qr_ns(fips=(("203.0.113.50", "10.0.0.5"), ("203.0.113.51", "10.0.0.6")))
    plan = diff(host(after), host(before), P)
    assert kinds(plan) == ["NftElements"]
    op = plan.ops[0]
    assert op.script() == ("add element ip dvrnet fip2fixed { 203.0.113.51 : 10.0.0.6 }\n"
                           "add element ip dvrnet fixed2fip { 10.0.0.6 : 203.0.113.51 }\n")


def test_changed_map_value_deletes_then_adds_in_one_transaction():
    plan = diff(host(qr_ns(fips=(("203.0.113.50", "10.0.0.9"),))), host(qr_ns()), P)
    assert kinds(plan) == ["NftElements"]
    script = plan.ops[0].script()
    assert script.index("delete element") < script.index("add element")


def test_structure_change_replaces_the_whole_table():
    plan = diff(host(qr_ns(chain_rule="ip daddr @fip2fixed accept")), host(qr_ns()), P)
    assert kinds(plan) == ["NftReplaceTable"] and plan.ops[0].exists
    assert plan.ops[0].script().startswith("add table ip dvrnet\ndelete table ip dvrnet\n")


def test_foreign_objects_are_never_deleted():
    f = fip_ns()
    obs = host(Namespace(FIP, {**f.links, "eth0": Link("eth0", "dummy")},
                         f.addresses | {Address("eth0", "192.0.2.7/24")}, f.routes, f.rules,
                         nft={("inet", "filter"): NftTable("inet", "filter")}, sysctls=f.sysctls),
               br_obs(veth9=Link("veth9", "veth")), Namespace("someone-elses"),
               Namespace("n2-fip-ext"))
    plan = diff(host(Namespace(BR, managed=False)), obs, P)
    touched = {(op.ns, getattr(op, "name", None)) for op in plan}
    assert (FIP, "eth0") not in touched and (BR, "veth9") not in touched and (BR, "brext") not in touched
    assert not any(isinstance(op, O.NftDelTable) and op.name == "filter" for op in plan)
    assert {op.ns for op in plan if isinstance(op, O.NetnsDel)} == {FIP}
    assert (BR, "dv-1") in touched                    # dv- links in unmanaged namespaces are ours


def test_address_held_by_a_foreign_device_is_a_conflict_not_an_op():
    f = fip_ns()
    obs = host(Namespace(FIP, {"eth0": Link("eth0", "dummy")}, frozenset({Address("eth0", "100.64.0.11/24")})))
    plan = diff(host(f), obs, P)
    assert not any(isinstance(op, O.AddrAdd) and op.addr.ip == "100.64.0.11" for op in plan)
    assert plan.conflicts == (f"{FIP}: address 100.64.0.11/24 on fg-1: held by foreign device eth0",)


def test_desired_state_outside_ownership_is_refused():
    with pytest.raises(NotOwned):
        diff(host(Namespace(FIP, links={"eth0": Link("eth0", "dummy")})), host(), P)
    with pytest.raises(NotOwned):
        diff(host(Namespace("other-ns")), host(), P)
    with pytest.raises(NotOwned):
        diff(host(Namespace(FIP, sysctls={"kernel.panic": "1"})), host(), P)


def test_ownership_rules():
    own = Ownership(P)
    assert own.owns_namespace(f"{P}fip-x") and own.owns_namespace(f"{P}snat-y")
    assert not own.owns_namespace("fip-x") and not own.owns_namespace(f"{P}fip-")
    managed, bridge = Namespace(f"{P}qrouter-a"), Namespace("br", managed=False)
    assert own.owns_link(managed, "qr-1") and not own.owns_link(managed, "eth0")
    assert own.owns_link(bridge, "dv-1") and not own.owns_link(bridge, "qr-1")


def test_verify_describes_differences_per_object():
    obs = host(fip_ns(gw="198.51.100.1"))
    plan = diff(host(fip_ns()), obs, P)
    assert f"{FIP} table {T203} default: desired via 203.0.113.1, found via 198.51.100.1" in describe_plan(plan)


def test_plan_prints_one_line_per_op():
    plan = diff(host(fip_ns(), qr_ns(), br_ns()), host(), P)
    text = str(plan)
    assert len(text.splitlines()) == len(plan)
    assert f"{FIP}: route add 203.0.113.50/32 via 169.254.64.0 dev fpr-r1 table 254 proto 94 onlink" in text


# each op describes itself as a difference (what a verify plan reports): one sample of every shape
DESCRIBED = [
    (O.NetnsAdd("n-fip-x"),
     'n-fip-x: namespace desired, found nothing'),
    (O.NetnsDel("n-qrouter-old"),
     'n-qrouter-old: namespace desired nothing, found it'),
    (O.LinkAdd("n-fip-x", link=Link("fg-1", "veth", "n-br", "dv-1")),
     'n-fip-x link fg-1: desired veth, found nothing'),
    (O.LinkAdd("n-br", link=Link("fg-2", "macvlan", None, "eth0"), into="n-fip-x"),
     'n-fip-x link fg-2: desired macvlan, found nothing'),
    (O.LinkSet("n-fip-x", name="fg-1", mac="fa:16:3e:ab:e5:9c", mtu=1450, master="br-ex", up=True),
     'n-fip-x link fg-1: desired mac fa:16:3e:ab:e5:9c mtu 1450 master br-ex up, found otherwise'),
    (O.LinkSet("n-br", name="dv-1", master="nomaster", up=False),
     'n-br link dv-1: desired master nomaster no up, found otherwise'),
    (O.LinkDel("n-fip-x", name="fg-9"),
     'n-fip-x link fg-9: desired nothing, found it'),
    (O.LinkReplaceDel("n-fip-x", name="fg-1", why="kind veth, desired macvlan"),
     'n-fip-x link fg-1: kind veth, desired macvlan'),
    (O.AddrAdd("n-fip-x", addr=Address("fg-1", "100.64.0.11/24")),
     'n-fip-x address 100.64.0.11 on fg-1: desired 100.64.0.11/24, found nothing'),
    (O.AddrAdd("n-fip-x", addr=Address("fg-1", "100.64.0.11/24", True), old=Address("fg-1", "100.64.0.11/16")),
     'n-fip-x address 100.64.0.11 on fg-1: desired cidr 100.64.0.11/24, found cidr 100.64.0.11/16'),
    (O.AddrDel("n-fip-x", addr=Address("fg-1", "100.64.0.12/24")),
     'n-fip-x address 100.64.0.12/24 on fg-1: desired nothing, found it'),
    (O.RouteReplace("n-fip-x", route=Route(3405803776, "default", via="203.0.113.1", dev="fg-1", onlink=True)),
     'n-fip-x table 3405803776 default: desired via 203.0.113.1 dev fg-1, found nothing'),
    (O.RouteReplace("n-fip-x", route=Route(3405803776, "default", via="203.0.113.1", dev="fg-1", onlink=True),
                   old=Route(3405803776, "default", via="198.51.100.1", dev="fg-1", onlink=True)),
     'n-fip-x table 3405803776 default: desired via 203.0.113.1, found via 198.51.100.1'),
    (O.RouteReplace("n-fip-x", route=Route(40005, "10.66.0.0/16", type="blackhole", metric=5)),
     'n-fip-x table 40005 10.66.0.0/16 metric 5: desired blackhole metric 5, found nothing'),
    (O.RouteDel("n-fip-x", route=Route(254, "203.0.113.50/32", via="169.254.64.0", dev="fpr-1", onlink=True)),
     'n-fip-x table 254 203.0.113.50/32: desired nothing, found via 169.254.64.0 dev fpr-1'),
    (O.RuleAdd("n-fip-x", rule=Rule(40010, "lookup", 3405803776, src="203.0.113.0/24")),
     'n-fip-x rule priority 40010 from 203.0.113.0/24 lookup 3405803776: desired, found nothing'),
    (O.RuleDel("n-fip-x", rule=Rule(40000, "blackhole", iif="fg-1")),
     'n-fip-x rule priority 40000 iif fg-1 blackhole: desired nothing, found it'),
    (O.NeighReplace("n-fip-x", neigh=Neighbour("fpr-1", "169.254.64.0", "fa:16:3e:aa:00:00")),
     'n-fip-x neighbour 169.254.64.0 on fpr-1: desired lladdr fa:16:3e:aa:00:00, found nothing'),
    (O.NeighReplace("n-fip-x", neigh=Neighbour("fpr-1", "169.254.64.0", "fa:16:3e:aa:00:00"),
                   old=Neighbour("fpr-1", "169.254.64.0", "fa:16:3e:aa:00:01")),
     'n-fip-x neighbour 169.254.64.0 on fpr-1: desired lladdr fa:16:3e:aa:00:00, found fa:16:3e:aa:00:01'),
    (O.NeighDel("n-fip-x", neigh=Neighbour("fpr-1", "169.254.64.2", "fa:16:3e:aa:00:02")),
     'n-fip-x neighbour 169.254.64.2 on fpr-1: desired nothing, found fa:16:3e:aa:00:02'),
    (O.SysctlSet("n-fip-x", key="net.ipv4.ip_forward", value="1"),
     'n-fip-x sysctl net.ipv4.ip_forward: desired 1, found nothing'),
    (O.SysctlSet("n-fip-x", key="net.ipv4.ip_forward", value="1", old="0"),
     'n-fip-x sysctl net.ipv4.ip_forward: desired 1, found 0'),
    (O.NftReplaceTable("n-qrouter-x", table=NftTable("ip", "dvrnet")),
     'n-qrouter-x nft table ip dvrnet: desired, found nothing'),
    (O.NftReplaceTable("n-qrouter-x", table=NftTable("ip", "dvrnet"), exists=True),
     'n-qrouter-x nft table ip dvrnet: structure differs (chains, rules or map declarations)'),
    (O.EarlySysctlSet("n-fip-x", key="net.ipv4.conf.all.arp_ignore", value="1", old="0"),
     'n-fip-x sysctl net.ipv4.conf.all.arp_ignore: desired 1, found 0'),
    (O.EarlyNftTable("n-br", table=NftTable("bridge", "dvrnet")),
     'n-br nft table bridge dvrnet: desired, found nothing'),
    (O.NftDelTable("n-qrouter-x", family="inet", name="dvrnet"),
     'n-qrouter-x nft table inet dvrnet: desired nothing, found it'),
    (O.NftElements("n-qrouter-x", family="ip", table="dvrnet", add=(("fixed2fip", "10.0.0.5", "203.0.113.50"),),
                  delete=(("fixed2fip", "10.0.0.6", "203.0.113.51"),), maps=(NftMap("fixed2fip", "ipv4_addr", "ipv4_addr"),)),
     'n-qrouter-x nft table ip dvrnet: 1 elements missing, 1 unexpected: delete element ip dvrnet fixed2fip { 10.0.0.6 : 203.0.113.51 }; add element ip dvrnet fixed2fip { 10.0.0.5 : 203.0.113.50 }'),
    (O.ProcStart("n-fip-x", proc=Process("bird", ("bird", "-c", "/run/x/bird.conf"))),
     'n-fip-x process bird: desired running, found nothing'),
    (O.ProcStart("n-fip-x", proc=Process("bird", ("bird", "-c", "new")), old=Process("bird", ("bird", "-c", "old"))),
     'n-fip-x process bird: desired bird -c new, found bird -c old'),
    (O.ProcReload("n-fip-x", proc=Process("bird", ("bird",), digest="d2"), old=Process("bird", ("bird",), digest="d1")),
     'n-fip-x process bird: desired configuration d2, found d1'),
    (O.ProcReload("n-fip-x", proc=Process("bird", ("bird",), digest="d2")),
     'n-fip-x process bird: desired configuration d2, found an unknown one'),
    (O.ProcStop("n-fip-x", proc=Process("bird", ("bird",), pid=4242)),
     'n-fip-x process bird pid 4242: desired nothing, found it running'),
    (O.OvsPlug("n-br", link=Link("qr-1", "ovs"), port=OvsPort("qr-1", "br-int", type="internal"), into="n-qrouter-x"),
     'n-qrouter-x link qr-1: desired ovs (internal port of br-int in n-br), found nothing'),
    (O.OvsPortSet("n-br", port=OvsPort("dv-1", "br-int", external_ids=(("iface-id", "p1"),))),
     'n-br OVS port dv-1: desired on br-int, found nothing'),
    (O.OvsPortSet("n-br", port=OvsPort("dv-1", "br-int", external_ids=(("iface-id", "p1"),), mtu_request=1450),
                  old=OvsPort("dv-1", "br-int", external_ids=(("iface-id", "p0"),), mtu_request=1500)),
     ("n-br OVS port dv-1: desired external_ids (('iface-id', 'p1'),) mtu_request 1450, "
      "found external_ids (('iface-id', 'p0'),) mtu_request 1500")),
    (O.OvsPortDel("n-br", bridge="br-int", name="qr-9"), 'n-br OVS port qr-9 on br-int: desired nothing, found it'),
    (O.OvsPortDel("n-br", bridge="br-int", name="qr-1", why="kind veth, desired ovs"),
     'n-br OVS port qr-1 on br-int: to be re-created (kind veth, desired ovs)'),
    (O.EthtoolSet("n-qrouter-x", dev="qr-1", tx=False), 'n-qrouter-x link qr-1: desired tx-checksumming off, found otherwise'),
    (O.Garp("n-fip-x", dev="fg-1", ip="203.0.113.50"),
     None),
    # taking over from neutron-l3-agent (reconcile/takeover.py)
    (T.UpstreamRouteDel("n-fip-x", route=T.SeenRoute(254, "203.0.113.50", "static", "fpr-1", "169.254.88.134")),
     "n-fip-x table 254 203.0.113.50: desired nothing, found neutron-l3-agent's via 169.254.88.134 dev fpr-1 proto static"),
    (T.UpstreamRuleDel("n-qrouter-x", rule=T.SeenRule(46973, "static", 16, "10.0.0.5")),
     "n-qrouter-x rule 46973: desired nothing, found neutron-l3-agent's from 10.0.0.5 lookup 16"),
    (T.UpstreamIptablesDel("n-qrouter-x", table="nat", jumps=(("PREROUTING", "-j neutron-l3-agent-PREROUTING"),),
                           chains=("neutron-l3-agent-PREROUTING", "neutron-l3-agent-snat")),
     "n-qrouter-x iptables -t nat: desired no chain of neutron-l3-agent, found 2 chains and 1 jumps into them"),
    (T.UpstreamProcStop("n-qrouter-x", proc=T.SeenProcess(42, ("haproxy", "-f", "/x/ns-metadata-proxy/r.conf"))),
     "n-qrouter-x process haproxy pid 42: desired nothing, found neutron-l3-agent's metadata proxy running"),
    (T.UpstreamSysctlReset("n-qrouter-x", key="net.ipv4.ip_nonlocal_bind", value="0", was="1"),
     "n-qrouter-x sysctl net.ipv4.ip_nonlocal_bind: desired 0, found 1 (neutron-l3-agent's)"),
    (T.UpstreamPeerAdopt("n-br", old="tapc1000000-00", new="dv-c1000000-00"),
     "n-br link dv-c1000000-00: desired it, found neutron-l3-agent's bridge end tapc1000000-00"),
    (T.VethRekey("n-fip-x", dev="fpr-1", mac="02:00:00:00:00:01", peer_ns="n-qrouter-x", peer="rfp-1"),
     "n-fip-x link fpr-1: desired fpr-1 address 02:00:00:00:00:01, found neutron-l3-agent's"),
]


def test_every_op_class_owns_its_description():
    from dvrnet.reconcile.ops import Op

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)
    assert {c for c in subclasses(Op) if c.describe is Op.describe} == set()
    assert {type(op) for op, _ in DESCRIBED} == set(subclasses(Op))
    for op, text in DESCRIBED:
        assert op.describe() == text, op
    plan = O.Plan(tuple(op for op, _ in DESCRIBED), conflicts=("x: held by foreign device eth9",))
    assert describe_plan(plan) == tuple(t for _, t in DESCRIBED if t is not None) + plan.conflicts
