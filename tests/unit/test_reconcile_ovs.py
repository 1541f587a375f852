"""Pure tests of the Open vSwitch port kinds (issue 14): the plan (plan/plug.py), the diff of
OVS ports and of links whose kind, carrier or OVS attachment differ (reconcile/diff.py), the
overlay that turns what the kernel and the database say into that state (kernel/ovs_observe.
annotate), against an in-memory kernel with a model of ovs-vswitchd: internal ports are taps it
creates in its own namespace and holds; a restart leaves the moved taps without carrier and makes
new ones. The real thing is tested in tests/kernel/test_ovs.py."""
from __future__ import annotations

from dataclasses import replace

import pytest
from test_reconcile_replace import StrictKernel

from dvrnet.kernel import apply as A
from dvrnet.kernel.ovs import Switch, ports_from_rows
from dvrnet.kernel.ovs_observe import OvsObserver, annotate
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.names import OVS_OWNER_KEY
from dvrnet.plan.plug import PORT_KINDS
from dvrnet.plan.state import HostState, Link, Namespace, OvsPort
from dvrnet.reconcile import diff
from dvrnet.reconcile import ops as O
from dvrnet.reconcile.diff import DiffMemo
from dvrnet.reconcile.verify import describe_plan
from dvrnet.scenarios.seed import build

P = "ov1-"
BR = "ov1-node"
PLUGGED = ("fg-", "qg-", "qr-", "sg-")


def cfg(kind: str) -> PlanConfig:
    return PlanConfig(netns_prefix=P, bridge_netns=BR, port_kind=kind)


class OvsKernel(StrictKernel):
    """StrictKernel plus one ovs-vswitchd running in BR: `rows` (its database), `held` (the taps
    it holds, by port name: (namespace, device)), taps without carrier, tx offload per device."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, OvsPort] = {}
        self.held: dict[str, str] = {}
        self.dead: set[tuple[str, str]] = set()
        self.tx: dict[tuple[str, str], bool] = {}
        self.txns = 0

    def _tap(self, name: str) -> None:
        if name not in self.held:
            self.ns[BR].links[name] = Link(name, "tun", mac="02:00:00:00:00:01", mtu=1500, up=False)
            self.held[name] = BR

    def apply(self, op: O.Op) -> None:
        if isinstance(op, O.OvsPlug):
            assert op.ns == BR
            old = self.rows.get(op.port.name)
            self.rows[op.port.name] = replace(op.port) if old is None or old.type == op.port.type else op.port
            self._tap(op.port.name)
            where = self.held[op.port.name]
            assert where == BR, f"{op}: tap is in {where}"
            into = self.ns[op.into]
            assert op.link.name not in into.links, f"{op}: EEXIST in {op.into}"
            lk = self.ns[BR].links.pop(op.link.name)
            into.links[op.link.name] = replace(lk, mac=op.link.mac, mtu=op.link.mtu, up=True)
            self.held[op.port.name] = op.into
            return
        if isinstance(op, O.OvsPortSet):
            assert op.ns == BR
            if op.port.type == "":
                assert op.port.name in self.ns[BR].links, f"{op}: no device"
            self.rows[op.port.name] = op.port
            if op.port.type == "internal":
                self._tap(op.port.name)
            return
        if isinstance(op, O.OvsPortDel):
            self.rows.pop(op.name, None)
            where = self.held.pop(op.name, None)
            if where is not None:                       # ovs-vswitchd destroys the tap it holds
                self._drop_link(where, op.name)
            return
        if isinstance(op, O.EthtoolSet):
            assert op.dev in self.ns[op.ns].links, f"{op}: no device"
            self.tx[(op.ns, op.dev)] = op.tx
            return
        if isinstance(op, O.LinkAdd) and op.link.kind in ("ovs", "tun"):
            raise AssertionError(f"{op}: an OVS port is plugged by OvsPlug, never by ip link add")
        super().apply(op)

    def _drop_link(self, ns: str, name: str) -> None:
        m = self.ns.get(ns)
        if m is not None and name in m.links:
            for k, where in list(self.held.items()):
                if k == name and where == ns:
                    del self.held[k]
            self.dead.discard((ns, name))
            self.tx.pop((ns, name), None)
            lk = m.links[name]
            if lk.kind == "veth" and lk.peer:
                self.tx.pop((lk.peer_netns or ns, lk.peer), None)
        super()._drop_link(ns, name)

    def restart(self) -> None:
        """ovs-vswitchd killed and started again: the taps it held lose carrier and stay where
        they are; it makes a new tap for every internal port in its own namespace."""
        for name, where in list(self.held.items()):
            self.dead.add((where, name))
        self.held.clear()
        for name, row in self.rows.items():
            if row.type == "internal" and name not in self.ns[BR].links:
                self._tap(name)

    def read(self, desired: HostState, prefix: str) -> HostState:
        raw = super().read(desired, prefix)
        fresh = frozenset(n for n, lk in raw.namespaces.get(BR, Namespace(BR)).links.items()
                          if lk.kind == "tun" and n in self.rows)
        out = {}
        for n, ns in raw.namespaces.items():
            want = desired.namespaces.get(n)
            tx = {d: self.tx.get((n, d), True) for d, lk in (want.links.items() if want else ())
                  if lk.tx_csum is not None and d in ns.links}
            carrier = {d: (n, d) not in self.dead for d in ns.links}
            out[n] = annotate(ns, BR, self.rows, fresh, carrier, tx)
        return HostState(raw.host, out)


def kernel_for(state: HostState) -> OvsKernel:
    k = OvsKernel()
    k.load(state)
    k.ns.setdefault(BR, type(k.ns[next(iter(k.ns))])(managed=False))
    for b in ("br-ex", "br-int") + tuple({lk.master for ns in state.namespaces.values()
                                          for lk in ns.links.values() if lk.master}):
        k.ns[BR].links.setdefault(b, Link(b, "bridge"))
    # bridges of the Linux-bridge kinds, so the same kernel can switch between all kinds
    for kind in ("veth", "macvlan"):
        for ns in plan_host(build(), "compute1", cfg(kind)).namespaces.values():
            for lk in ns.links.values():
                for b in (lk.master, lk.peer if lk.kind == "macvlan" else None):
                    if b:
                        k.ns[BR].links.setdefault(b, Link(b, "bridge"))
    for ns in state.namespaces.values():          # a converged OVS node: its ports and taps
        k.rows.update(ns.ovs_ports)
        for name, lk in ns.links.items():
            if lk.kind == "ovs":
                k.ns[ns.name].links[name] = replace(lk, kind="tun", peer_netns=None, peer=None)
                k.held[name] = ns.name
            if lk.tx_csum is not None:
                k.tx[(ns.name, name)] = lk.tx_csum
    return k


def converge(k: OvsKernel, desired: HostState) -> O.Plan:
    plan = diff(desired, k.read(desired, P), P)
    for op in plan:
        k.apply(op)
    return plan


def plugged(state: HostState) -> dict[str, Link]:
    return {f"{ns}/{n}": lk for ns, d in state.namespaces.items() if d.managed
            for n, lk in d.links.items() if n.startswith(PLUGGED)}


# --- the plan ----------------------------------------------------------------------------------
def test_plan_ovs_kinds_plug_into_br_int_with_neutrons_external_ids_and_the_marker():
    cloud = build()
    for kind in ("ovs", "ovs-veth"):
        st = plan_host(cloud, "compute1", cfg(kind))
        br = st.namespaces[BR]
        ports = plugged(st)
        assert len(ports) >= 3 and set(br.ovs_ports) == (
            {n.split("/")[1] for n in ports} if kind == "ovs" else {lk.peer for lk in ports.values()})
        for lk in ports.values():
            port_id = next(p.id for p in cloud.ports.values() if lk.name == (lk.name[:3] + p.id)[:14])
            mac = cloud.ports[port_id].mac_address
            name = lk.name if kind == "ovs" else lk.peer
            row = br.ovs_ports[name]
            assert row.bridge == "br-int" and row.mtu_request == lk.mtu and lk.mac == mac
            assert dict(row.external_ids) == {"iface-id": port_id, "iface-status": "active", "attached-mac": mac,
                                              OVS_OWNER_KEY: P}
            if kind == "ovs":
                assert (lk.kind, lk.peer_netns, lk.peer, row.type) == ("ovs", BR, "br-int", "internal")
                assert lk.tx_csum is None
            else:
                dv = br.links[lk.peer]
                assert (lk.kind, lk.tx_csum, row.type) == ("veth", False, "")
                assert (dv.kind, dv.master, dv.ovs, dv.peer) == ("veth", None, "br-int", lk.name)
        if kind == "ovs":
            assert not br.links                  # nothing of an internal port stays in the bridge namespace
    assert set(PORT_KINDS) == {"veth", "macvlan", "ovs", "ovs-veth"}
    with pytest.raises(ValueError, match="port kind 'tap'"):
        plan_host(cloud, "compute1", cfg("tap"))


def test_rendered_state_shows_ovs_ports_and_offload():
    from dvrnet.plan.render import render
    text = render(plan_host(build(), "compute1", cfg("ovs-veth")))
    assert "ovs-port dv-" in text and "type system mtu_request 1450 external_ids:attached-mac=" in text
    assert " tx off" in text and "ovs-bridge br-int" in text


# --- kind changes (S16) ------------------------------------------------------------------------
KINDS = ("veth", "ovs-veth", "ovs", "macvlan")


@pytest.mark.parametrize("old,new", [(a, b) for a in KINDS for b in KINDS if a != b and "ovs" in a + b])
def test_kind_change_replaces_one_port_per_group_and_converges(old, new):
    cloud = build()
    before, desired = plan_host(cloud, "compute1", cfg(old)), plan_host(cloud, "compute1", cfg(new))
    k = kernel_for(before)
    assert not diff(before, k.read(before, P), P), "the model kernel starts converged"
    obs = k.read(desired, P)
    plan = diff(desired, obs, P)
    assert plan == diff(desired, obs, P, memo=DiffMemo())
    ports = plugged(desired)
    assert len(plan.groups) == len(ports) >= 3, str(plan)
    # only the ports change: after the groups at most the Linux bridges' L2 guard goes (plan/l2.py:
    # with an OVS kind the L2 agent keeps the gateway MAC on the node)
    after_groups = plan.ops[plan.groups[-1][1]:]
    assert all(isinstance(op, O.NftDelTable) and op.ns == BR for op in after_groups), str(plan)
    assert bool(after_groups) == (old in ("veth", "macvlan") and new not in ("veth", "macvlan"))
    first = plan.groups[0][0]
    assert all(isinstance(op, O.OvsPortSet) or op.tool != "ovs" for op in plan.ops[:first]), str(plan)
    for a, b in plan.groups:
        g = plan.ops[a:b]
        names = {getattr(op, "name", None) or getattr(getattr(op, "link", None), "name", None) for op in g}
        assert len({n[3:] for n in names if n}) == 1, f"a group is one port: {names}"
    for i, op in enumerate(plan.ops):
        k.apply(op)
        now = k.read(desired, P)
        # after each group, every port of the groups done so far is whole and of the new kind
        for a, b in plan.groups:
            if b - 1 <= i:
                for op2 in plan.ops[a:b]:
                    if isinstance(op2, O.LinkReplaceDel) and op2.name.startswith(PLUGGED):
                        lk = now.namespaces[op2.ns].links.get(op2.name)
                        assert lk is not None and lk.kind == desired.namespaces[op2.ns].links[op2.name].kind
    after = k.read(desired, P)
    rest = diff(desired, after, P)
    assert not rest, str(rest)
    kinds = {lk.kind for lk in plugged(after).values()}
    assert kinds == {"ovs" if new == "ovs" else "macvlan" if new == "macvlan" else "veth"}
    br = after.namespaces[BR]
    assert set(br.ovs_ports) == set(desired.namespaces[BR].ovs_ports), "no stale OVS port"
    dv = {n for n in br.links if n.startswith("dv-")}
    assert dv == ({lk.peer for lk in plugged(desired).values()} if new in ("veth", "ovs-veth") else set())
    assert {n for n, lk in br.links.items() if lk.kind == "tun"} == set(), "no tap left in the bridge namespace"
    if new == "ovs-veth":
        assert all(k.tx[(ns, n)] is False for key in ports for ns, n in [key.split("/")])


def test_ovs_vswitchd_restart_is_repaired_port_by_port():
    desired = plan_host(build(), "compute1", cfg("ovs"))
    k = kernel_for(desired)
    assert not diff(desired, k.read(desired, P), P)
    k.restart()
    obs = k.read(desired, P)
    lost = {f"{ns}/{n}" for ns, d in obs.namespaces.items() for n, lk in d.links.items() if lk.kind == "ovs" and not lk.carrier}
    assert lost == set(plugged(desired))
    plan = diff(desired, obs, P)
    assert len(plan.groups) == len(lost)
    why = {op.why for op in plan if isinstance(op, O.LinkReplaceDel)}
    assert why == {"no carrier: an OVS internal port left behind by an ovs-vswitchd restart"}
    assert not any(isinstance(op, O.OvsPortDel) for op in plan), "the database rows stay: only taps move"
    # the fresh taps are moved in (no new port), with the port's MAC, and the addresses come back
    for op in plan:
        k.apply(op)
    assert not diff(desired, k.read(desired, P), P)
    assert not k.dead and all(w != BR for w in k.held.values())
    for key, lk in plugged(desired).items():
        ns, n = key.split("/")
        assert k.ns[ns].links[n].mac == lk.mac


def test_ovs_veth_survives_a_restart_and_offload_drift_is_one_setting():
    desired = plan_host(build(), "compute1", cfg("ovs-veth"))
    k = kernel_for(desired)
    k.restart()
    assert not diff(desired, k.read(desired, P), P), "veths and system ports survive an ovs-vswitchd restart"
    key = next(iter(plugged(desired)))
    ns, dev = key.split("/")
    k.tx[(ns, dev)] = True
    plan = diff(desired, k.read(desired, P), P)
    assert [str(op) for op in plan] == [f"{ns}: ethtool -K {dev} tx off"] and not plan.groups
    assert describe_plan(plan) == (f"{ns} link {dev}: desired tx-checksumming off, found otherwise",)


def test_stale_ports_go_foreign_ports_stay_and_drifted_columns_are_set_in_place():
    desired = plan_host(build(), "compute1", cfg("ovs"))
    k = kernel_for(desired)
    mine = P
    k.ns[BR].links["dv-stale000000"] = Link("dv-stale000000", "veth")
    k.rows["dv-stale000000"] = OvsPort("dv-stale000000", "br-int", "", ((OVS_OWNER_KEY, mine),), 1450)
    k.rows["tap-vm1"] = OvsPort("tap-vm1", "br-int", "", (("iface-id", "vm1"),))
    k.rows["qr-other"] = OvsPort("qr-other", "br-int", "internal", ((OVS_OWNER_KEY, "someone-else-"),))
    name, row = next(iter(desired.namespaces[BR].ovs_ports.items()))
    k.rows[name] = replace(row, external_ids=tuple(sorted({**dict(row.external_ids), "iface-status": "down"}.items())),
                           mtu_request=1400)
    plan = diff(desired, k.read(desired, P), P)
    assert not plan.groups and not plan.conflicts
    assert [type(op).__name__ for op in plan] == ["OvsPortSet", "OvsPortDel", "LinkDel"], str(plan)
    assert plan.ops[0].port == row and plan.ops[1].name == "dv-stale000000"
    assert describe_plan(plan)[0].startswith(f"{BR} OVS port {name}: desired external_ids")
    for op in plan:
        k.apply(op)
    assert "tap-vm1" in k.rows and "qr-other" in k.rows, "foreign ports are never touched"
    assert not diff(desired, k.read(desired, P), P)


def test_a_name_held_by_a_foreign_port_is_a_conflict_never_a_takeover():
    cloud = build()
    veth = plan_host(cloud, "compute1", cfg("veth"))
    desired = plan_host(cloud, "compute1", cfg("ovs"))
    k = kernel_for(veth)
    name = next(iter(desired.namespaces[BR].ovs_ports))
    k.rows[name] = OvsPort(name, "br-int", "internal", (("iface-id", "x"),))
    plan = diff(desired, k.read(desired, P), P)
    assert any(f"OVS port {name}: held by a foreign port" in c for c in plan.conflicts)
    assert not any(getattr(op, "name", None) == name or getattr(getattr(op, "port", None), "name", None) == name
                   for op in plan if op.tool == "ovs")


def test_every_internal_port_of_a_new_node_is_one_transaction(monkeypatch):
    desired = plan_host(build(), "compute1", cfg("ovs"))
    empty = HostState("compute1", {BR: Namespace(BR, managed=False)})
    plan = diff(desired, empty, P)
    calls: list[tuple[str, list]] = []
    monkeypatch.setattr(A.ovs, "run", lambda sw, ns, ops, session: calls.append((ns, list(ops))) or [])
    monkeypatch.setattr(A, "_run_ip", lambda ns, ops: [])
    monkeypatch.setattr(A.netns, "add", lambda ns: None)
    monkeypatch.setattr(A.sysctl, "write", lambda ns, items: {})
    monkeypatch.setattr(A.nft, "apply_script", lambda ns, text: None)
    monkeypatch.setattr(A.garp, "announce", lambda ns, dev, ips: None)
    assert A.execute(plan, switch=Switch(BR, "unix:/nonexistent")) == []
    plugs = [op for op in plan if isinstance(op, O.OvsPlug)]
    assert len(plugs) >= 3 and calls == [(BR, plugs)]


def test_ovsdb_rows_decode_as_the_wire_sends_them():
    u = lambda x: ["uuid", x]
    bridges = [{"name": "br-int", "ports": ["set", [u("p1"), u("p2"), u("p3")]]}, {"name": "br-ex", "ports": u("p4")}]
    ports = [{"_uuid": u("p1"), "name": "qr-a", "interfaces": u("i1")},
             {"_uuid": u("p2"), "name": "bond0", "interfaces": ["set", [u("i2"), u("i3")]]},
             {"_uuid": u("p3"), "name": "dv-b", "interfaces": u("i4")},
             {"_uuid": u("p4"), "name": "eth1", "interfaces": u("i5")}]
    ifaces = [{"_uuid": u("i1"), "name": "qr-a", "type": "internal", "mtu_request": 1450,
               "external_ids": ["map", [["iface-id", "a"], [OVS_OWNER_KEY, "x-"], ["other", "y"]]]},
              {"_uuid": u("i2"), "name": "e1", "type": "", "mtu_request": ["set", []], "external_ids": ["map", []]},
              {"_uuid": u("i3"), "name": "e2", "type": "", "mtu_request": ["set", []], "external_ids": ["map", []]},
              {"_uuid": u("i4"), "name": "dv-b", "type": "system", "mtu_request": ["set", []],
               "external_ids": ["map", [["attached-mac", "fa:16:3e:00:00:01"]]]},
              {"_uuid": u("i5"), "name": "eth1", "type": "", "mtu_request": ["set", []], "external_ids": ["map", []]}]
    rows = ports_from_rows(bridges, ports, ifaces)
    assert rows == {
        "qr-a": OvsPort("qr-a", "br-int", "internal", ((OVS_OWNER_KEY, "x-"), ("iface-id", "a")), 1450),
        "dv-b": OvsPort("dv-b", "br-int", "", (("attached-mac", "fa:16:3e:00:00:01"),), None),
        "eth1": OvsPort("eth1", "br-ex", "", (), None)}


def test_an_unreadable_database_never_reads_as_an_empty_switch(tmp_path):
    desired = plan_host(build(), "compute1", cfg("ovs"))
    k = kernel_for(desired)
    state = StrictKernel.read(k, desired, P)       # what the namespace reader sees (taps as "tun")
    obs = OvsObserver(Switch(BR, f"unix:{tmp_path}/no-db.sock", timeout=0.5))
    unreadable: dict[str, str] = {}
    out = obs.annotate(desired, state, unreadable, None, True)
    with_ports = {n for n, d in desired.namespaces.items() if any(lk.kind == "ovs" for lk in d.links.values())}
    assert set(unreadable) == with_ports | {BR} and out is state
    assert all("cannot read Open vSwitch" in m for m in unreadable.values())
