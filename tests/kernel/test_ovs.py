"""Kernel tests of the Open vSwitch port kinds (issue 14) against a real ovs-vswitchd (userspace
datapath) running in the test's bridge namespace: compute1 of the seed planned with each kind,
reconciled, read back; kind changes between veth, ovs-veth and ovs; an ovs-vswitchd killed and
started again; stale and foreign ports on br-int. Every namespace starts with the test's prefix
and the daemons are stopped by pid at teardown, also on failure."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from dvrnet.kernel import Reconciler
from dvrnet.kernel.ovs import Switch, read_ports
from dvrnet.lab import ovs as labovs
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.names import OVS_OWNER_KEY
from dvrnet.reconcile import ops as O
from dvrnet.scenarios.seed import build

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("ovs-vswitchd") is None, reason="Open vSwitch not installed (make deb)")]
PLUGGED = ("fg-", "qg-", "qr-", "sg-")


def ipj(ns: str, *args: str):
    p = subprocess.run(["ip", "-n", ns, "-j", "-d", *args], capture_output=True, text=True, check=True)
    return json.loads(p.stdout or "[]")


@pytest.fixture
def node(netns_prefix, tmp_path):
    """(prefix, bridge namespace, lab OVS instance): the bridge namespace holds the Linux bridges
    of the veth kind and an ovs-vswitchd with br-int."""
    br = f"{netns_prefix}br"
    subprocess.run(["ip", "netns", "add", br], check=True)
    cloud = build()
    veth = plan_host(cloud, "compute1", PlanConfig(netns_prefix=netns_prefix, bridge_netns=br))
    lines = ["link set lo up"]
    for b in sorted({lk.master for lk in veth.namespaces[br].links.values()}):
        lines += [f"link add {b} type bridge", f"link set {b} up"]
    subprocess.run(["ip", "-n", br, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
    inst = labovs.start(br, str(tmp_path / "ovs"))
    try:
        yield netns_prefix, br, inst
    finally:
        labovs.stop(inst)


def cfg(p: str, br: str, kind: str) -> PlanConfig:
    return PlanConfig(netns_prefix=p, bridge_netns=br, port_kind=kind)


def plugged(desired) -> list[tuple[str, str]]:
    return sorted((ns, n) for ns, d in desired.namespaces.items() if d.managed for n in d.links if n.startswith(PLUGGED))


def kernel_kinds(ports) -> dict[tuple[str, str], str]:
    out = {}
    for ns, n in ports:
        d = ipj(ns, "link", "show", "dev", n)[0]
        out[(ns, n)] = d.get("linkinfo", {}).get("info_kind", "")
    return out


def tx_checksumming(ns: str, dev: str) -> str:
    p = subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-k", dev], capture_output=True, text=True, check=True)
    return next(line.split(":", 1)[1].strip() for line in p.stdout.splitlines() if line.startswith("tx-checksumming"))


def sync(r: Reconciler, desired, full: bool = False):
    res = r.sync(desired, full=full)
    assert res.ok, str(res)
    return res


def test_each_kind_plugs_reads_back_and_switches_one_port_at_a_time(node):
    p, br, inst = node
    cloud = build()
    sw = Switch(br, inst.db)
    r = Reconciler(prefix=p, switch=sw)
    for kind in ("veth", "ovs-veth", "ovs", "ovs-veth", "veth", "ovs"):
        desired = plan_host(cloud, "compute1", cfg(p, br, kind))
        res = sync(r, desired)
        ports = plugged(desired)
        assert len(ports) >= 3
        if kind != "veth":           # the first pass builds; later ones replace every port, one group each
            assert res.plan.groups and all(len([op for op in res.plan.ops[a:b] if isinstance(op, O.LinkReplaceDel)]) == 1
                                           for a, b in res.plan.groups)
        assert not r.sync(desired).plan, "a second pass does nothing"
        kinds = kernel_kinds(ports)
        assert set(kinds.values()) == {"tun" if kind == "ovs" else "veth"}, kinds
        rows = read_ports(sw)
        mine = {n: x for n, x in rows.items() if x.external_id(OVS_OWNER_KEY) == p}
        links_br = {d["ifname"]: d for d in ipj(br, "link", "show")}
        if kind == "veth":
            assert not mine
            assert all(links_br[desired.namespaces[ns].links[n].peer].get("master", "").startswith(("brq", "br-ex"))
                       for ns, n in ports)
        elif kind == "ovs":
            assert set(mine) == {n for _ns, n in ports}
            assert all(x.type == "internal" and x.bridge == "br-int" for x in mine.values())
            assert not [n for n in links_br if n.startswith(PLUGGED)], "no tap left in the bridge namespace"
            assert not [n for n in links_br if n.startswith("dv-")]
        else:
            assert set(mine) == {desired.namespaces[ns].links[n].peer for ns, n in ports}
            assert all(x.type == "" for x in mine.values())
            assert all(tx_checksumming(ns, n) == "off" for ns, n in ports)
            assert all("master" not in links_br[x] for x in mine)
        for ns, n in ports:                   # MAC and MTU as planned, whatever the kind
            d = ipj(ns, "link", "show", "dev", n)[0]
            want = desired.namespaces[ns].links[n]
            assert (d["address"], d["mtu"]) == (want.mac, want.mtu)
        for x in mine.values():
            ids = dict(x.external_ids)
            assert ids["iface-status"] == "active" and ids["iface-id"] in cloud.ports
            assert ids["attached-mac"] == cloud.ports[ids["iface-id"]].mac_address
            assert x.mtu_request == desired.namespaces[br].ovs_ports[x.name].mtu_request
    r.close()


def test_ovs_vswitchd_restart_is_noticed_by_events_and_repaired(node):
    p, br, inst = node
    desired = plan_host(build(), "compute1", cfg(p, br, "ovs"))
    r = Reconciler(prefix=p, switch=Switch(br, inst.db), watch=True)
    try:
        sync(r, desired, full=True)
        assert not r.sync(desired).plan
        ports = plugged(desired)
        before = {k: ipj(k[0], "link", "show", "dev", k[1])[0]["ifindex"] for k in ports}
        assert not r.observer.pending()
        labovs.kill_vswitchd(inst)
        # the taps lose carrier: a link event in every router namespace
        deadline = time.monotonic() + 5
        while not r.observer.pending():
            assert time.monotonic() < deadline, "no event after ovs-vswitchd died"
            time.sleep(0.02)
        assert all("NO-CARRIER" in ipj(ns, "link", "show", "dev", n)[0]["flags"] for ns, n in ports)
        labovs.start_vswitchd(inst)
        deadline = time.monotonic() + 10
        while not {n for _ns, n in ports} <= {d["ifname"] for d in ipj(br, "link", "show")}:
            assert time.monotonic() < deadline, "the new ovs-vswitchd made no taps"
            time.sleep(0.02)
        assert r.observer.pending()           # fresh taps: link events in the bridge namespace
        res = sync(r, desired)
        why = {op.why for op in res.plan if isinstance(op, O.LinkReplaceDel)}
        assert why == {"no carrier: an OVS internal port left behind by an ovs-vswitchd restart"}, str(res.plan)
        assert len(res.plan.groups) == len(ports)
        for ns, n in ports:
            d = ipj(ns, "link", "show", "dev", n)[0]
            assert "NO-CARRIER" not in d["flags"] and d["ifindex"] != before[(ns, n)]
            assert d["address"] == desired.namespaces[ns].links[n].mac
        assert not [d["ifname"] for d in ipj(br, "link", "show") if d["ifname"].startswith(PLUGGED)]
        assert not r.sync(desired).plan
    finally:
        r.close()


def test_stale_ports_are_removed_and_foreign_ports_never_touched(node):
    p, br, inst = node
    desired = plan_host(build(), "compute1", cfg(p, br, "ovs-veth"))
    r = Reconciler(prefix=p, switch=Switch(br, inst.db))
    subprocess.run(["ip", "-n", br, "link", "add", "tapvm1", "type", "veth", "peer", "name", "tapvm1p"], check=True)
    inst.vsctl("add-port", "br-int", "tapvm1", "tag=7", "--", "set", "Interface", "tapvm1",
               "external_ids:iface-id=vm1")
    inst.vsctl("add-port", "br-int", "qr-stale000001", "--", "set", "Interface", "qr-stale000001", "type=internal",
               f"external_ids:{OVS_OWNER_KEY}={p}")
    inst.vsctl("add-port", "br-int", "qr-theirs00001", "--", "set", "Interface", "qr-theirs00001", "type=internal",
               f"external_ids:{OVS_OWNER_KEY}=someone-else")
    res = sync(r, desired)
    assert any(isinstance(op, O.OvsPortDel) and op.name == "qr-stale000001" for op in res.plan)
    rows = read_ports(Switch(br, inst.db))
    assert "qr-stale000001" not in rows
    assert rows["tapvm1"].external_ids == (("iface-id", "vm1"),) and "qr-theirs00001" in rows
    assert inst.vsctl("get", "Port", "tapvm1", "tag").stdout.strip() == "7"
    # a desired port's columns changed behind dvrnet's back: set in place, the port stays
    name = next(iter(desired.namespaces[br].ovs_ports))
    inst.vsctl("set", "Interface", name, "external_ids:iface-status=down", "mtu_request=1400")
    res = sync(r, desired, full=True)
    # ovs-vswitchd applied mtu_request to the device too: its MTU is set back beside the columns
    assert [type(op).__name__ for op in res.plan] == ["LinkSet", "OvsPortSet"], str(res.plan)
    assert read_ports(Switch(br, inst.db))[name] == desired.namespaces[br].ovs_ports[name]
    assert not r.sync(desired, full=True).plan
    # the namespace end's offload turned back on: one ethtool setting
    ns, dev = plugged(desired)[0]
    subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "on"], capture_output=True, check=True)
    res = sync(r, desired)
    assert [str(op) for op in res.plan] == [f"{ns}: ethtool -K {dev} tx off"]
    assert tx_checksumming(ns, dev) == "off"


def test_a_stopped_database_stops_nothing_and_is_reported(node):
    p, br, inst = node
    desired = plan_host(build(), "compute1", cfg(p, br, "ovs"))
    r = Reconciler(prefix=p, switch=Switch(br, inst.db, timeout=1))
    sync(r, desired)
    labovs.kill_vswitchd(inst, daemon="ovsdb-server")
    res = r.sync(desired)
    assert not res.plan and any("cannot read Open vSwitch" in str(e) for e in res.errors), str(res)
    assert set(kernel_kinds(plugged(desired)).values()) == {"tun"}, "internal ports kept while OVSDB is away"
