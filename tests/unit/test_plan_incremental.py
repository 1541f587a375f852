"""HostPlanner (plan/incremental.py) == plan_host after every step of random walks over the model
(Workspace operations), for every host, with and without link-local hints; unchanged namespaces
are the same objects as in the previous plan (what the reconciler's identity memo needs)."""
from __future__ import annotations

import itertools
import random
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvrnet.model import Cloud, DvrnetError
from dvrnet.model.changeset import apply, changeset_between
from dvrnet.model.placement import routers_on_host
from dvrnet.ops import Workspace
from dvrnet.plan import PlanConfig, plan_host, render
from dvrnet.plan.incremental import HostPlanner
from dvrnet.plan.linklocal import hints_from_state
from dvrnet.scenarios.scale import scale_cloud
from dvrnet.wire.codec import cloud_from_json, cloud_to_json

HOSTS = ("compute1", "compute2", "network1", "network2", "ghost")
AGW = "network:floatingip_agent_gateway"


class Walk:
    """A small cloud changed one random Workspace operation at a time (refused ones are skipped)."""

    def __init__(self, rnd: random.Random):
        self.rnd = rnd
        n = itertools.count()
        ws = self.ws = Workspace(id_factory=lambda kind, name: f"{kind[:2]}{next(n)}", check=True)
        ws.register_host("compute1")
        ws.register_host("compute2")
        ws.register_host("network1", "dvr_snat")
        self.ext = [ws.create_network("ext", external=True).id]
        e = self.ext[0]
        ws.create_subnet(e, "203.0.113.0/24")
        ws.create_subnet(e, "198.51.100.0/24")
        ws.create_subnet(e, "100.64.0.0/24", gateway_ip=None, service_types=[AGW])
        self.cidrs = (f"10.{i}.{j}.0/24" for i in range(1, 200) for j in range(0, 256, 7))
        self.ext_cidrs = (f"100.{i}.0.0/24" for i in range(100, 250))
        self.tenant: list[str] = []
        for _ in range(3):
            self.new_tenant()
        for _ in range(2):
            self.new_router()

    # ---- helpers -------------------------------------------------------------------------
    def c(self) -> Cloud:
        return self.ws.snapshot()

    def pick(self, items):
        items = sorted(items)
        return self.rnd.choice(items) if items else None

    def vms(self):
        return [p.id for p in self.c().ports.values() if p.device_owner.startswith("compute:")]

    def tenant_subnets(self):
        c = self.c()
        return [s.id for s in c.subnets.values() if not c.networks[s.network_id].external]

    # ---- operations ----------------------------------------------------------------------
    def new_tenant(self):
        net = self.ws.create_network("t", mtu=self.rnd.choice((1450, 1500))).id
        self.ws.create_subnet(net, next(self.cidrs))
        self.tenant.append(net)

    def new_router(self):
        gw = {"network_id": self.pick(self.ext)} if self.rnd.random() < 0.8 else None
        r = self.ws.create_router("r", distributed=self.rnd.random() < 0.9, external_gateway_info=gw).id
        for s in self.rnd.sample(sorted(self.tenant_subnets()), k=min(2, len(self.tenant_subnets()))):
            try:
                self.ws.add_router_interface(r, subnet_id=s)
            except DvrnetError:
                pass

    def vm(self):
        net = self.pick(self.tenant)
        self.ws.create_port(net, device_owner="compute:nova", host=self.pick(HOSTS[:3]), name="vm")

    def vm_on_two_subnets(self):
        net = self.pick(self.tenant)
        subs = [s.id for s in self.c().subnets_of(net)]
        self.ws.create_port(net, device_owner="compute:nova", host=self.pick(HOSTS[:2]),
                            fixed_ips=[{"subnet_id": s} for s in subs])

    def move_vm(self):
        self.ws.update_port(self.pick(self.vms()), host=self.pick(HOSTS[:3] + ("",)))

    def vm_owner(self):
        self.ws.update_port(self.pick(self.vms()), device_owner=self.rnd.choice(("compute:nova", "compute:az2", "")))

    def delete_vm(self):
        vm = self.pick(self.vms())
        for f in list(self.c().fips_by_port.get(vm, ())):
            self.ws.delete_floatingip(f.id)
        self.ws.delete_port(vm)

    def routed_vms(self) -> list[tuple[str, str]]:
        """(VM port, external network) pairs a FIP can be associated with: the VM's subnet is on
        a router with its gateway on that network."""
        c = self.c()
        gw_of = {}
        for r in c.routers.values():
            if r.gateway is not None:
                for p in c.router_interfaces(r.id):
                    for f in p.fixed_ips:
                        gw_of.setdefault(f.subnet_id, r.gateway.network_id)
        return sorted({(v, gw_of[f.subnet_id]) for v in self.vms() for f in c.ports[v].fixed_ips
                       if f.subnet_id in gw_of})

    def fip(self):
        pair = self.pick(self.routed_vms()) if self.rnd.random() < 0.9 else None
        if pair is None:
            self.ws.create_floatingip(self.pick(self.ext))
        else:
            self.ws.create_floatingip(pair[1], port_id=pair[0])

    def fip_move(self):
        c = self.c()
        f = c.floatingips[self.pick(c.floatingips)]
        vm = self.pick(v for v, net in self.routed_vms() if net == f.floating_network_id)
        self.ws.update_floatingip(f.id, port_id=vm if self.rnd.random() < 0.8 else None)

    def fip_delete(self):
        self.ws.delete_floatingip(self.pick(self.c().floatingips))

    def gateway(self):
        r = self.pick(self.c().routers)
        gw = {"network_id": self.pick(self.ext)} if self.rnd.random() < 0.6 else None
        if gw is None:
            for f in [f for f in self.c().floatingips.values() if f.router_id == r]:
                self.ws.update_floatingip(f.id, port_id=None)
        self.ws.update_router(r, external_gateway_info=gw)

    def snat_off(self):
        r = self.c().routers[self.pick(self.c().routers)]
        if r.gateway is not None:
            self.ws.update_router(r.id, external_gateway_info={"network_id": r.gateway.network_id,
                                                               "enable_snat": not r.gateway.enable_snat})

    def interface(self):
        self.ws.add_router_interface(self.pick(self.c().routers), subnet_id=self.pick(self.tenant_subnets()))

    def remove_interface(self):
        c = self.c()
        r = self.pick(c.routers)
        p = self.pick(p.id for p in c.router_interfaces(r))
        if p is not None:
            self.ws.remove_router_interface(r, port_id=p)

    def delete_router(self):
        r = self.pick(self.c().routers)
        for f in [f for f in self.c().floatingips.values() if f.router_id == r]:
            self.ws.update_floatingip(f.id, port_id=None)
        self.ws.update_router(r, external_gateway_info=None)
        for p in self.c().router_interfaces(r):
            self.ws.remove_router_interface(r, port_id=p.id)
        self.ws.delete_router(r)

    def tenant_subnet(self):
        self.ws.create_subnet(self.pick(self.tenant), next(self.cidrs))

    def ext_subnet(self):
        self.ws.create_subnet(self.pick(self.ext), next(self.ext_cidrs))

    def delete_subnet(self):
        self.ws.delete_subnet(self.pick(self.c().subnets))

    def subnet_gateway(self):
        c = self.c()
        s = c.subnets[self.pick(c.subnets)]
        gw = None if s.gateway_ip is not None else s.cidr.network_address + 1
        self.ws.update_subnet(s.id, gateway_ip=str(gw) if gw else None)

    def mtu(self):
        self.ws.update_network(self.pick(self.c().networks), mtu=self.rnd.choice((1400, 1450, 1500)))

    def second_ext(self):
        if len(self.ext) < 2:
            e = self.ws.create_network("ext2", external=True).id
            self.ws.create_subnet(e, "192.0.2.0/24")
            self.ext.append(e)

    def conn_limit(self):
        self.ws.update_port(self.pick(self.vms()), connection_limit=self.rnd.choice((None, 0, 3, 5000)))

    def snat_host(self):
        if "network2" not in self.c().hosts:
            self.ws.register_host("network2", "dvr_snat")

    OPS: ClassVar[list] = [(vm, 6), (vm_on_two_subnets, 1), (move_vm, 4), (vm_owner, 1), (delete_vm, 2), (fip, 8),
           (fip_move, 3), (fip_delete, 3), (gateway, 2), (snat_off, 1), (interface, 2),
           (remove_interface, 1), (new_router, 2), (delete_router, 1), (new_tenant, 1),
           (tenant_subnet, 1), (ext_subnet, 1), (delete_subnet, 1), (subnet_gateway, 1), (mtu, 1),
           (second_ext, 1), (snat_host, 1), (conn_limit, 2)]

    def step(self) -> str:
        fns, weights = zip(*self.OPS)
        fn = self.rnd.choices(fns, weights)[0]
        try:
            fn(self)
        except (DvrnetError, IndexError, KeyError, TypeError, ValueError):
            return f"{fn.__name__} (refused)"
        return fn.__name__


def _check(planner: HostPlanner, cloud: Cloud, host: str, cfg: PlanConfig, hints, prev, touched=None):
    got = planner.plan(cloud, hints, touched)
    want = plan_host(cloud, host, cfg, hints)
    assert got == want
    assert render(got) == render(want)
    assert planner.router_ids == tuple(r.id for r in routers_on_host(cloud, host))
    assert planner.fallbacks == 0
    if prev is not None:
        for name, ns in got.namespaces.items():
            old = prev.namespaces.get(name)
            if old is not None and old == ns:
                assert old is ns, f"{name}: equal to the last plan but a new object"
    return got


CFGS = [PlanConfig(), PlanConfig(netns_prefix="n1-", bridge_netns="n1-br", port_kind="macvlan",
                                 bridge_mappings=(("ne2", "br-ex2"),), dvr_mac="fa:16:3f:00:00:09",
                                 uplinks=("eth1",))]


@pytest.mark.parametrize("seed", range(12))
def test_random_walk_equals_plan_host(seed):
    rnd = random.Random(seed)
    w = Walk(rnd)
    cfg = CFGS[seed % 2]
    fresh = seed % 3 == 0          # the agent's case: a freshly decoded Cloud per view, no shared objects
    changes = seed % 3 == 1        # the ChangeSet path: apply's snapshot and touched keys
    planners = {h: HostPlanner(h, cfg) for h in HOSTS}
    prev: dict = {h: None for h in HOSTS}
    hints: dict = {h: None for h in HOSTS}
    chain = last = w.c()
    if changes:                     # the planners start on the chain's first cloud
        for h in HOSTS:
            planners[h].plan(chain)
    for i in range(120):
        what = w.step()
        cloud = w.c()
        touched = None
        if fresh:
            cloud = cloud_from_json(cloud_to_json(cloud))
        elif changes:
            chain, touched = apply(chain, changeset_between(last, cloud))
            last, cloud = cloud, chain
        for h in HOSTS:
            try:
                prev[h] = _check(planners[h], cloud, h, cfg, hints[h], prev[h], touched)
                if rnd.random() < 0.2:      # the agent's second plan of one view, with the kernel's slots
                    again = {rid: rnd.randrange(4) for rid in planners[h].router_ids}
                    prev[h] = _check(planners[h], cloud, h, cfg, again, prev[h])
            except AssertionError as e:
                raise AssertionError(f"seed {seed} step {i} ({what}) host {h}: {e}") from None
            # next time: the slots of this plan (as the agent reads them back), or perturbed ones
            r = rnd.random()
            ids = planners[h].router_ids
            if r < 0.6:
                hints[h] = hints_from_state(prev[h], ids)
            elif r < 0.8:
                hints[h] = {rid: rnd.randrange(4) for rid in ids}
            else:
                hints[h] = None


def test_same_cloud_twice_is_the_same_state_and_a_fip_recomputes_two_cells():
    cfg = PlanConfig()
    p = HostPlanner("compute1", cfg)
    a = p.plan(scale_cloud(routers=5, fips=50))
    assert p.plan(scale_cloud(routers=5, fips=50)) is a and p.recomputed == []
    b = p.plan(scale_cloud(routers=5, fips=51))
    assert b == plan_host(scale_cloud(routers=5, fips=51), "compute1", cfg)
    # FIP 51 comes with its VM's port: the router's qrouter- cells (a neighbour, a limit); its
    # FIP (the /32 in the fip- namespace, the NAT elements) is not a cell (`_Fips`)
    assert sorted(k[0] for k in p.recomputed) == ["qrouter", "qrouter-nat"]
    assert sum(1 for n, ns in b.namespaces.items() if a.namespaces.get(n) is ns) == len(b.namespaces) - 2   # all but the fip- and one qrouter-


def test_a_fip_on_a_held_port_recomputes_no_cell():
    """+1 FIP, its port moved, -1 FIP, through `changeset.apply`'s touched keys: equal to plan_host
    each time, no cell recomputed for a FIP alone, and the qrouter- namespace's other parts (its
    neighbours) and every other namespace are the same objects as before."""
    from dataclasses import replace

    from dvrnet.model.changeset import ChangeSet
    cfg = PlanConfig()
    cloud = scale_cloud(routers=3, fips=30)
    p = HostPlanner("compute1", cfg)
    a = p.plan(cloud)
    f0 = next(f for f in sorted(cloud.floatingips.values(), key=lambda f: f.id)
              if f.port_id and cloud.ports[f.port_id].host == "compute1")
    port = cloud.ports[f0.port_id]
    held = {g.floating_ip_address for g in cloud.floatingips.values()}
    addr = next(x for x in cloud.subnets[f0.subnet_id].cidr.hosts() if x not in held)
    second = replace(f0, id="fip-extra", floating_ip_address=addr)
    qr = next(n for n in a.namespaces if "qrouter-" in n and f0.router_id in n)
    steps = [ChangeSet(upserts=(second,)), ChangeSet(upserts=(replace(port, host="compute2"),)),
             ChangeSet(upserts=(port,)), ChangeSet(deletes=(("floatingips", second.id),))]
    last = a
    for i, cs in enumerate(steps):
        cloud, touched = apply(cloud, cs)
        b = p.plan(cloud, None, touched)
        assert b == plan_host(cloud, "compute1", cfg)
        assert render(b) == render(plan_host(cloud, "compute1", cfg))
        if i in (0, 3):                 # a FIP alone: no cell, one qrouter- and the fip- namespace change
            assert p.recomputed == []
            assert b.namespaces[qr].neighbours is last.namespaces[qr].neighbours
            changed = [n for n, ns in b.namespaces.items() if last.namespaces.get(n) is not ns]
            assert len(changed) == 2 and qr in changed and any("fip-" in n for n in changed)
        last = b


def test_planner_errors_are_plan_hosts():
    """A model plan_host rejects (two routers claiming one FIP address on one host) raises the
    same error, and the planner recovers on the next valid model."""
    good = scale_cloud(routers=2, fips=4)
    f = good.floatingips
    a, b = sorted(f)[:2]
    fa, fb = f[a], f[b]
    assert fa.router_id != fb.router_id
    from dataclasses import replace
    bad = good.with_(floatingips={**f, b: replace(fb, floating_ip_address=fa.floating_ip_address)})
    p = HostPlanner("compute1")
    p.plan(good)
    with pytest.raises(Exception) as e1:
        plan_host(bad, "compute1")
    with pytest.raises(type(e1.value)) as e2:
        p.plan(bad)
    assert str(e1.value) == str(e2.value)
    assert p.plan(good) == plan_host(good, "compute1")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 40), st.integers(0, 2)), min_size=1, max_size=6))
def test_scale_sequences(seq):
    """Sequences of scale clouds (routers, FIPs, extra external subnets up and down)."""
    cfg = PlanConfig()
    p = HostPlanner("compute1", cfg)
    for routers, fips, extra in seq:
        c = scale_cloud(routers=routers, fips=fips, extra_subnets=extra)
        assert p.plan(c) == plan_host(c, "compute1", cfg)
