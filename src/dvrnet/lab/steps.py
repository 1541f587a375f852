"""Driving a running lab step by step (the T1-T6 tests, `dvrnet trace`): the API, convergence, the
kernel's view of a namespace, per-VM path checks, agent restarts.

- `refresh(info)` re-reads FIPs and router gateways from the API into the LabInfo, so the checks in
  `checks/` judge the cloud as it is now;
- `wait_converged(info)` polls every node until the kernel matches the model (the same comparison as
  `dvrnet show <host> --diff`: the node's desired state against what its namespaces hold);
- `kernel(ns)` reads one namespace with `ip -j` (addresses, rules, routes of every table);
- `vm_checks(info, names)` are the `checks.plan_checks` rows of those VMs' north-south paths (FIP →
  internet, internet → FIP, SNAT → internet), to be run with `checks.run_checks(..., segment=False)`;
- `restart_agents(info, extra)` stops every node's agent and starts it again with extra arguments.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from .checks import Check, plan_checks
from .info import LabInfo
from .sh import Cmd, list_netns, parallel

NORTH_SOUTH = ("internet → FIP", "FIP → internet", "SNAT → internet")


def api(info: LabInfo) -> httpx.Client:
    if not info.server_url:
        raise RuntimeError("the lab has no server URL")
    return httpx.Client(base_url=info.server_url, timeout=30)


def ok(r: httpx.Response) -> dict:
    if r.status_code not in (200, 201, 204):
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:400]}")
    return r.json() if r.content else {}


def refresh(info: LabInfo, c: httpx.Client | None = None) -> LabInfo:
    """FIPs of the VMs and gateway addresses/SNAT nodes of the routers, as the API has them now."""
    own = c is None
    c = c or api(info)
    try:
        subnets = {s["id"]: s for s in ok(c.get("/v2.0/subnets"))["subnets"]}
        fips = {f["port_id"]: f for f in ok(c.get("/v2.0/floatingips"))["floatingips"] if f.get("port_id")}
        routers = {r["id"]: r for r in ok(c.get("/v2.0/routers"))["routers"]}
        gw_ports = {p["device_id"]: p for p in ok(c.get("/v2.0/ports", params={"device_owner": "network:router_gateway"}))["ports"]}
    finally:
        if own:
            c.close()
    for v in info.vms:
        f = fips.get(v.port_id)
        v.fip = f["floating_ip_address"] if f else None
        v.fip_subnet = subnets.get(f.get("subnet_id") or "", {}).get("name") if f else None
        if f and v.fip_subnet is None:      # Neutron's API has no subnet_id on a FIP: by its address
            a = ipaddress.ip_address(f["floating_ip_address"])
            v.fip_subnet = next((s.get("name") for s in subnets.values()
                                 if s.get("network_id") == f.get("floating_network_id")
                                 and a in ipaddress.ip_network(s["cidr"])), None)
    for r in info.routers:
        gw = (routers.get(r.id) or {}).get("external_gateway_info") or {}
        r.snat_ips = [x["ip_address"] for x in gw.get("external_fixed_ips", [])]
        p = gw_ports.get(r.id)
        r.snat_node = p.get("binding:host_id") if p else None
    return info


# ------------------------------------------------------------------------------------------------
# convergence

def neutron_clouds(info: LabInfo) -> dict | None:
    """Neutron control: every node's Cloud as the agent translates what neutron-server sends
    now (one look: `snapshot.snapshots`); None for a lab on dvrnet's own server."""
    from .neutron import NeutronLab
    lab = NeutronLab.load(info.state_dir)
    if lab is None:
        return None
    from ..neutron.snapshot import snapshots
    snaps = snapshots([(n.name, n.mode) for n in info.nodes], lab.transport_url)
    return {h: s.cloud for h, s in snaps.items()}


def differences(info: LabInfo, bridge_mappings: tuple[tuple[str, str], ...] = (),
                external_bridge: str = "br-ex", port_kind: str | None = None,
                clouds: dict | None = None) -> dict[str, list[str]]:
    """Per node: the operations that would make its kernel match the model (empty: converged).
    CLOUDS: the nodes' models already fetched (`neutron_clouds`); else each is fetched here."""
    from ..agent.feed import Feed
    from ..agent.loop import desired_state
    from ..kernel import Reconciler
    from ..plan import PlanConfig
    from ..reconcile import describe_plan, diff
    if clouds is None:
        clouds = neutron_clouds(info)

    def one(n) -> list[str]:
        if clouds is not None:
            cloud = clouds[n.name]
        else:
            feed = Feed(info.server_url or "", n.name, n.mode, max_backoff=0)
            try:
                cloud = feed.fetch_once().cloud
            finally:
                feed.close()
        cfg = PlanConfig(netns_prefix=n.prefix, bridge_netns=n.bridge_netns, external_bridge=external_bridge,
                         bridge_mappings=bridge_mappings, dvr_mac=n.node_mac,
                         port_kind=port_kind or info.port_kind, bgp=agent_bgp(),
                         metadata=n.metadata())
        desired, observed = desired_state(cloud, n.name, cfg, Reconciler(prefix=n.prefix, register_proto=False, switch=switch_of(n)))
        plan = diff(desired, observed, n.prefix)
        return list(describe_plan(plan)) + [f"conflict: {x}" for x in plan.conflicts]
    with ThreadPoolExecutor(max_workers=len(info.nodes) or 1) as ex:
        return dict(zip((n.name for n in info.nodes), ex.map(one, info.nodes)))


def switch_of(node):
    """The node's Open vSwitch for a reconciler, when the lab runs OVS."""
    if not getattr(node, "ovs_db", None):
        return None
    from ..kernel.ovs import Switch
    return Switch(node.bridge_netns, node.ovs_db)


def agent_bgp():
    """The routed-mode settings the lab's agents run with (the agent's defaults: a watchdog
    with a 5 s lease, plan/watchdog.py)."""
    from ..kernel.watchdog import command
    from ..plan.config import BgpConfig
    return BgpConfig(watchdog=command())


def wait_converged(info: LabInfo, timeout: float = 15.0, bridge_mappings: tuple[tuple[str, str], ...] = (),
                   settle: float = 0.0) -> float:
    """Poll until every node's kernel matches the model; returns the seconds it took. Raises
    AssertionError with the remaining differences on timeout.

    With dvrnet's server a look at the model is one cheap HTTP GET per node, taken on every poll.
    With Neutron a look is a full sync per node (`neutron_clouds`: about a second of
    neutron-server's CPU per node, more under load, and it competes with the agents' own
    fetches), so the model is looked at when the wait starts (after the change: the API call
    returned, the change is in Neutron's database) and again only while the kernel does not
    match it, after 2, 4, 8, then every 8 seconds (what the agents do after the change — an fg-
    port they create, a status — then shows); the kernel is compared on every poll."""
    t0 = time.monotonic()
    if settle:
        time.sleep(settle)
    last: dict[str, list[str]] = {}
    clouds = None
    neutron = _is_neutron(info)
    looked, every = 0.0, 2.0
    while True:
        try:
            if neutron and (not looked or time.monotonic() - looked >= every):
                if looked:
                    every = min(every * 2, 8.0)
                looked = time.monotonic()
                clouds = neutron_clouds(info)
                looked = time.monotonic()
            if neutron and clouds is None:
                raise RuntimeError("no look at neutron-server's model yet")
            last = differences(info, bridge_mappings, clouds=clouds)
        except Exception as e:      # noqa: BLE001 - e.g. a namespace vanished while it was read: the agent is busy
            last = {"(read)": [f"{type(e).__name__}: {e}"]}
        if not any(last.values()):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            text = "\n".join(f"{h}: {d}" for h, ds in last.items() for d in ds[:15])
            raise AssertionError(f"not converged after {timeout}s:\n{text}")
        time.sleep(0.1 if not neutron else 0.25)


def _is_neutron(info: LabInfo) -> bool:
    from .neutron import NeutronLab
    return NeutronLab.load(info.state_dir) is not None


# ------------------------------------------------------------------------------------------------
# the kernel's view of one namespace

@dataclass
class Kernel:
    """What `ip -j -n NS addr/rule/route show table all` report."""
    ns: str
    links: list[dict] = field(default_factory=list)
    rules: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)

    def addresses(self, dev_prefix: str) -> dict[str, list[str]]:
        """{dev: ["a.b.c.d/len", ...]} (IPv4) for devices whose name starts with DEV_PREFIX."""
        return {l["ifname"]: sorted(f"{a['local']}/{a['prefixlen']}" for a in l.get("addr_info", [])
                                    if a.get("family") == "inet")
                for l in self.links if l.get("ifname", "").startswith(dev_prefix)}

    def ifindex(self, dev: str) -> int | None:
        return next((l.get("ifindex") for l in self.links if l.get("ifname") == dev), None)

    def table(self, table: int | str) -> list[dict]:
        t = str(table)
        return [r for r in self.routes if str(r.get("table", "main")) == t]

    def from_rules(self) -> dict[str, str]:
        """{source prefix: table} of the `from <cidr> lookup <table>` rules."""
        out = {}
        for r in self.rules:
            if r.get("src") and r.get("src") != "all" and "table" in r and not r.get("iif") and "fwmark" not in r:
                out[f"{r['src']}/{r.get('srclen', 32)}"] = str(r["table"])
        return out


def kernel(ns: str) -> Kernel:
    cmds = [Cmd(("ip", "-j", "-n", ns, *a), None, ns, check=False)
            for a in (("addr", "show"), ("-4", "rule", "show"), ("-4", "route", "show", "table", "all"))]
    res = parallel(cmds)
    def js(p):
        try:
            return json.loads(p.stdout or "[]") if p.returncode == 0 else []
        except ValueError:
            return []
    return Kernel(ns, js(res[0]), js(res[1]), js(res[2]))


def node_namespaces(info: LabInfo, node: str, kind: str) -> list[str]:
    """The node's namespaces of one kind ("fip-", "qrouter-", "snat-")."""
    p = info.node(node).prefix + kind
    return sorted(n for n in list_netns() if n.startswith(p))


# ------------------------------------------------------------------------------------------------
# traffic

def vm_checks(info: LabInfo, names: Iterable[str], protos: Sequence[str] = ("icmp", "tcp"),
              groups: Sequence[str] = NORTH_SOUTH) -> list[Check]:
    """The north-south checks of these VMs (by their current FIP or SNAT)."""
    want = set(names)
    out = []
    for c in plan_checks(info):
        if c.group not in groups or c.proto not in protos:
            continue
        if c.group == "internet → FIP":
            vm = c.name.split(" → ", 1)[1].split(" ", 1)[0]
        else:
            vm = c.name.split(" ", 1)[0]
        if vm in want:
            out.append(c)
    return out


# ------------------------------------------------------------------------------------------------
# agents

def restart_agents(info: LabInfo, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """Stop each node's agent (SIGTERM: the data plane stays as it is) and start it again with
    EXTRA arguments; the new pids go into the LabInfo (saved)."""
    from ..scenarios.seed import SEED
    from .neutron import NeutronLab
    from .up import start_agents, world_spec_for
    lab = NeutronLab.load(info.state_dir)
    if lab is not None:                 # Neutron control: the nodes' neutron-agents
        from .neutron import restart_agents as restart_neutron_agents
        return restart_neutron_agents(info, lab, extra)
    for n in info.nodes:
        if n.agent_pid:
            stop_process(n.agent_pid)
    spec = world_spec_for(SEED, info.prefix, info.state_dir, info.port_kind)
    pids = start_agents(spec, info.server_url or "", extra)
    for n in info.nodes:
        n.agent_pid = pids.get(n.name)
    info.save()
    return pids


def stop_process(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, wait (reaping it if it is our child), SIGKILL after GRACE seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not os.path.exists(f"/proc/{pid}"):
                return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


__all__ = [
    "Kernel",
    "api",
    "differences",
    "kernel",
    "neutron_clouds",
    "node_namespaces",
    "ok",
    "refresh",
    "restart_agents",
    "stop_process",
    "vm_checks",
    "wait_converged",
]
