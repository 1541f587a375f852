"""The article's test plan T1-T6 (seed-notes.md), end to end on one lab: real server, real agents,
real namespaces, real packets. Every step is driven through the HTTP API, waits until every node's
kernel matches the model (`steps.wait_converged`, the `dvrnet show --diff` comparison), then
asserts BOTH the kernel state (read with `ip -j -n NS addr/rule/route show table all`) AND the
traffic (gateway counters prove each path, `checks.run_checks`).

One lab for the module (prefix `dvt<pid>-`, state under tmp), built with routers WITHOUT gateways
and VMs without FIPs; the steps run in order and each starts from the state the previous one left:

T1  router1 gets the gateway (external network `public`).
T2  router1's gateway is removed.
T3  router1 and router2 get the gateway, then router2's is removed.
T4  router2 gets it back; vm1, vm2, vm4 get FIPs (seed subnets: red, green, red); released again.
T5  a subnet `blue` 100.65.0.0/24 (gw .1) is added to `public`; vm3 gets a FIP from it; released.
T6  a second external network `public2` (own segment and bridge br-ex2, subnets 100.66.0.0/24 and
    100.67.0.0/24 with gateways, service subnet 100.68.0.0/24); router1 stays on `public`, router2
    moves to `public2`; FIPs from both networks.
The lab is torn down by name at the end, pass or fail.
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass, field

import pytest

from dvrnet.lab import steps
from dvrnet.lab.checks import delta, ping, read_counters, run_checks
from dvrnet.lab.info import LabInfo
from dvrnet.plan import names
from dvrnet.plan.numbers import (
    FIP_BLOCK_PRIO,
    FIP_ONLINK_PRIO,
    FIP_ONLINK_TABLE,
    FIP_SUBNET_PRIO,
    QR_FIP_PRIO,
    QR_FIP_TABLE,
    QR_SNAT_PRIO,
    subnet_table,
)
from dvrnet.scenarios.seed import SEED

pytestmark = pytest.mark.root

SERVICE = "100.64.0.0/24"
BLUE = ("blue", "100.65.0.0/24", "100.65.0.1")
EXT2 = (("ext2a", "100.66.0.0/24", "100.66.0.1"), ("ext2b", "100.67.0.0/24", "100.67.0.1"))
EXT2_SERVICE = "100.68.0.0/24"
COMPUTES = ("compute1", "compute2")


@dataclass
class Ctx:
    info: LabInfo
    c: object                                   # httpx.Client
    public: dict                                # external network 1
    subnets: dict[str, dict] = field(default_factory=dict)   # name -> subnet (all external networks)
    public2: dict | None = None
    mappings: tuple[tuple[str, str], ...] = ()
    broken: str | None = None                   # the first step that failed: later steps skip
    converge_timeout: float = 15.0              # at least this long (Neutron mode: its resync interval)

    def router(self, name: str):
        return self.info.router(name)

    def set_gateway(self, router: str, net: dict | None) -> None:
        body = {"network_id": net["id"]} if net else {}
        steps.ok(self.c.put(f"/v2.0/routers/{self.router(router).id}",
                            json={"router": {"external_gateway_info": body}}))

    def fip(self, vm: str, subnet: str) -> dict:
        v = self.info.vm(vm)
        s = self.subnets[subnet]
        return steps.ok(self.c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": s["network_id"], "subnet_id": s["id"], "port_id": v.port_id}}))["floatingip"]

    def converge(self, timeout: float = 15.0) -> None:
        steps.wait_converged(self.info, max(timeout, self.converge_timeout), self.mappings)
        steps.refresh(self.info, self.c)

    def ports(self, owner: str, **params) -> list[dict]:
        return steps.ok(self.c.get("/v2.0/ports", params={"device_owner": owner, **params}))["ports"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = f"dvt{os.getpid() % 100000}-"
    state = str(tmp_path_factory.mktemp("t1t6") / "state")
    c = None
    try:
        info = up(prefix, state, gateways=False, fips=False)
        c = steps.api(info)
        public = next(n for n in steps.ok(c.get("/v2.0/networks"))["networks"] if n["router:external"])
        subnets = {s["name"]: s for s in steps.ok(c.get("/v2.0/subnets", params={"network_id": public["id"]}))["subnets"]}
        yield Ctx(info, c, public, subnets)
    finally:
        if c is not None:
            c.close()
        rep = down(prefix, state)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
                if n.startswith(prefix)]
        assert not left and not rep.leftover_namespaces, f"namespaces left behind: {left}"
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        assert state not in ps, "lab processes left behind"


@pytest.fixture
def step(lab, request):
    """Skip when an earlier step failed (each step starts from the previous one's state)."""
    if lab.broken:
        pytest.skip(f"{lab.broken} failed; this step builds on it")
    failed = request.session.testsfailed
    yield lab
    if request.session.testsfailed != failed:       # the call's report is logged before teardown
        lab.broken = request.node.name


# ------------------------------------------------------------------------------------------------
# kernel helpers

def fip_ns(ctx: Ctx, node: str, net: dict) -> str:
    return names.fip_ns(ctx.info.node(node).prefix, net["id"])


def exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def fg_addresses(ctx: Ctx, net: dict, nodes=COMPUTES) -> dict[str, dict[str, list[str]]]:
    return {n: steps.kernel(fip_ns(ctx, n, net)).addresses("fg-") for n in nodes}


def qg_addresses(ctx: Ctx, router: str) -> dict[str, list[str]]:
    r = ctx.router(router)
    return steps.kernel(names.snat_ns(ctx.info.node("network1").prefix, r.id)).addresses("qg-")


def gateway_subnets(ctx: Ctx, net: dict) -> list[dict]:
    return [s for s in ctx.subnets.values() if s["network_id"] == net["id"] and s.get("gateway_ip")]


def assert_fip_namespace(ctx: Ctx, node: str, net: dict, service: str, fips_here: set[str]) -> steps.Kernel:
    """S8-S11: fg- with exactly one address, from the service subnet; one `from <cidr>` rule and one
    table (`default via <its gateway> dev fg- onlink`) per external subnet with a gateway and none
    for the service subnet; `iif fg- blackhole` and the on-link table after main; main holds exactly
    the /32 of every FIP hosted on this node."""
    ns = fip_ns(ctx, node, net)
    assert exists(ns), f"{node}: no {ns}"
    k = steps.kernel(ns)
    fg = k.addresses("fg-")
    assert len(fg) == 1, f"{node}: fg- devices {fg}"
    (dev, addrs), = fg.items()
    assert len(addrs) == 1 and ipaddress.ip_interface(addrs[0]) in ipaddress.ip_network(service), \
        f"{node}: {dev} holds {addrs}, want one address from {service}"
    subs = gateway_subnets(ctx, net)
    want_rules = {s["cidr"]: str(subnet_table(ipaddress.ip_network(s["cidr"]))) for s in subs}
    assert k.from_rules() == want_rules, f"{node}: from-rules {k.from_rules()} != {want_rules}"
    assert all(r["priority"] == FIP_SUBNET_PRIO for r in k.rules if r.get("src") not in (None, "all")), k.rules
    for s in subs:
        routes = k.table(subnet_table(ipaddress.ip_network(s["cidr"])))
        assert [(r["dst"], r.get("gateway"), r["dev"]) for r in routes] == [("default", s["gateway_ip"], dev)], \
            f"{node}: table of {s['cidr']}: {routes}"
        assert "onlink" in routes[0].get("flags", [])
    assert any(r["priority"] == FIP_BLOCK_PRIO and r.get("iif") == dev and r.get("action") == "blackhole"
               for r in k.rules), k.rules
    assert any(r["priority"] == FIP_ONLINK_PRIO and r.get("table") == str(FIP_ONLINK_TABLE) for r in k.rules)
    onlink = {r["dst"] for r in k.table(FIP_ONLINK_TABLE) if r["dev"] == dev}
    all_subs = {s["cidr"] for s in ctx.subnets.values() if s["network_id"] == net["id"]}
    assert onlink == all_subs, f"{node}: on-link routes {onlink} != every subnet {all_subs}"
    main = {r["dst"]: r for r in k.table("main")}
    assert set(main) == fips_here, f"{node}: main {sorted(main)} != FIPs hosted here {sorted(fips_here)}"
    for r in main.values():
        assert r["dev"].startswith("fpr-") and r.get("gateway", "").startswith("169.254."), r
    return k


def fips_on(ctx: Ctx, node: str, net: dict) -> set[str]:
    cidrs = [ipaddress.ip_network(s["cidr"]) for s in ctx.subnets.values() if s["network_id"] == net["id"]]
    return {v.fip for v in ctx.info.vms if v.fip and v.node == node
            and any(ipaddress.ip_address(v.fip) in c for c in cidrs)}


def assert_snat(ctx: Ctx, router: str, net: dict) -> str:
    """snat-<router> on network1 with qg- holding exactly one address, from a subnet of NET with a
    gateway; it is the router's SNAT address in the API. Returns it."""
    r = ctx.router(router)
    assert r.snat_node == "network1", r
    ns = names.snat_ns(ctx.info.node("network1").prefix, r.id)
    assert exists(ns), f"no {ns}"
    qg = qg_addresses(ctx, router)
    assert len(qg) == 1 and len(next(iter(qg.values()))) == 1, f"{router}: qg- {qg}"
    addr = next(iter(qg.values()))[0].split("/")[0]
    assert r.snat_ips == [addr], (r.snat_ips, addr)
    assert any(ipaddress.ip_address(addr) in ipaddress.ip_network(s["cidr"]) for s in gateway_subnets(ctx, net))
    for n in COMPUTES:
        assert not exists(names.snat_ns(ctx.info.node(n).prefix, r.id)), f"snat- of {router} on {n}"
    return addr


def traffic(ctx: Ctx, vms: list[str], protos=("icmp", "tcp")) -> list:
    """North-south rows of these VMs (FIP both ways, or SNAT), all must pass."""
    checks = steps.vm_checks(ctx.info, vms, protos)
    want = {v for v in vms}
    covered = {v for v in want if any(v in c.name.split(" ") for c in checks)}
    assert covered == want, f"no checks for {want - covered}"
    rows = [r for r in run_checks(ctx.info, checks, segment=False) if r.check in {c.name for c in checks}]
    bad = [f"{r.check}: expected {r.expected}; observed {r.observed}" for r in rows if not r.passed]
    assert not bad, "\n".join(bad)
    return rows


def no_internet(ctx: Ctx, vm: str) -> None:
    """VM's router has no gateway: the internet is unreachable and no gateway sees a packet."""
    cns = {g.name: g.netns for g in ctx.info.gateways}
    before = read_counters(cns)
    t = ping(ctx.info.vm(vm).netns, ctx.info.internet_address, count=1, wait=1)
    d = {k: v for k, v in delta(before, read_counters(cns)).items() if k[3] == "icmp"}
    assert t.received == 0, f"{vm} reached the internet without a gateway: {t}"
    assert not d, f"gateways saw {vm}'s packets: {d}"


# ------------------------------------------------------------------------------------------------
# T1-T6

def test_t1_router1_gets_the_gateway(step):
    ctx = step
    # start: no gateway anywhere, no fip-/snat- namespace, no agent-gateway port
    for n in ctx.info.nodes:
        assert not steps.node_namespaces(ctx.info, n.name, "fip-") + steps.node_namespaces(ctx.info, n.name, "snat-")
    assert not ctx.ports("network:floatingip_agent_gateway")
    no_internet(ctx, "vm1")

    ctx.set_gateway("router1", ctx.public)
    ctx.converge()
    # fip- with fg- (one address from the service subnet) on the nodes hosting router1's VMs only
    for node in COMPUTES:
        assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_here=set())
    assert not steps.node_namespaces(ctx.info, "network1", "fip-"), "network1 hosts no VM: no fip- namespace"
    agw = ctx.ports("network:floatingip_agent_gateway")
    assert sorted(p["binding:host_id"] for p in agw) == sorted(COMPUTES)
    for p in agw:
        assert [f["subnet_id"] for f in p["fixed_ips"]] == [ctx.subnets["fg-service"]["id"]]
        k = steps.kernel(fip_ns(ctx, p["binding:host_id"], ctx.public))
        assert k.addresses("fg-") == {names.port_dev("fg-", p["id"]): [f"{p['fixed_ips'][0]['ip_address']}/24"]}
    # snat- with qg- (one address) on network1
    assert_snat(ctx, "router1", ctx.public)
    assert not [ns for ns in steps.node_namespaces(ctx.info, "network1", "snat-") if ctx.router("router2").id in ns]
    # traffic: router1's VMs (no FIPs yet) reach the internet through SNAT; router2's do not
    traffic(ctx, ["vm1", "vm2", "vm3", "vm4"])
    no_internet(ctx, "vm5")


def test_t2_router1_gateway_removed_releases_everything(step):
    ctx = step
    r1 = ctx.router("router1")
    ctx.set_gateway("router1", None)
    ctx.converge()
    n1 = ctx.info.node("network1").prefix
    assert not exists(names.snat_ns(n1, r1.id)), "snat- namespace of router1 still there"
    for node in COMPUTES:
        assert not exists(fip_ns(ctx, node, ctx.public)), f"{node}: fip- namespace still there (no router needs it)"
        k = steps.kernel(names.qrouter_ns(ctx.info.node(node).prefix, r1.id))
        assert not [l["ifname"] for l in k.links if l["ifname"].startswith(("rfp-", "fpr-"))], k.links
        dv = [r for r in k.rules if r.get("protocol") == "dvrnet"]
        assert not dv, f"{node}: router1 keeps rules {dv}"
        assert not k.table(QR_FIP_TABLE), f"{node}: table {QR_FIP_TABLE} {k.table(QR_FIP_TABLE)}"
        assert not [r for r in k.routes if str(r.get("table", "main")) not in ("main", "local")], k.routes
        bridge = steps.kernel(ctx.info.node(node).bridge_netns)
        assert not [l for l in bridge.links if l.get("master") == "br-ex"
                    and l["ifname"].startswith("dv-")], "a router port still plugged into br-ex"
    # API: the gateway, SNAT and agent-gateway ports are gone
    assert ctx.router("router1").snat_ips == [] and ctx.router("router1").snat_node is None
    assert not ctx.ports("network:router_gateway")
    assert not ctx.ports("network:router_centralized_snat")
    assert not ctx.ports("network:floatingip_agent_gateway")
    for n in ctx.info.nodes:
        assert not steps.node_namespaces(ctx.info, n.name, "fip-") + steps.node_namespaces(ctx.info, n.name, "snat-")
    no_internet(ctx, "vm1")


def test_t3_router2_gateway_removed_router1_addresses_unchanged(step):
    ctx = step
    ctx.set_gateway("router1", ctx.public)
    ctx.set_gateway("router2", ctx.public)
    ctx.converge()
    fg_before = fg_addresses(ctx, ctx.public)
    qg_before = qg_addresses(ctx, "router1")
    assert all(len(v) == 1 for v in fg_before.values()) and len(qg_before) == 1, (fg_before, qg_before)
    snat1 = assert_snat(ctx, "router1", ctx.public)
    assert_snat(ctx, "router2", ctx.public)
    fip_ifindex = {n: steps.kernel(fip_ns(ctx, n, ctx.public)).ifindex(next(iter(fg_before[n]))) for n in COMPUTES}

    ctx.set_gateway("router2", None)
    ctx.converge()
    assert fg_addresses(ctx, ctx.public) == fg_before, "router1's fg- addresses changed"
    assert qg_addresses(ctx, "router1") == qg_before, "router1's qg- address changed"
    assert {n: steps.kernel(fip_ns(ctx, n, ctx.public)).ifindex(next(iter(fg_before[n]))) for n in COMPUTES} \
        == fip_ifindex, "an fg- device was re-created"
    assert ctx.router("router1").snat_ips == [snat1]
    assert not exists(names.snat_ns(ctx.info.node("network1").prefix, ctx.router("router2").id))
    for node in COMPUTES:
        assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_here=set())
        k = steps.kernel(names.qrouter_ns(ctx.info.node(node).prefix, ctx.router("router2").id))
        assert not [l for l in k.links if l["ifname"].startswith("rfp-")], "router2 still linked to fip-"
    traffic(ctx, ["vm1", "vm3"])
    no_internet(ctx, "vm6")


def test_t4_fips_then_snat(step):
    ctx = step
    ctx.set_gateway("router2", ctx.public)
    ctx.converge()
    seed = {v.name: v.fip_subnet for v in SEED.vms}
    fips = {vm: ctx.fip(vm, seed[vm]) for vm in ("vm1", "vm2", "vm4")}
    ctx.converge()
    for vm, f in fips.items():
        assert ctx.info.vm(vm).fip == f["floating_ip_address"]
        assert ipaddress.ip_address(f["floating_ip_address"]) in ipaddress.ip_network(ctx.subnets[seed[vm]]["cidr"])
    for node in COMPUTES:
        assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_here=fips_on(ctx, node, ctx.public))
        # the qrouter: ONE fwmark rule to table 16, whatever the number of FIPs
        k = steps.kernel(names.qrouter_ns(ctx.info.node(node).prefix, ctx.router("router1").id))
        marks = [r for r in k.rules if "fwmark" in r]
        assert len(marks) == 1 and marks[0]["priority"] == QR_FIP_PRIO and marks[0]["table"] == str(QR_FIP_TABLE)
        assert {r["src"] + "/" + str(r["srclen"]) for r in k.rules if r.get("priority") == QR_SNAT_PRIO} \
            == {"10.0.1.0/24", "10.0.2.0/24"}
    rows = traffic(ctx, ["vm1", "vm2", "vm4"])
    assert {r.group for r in rows} >= {"internet → FIP", "FIP → internet"}
    assert "SNAT → internet" not in {r.group for r in rows if r.check.startswith(("vm1", "vm2", "vm4"))}
    traffic(ctx, ["vm3", "vm6"])          # the VMs without FIP still use SNAT meanwhile

    # release: disassociate, then delete
    for f in fips.values():
        steps.ok(ctx.c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))
    ctx.converge()
    for node in COMPUTES:
        assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_here=set())
    for f in fips.values():
        steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()
    assert all(ctx.info.vm(v).fip is None for v in fips)
    rows = traffic(ctx, ["vm1", "vm2", "vm4"])
    assert {r.group for r in rows} == {"SNAT → internet"}
    snat = ctx.router("router1").snat_ips[0]
    assert all(f"peer saw {snat}" in r.observed for r in rows if "(TCP)" in r.check), [r.observed for r in rows]


def test_t5_subnet_added_to_the_external_network(step):
    from dvrnet.lab.up import world_spec_for
    from dvrnet.lab.world import ExternalSubnet, add_gateway
    ctx = step
    name, cidr, gw = BLUE
    spec = world_spec_for(SEED, ctx.info.prefix, ctx.info.state_dir)
    ctx.info.gateways.append(add_gateway(spec, ExternalSubnet(name, cidr, gw)))
    ctx.info.save()
    fg_before = fg_addresses(ctx, ctx.public)
    qg_before = {r: qg_addresses(ctx, r) for r in ("router1", "router2")}
    gw_ports = {p["id"] for p in ctx.ports("network:router_gateway")}
    rfp = {n: steps.kernel(names.qrouter_ns(ctx.info.node(n).prefix, ctx.router("router1").id)).ifindex(
        names.rfp_dev(ctx.router("router1").id)) for n in COMPUTES}

    net = ipaddress.ip_network(cidr)
    ctx.subnets[name] = steps.ok(ctx.c.post("/v2.0/subnets", json={"subnet": {
        "network_id": ctx.public["id"], "cidr": cidr, "ip_version": 4, "name": name, "gateway_ip": gw,
        "allocation_pools": [{"start": str(net[2]), "end": str(net[239])}]}}))["subnet"]
    ctx.converge()
    # the fip namespace of every node gains the subnet's table and rule; nothing was re-bound
    for node in COMPUTES:
        k = assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_here=set())
        assert k.from_rules()[cidr] == str(subnet_table(net))
        qk = steps.kernel(names.qrouter_ns(ctx.info.node(node).prefix, ctx.router("router1").id))
        assert qk.ifindex(names.rfp_dev(ctx.router("router1").id)) == rfp[node], "router1's fip link was re-plugged"
    assert {p["id"] for p in ctx.ports("network:router_gateway")} == gw_ports, "a router gateway was re-bound"
    assert {r: qg_addresses(ctx, r) for r in ("router1", "router2")} == qg_before
    assert fg_addresses(ctx, ctx.public) == fg_before
    for r in ("router1", "router2"):        # S12: on-link route to the new subnet in every snat- namespace
        k = steps.kernel(names.snat_ns(ctx.info.node("network1").prefix, ctx.router(r).id))
        assert cidr in {x["dst"] for x in k.table("main")}

    f = ctx.fip("vm3", name)
    ctx.converge()
    assert ipaddress.ip_address(f["floating_ip_address"]) in net
    assert_fip_namespace(ctx, "compute1", ctx.public, SERVICE, fips_here={f["floating_ip_address"]})
    rows = traffic(ctx, ["vm3"])
    assert all(name in r.observed for r in rows), [r.observed for r in rows]

    steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()
    assert fg_addresses(ctx, ctx.public) == fg_before, "fg- changed its address"
    for node in COMPUTES:
        k = assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_here=set())
        assert cidr in k.from_rules()
    traffic(ctx, ["vm3"], protos=("tcp",))


def test_t6_second_external_network(step):
    from dvrnet.lab.up import world_spec_for
    from dvrnet.lab.world import ExternalSubnet, add_external_segment, add_gateway
    ctx = step
    spec = world_spec_for(SEED, ctx.info.prefix, ctx.info.state_dir)
    # the second external network on a segment of its own: br-ex2 on every node
    seg2 = add_external_segment(spec, "ext2", "br-ex2", "uplink2")
    for name, cidr, gw in EXT2:
        ctx.info.gateways.append(add_gateway(spec, ExternalSubnet(name, cidr, gw), seg2, [EXT2_SERVICE]))
    ctx.info.save()
    pub2 = steps.ok(ctx.c.post("/v2.0/networks", json={"network": {"name": "public2", "router:external": True,
                                                                    "mtu": 1500}}))["network"]
    ctx.public2 = pub2
    for name, cidr, gw in EXT2:
        net = ipaddress.ip_network(cidr)
        ctx.subnets[name] = steps.ok(ctx.c.post("/v2.0/subnets", json={"subnet": {
            "network_id": pub2["id"], "cidr": cidr, "ip_version": 4, "name": name, "gateway_ip": gw,
            "allocation_pools": [{"start": str(net[2]), "end": str(net[239])}]}}))["subnet"]
    ctx.subnets["ext2-service"] = steps.ok(ctx.c.post("/v2.0/subnets", json={"subnet": {
        "network_id": pub2["id"], "cidr": EXT2_SERVICE, "ip_version": 4, "name": "ext2-service",
        "gateway_ip": None, "service_types": ["network:floatingip_agent_gateway"]}}))["subnet"]
    ctx.mappings = ((pub2["id"], "br-ex2"),)
    steps.restart_agents(ctx.info, ("--bridge-mapping", f"{pub2['id']}=br-ex2"))
    fg1_before = fg_addresses(ctx, ctx.public)
    qg1_before = qg_addresses(ctx, "router1")

    ctx.set_gateway("router2", pub2)           # router1 stays on `public`
    ctx.converge(timeout=20)
    fips = {"vm1": ctx.fip("vm1", "red"), "vm2": ctx.fip("vm2", "green"),
            "vm5": ctx.fip("vm5", "ext2a"), "vm8": ctx.fip("vm8", "ext2b")}
    ctx.converge()
    assert fg_addresses(ctx, ctx.public) == fg1_before and qg_addresses(ctx, "router1") == qg1_before
    for node in COMPUTES:
        fip_nss = steps.node_namespaces(ctx.info, node, "fip-")
        assert sorted(fip_nss) == sorted([fip_ns(ctx, node, ctx.public), fip_ns(ctx, node, pub2)]), fip_nss
        k1 = assert_fip_namespace(ctx, node, ctx.public, SERVICE, fips_on(ctx, node, ctx.public))
        k2 = assert_fip_namespace(ctx, node, pub2, EXT2_SERVICE, fips_on(ctx, node, pub2))
        assert set(k2.from_rules()) == {"100.66.0.0/24", "100.67.0.0/24"}
        assert set(k1.from_rules()) == {"203.0.113.0/24", "198.51.100.0/24", BLUE[1]}
        bridge = steps.kernel(ctx.info.node(node).bridge_netns)
        masters = {l["ifname"]: l.get("master") for l in bridge.links}
        for ns, k, br in ((fip_ns(ctx, node, ctx.public), k1, "br-ex"), (fip_ns(ctx, node, pub2), k2, "br-ex2")):
            (fg,) = k.addresses("fg-")
            assert masters.get(names.bridge_side_dev(fg[3:])) == br, (fg, masters)
    snat1 = assert_snat(ctx, "router1", ctx.public)
    snat2 = assert_snat(ctx, "router2", pub2)
    assert snat1 != snat2
    rows = traffic(ctx, ["vm1", "vm2", "vm5", "vm8", "vm3", "vm6"])
    via = {r.check.split(" ")[0]: r.observed for r in rows if r.group in ("FIP → internet", "SNAT → internet")}
    assert "red" in via["vm1"] and "green" in via["vm2"] and "ext2a" in via["vm5"] and "ext2b" in via["vm8"], via
    for f in fips.values():
        steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()


def test_t7_fip_status_follows_the_agent(step):
    """Issue 17's statuses in the lab: compute1's agent stopped (SIGSTOP), a FIP associated to vm3
    is not ACTIVE; resumed, it is ACTIVE (reported after the agent's pass); disassociated it is
    DOWN at once; a forced apply failure is ERROR with its reason, ACTIVE again once it heals;
    every router gateway port is ACTIVE from network1's report."""
    import signal
    import time

    from waiting import wait_for
    ctx = step

    def status(fid):
        return steps.ok(ctx.c.get(f"/v2.0/floatingips/{fid}"))["floatingip"]["status"]
    gws = ctx.ports("network:router_gateway")
    assert gws and all(p["status"] == "ACTIVE" for p in gws), [(p["id"], p["status"]) for p in gws]
    pid = ctx.info.node(ctx.info.vm("vm3").node).agent_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        f = ctx.fip("vm3", "red")
        time.sleep(2)
        assert status(f["id"]) == "DOWN"
    finally:
        os.kill(pid, signal.SIGCONT)
    t0 = time.monotonic()
    wait_for(lambda: status(f["id"]) == "ACTIVE", 10, "vm3's FIP ACTIVE after SIGCONT")
    print(f"\nSIGCONT -> ACTIVE: {(time.monotonic() - t0) * 1000:.0f} ms")
    down = steps.ok(ctx.c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))
    assert down["floatingip"]["status"] == "DOWN"

    # a forced apply failure: while the agent is stopped, a foreign process takes vm3's router's
    # NAT table on compute1 (`flags owner`: the kernel refuses every change of it, EPERM); the FIP
    # associated then is ERROR with the reason; the owner gone, the agent's retry makes it ACTIVE
    node = ctx.info.node(ctx.info.vm("vm3").node)
    qr = f"{node.prefix}qrouter-{f['router_id']}"
    os.kill(pid, signal.SIGSTOP)
    holder = None
    try:
        subprocess.run(["ip", "netns", "exec", qr, "nft", "delete", "table", "ip", "dvrnet"], check=True)
        holder = subprocess.Popen(["ip", "netns", "exec", qr, "nft", "-i"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        holder.stdin.write("add table ip dvrnet { flags owner; }\n")
        holder.stdin.flush()
        wait_for(lambda: "flags owner" in subprocess.run(["ip", "netns", "exec", qr, "nft", "list", "table", "ip",
                                                          "dvrnet"], capture_output=True, text=True,
                                                         check=False).stdout, 10, "the foreign owner of the table")
        steps.ok(ctx.c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": ctx.info.vm("vm3").port_id}}))
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        wait_for(lambda: status(f["id"]) == "ERROR", 15, "vm3's FIP ERROR while its NAT table is held")
        why = steps.ok(ctx.c.get(f"/v2.0/dvrnet/floatingips/{f['id']}/status"))
        print(f"ERROR reason: {why}")
        assert qr in str(why), why
    finally:
        if holder is not None:
            holder.stdin.close()                # the owner exits: the kernel drops its table
            holder.wait(10)
    wait_for(lambda: status(f["id"]) == "ACTIVE", 30, "vm3's FIP ACTIVE after the agent's retry")
    steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()
