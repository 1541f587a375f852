"""`lab up --control neutron`: the lab's figure with a real neutron-server as the control plane.

Instead of `dvrnet server`, the lab starts PostgreSQL, RabbitMQ and neutron-server (ML2,
`router_distributed`; lab/daemons.py) in its state dir, the stand-in L2 agent (lab/l2stub.py: one
live "Open vSwitch agent" per node, so ML2 binds ports), and one `dvrnet neutron-agent` per node
configured from an `l3_agent.ini` of its own (`<state dir>/neutron/l3_agent-<node>.ini`). The
seed's resources are created through Neutron with the real `openstack` client (`OS_AUTH_TYPE=none`,
one client process reading its commands from stdin).

Routed (`lab up --routed --control neutron`, docs/routed-mode.md): the external network is tagged
with the client (`network set --tag dvrnet:routed`) before any gateway, the private subnet carries
its service types (`--service-type network:floatingip_agent_gateway --service-type
network:router_gateway`, gateway the ToR), every router gateway is set with two fixed IPs, the
private one for qg- and a public SNAT address (`router set --external-gateway EXT --fixed-ip
subnet=private --fixed-ip subnet=PUBLIC`: by itself Neutron gives a gateway one address, the typed
private one), and the agents' `l3_agent.ini` carry the routed settings (`routed_agent_options`)
and a short `neutron_resync_interval` (ROUTED_RESYNC). What the world, the VMs and the checks need
is the same LabInfo as with dvrnet's own server (`server_url` is Neutron's API); what only Neutron
mode needs (transport URL, agent configs) is in `<state dir>/neutron.json`.

Every process has a pid file in `<state dir>/pids`; `lab down` stops the daemons by those pids
(neutron-server's whole process group) before anything else.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from ..scenarios.seed import ScenarioSpec
from . import daemons
from .resources import LAB_RESERVED_FROM, Topology
from .world import WorldSpec

NEUTRON_FILE = "neutron.json"
# the agents' [dvrnet] neutron_resync_interval: long, so that a test converging within it proves
# the change came by a notification; a routed lab's is short (ROUTED_RESYNC): the tag of a network
# is the one input no notification carries (Neutron's tag API casts nothing)
RESYNC = 300.0
ROUTED_RESYNC = 30.0
PHYSNET = "physnet1"
# neutron-server publishes every API write on its notification bus (what Ceilometer reads); the
# agents read subnet writes from it (`[dvrnet] listen_notifications`): the L3 protocol notifies
# nothing when a subnet is added to an external network
NOTIFICATIONS_CONF = """
[oslo_messaging_notifications]
driver = messagingv2
topics = notifications
"""


@dataclass
class NeutronLab:
    api_url: str
    transport_url: str
    db_url: str
    agent_configs: dict[str, str] = field(default_factory=dict)      # node -> l3_agent.ini
    rabbit_ports: list[int] = field(default_factory=list)            # amqp, distribution, epmd, amqps
    rabbit_node: str = ""
    rabbit_tls_url: str = ""                # the same broker over TLS (self-signed: rabbit_tls_ca)
    rabbit_tls_ca: str = ""
    bridge_mappings: list[str] = field(default_factory=list)         # the agents' [dvrnet] bridge_mappings (NET:BR)
    agent_extra: str = ""                   # more [dvrnet] lines of every agent's file (routed mode's)
    neutron_resync_interval: float = RESYNC     # the agents' full syncs

    def save(self, state_dir: str) -> None:
        with open(os.path.join(state_dir, NEUTRON_FILE), "w") as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, state_dir: str) -> NeutronLab | None:
        try:
            with open(os.path.join(state_dir, NEUTRON_FILE)) as f:
                return cls(**json.load(f))
        except FileNotFoundError:
            return None


def routed_agent_options(tor_asn: int) -> str:
    """The `[dvrnet]` lines of a routed lab's agents: the settings `dvrnet lab up --routed` gives
    its agents (lab/steps.py `agent_bgp`: the defaults, with the watchdog), the ToR's AS spelled out."""
    return (f"bgp_peer_as = {tor_asn}\nbfd_ms = 100\nbfd_multiplier = 3\nblackhole_seconds = 3\n"
            "bgp_lease_seconds = 5\n")


def start_control(spec: WorldSpec, say=lambda m: None, agent_extra: str = "",
                  resync: float = RESYNC) -> NeutronLab:
    """PostgreSQL, RabbitMQ, neutron-server and the L2 stand-in; stops what it started on failure.
    agent_extra: more `[dvrnet]` lines for every agent's l3_agent.ini; resync: their
    `neutron_resync_interval`."""
    base = os.path.join(spec.state_dir, "neutron")
    os.makedirs(base, exist_ok=True)
    os.chmod(spec.state_dir, 0o755)        # PostgreSQL runs as 'nobody' below it
    ds = daemons.DaemonSet()
    try:
        # RabbitMQ's Erlang VM boots while PostgreSQL starts and Neutron's database is migrated
        rabbit = ds.add(daemons.start_rabbitmq(os.path.join(spec.state_dir, "rabbit"), pid_dir=spec.pid_dir,
                                               wait=False, tls=True))
        pg = ds.add(daemons.start_postgres(os.path.join(spec.state_dir, "pg"), pid_dir=spec.pid_dir))
        db = daemons.create_database(pg, "neutron")
        daemons.migrate_neutron_db(os.path.join(base, "server"), db)
        daemons.await_rabbitmq(rabbit)
        say("PostgreSQL, Neutron's database migrated, RabbitMQ")
        neutron = ds.add(daemons.start_neutron_server(os.path.join(base, "server"), db, rabbit.url,
                                                      pid_dir=spec.pid_dir, migrated=True,
                                                      extra_conf=NOTIFICATIONS_CONF))
        say(f"neutron-server on {neutron.url}")
        lab = NeutronLab(neutron.url, rabbit.url, db, rabbit_ports=list(rabbit.ports), rabbit_node=rabbit.node,
                         rabbit_tls_url=rabbit.tls_url, rabbit_tls_ca=rabbit.tls_ca, agent_extra=agent_extra,
                         neutron_resync_interval=resync)
        nodes = [f"--node={n.name}={spec.underlay_ip(n)}" for n in spec.nodes]
        _spawn(spec, "l2stub", [sys.executable, "-m", "dvrnet.lab.l2stub", "--transport-url", rabbit.url,
                                "--interval", "10", *nodes])
        for n in spec.nodes:
            lab.agent_configs[n.name] = write_agent_config(spec, n, rabbit.url, agent_extra, resync)
        lab.save(spec.state_dir)
        return lab
    except BaseException:
        ds.stop()
        raise


def _plugging(spec: WorldSpec, node) -> tuple[str, str, str]:
    """(interface_driver line(s), [OVS] section, [dvrnet] port_kind line) for the lab's port kind,
    as an operator's files say it: veth/macvlan -> linuxbridge, ovs/ovs-veth -> openvswitch with
    the node's own ovs-vswitchd (lab/ovs_world.py) as [OVS] ovsdb_connection."""
    if spec.ovs:
        veth = "\novs_use_veth = True" if spec.port_kind == "ovs-veth" else ""
        return (f"interface_driver = openvswitch{veth}",
                f"\n[OVS]\nintegration_bridge = br-int\novsdb_connection = {spec.ovs_instance(node).db}\n", "")
    return "interface_driver = linuxbridge", "", "port_kind = macvlan\n" if spec.port_kind == "macvlan" else ""


def write_agent_config(spec: WorldSpec, node, transport_url: str, extra: str = "", resync: float = RESYNC) -> str:
    path = os.path.join(spec.state_dir, "neutron", f"l3_agent-{node.name}.ini")
    driver, ovs, kind = _plugging(spec, node)
    with open(path, "w") as f:
        f.write(f"""# what an operator's l3_agent.ini (plus neutron.conf's transport_url) says, for one lab node
[DEFAULT]
host = {node.name}
agent_mode = {node.mode}
{driver}
transport_url = {transport_url}
rpc_response_timeout = 30

metadata_proxy_socket = {spec.metadata_socket(node)}

[AGENT]
report_interval = 10
{ovs}
[dvrnet]
netns_prefix = {spec.node_prefix(node)}
bridge_netns = {spec.bridge_ns(node)}
external_bridge = br-ex
dvr_mac = {spec.node_mac(node)}
resync_interval = 60
neutron_resync_interval = {resync:g}
listen_notifications = true
coalesce_window = 0.05
max_backoff = 5
{kind}{extra}""")
    return path


def _spawn(spec: WorldSpec, name: str, argv: list[str]) -> subprocess.Popen:
    os.makedirs(spec.pid_dir, exist_ok=True)
    with open(os.path.join(spec.state_dir, f"{name}.log"), "ab") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    with open(os.path.join(spec.pid_dir, f"{name}.pid"), "w") as f:
        f.write(f"{p.pid}\n")
    return p


def start_agents(spec: WorldSpec, lab: NeutronLab, wait: float = 120.0, nodes=None) -> dict[str, int]:
    """One `dvrnet neutron-agent` per node; returns once each has converged once (its ready file)."""
    nodes = list(nodes or spec.nodes)
    ready = {n.name: os.path.join(spec.state_dir, f"agent-{n.name}.ready") for n in nodes}
    for path in ready.values():
        if os.path.exists(path):
            os.unlink(path)
    procs = {n.name: _spawn(spec, f"agent-{n.name}",
                            [sys.executable, "-m", "dvrnet.cli", "neutron-agent", "--config-file",
                             lab.agent_configs[n.name], "--ready-file", ready[n.name], "--log-level", "INFO"])
             for n in nodes}
    end = time.monotonic() + wait
    while wait and not all(os.path.exists(p) for p in ready.values()):
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"neutron-agent of {name} exited with {p.returncode}; see "
                                   f"{spec.state_dir}/agent-{name}.log")
        if time.monotonic() > end:
            late = sorted(n for n, p in ready.items() if not os.path.exists(p))
            raise RuntimeError(f"neutron-agents of {', '.join(late)} did not converge within {wait:.0f}s")
        time.sleep(0.05)
    return {name: p.pid for name, p in procs.items()}


# ---- the real openstack client --------------------------------------------------------------

def openstack_exe() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "openstack")
    return exe if os.path.exists(exe) else (shutil.which("openstack") or "openstack")


class ClientError(RuntimeError):
    pass


def openstack(api_url: str, commands: list[str], timeout: float = 600) -> list:
    """Run COMMANDS in one `openstack` client process (its interactive shell, fed on stdin);
    returns the JSON documents printed by the commands that asked for `-f json`, in order.
    Raises ClientError with the client's stderr when any command failed."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "OS_AUTH_TYPE": "none", "OS_ENDPOINT": api_url, "OS_CLIENT_CONFIG_FILE": "/dev/null",
           "LC_ALL": "C.UTF-8"}
    p = subprocess.run([openstack_exe()], input="\n".join(commands) + "\n", capture_output=True, text=True,
                       env=env, timeout=timeout, check=False)
    docs, dec, text, i = [], json.JSONDecoder(), p.stdout, 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            doc, i = dec.raw_decode(text, i)
        except ValueError:
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl + 1      # a plain-text line (e.g. a value): skip it
            continue
        docs.append(doc)
    want = sum(1 for c in commands if "-f json" in c)
    # the client's shell exits 1 at the end of its input whatever happened: a failed command
    # shows as its message on stderr (and, for one that prints, as a missing answer)
    if p.stderr.strip() or len(docs) != want:
        raise ClientError(f"openstack client: {len(docs)} of {want} answers: {p.stderr.strip()[-800:]}")
    return docs


def _pool(cidr: str) -> str:
    import ipaddress
    net = ipaddress.ip_network(cidr)
    return f" --allocation-pool start={net[2]},end={net[LAB_RESERVED_FROM - 1]}"


def create_topology(api_url: str, spec: ScenarioSpec, gateways: bool = True) -> Topology:
    """External network (flat, physnet1) with the scenario's subnets, tenant networks (VXLAN),
    distributed routers with gateways and interfaces — through the openstack client."""
    cmds = [(f"network create --external --provider-network-type flat --provider-physical-network {PHYSNET} "
            f"--mtu {spec.external_mtu} {spec.external_network} -f json")]
    if spec.routed:         # before any gateway, as an operator does (docs/routed-mode.md)
        from ..model.resources import ROUTED_TAG
        cmds.append(f"network set --tag {ROUTED_TAG} {spec.external_network}")
    for s in spec.external_subnets:
        gw = f"--gateway {s.gateway}" if s.gateway else "--gateway none"
        types = "".join(f" --service-type {t}" for t in s.service_types)
        pool = _pool(s.cidr) if s.gateway else ""
        cmds.append(f"subnet create --network {spec.external_network} --subnet-range {s.cidr} {gw} --no-dhcp"
                    f"{types}{pool} {s.name} -f json")
    for net_name, s in spec.tenant_networks:
        cmds.append(f"network create --mtu {spec.tenant_mtu} {net_name} -f json")
        cmds.append(f"subnet create --network {net_name} --subnet-range {s.cidr} --gateway {s.gateway} --no-dhcp "
                    f"{s.name} -f json")
    for r_name, nets in spec.routers:
        cmds.append(f"router create --distributed {r_name} -f json")
        if gateways:
            cmds.append(f"router set --external-gateway {spec.external_network}{routed_fixed_ips(spec, r_name)} "
                        f"{r_name}")
        for n in nets:
            sub = dict(spec.tenant_networks)[n].name
            cmds.append(f"router add subnet {r_name} {sub}")
    for r_name, _ in spec.routers:
        cmds.append(f"router show {r_name} -f json")
    cmds.append("port list --device-owner network:router_interface_distributed --long -f json")
    docs = iter(openstack(api_url, cmds))
    ext = next(docs)
    topo = Topology(external_network=ext)
    for s in spec.external_subnets:
        topo.external_subnets[s.name] = next(docs)
    for net_name, _s in spec.tenant_networks:
        topo.networks[net_name] = next(docs)
        topo.subnets[net_name] = next(docs)
    for r_name, nets in spec.routers:
        next(docs)
        for n in nets:
            topo.router_of_network[n] = r_name
    for r_name, _ in spec.routers:
        topo.routers[r_name] = next(docs)
    topo.interface_ports = [{"id": p.get("ID"), "mac_address": p.get("MAC Address"),
                             "device_owner": "network:router_interface_distributed"} for p in next(docs)]
    return topo


def routed_fixed_ips(spec: ScenarioSpec, r_name: str) -> str:
    """A routed network's router gateway: ` --fixed-ip subnet=PRIVATE --fixed-ip subnet=PUBLIC`
    (qg-'s private address and the router's public SNAT address; `spec.snat_subnet`, else the
    public subnets in turn, one per router); empty for an l2 network."""
    if not spec.routed:
        return ""
    private = next(s.name for s in spec.external_subnets if "network:router_gateway" in s.service_types)
    public = [s.name for s in spec.external_subnets if not s.service_types]
    i = [r for r, _ in spec.routers].index(r_name)
    snat = spec.snat_subnet or public[i % len(public)]
    return f" --fixed-ip subnet={private} --fixed-ip subnet={snat}"


def _fixed_ips(value) -> list[dict]:
    """The client prints fixed_ips as a list of dicts (JSON) or as text (older formats)."""
    if isinstance(value, list):
        return value
    out = []
    for part in str(value or "").replace("\n", ",").split("}"):
        ip = part.split("ip_address='")[-1].split("'")[0] if "ip_address='" in part else None
        sid = part.split("subnet_id='")[-1].split("'")[0] if "subnet_id='" in part else None
        if ip and sid:
            out.append({"ip_address": ip, "subnet_id": sid})
    return out


def create_vms(api_url: str, topo: Topology, spec: ScenarioSpec, fips: bool = True) -> Topology:
    """VM ports bound to their nodes (`--host`, `compute:nova`) and their FIPs from the named
    external subnets — through the openstack client."""
    import uuid
    cmds = []
    for vm in spec.vms:
        sub = topo.subnets[vm.network]["name"]
        cmds.append(f"port create --network {vm.network} --host {vm.host} --device-owner compute:nova "
                    f"--device {uuid.uuid5(uuid.NAMESPACE_DNS, 'lab-' + vm.name)} --fixed-ip subnet={sub} "
                    f"{vm.name}-port -f json")
    if fips:
        for vm in spec.vms:
            if vm.fip_subnet is not None:
                cmds.append(f"floating ip create --subnet {vm.fip_subnet} --port {vm.name}-port "
                            f"--description fip-of-{vm.name} {spec.external_network} -f json")
    docs = iter(openstack(api_url, cmds))
    for vm in spec.vms:
        p = next(docs)
        topo.vm_ports[vm.name] = {"id": p["id"], "network_id": p["network_id"], "mac_address": p["mac_address"],
                                  "fixed_ips": _fixed_ips(p.get("fixed_ips"))}
    if fips:
        for vm in spec.vms:
            if vm.fip_subnet is not None:
                f = next(docs)
                topo.fips[vm.name] = {"id": f["id"], "floating_ip_address": f["floating_ip_address"]}
    return topo


def restart_agents(info, lab: NeutronLab, extra: tuple[str, ...] = (), env_path: str | None = None,
                   nodes: tuple[str, ...] | None = None, transport_url: str | None = None,
                   rabbit_conf: str = "") -> dict[str, int]:
    """Stop the nodes' neutron-agents (SIGTERM: the data plane stays) and start them again; EXTRA
    are `dvrnet agent` style arguments turned into `[dvrnet]` options (`--bridge-mapping NET=BR`
    -> `bridge_mappings = NET:BR`), written into the chosen nodes' configurations (without EXTRA
    or TRANSPORT_URL they are kept). ENV_PATH: a PATH to run them with (tests force failures).
    TRANSPORT_URL: the agents' `transport_url` from now on (e.g. several hosts; None: the lab's);
    RABBIT_CONF: `[oslo_messaging_rabbit]` options with it (e.g. `ssl = True`)."""
    from ..scenarios.seed import SEED
    from .steps import stop_process
    from .up import world_spec_for
    maps = [extra[i + 1].replace("=", ":", 1) for i, a in enumerate(extra) if a == "--bridge-mapping"]
    if extra:
        lab.bridge_mappings = maps
    maps = lab.bridge_mappings          # a new transport_url alone keeps the mappings the agents have
    spec = world_spec_for(SEED, info.prefix, info.state_dir, info.port_kind)
    chosen = [n for n in spec.nodes if nodes is None or n.name in nodes]
    for n in info.nodes:
        if n.agent_pid and n.name in {c.name for c in chosen}:
            stop_process(n.agent_pid)
    if extra or transport_url:      # new options; without, each node keeps the configuration it has
        more = f"bridge_mappings = {','.join(maps)}\n" if maps else ""
        if rabbit_conf:
            more += f"\n[oslo_messaging_rabbit]\n{rabbit_conf}"
        for n in chosen:
            lab.agent_configs[n.name] = write_agent_config(spec, n, transport_url or lab.transport_url,
                                                           lab.agent_extra + more, lab.neutron_resync_interval)
        lab.save(info.state_dir)
    old = os.environ.get("PATH")
    try:
        if env_path is not None:
            os.environ["PATH"] = env_path
        pids = start_agents(spec, lab, nodes=chosen, wait=0 if env_path else 120)
    finally:
        if old is not None:
            os.environ["PATH"] = old
    for n in info.nodes:
        if n.name in pids:
            n.agent_pid = pids[n.name]
    info.save()
    return pids


def kill_rabbitmq(state_dir: str) -> list[int]:
    """kill -9 of RabbitMQ's Erlang VM (its epmd stays): what a crashed broker looks like."""
    import signal
    pids = []
    try:
        with open(os.path.join(state_dir, "pids", "rabbitmq.pid")) as f:
            main = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return pids
    for p in sorted(set(daemons.group_members(main)) | {main}):
        try:
            os.kill(p, signal.SIGKILL)
            pids.append(p)
        except ProcessLookupError:
            pass
    daemons.wait_gone(pids, 10)
    return pids


def restart_rabbitmq(state_dir: str, lab: NeutronLab) -> daemons.Daemon:
    """Start RabbitMQ again on the same ports, node name and data (after `kill_rabbitmq`)."""
    pid_dir = os.path.join(state_dir, "pids")
    old = os.path.join(pid_dir, "rabbitmq.pid")
    try:            # its epmd survived the kill: end it, the new start brings its own
        with open(old) as f:
            daemons.kill_pids([int(x) for x in f.read().split()[1:]])
    except (OSError, ValueError):
        pass
    return daemons.start_rabbitmq(os.path.join(state_dir, "rabbit"), pid_dir=pid_dir, node=lab.rabbit_node,
                                  ports=tuple(lab.rabbit_ports), tls=bool(lab.rabbit_tls_url))
