"""What an agent reports (agent/report.py on reconcile/status.py), checked on the seed scenario's
desired state taken as what the kernel holds, and on that state with one object taken away
(the real agent and kernel: tests/agent/test_real_agent_status.py)."""
from __future__ import annotations

import dataclasses

from dvrnet.agent.report import entries
from dvrnet.model.placement import local_fips, routers_on_host, snat_routers_on_host
from dvrnet.plan import plan_host
from dvrnet.plan.numbers import NFT_TABLE
from dvrnet.plan.state import HostState
from dvrnet.reconcile.status import related
from dvrnet.scenarios.seed import build


def _without(state: HostState, ns: str, **changes) -> HostState:
    spaces = dict(state.namespaces)
    spaces[ns] = dataclasses.replace(spaces[ns], **changes)
    return HostState(state.host, spaces)


def test_everything_in_place_is_active_and_each_missing_part_is_named():
    cloud = build()
    desired = plan_host(cloud, "compute1")
    got = entries(cloud, "compute1", desired, desired)
    fips = [f for r in routers_on_host(cloud, "compute1") for f in local_fips(cloud, "compute1", r)]
    assert fips and {k for k in got if k[0] == "floatingips"} == {("floatingips", f.id) for f in fips}
    assert all(e["status"] == "ACTIVE" and e["reason"] is None for e in got.values())
    f = fips[0]
    assert got[("floatingips", f.id)]["port_id"] == f.port_id
    assert got[("floatingips", f.id)]["fixed_ip_address"] == str(f.fixed_ip_address)

    # its /32 gone from the fip- namespace: ERROR naming the route, with the pass error naming it
    fns = next(n for n in desired.namespaces if "fip-" in n and f.floating_network_id in n)
    ip = str(f.floating_ip_address)
    routes = frozenset(r for r in desired.namespaces[fns].routes if r.dst != ip + "/32")
    problems = (f"{fns}: route add {ip}/32 via 169.254.0.1: RTNETLINK answers: No buffer space",
                f"{fns}: route add {ip}9/32 via 169.254.0.1: something else")
    e = entries(cloud, "compute1", desired, _without(desired, fns, routes=routes), problems=problems)
    bad = e[("floatingips", f.id)]
    assert bad["status"] == "ERROR" and f"no route {ip}/32 in {fns}" in bad["reason"]
    assert "No buffer space" in bad["reason"] and "something else" not in bad["reason"]   # whole address only
    assert sum(x["status"] == "ERROR" for x in e.values()) == 1

    # its DNAT element gone: ERROR naming the map element
    qr = next(n for n in desired.namespaces if "qrouter-" in n and f.router_id in n)
    table = desired.namespaces[qr].nft[("ip", NFT_TABLE)]
    maps = tuple(dataclasses.replace(m, elements=frozenset(x for x in m.elements if x[0] != ip))
                 if m.name == "fip2fixed" else m for m in table.maps)
    nft = {**desired.namespaces[qr].nft, ("ip", NFT_TABLE): dataclasses.replace(table, maps=maps)}
    e = entries(cloud, "compute1", desired, _without(desired, qr, nft=nft), problems=(f"{qr}: nft: EPERM",))
    assert e[("floatingips", f.id)]["status"] == "ERROR"
    assert f"no fip2fixed element {ip} : {f.fixed_ip_address} in {qr}" in e[("floatingips", f.id)]["reason"]
    assert f"{qr}: nft: EPERM" in e[("floatingips", f.id)]["reason"]      # named by namespace


def test_the_snat_node_reports_its_routers_gateway_ports():
    cloud = build()
    desired = plan_host(cloud, "network1")
    got = entries(cloud, "network1", desired, desired)
    gws = {cloud.gateway_port(r.id).id for r in snat_routers_on_host(cloud, "network1")}
    assert gws and {i for k, i in got if k == "ports"} == gws
    assert all(got[("ports", g)]["status"] == "ACTIVE" for g in gws)
    g = min(gws)
    sns = next(n for n, ns in desired.namespaces.items() if "snat-" in n
               and any(d.startswith("qg-") and g.startswith(d[3:]) for d in ns.links))
    qg = next(d for d in desired.namespaces[sns].links if d.startswith("qg-"))
    addrs = frozenset(a for a in desired.namespaces[sns].addresses if a.dev != qg)
    e = entries(cloud, "network1", desired, _without(desired, sns, addresses=addrs))
    assert e[("ports", g)]["status"] == "ERROR" and f"on {qg} in {sns}" in e[("ports", g)]["reason"]
    assert e[("ports", g)]["fixed_ips"] == [str(x.ip_address) for x in cloud.ports[g].fixed_ips]


def test_related_prefers_the_exact_address():
    probs = ["ns1: route 203.0.113.50/32 failed", "ns1: table replace failed", "ns2: 203.0.113.5 failed"]
    assert related(probs, ["203.0.113.5"], ["ns1"]) == ["ns2: 203.0.113.5 failed"]
    assert related(probs, ["203.0.113.7"], ["ns1"]) == probs[:2]
    assert related(probs, ["203.0.113.7"], ["ns9"]) == []


def test_entries_for_a_stream_of_passes_equal_entries_each_time():
    """`Entries` (the agent's, reusing a router's entries while its inputs are the same objects)
    equals `entries` through a sequence of passes: the same state again, +1 FIP (not yet in the
    kernel, then in it), its /32 gone, a problem naming it, its port moved to another host, the
    FIP deleted; and an unchanged router's entries are the same dicts as before."""
    from dvrnet.agent.report import Entries
    from dvrnet.model.changeset import ChangeSet, apply
    from dvrnet.plan.incremental import HostPlanner
    from dvrnet.scenarios.scale import scale_cloud
    cloud = scale_cloud(routers=3, fips=30)
    planner = HostPlanner("compute1")
    memo = Entries()

    def check(cloud, desired, observed, problems=()):
        got = memo(cloud, "compute1", desired, observed, "", problems)
        assert got == entries(cloud, "compute1", desired, observed, "", problems)
        return got

    desired = planner.plan(cloud)
    first = check(cloud, desired, desired)
    again = check(cloud, desired, desired)
    assert all(again[k] is first[k] for k in first)
    f0 = next(f for f in sorted(cloud.floatingips.values(), key=lambda f: f.id)
              if f.port_id and cloud.ports[f.port_id].host == "compute1")
    held = {g.floating_ip_address for g in cloud.floatingips.values()}
    extra = dataclasses.replace(f0, id="fip-extra", floating_ip_address=next(
        x for x in cloud.subnets[f0.subnet_id].cidr.hosts() if x not in held))
    before = desired
    cloud, touched = apply(cloud, ChangeSet(upserts=(extra,)))
    desired = planner.plan(cloud, None, touched)
    got = check(cloud, desired, before)                          # not in the kernel yet: ERROR
    assert got[("floatingips", extra.id)]["status"] == "ERROR"
    got = check(cloud, desired, desired)
    assert got[("floatingips", extra.id)]["status"] == "ACTIVE"
    others = [k for k in first if cloud.floatingips[k[1]].router_id != f0.router_id]
    assert others and all(got[k] is first[k] for k in others)    # other routers: not computed again
    fns = next(n for n in desired.namespaces if "fip-" in n and extra.floating_network_id in n)
    ip = str(extra.floating_ip_address)
    lost = _without(desired, fns, routes=frozenset(r for r in desired.namespaces[fns].routes if r.dst != ip + "/32"))
    assert check(cloud, desired, lost)[("floatingips", extra.id)]["status"] == "ERROR"
    check(cloud, desired, lost, (f"{fns}: route add {ip}/32: EPERM",))
    check(cloud, desired, desired)
    cloud, touched = apply(cloud, ChangeSet(upserts=(dataclasses.replace(cloud.ports[extra.port_id], host="compute2"),)))
    desired = planner.plan(cloud, None, touched)
    got = check(cloud, desired, desired)
    assert ("floatingips", extra.id) not in got
    cloud, touched = apply(cloud, ChangeSet(deletes=(("floatingips", extra.id),)))
    desired = planner.plan(cloud, None, touched)
    check(cloud, desired, desired)
