"""`lab up`: the physical world, the server, one agent per node, and the scenario created through the
API, in the order the data plane needs:

0. `lab down` of anything left under the prefix;
1. world (segment, gateways, internet, probe/sink, underlay, node bridge namespaces);
2. `dvrnet server` (SQLite in the state dir) on a free 127.0.0.1 port;
3. topology through the API (hosts, external network + subnets, tenant networks, routers, interfaces);
4. tenant bridges + VXLAN on every node (each agent writes the distributed gateway's L2 guard,
   plan/l2.py, before it creates any qr- port);
5. VM ports + FIPs through the API, VM namespaces plugged into their nodes' bridges;
5b. the stand-in metadata agent (lab/metadata_agent.py), one socket per node, given to its agent;
6. one `dvrnet agent --once` per node in parallel (converged when all exit 0), then the long-running
   agents (pids in the state dir, logs at INFO beside them: one line per pass, `agent-<node>.log`);
7. LabInfo saved to `<state dir>/lab.json`.
Every process is started with the lab's prefix or `dvrnet` in its command line and a pid file, so
`lab down` finds it.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from ..progress import Progress
from ..scenarios.seed import SEED, ScenarioSpec
from . import ovs_world, resources
from .down import down
from .info import LabInfo, RouterInfo, VmInfo
from .world import (
    ExternalSubnet,
    NodeSpec,
    TenantNet,
    VmSpec,
    WorldSpec,
    add_tenant_networks,
    add_vms,
    build_world,
)

Say = Callable[[str], None]


def _short(host: str) -> str:
    m = re.match(r"^([a-z])[a-z]*?(\d*)$", host)
    return (m.group(1) + m.group(2)) if m else host[:3]


def world_spec_for(scenario: ScenarioSpec, prefix: str, state_dir: str, port_kind: str = "veth") -> WorldSpec:
    shorts = [_short(h) for h, _ in scenario.hosts]
    if len(set(shorts)) != len(shorts):
        shorts = [f"h{i}" for i in range(1, len(shorts) + 1)]
    if scenario.routed:     # no L2 gateways: the ToR (lab/routed_world.py) is the private subnet's gateway
        service = next(s.cidr for s in scenario.external_subnets if s.service_types)
        external: tuple[ExternalSubnet, ...] = ()
    else:
        service = next((s.cidr for s in scenario.external_subnets if not s.gateway), "100.64.0.0/24")
        external = tuple(ExternalSubnet(s.name, s.cidr, s.gateway) for s in scenario.external_subnets if s.gateway)
    return WorldSpec(prefix=prefix, state_dir=state_dir,
                     nodes=tuple(NodeSpec(h, s, m) for (h, m), s in zip(scenario.hosts, shorts)),
                     external=external, service_subnet=service, port_kind=port_kind)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(spec: WorldSpec, name: str, argv: list[str]) -> subprocess.Popen:
    os.makedirs(spec.pid_dir, exist_ok=True)
    with open(os.path.join(spec.state_dir, f"{name}.log"), "ab") as log:    # the child keeps its own copy
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    with open(os.path.join(spec.pid_dir, f"{name}.pid"), "w") as f:
        f.write(f"{p.pid}\n")
    return p


def _dvrnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvrnet.cli", *args]


def start_server(spec: WorldSpec, port: int | None = None, timeout: float = 30) -> str:
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    p = _spawn(spec, "server", _dvrnet("server", "--bind", f"127.0.0.1:{port}",
                                       "--state-dir", os.path.join(spec.state_dir, "server")))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            raise RuntimeError(f"dvrnet server exited with {p.returncode}; see {spec.state_dir}/server.log")
        try:
            if httpx.get(url + "/", timeout=0.5).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"dvrnet server not answering on {url} after {timeout}s")


def _agent_args(spec: WorldSpec, node: NodeSpec, url: str, extra: tuple[str, ...] = ()) -> list[str]:
    kind: list[str] = ["--port-kind", spec.port_kind] if spec.port_kind != "veth" else []
    if spec.ovs:
        kind += ["--ovs-db", spec.ovs_instance(node).db]
    return ["agent", "--host", node.name, "--mode", node.mode, "--server", url,
            "--netns-prefix", spec.node_prefix(node), "--bridge-netns", spec.bridge_ns(node),
            "--external-bridge", "br-ex", "--dvr-mac", spec.node_mac(node),
            "--metadata-socket", spec.metadata_socket(node), "--log-level", "INFO", *kind, *extra]


def start_ovs_l2(spec: WorldSpec, url: str, topo: resources.Topology, nets: list[TenantNet]) -> dict[str, int]:
    """What the OVS L2 agent does for the router ports, stood in for on every node: br-int's VLANs
    and uplinks, the distributed gateway's L2 guard on the Linux bridges' VXLAN ports (the agent
    plans none with an OVS kind: in ML2/OVS the L2 agent's tunnel bridge does it), then one
    stand-in L2 agent per node (pids)."""
    insts = [spec.ovs_instance(n) for n in spec.nodes]
    ext = topo.external_network
    vlans = [(None, "br-ex", ovs_world.EXT_VLAN, int(ext.get("mtu") or 1500))]
    vlans += [(n.id, n.bridge, n.vni, n.mtu) for n in nets]
    ovs_world.add_uplinks(insts, vlans)
    ovs_world.load_guard(spec, topo.tenant_gateway_ips, topo.router_interface_macs)
    tags = {ext["id"]: ovs_world.EXT_VLAN, **{n.id: n.vni for n in nets}}
    return {n.name: _spawn(spec, f"l2agent-{n.name}",
                           ovs_world.l2agent_argv(sys.executable, i, url, tags, spec.prefix)).pid
            for n, i in zip(spec.nodes, insts)}


def start_metadata_agent(spec: WorldSpec, timeout: float = 10.0) -> dict[str, str]:
    """The stand-in metadata agent, serving one socket per node; returns {node: socket}."""
    sockets = {n.name: spec.metadata_socket(n) for n in spec.nodes}
    p = _spawn(spec, "metadata-agent", [sys.executable, "-m", "dvrnet.lab.metadata_agent",
                                        *(f"{n}={s}" for n, s in sockets.items())])
    end = time.monotonic() + timeout
    while not all(os.path.exists(s) for s in sockets.values()):
        if p.poll() is not None:
            raise RuntimeError(f"the stand-in metadata agent exited with {p.returncode}; see {spec.state_dir}/metadata-agent.log")
        if time.monotonic() > end:
            raise RuntimeError(f"the stand-in metadata agent did not listen within {timeout:.0f}s")
        time.sleep(0.01)
    return sockets


def converge_once(spec: WorldSpec, url: str, timeout: float = 60, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """One `agent --once` per node in parallel; returns exit codes."""
    procs = {}
    for n in spec.nodes:
        with open(os.path.join(spec.state_dir, f"agent-once-{n.name}.log"), "ab") as log:
            procs[n.name] = subprocess.Popen(_dvrnet(*_agent_args(spec, n, url, extra), "--once"),
                                             stdout=subprocess.DEVNULL, stderr=log)
    return {h: p.wait(timeout) for h, p in procs.items()}


def start_agents(spec: WorldSpec, url: str, extra: tuple[str, ...] = (), wait: float = 30.0) -> dict[str, int]:
    """Start one long-running agent per node and wait until each has finished its first converged
    pass (its `--ready-file` appears), so whoever changes the model next is served by agents that
    already follow the feed. extra: more `dvrnet agent` arguments for every node (e.g.
    `--bridge-mapping NET=BR`)."""
    ready = {n.name: os.path.join(spec.state_dir, f"agent-{n.name}.ready") for n in spec.nodes}
    for path in ready.values():
        if os.path.exists(path):
            os.unlink(path)
    procs = {n.name: _spawn(spec, f"agent-{n.name}",
                            _dvrnet(*_agent_args(spec, n, url, extra), "--ready-file", ready[n.name]))
             for n in spec.nodes}
    end = time.monotonic() + wait
    while wait and not all(os.path.exists(p) for p in ready.values()):
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"agent of {name} exited with {p.returncode}; see {spec.state_dir}/agent-{name}.log")
        if time.monotonic() > end:
            late = sorted(n for n, p in ready.items() if not os.path.exists(p))
            raise RuntimeError(f"agents of {', '.join(late)} did not converge within {wait:.0f}s; "
                               f"see {spec.state_dir}/agent-*.log")
        time.sleep(0.02)
    return {name: p.pid for name, p in procs.items()}


def up(prefix: str = "dvl-", state_dir: str = "/var/lib/dvrnet/lab", scenario: ScenarioSpec = SEED,
       progress: Say | None = None, agents: bool = True, gateways: bool = True, fips: bool = True,
       extra_fips: int = 0, reporter: Progress | None = None, routed: bool = False,
       port_kind: str = "veth", control: str = "dvrnet",
       agent_args: tuple[str, ...] = ()) -> LabInfo:
    """gateways=False: routers without an external gateway (and then no FIPs either: a FIP needs
    its router's gateway); fips=False: VM ports without floating IPs. The T1-T6 tests start there.
    extra_fips: that many more FIPs (up to 10,000), on ports without VMs, from two more external
    subnets with their own gateways (`resources.with_extra_fips`, `resources.create_extra_fips`).
    reporter: where steps and the progress of long ones go (else PROGRESS gets the step lines).
    port_kind: the agents' --port-kind; "ovs"/"ovs-veth" also run Open vSwitch on every node
    (`ovs_world.py`).
    control="neutron": a real neutron-server instead of `dvrnet server` (lab/neutron.py); the
    network node's agent starts before the topology (Neutron schedules SNAT only to a live dvr_snat
    agent), the compute nodes' once the VM ports and FIPs are made. With routed: the network
    tagged and the gateways given their two addresses with the client, the agents' BGP settings
    in their l3_agent.ini (lab/neutron.py).
    agent_args: more `dvrnet agent` options for every node (e.g. `--stateless-fips`)."""
    if control not in ("dvrnet", "neutron"):
        raise ValueError(f"control {control!r}: dvrnet or neutron")
    if control == "neutron" and extra_fips:
        raise ValueError("extra FIPs are not made in a Neutron lab")
    fips = fips and gateways
    if extra_fips and not fips:
        raise RuntimeError("extra FIPs need the routers' gateways and the seed's FIPs")
    if not 0 <= extra_fips <= resources.MAX_EXTRA_FIPS:
        raise ValueError(f"extra_fips: 0 to {resources.MAX_EXTRA_FIPS:,}, not {extra_fips}")
    if routed and not scenario.routed:
        from ..scenarios.seed import ROUTED
        scenario = ROUTED if scenario is SEED else scenario
    reporter = reporter or Progress.plain(progress or (lambda _m: None))
    say = reporter.say
    t0 = time.monotonic()
    lap = [t0]

    def step(msg: str) -> None:
        now = time.monotonic()
        say(f"{msg} ({now - lap[0]:.2f}s)")
        lap[0] = now

    if extra_fips:
        scenario = resources.with_extra_fips(scenario)
    spec = world_spec_for(scenario, prefix, state_dir, port_kind)
    old = down(prefix, state_dir)       # `up` always starts from a clean slate (also after a crash)
    if old.namespaces or old.killed:
        step(f"removed a previous lab: {len(old.namespaces)} namespaces, {len(old.killed)} processes")
    info = build_world(spec)
    step("physical world: external segment, gateways, internet host, underlay, node bridges")
    if scenario.routed:
        from .routed_world import build_tor
        priv = next(s for s in scenario.external_subnets if s.service_types)
        info.tor = build_tor(spec, priv.gateway or "", priv.cidr,
                             [s.cidr for s in scenario.external_subnets if not s.service_types])
        info.save()
        step(f"ToR {info.tor['netns']} ({info.tor['address']}, AS {info.tor['asn']}) running BIRD")
    if spec.ovs:
        ovs_world.start_switches([spec.ovs_instance(n) for n in spec.nodes])
        step("Open vSwitch on every node: ovsdb-server, ovs-vswitchd (userspace datapath), br-int")
    neutron_pids: dict[str, int] = {}
    if control == "neutron":
        from . import neutron as nlab
        extra_ini, resync = "", nlab.RESYNC
        if scenario.routed:
            from .tor import TOR_ASN
            extra_ini, resync = nlab.routed_agent_options(TOR_ASN), nlab.ROUTED_RESYNC
        lab = nlab.start_control(spec, step, agent_extra=extra_ini, resync=resync)
        url = lab.api_url
        info.server_url = url
        info.save()
        if agents:      # the network nodes' first: Neutron schedules SNAT only to a live dvr_snat agent
            snat_nodes = [n for n in spec.nodes if n.mode == "dvr_snat"]
            neutron_pids = nlab.start_agents(spec, lab, nodes=snat_nodes)
            step(f"dvrnet neutron-agent on {', '.join(n.name for n in snat_nodes)} (registered as an L3 agent)")
        topo = nlab.create_topology(url, scenario, gateways=gateways)
        step("topology through Neutron with the openstack client: external network and subnets, "
             "tenant networks, routers, interfaces")
    else:
        url = start_server(spec)
        info.server_url = url
        info.save()
        step(f"dvrnet server on {url}")
        c0 = httpx.Client(base_url=url, timeout=30)
        topo = resources.create_topology(c0, scenario, gateways=gateways)
        c0.close()
        step("topology through the API: external network and subnets, tenant networks, routers, interfaces")
    c = httpx.Client(base_url=url, timeout=30)
    nets = {name: TenantNet(n["id"], 1000 + i, int(n.get("mtu") or scenario.tenant_mtu))
            for i, (name, n) in enumerate(topo.networks.items(), start=1)}
    add_tenant_networks(spec, list(nets.values()))
    step("tenant L2: bridges, VXLAN (the agents add the distributed gateway's L2 guard)")
    if spec.ovs:
        start_ovs_l2(spec, url, topo, list(nets.values()))
        step("br-int: a local VLAN and an uplink per network, the L2 guard, the stand-in L2 agents")
    if control == "neutron":
        nlab.create_vms(url, topo, scenario, fips=fips)
    else:
        resources.create_vms(c, topo, scenario, fips=fips)
    vm_specs, vm_infos = [], []
    for vm in scenario.vms:
        port = topo.vm_ports[vm.name]
        fixed = port["fixed_ips"][0]["ip_address"]
        sub = topo.subnets[vm.network]
        plen = ipaddress.ip_network(sub["cidr"]).prefixlen
        vm_specs.append(VmSpec(vm.name, vm.host, port["network_id"], port["mac_address"], fixed, plen,
                               sub.get("gateway_ip"), nets[vm.network].mtu, port["id"]))
        fip = topo.fips.get(vm.name)
        vm_infos.append(VmInfo(name=vm.name, node=vm.host, netns=spec.ns(vm.name), network=vm.network,
                               network_id=port["network_id"], port_id=port["id"], mac=port["mac_address"],
                               fixed_ip=fixed, prefixlen=plen, gateway_ip=sub.get("gateway_ip") or "",
                               fip=fip["floating_ip_address"] if fip else None, fip_subnet=vm.fip_subnet,
                               router=topo.router_of_network.get(vm.network)))
    add_vms(spec, vm_specs)
    info.vms = vm_infos
    step(f"{len(vm_specs)} VM ports and FIPs through the API, VM namespaces")
    if extra_fips:
        with reporter.task(f"{extra_fips:,} more FIPs through the API", extra_fips) as tick:
            resources.create_extra_fips(c, topo, scenario, extra_fips, tick)
        step(f"{extra_fips:,} more FIPs (ports without VMs, bulk requests) from "
             f"{', '.join(s.cidr for s in resources.EXTRA_EXTERNAL)}")
    for name, r in topo.routers.items():
        gw = r.get("external_gateway_info") or {}
        info.routers.append(RouterInfo(name=name, id=r["id"], snat_node=resources.snat_host(c, r["id"]),
                                       snat_ips=[x["ip_address"] for x in gw.get("external_fixed_ips", [])],
                                       networks=[n for n, rn in topo.router_of_network.items() if rn == name]))
    c.close()
    sockets = start_metadata_agent(spec)
    for n in info.nodes:
        n.metadata_socket = sockets[n.name]
    info.save()
    if agents and control == "neutron":
        # the compute nodes' agents join now: one full sync each, instead of a fetch per port and
        # FIP made above (each `sync_routers` costs neutron-server about a second of CPU)
        computes = [n for n in spec.nodes if n.mode != "dvr_snat"]
        neutron_pids.update(nlab.start_agents(spec, lab, nodes=computes))
        step(f"dvrnet neutron-agent on {', '.join(n.name for n in computes)} (registered as L3 agents)")
        from .steps import wait_converged
        secs = wait_converged(info, timeout=120)
        for n in info.nodes:
            n.agent_pid = neutron_pids.get(n.name)
        step(f"agents converged on what Neutron sends ({secs:.1f}s after the last change)")
    elif agents:
        codes = converge_once(spec, url, timeout=60 + extra_fips * 0.03, extra=agent_args)
        bad = {h: rc for h, rc in codes.items() if rc != 0}
        if bad:
            raise RuntimeError(f"agents did not converge: {bad}; see {state_dir}/agent-once-*.log")
        step("agents converged (one pass per node)")
        pids = start_agents(spec, url, extra=agent_args, wait=30 + extra_fips * 0.02)
        for n in info.nodes:
            n.agent_pid = pids.get(n.name)
        step("agents running")
    if agents and scenario.routed:      # each node's fg- address: the next hop the ToR learns
        with httpx.Client(base_url=url, timeout=30) as c2:
            fgs = resources._ok(c2.get("/v2.0/ports", params={"device_owner": "network:floatingip_agent_gateway"}))
        for n in info.nodes:
            port = next((p for p in fgs["ports"] if p.get("binding:host_id") == n.name), None)
            n.private_address = port["fixed_ips"][0]["ip_address"] if port and port["fixed_ips"] else None
        # the BGP sessions come up after the agents' passes: lab up returns once the ToR has the routes
        from .routed_checks import wait_tor_routes
        secs, missing = wait_tor_routes(info, timeout=60 + extra_fips * 0.01)
        if missing:
            info.save()
            raise RuntimeError(f"the ToR did not learn {len(missing)} of the lab's routes within {secs:.0f}s "
                               f"(e.g. {next(iter(missing))}); `birdc -s {state_dir}/tor/ctl show protocols` "
                               "shows its sessions")
        step(f"the ToR routes every FIP and SNAT address via its node ({secs:.1f}s)")
    info.save()
    say(f"lab up in {time.monotonic() - t0:.1f}s; state in {state_dir}")
    return info
