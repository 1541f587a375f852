"""The one `dvrnet` command.

Errors (`run`): what an operator can cause or fix — bad input, a server that cannot be reached, no
lab, not root, a refused API call — is one line on stderr and a non-zero exit (2 for a malformed
command line, 1 otherwise). Anything else is a bug in dvrnet (e.g. the planner's `PlanConflict`,
the reconciler's `NotOwned`): its traceback, then one line saying it is a bug, exit 70.
Inspection commands (`show`, `trace`, `lab info`) write nothing; reading a namespace needs root,
and a non-root run that would have to says so in one line.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback

import click

from .model.errors import DvrnetError

EXIT_BUG = 70                  # EX_SOFTWARE: an internal error

SCENARIOS = ("seed",)


def _one_line_errors(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except DvrnetError as e:
            raise click.ClickException(str(e)) from None
    return wrapper


def load_scenario(name: str):
    if name == "seed":
        from .scenarios.seed import build
        return build()
    raise click.BadParameter(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})", param_hint="--scenario")


def _metadata_options(fn):
    """The metadata proxies (plan/metadata.py); collected by `_metadata_config`."""
    fn = click.option("--metadata-socket", default=None, metavar="PATH",
                      help="neutron-metadata-agent's unix socket (Neutron's metadata_proxy_socket): run a metadata "
                           "proxy for 169.254.169.254 in every router namespace with interfaces here (default: none).")(fn)
    fn = click.option("--metadata-port", type=click.IntRange(1, 65535), default=9697, show_default=True,
                      help="The proxy's port inside the router namespace (Neutron's metadata_port).")(fn)
    fn = click.option("--metadata-user", default=None, help="User the proxy runs as once bound (default: the agent's).")(fn)
    fn = click.option("--metadata-group", default=None, help="Group the proxy runs as once bound.")(fn)
    return fn


def _metadata_config(kw: dict):
    """Take the `_metadata_options` out of a command's keyword arguments."""
    from .plan.config import MetadataConfig
    return MetadataConfig(socket=kw.pop("metadata_socket", None), port=kw.pop("metadata_port", 9697),
                          user=kw.pop("metadata_user", None), group=kw.pop("metadata_group", None))


@click.group()
@click.version_option(package_name="dvrnet")
def main() -> None:
    """dvrnet: a distributed virtual router for external networks with several subnets."""


@main.command()
@click.option("--scenario", type=click.Choice(SCENARIOS), default="seed", show_default=True,
              help="Built-in model to plan for.")
@click.option("--host", required=True, help="Host whose namespaces to plan.")
@click.option("--netns-prefix", default="", help="Prefix of every namespace name (per node in the lab).")
@_metadata_options
@_one_line_errors
def plan(scenario: str, host: str, netns_prefix: str, **more) -> None:
    """Print the desired kernel state of every namespace on HOST (canonical text form)."""
    from .plan import PlanConfig, plan_host, render
    cloud = load_scenario(scenario)
    if host not in cloud.hosts:
        raise click.BadParameter(f"no host {host!r} in scenario {scenario} (hosts: {', '.join(sorted(cloud.hosts))})",
                                 param_hint="--host")
    cfg = PlanConfig(netns_prefix=netns_prefix, metadata=_metadata_config(more))
    click.echo(render(plan_host(cloud, host, cfg)), nl=False)


@main.command()
@click.option("--bind", default="127.0.0.1:9696", show_default=True, help="HOST:PORT to listen on.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: SQLite file in the state directory; postgresql://… for larger clouds).")
@click.option("--auth", type=click.Choice(["none", "token"]), default="none", show_default=True)
@click.option("--tokens", type=click.Path(dir_okay=False), default=None, help="JSON tokens file for --auth token.")
@click.option("--state-dir", default=os.environ.get("DVRNET_STATE_DIR", "/var/lib/dvrnet"), show_default=True)
@click.option("--change-log-revisions", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="How many revisions of the change log to keep; agents further behind take a snapshot.")
@_one_line_errors
def server(bind: str, db: str | None, auth: str, tokens: str | None, state_dir: str,
           change_log_revisions: int) -> None:
    """Run the Neutron-compatible API server."""
    if auth == "token" and not tokens:
        raise click.BadParameter("--auth token needs --tokens FILE", param_hint="--tokens")
    from .api.serve import parse_bind, run
    try:
        parse_bind(bind)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--bind") from None
    if db is not None:
        import sqlalchemy
        try:
            sqlalchemy.engine.make_url(db).get_dialect()
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as e:
            raise click.BadParameter(f"{db!r}: {e}", param_hint="--db") from None
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as e:
        raise click.BadParameter(f"{state_dir}: {e.strerror}", param_hint="--state-dir") from None
    run(bind=bind, db=db, auth=auth, state_dir=state_dir, tokens=tokens, change_log_revisions=change_log_revisions)


@contextlib.contextmanager
def _reading_namespaces(what: str):
    """Namespaces that cannot be read: one line (as non-root: that it needs root), never a traceback."""
    from .kernel.iproute import ReadError
    try:
        yield
    except ReadError as e:
        if os.geteuid() != 0:
            raise click.ClickException(f"{what} reads network namespaces: run it as root ({e})") from None
        raise click.ClickException(f"{what}: {e}") from None


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise click.ClickException(f"{what}: run it as root")


def _plan_options(fn):
    fn = click.option("--netns-prefix", default="", help="Prefix of every namespace this node's agent owns (the lab gives each node one).")(fn)
    fn = click.option("--bridge-netns", default="dvrnet-bridges", show_default=True,
                      help="Namespace holding this node's bridges (where router ports are plugged).")(fn)
    fn = click.option("--external-bridge", default="br-ex", show_default=True, help="Bridge on the external segment.")(fn)
    fn = click.option("--bridge-mapping", "bridge_mappings", multiple=True, metavar="NET=BRIDGE",
                      help="External network NET (id) plugs into BRIDGE instead of --external-bridge; repeatable.")(fn)
    fn = click.option("--port-kind", type=click.Choice(["veth", "macvlan", "ovs", "ovs-veth"]), default="veth",
                      show_default=True,
                      help="Device kind of router ports (docs/port-kinds.md): veth/macvlan into Linux bridges, "
                           "ovs (internal port) / ovs-veth into the Open vSwitch integration bridge; existing "
                           "ports of another kind are replaced.")(fn)
    fn = click.option("--bgp-local-as", type=click.IntRange(1, 4294967294), default=None,
                      help="Routed mode: this node's AS (default: a private 4-byte AS derived from --host).")(fn)
    fn = click.option("--bgp-peer", "bgp_peers", multiple=True, metavar="ADDRESS:AS[:PASSWORD]",
                      help="Routed mode: a ToR session (repeatable; default: the gateway of the fg-/qg- "
                           "subnet with --bgp-peer-as).")(fn)
    fn = click.option("--bgp-peer-as", type=click.IntRange(1, 4294967294), default=65000, show_default=True,
                      help="Routed mode: the ToR's AS when no --bgp-peer is given.")(fn)
    fn = click.option("--bfd-ms", type=click.IntRange(10, 10000), default=100, show_default=True,
                      help="Routed mode: BFD interval in milliseconds (x --bfd-multiplier).")(fn)
    fn = click.option("--bfd-multiplier", type=click.IntRange(1, 255), default=3, show_default=True)(fn)
    fn = click.option("--blackhole-seconds", type=click.FloatRange(0, 3600), default=3.0, show_default=True,
                      help="Routed mode: how long a FIP that left this node stays a blackhole here.")(fn)
    fn = click.option("--integration-bridge", default="br-int", show_default=True,
                      help="Open vSwitch bridge of the ovs/ovs-veth port kinds.")(fn)
    fn = click.option("--ovs-db", default=None, metavar="unix:PATH",
                      help="Database of the node's Open vSwitch (in the bridge namespace); default "
                           f"{OVS_DB_DEFAULT} with an OVS port kind. Given with another kind, OVS ports "
                           "dvrnet plugged earlier are removed.")(fn)
    fn = click.option("--conn-limits/--no-conn-limits", "conn_limits", default=True, show_default=True,
                      help="Connection limits per VM and per router in qrouter-/snat- namespaces "
                           "(docs/dataplane.md).")(fn)
    fn = click.option("--conn-limit-router", "router_conn_limit", type=click.IntRange(min=0), default=None,
                      help="New connections per router namespace (default: 7/8 of nf_conntrack_max; 0: off).")(fn)
    fn = click.option("--conn-limit-vm", "vm_conn_limit", type=click.IntRange(min=0), default=None,
                      help="Connections per fixed IP (default: a quarter of the router limit; 0: off); "
                           "a port's connection_limit overrides it.")(fn)
    fn = click.option("--stateless-fips", "stateless_fips", is_flag=True, default=None,
                      help="FIP NAT without conntrack (rewrites every packet from the same maps; no "
                           "connection limits, TCP MSS clamped, remote path-MTU discovery lost: docs/dataplane.md).")(fn)
    fn = click.option("--stateless-mss", "stateless_mss", type=click.IntRange(536, 65495), default=None,
                      help="MSS that TCP SYNs through a stateless FIP are clamped to (default 1360).")(fn)
    fn = click.option("--bgp-lease-seconds", type=click.FloatRange(0, 3600), default=5.0, show_default=True,
                      help="Routed mode: when the agent has not renewed its lease for this long, each routed "
                           "namespace's watchdog makes BIRD announce with a longer AS path, so a FIP that moved to "
                           "another node meanwhile is won there (0: no watchdog; docs/routed-mode.md).")(fn)
    return fn


def _l2_options(fn):
    """The distributed gateway's L2 guard (plan/l2.py)."""
    fn = click.option("--dvr-mac", default=None, metavar="MAC",
                      help="This node's own MAC: routed frames leaving it with a qr- MAC get it as source "
                           "(default: derived from --host).")(fn)
    fn = click.option("--uplink", "uplinks", multiple=True, metavar="NAME",
                      help="A bridge port that leads off the node besides VXLAN/VLAN/bond ports, e.g. a "
                           "physical NIC (nft wildcards allowed); repeatable.")(fn)
    return fn


def _picture_options(fn):
    """`show --svg`: a picture of the node (picture/)."""
    fn = click.option("--svg", default=None, type=click.Path(dir_okay=False), metavar="FILE",
                      help="Draw HOST's namespaces, ports, links, bridges, rules and tables (what differs from the "
                           "desired state marked) into FILE.")(fn)
    fn = click.option("--trace", "trace_path", nargs=2, default=None, metavar="VM DST",
                      help="With --svg: highlight the path of VM's packet to DST.")(fn)
    fn = click.option("--inbound", default=None, metavar="FIP",
                      help="With --svg: highlight the path of a packet for FIP, in and back out.")(fn)
    fn = click.option("--from", "src", default=None, metavar="ADDR", help="With --inbound: the packet's source.")(fn)
    return fn


def _show_svg(path, host, cloud, cfg, desired, observed, trace_path, inbound, src, lab_mode: bool) -> None:
    """Draw HOST (and the traced path: across the lab's nodes when a lab runs, else this node only)."""
    from .picture import build, render
    from .picture.read import bridge_links
    from .trace import Node, TraceError, Tracer, lab_tracer
    if trace_path and inbound:
        raise click.UsageError("give either --trace VM DST or --inbound FIP")
    t = None
    if trace_path or inbound:
        if lab_mode:
            from .lab.info import LabInfo
            tracer = lab_tracer(LabInfo.load(os.environ.get("DVRNET_LAB_STATE", "/var/lib/dvrnet/lab")))
        else:
            tracer = Tracer([Node(host, cfg.netns_prefix, desired, cloud, observed, cfg)])
        try:
            t = tracer.inbound(inbound, src) if inbound else tracer.trace(*trace_path)
        except TraceError as e:
            raise click.ClickException(str(e)) from None
    pic = build(host, desired, observed, bridge_links(cfg.bridge_netns), cfg.bridge_netns, cfg.netns_prefix, cloud, t)
    with open(path, "w") as f:
        f.write(render(pic))
    marked = sum(p.status != "ok" for b in pic.boxes for p in b.ports) + sum(
        line.status != "ok" for b in pic.boxes for line in b.lines)
    click.echo(f"{path}: {len(pic.boxes)} namespaces, {len(pic.bridges)} bridges, {len(pic.edges)} links, "
               f"{marked} objects differing from the desired state" + (f"; {pic.path_text}" if t else ""))


def _agent_progress():
    """A big apply's progress: a bar when the agent runs on a terminal, log lines otherwise."""
    import logging

    from .progress import Progress
    return Progress.for_stream(sys.stderr) if sys.stderr.isatty() else Progress.plain(
        logging.getLogger("dvrnet.agent").info)


def _dvr_mac(value: str | None) -> str | None:
    import re
    if value is None:
        return None
    v = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", v) or int(v[:2], 16) & 1 or v == "00:00:00:00:00:00":
        raise click.BadParameter(f"{value!r}: expected a unicast MAC like fa:16:3f:00:00:01", param_hint="--dvr-mac")
    return v


def _bgp_config(bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms, bfd_multiplier, blackhole_seconds, bgp_lease_seconds):
    """Routed mode's BgpConfig from the --bgp-*, --bfd-* and --blackhole-seconds options."""
    from .kernel.watchdog import command as watchdog_command
    from .plan.config import BgpConfig, parse_bgp_peer
    peers = []
    for item in bgp_peers or ():
        try:
            peers.append(parse_bgp_peer(item))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--bgp-peer") from None
    return BgpConfig(local_as=bgp_local_as, peers=tuple(peers), peer_as=bgp_peer_as, bfd_ms=bfd_ms,
                     bfd_multiplier=bfd_multiplier, blackhole_s=blackhole_seconds, lease_s=bgp_lease_seconds,
                     watchdog=watchdog_command() if bgp_lease_seconds > 0 else ())


def _lab_defaults(host: str, server: str | None, netns_prefix: str, bridge_netns: str):
    """Without --server, a running lab supplies the server URL and the node's prefixes."""
    if server is not None:
        return server, netns_prefix, bridge_netns
    return _lab_node(host, netns_prefix, bridge_netns)[:3]


OVS_DB_DEFAULT = "unix:/var/run/openvswitch/db.sock"


def _switch(port_kind: str, ovs_db: str | None, bridge_netns: str):
    """The node's Open vSwitch for the reconciler, or None when OVS is not used."""
    if ovs_db is None and port_kind not in ("ovs", "ovs-veth"):
        return None
    from .kernel.ovs import Switch
    db = ovs_db or OVS_DB_DEFAULT
    if not db.startswith(("unix:", "tcp:")):
        raise click.BadParameter(f"{db!r}: expected unix:PATH or tcp:HOST:PORT", param_hint="--ovs-db")
    return Switch(netns=bridge_netns, db=db)


def _lab_node(host: str, netns_prefix: str, bridge_netns: str):
    """Without --server, a running lab supplies the server URL, the node's prefixes and its Open
    vSwitch: (server URL, prefix, bridge namespace, OVS database or None, the lab's port kind)."""
    try:
        from .lab.info import LabInfo
        info = LabInfo.load(os.environ.get("DVRNET_LAB_STATE", "/var/lib/dvrnet/lab"))
        node = info.node(host)
    except (FileNotFoundError, StopIteration, ValueError, OSError):
        return "http://127.0.0.1:9696", netns_prefix, bridge_netns, None, None
    return info.server_url, node.prefix, node.bridge_netns, node.ovs_db, info.port_kind


def _lab_node_mac(host: str) -> str | None:
    """The lab's node MAC of HOST (what the lab gives its agent as --dvr-mac), if a lab runs."""
    try:
        from .lab.info import LabInfo
        return LabInfo.load(os.environ.get("DVRNET_LAB_STATE", "/var/lib/dvrnet/lab")).node(host).node_mac
    except (FileNotFoundError, StopIteration, ValueError, OSError):
        return None


def _lab_metadata_socket(host: str) -> str | None:
    """The stand-in metadata agent's socket of HOST (what the lab gives its agent), if a lab runs."""
    try:
        from .lab.info import LabInfo
        return LabInfo.load(os.environ.get("DVRNET_LAB_STATE", "/var/lib/dvrnet/lab")).node(host).metadata_socket
    except (FileNotFoundError, StopIteration, ValueError, OSError):
        return None


def _bridge_mappings(items) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items or ():
        net, sep, bridge = item.partition("=")
        if not sep or not net.strip() or not bridge.strip():
            raise click.BadParameter(f"{item!r}: expected NET=BRIDGE", param_hint="--bridge-mapping")
        out.append((net.strip(), bridge.strip()))
    return tuple(out)


def _plan_config(netns_prefix: str, bridge_netns: str, external_bridge: str, bridge_mappings=(),
                 port_kind: str = "veth", dvr_mac: str | None = None, uplinks=(), bgp=None,
                 integration_bridge: str = "br-int", metadata=None, **dataplane):
    """DATAPLANE: the connection-limit and stateless-FIP options of `_plan_options`; the conntrack
    limit the defaults derive from is read from this kernel."""
    from .kernel.connlimit import conntrack_max
    from .plan import PlanConfig
    from .plan.config import BgpConfig, MetadataConfig
    extra = {k: v for k, v in dataplane.items() if v is not None}
    cmax = conntrack_max()
    if cmax:
        extra["conntrack_max"] = cmax
    return PlanConfig(netns_prefix=netns_prefix, bridge_netns=bridge_netns, external_bridge=external_bridge,
                      bridge_mappings=_bridge_mappings(bridge_mappings), port_kind=port_kind,
                      dvr_mac=_dvr_mac(dvr_mac), uplinks=tuple(u.strip() for u in uplinks or () if u.strip()),
                      bgp=bgp or BgpConfig(), integration_bridge=integration_bridge,
                      metadata=metadata or MetadataConfig(), **extra)


@main.command()
@click.option("--host", required=True, help="This node's name, as ports are bound to it (binding:host_id).")
@click.option("--mode", type=click.Choice(["dvr", "dvr_snat"]), required=True)
@click.option("--server", required=True, help="URL of `dvrnet server`, e.g. http://127.0.0.1:9696")
@click.option("--token", default=None, envvar="DVRNET_TOKEN", help="Token for a server running --auth token.")
@click.option("--resync-interval", type=float, default=60.0, show_default=True, help="Seconds between full resyncs.")
@click.option("--once", is_flag=True, help="One full pass, then exit (0 when converged).")
@click.option("--ready-file", default=None, type=click.Path(dir_okay=False),
              help="Create this file after the first converged pass (for whoever started the agent).")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--adopt-neutron-state", is_flag=True,
              help="Take the node over from neutron-l3-agent: remove the objects it left in the namespaces "
                   "this agent owns (its routes, rules, iptables chains, metadata proxies; docs/neutron.md) "
                   "and build dvrnet's layout. Without it, such objects stop the agent with an error.")
@_plan_options
@_l2_options
@_metadata_options
def agent(host, mode, server, token, resync_interval, once, ready_file, log_level, netns_prefix, bridge_netns, external_bridge,
          bridge_mappings, port_kind, dvr_mac, uplinks, bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms,
          bfd_multiplier, blackhole_seconds, bgp_lease_seconds, integration_bridge, ovs_db, **dataplane):
    """Run the node agent: follow the server's view of HOST and make the kernel match it."""
    import logging
    import signal

    from .agent.feed import Feed
    from .agent.loop import Agent
    _need_root("the agent changes network namespaces")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    meta = _metadata_config(dataplane)      # takes the --metadata-* options out of DATAPLANE
    adopt = dataplane.pop("adopt_neutron_state", False)
    cfg = _plan_config(netns_prefix, bridge_netns, external_bridge, bridge_mappings, port_kind, dvr_mac, uplinks,
                       _bgp_config(bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms, bfd_multiplier, blackhole_seconds, bgp_lease_seconds),
                       integration_bridge, meta, **dataplane)
    from .agent.report import Reporter
    from .kernel.takeover import NeutronStateFound
    reporter = Reporter(server, host, cfg.netns_prefix, token=token)     # statuses after every pass
    a = Agent(host, Feed(server, host, mode, token=token), cfg, resync_interval=resync_interval,
              ready_file=ready_file, progress=_agent_progress(), switch=_switch(port_kind, ovs_db, bridge_netns),
              on_pass=lambda rep, desired, observed: reporter.on_pass(a.cloud, rep, desired, observed),
              adopt_neutron_state=adopt)
    def _terminate(*_):
        a.stop.set()
        raise KeyboardInterrupt     # wakes a long-poll in progress; the data plane is left as it is
    signal.signal(signal.SIGTERM, _terminate)
    if not once:                    # full GC collections between bursts of passes, not inside one (heap.py)
        from .heap import Settler
        a.settler = Settler()
        a.settler.start()
    try:
        report = a.run(once=once)
        if once:
            reporter.flush()        # what the pass found reaches the server before the exit
    except KeyboardInterrupt:
        report = a.last
    except NeutronStateFound as e:
        raise click.ClickException(str(e)) from None
    finally:
        a.close()
        a.feed.close()
        reporter.close()
    if once:
        sys.exit(0 if report is not None and report.ok else 1)


@main.command("neutron-agent")
@click.option("--config-file", "config_files", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="A Neutron configuration file (neutron.conf, l3_agent.ini, ...); repeatable, later ones win.")
@click.option("--host", default=None, help="Override [DEFAULT] host.")
@click.option("--once", is_flag=True, help="One full sync and pass, then exit (0 when converged).")
@click.option("--ready-file", default=None, type=click.Path(dir_okay=False),
              help="Create this file after the first converged pass.")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--adopt-neutron-state", is_flag=True,
              help="Take the node over from neutron-l3-agent (as `[dvrnet] adopt_neutron_state`; docs/neutron.md).")
@_one_line_errors
def neutron_agent(config_files, host, once, ready_file, log_level, adopt_neutron_state):
    """Run as the L3 agent of a real neutron-server (docs/neutron.md): same planner and reconciler."""
    import logging
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        from .neutron.agent import main as neutron_main
    except ImportError as e:
        raise click.ClickException(f"Neutron mode needs the optional extra: pip install 'dvrnet[neutron]' ({e})") from None
    from .kernel.takeover import NeutronStateFound
    try:
        rc = neutron_main(list(config_files), host=host, once=once, ready_file=ready_file,
                          adopt_neutron_state=adopt_neutron_state)
    except NeutronStateFound as e:
        raise click.ClickException(str(e)) from None
    sys.exit(rc)


@main.command()
@click.argument("host")
@click.option("--server", default=None, help="URL of `dvrnet server` (default: the lab's, else http://127.0.0.1:9696).")
@click.option("--token", default=None, envvar="DVRNET_TOKEN")
@click.option("--desired", "what", flag_value="desired", help="What the server's model asks of HOST.")
@click.option("--actual", "what", flag_value="actual", help="What the kernel holds now (dvrnet-owned objects).")
@click.option("--diff", "what", flag_value="diff", default=True, help="The operations that would make them equal (default).")
@click.option("--config-file", "config_files", multiple=True, type=click.Path(dir_okay=False),
              help="Neutron mode: the node's Neutron configuration (as for `neutron-agent`); repeatable. "
                   "A lab built with --control neutron supplies it.")
@click.option("--limits", "what", flag_value="limits",
              help="Connection limits: per router and per VM its connections, limit and drops.")
@_plan_options
@_l2_options
@_metadata_options
@_picture_options
@_one_line_errors
def show(host, server, token, what, config_files, netns_prefix, bridge_netns, external_bridge, bridge_mappings,
         port_kind, dvr_mac, uplinks, svg, trace_path, inbound, src, bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms,
         bfd_multiplier, blackhole_seconds, bgp_lease_seconds, integration_bridge, ovs_db, **dataplane):
    """Print HOST's namespace state: desired, actual, the difference, or connection-limit usage
    (--limits); or draw it (--svg)."""
    from .agent.loop import desired_state
    from .kernel import Reconciler
    from .plan.render import render
    from .reconcile import diff as diff_states
    refused: dict[str, str] = {}
    status_lines: list[str] = []
    lab_mode = server is None and _lab_node_mac(host) is not None
    if not config_files and server is None:
        config_files = _lab_neutron_config(host)
    if config_files:        # Neutron mode: the agent's own translation of what neutron-server sends
        try:
            from .neutron.config import load
            from .neutron.snapshot import snapshot
        except ImportError as e:
            raise click.ClickException(f"Neutron mode needs the optional extra: pip install 'dvrnet[neutron]' ({e})") from None
        nconf = load(list(config_files), host=host)
        from .neutron.agent import switch_for
        snap = snapshot(nconf.host, nconf.mode, timeout=nconf.rpc_timeout)
        cloud, revision, refused, cfg = snap.cloud, snap.revision, snap.refused, nconf.plan
        netns_prefix = cfg.netns_prefix
        rec = Reconciler(prefix=netns_prefix, register_proto=False, switch=switch_for(nconf))
    else:
        from .agent.feed import Feed
        if lab_mode and dvr_mac is None:
            dvr_mac = _lab_node_mac(host)
        if server is None:
            server, netns_prefix, bridge_netns, lab_db, lab_kind = _lab_node(host, netns_prefix, bridge_netns)
            ovs_db = ovs_db or lab_db
            given = click.get_current_context().get_parameter_source("port_kind")
            if lab_kind and given is click.core.ParameterSource.DEFAULT:
                port_kind = lab_kind
        feed = Feed(server, host, "dvr", token=token, max_backoff=0)
        try:
            view = feed.fetch_once()
        finally:
            feed.close()
        cloud, revision = view.cloud, view.revision
        meta = _metadata_config(dataplane)
        if lab_mode and meta.socket is None:    # the lab gives its agents the stand-in metadata agent's socket
            from dataclasses import replace as _replace
            meta = _replace(meta, socket=_lab_metadata_socket(host))
        status_lines = _status_lines(server, host, token)
        cfg = _plan_config(netns_prefix, bridge_netns, external_bridge, bridge_mappings, port_kind, dvr_mac, uplinks,
                           _bgp_config(bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms, bfd_multiplier, blackhole_seconds, bgp_lease_seconds),
                           integration_bridge, meta, **dataplane)
        rec = Reconciler(prefix=netns_prefix, register_proto=False, switch=_switch(port_kind, ovs_db, bridge_netns))
    if what == "limits":
        _show_limits(cloud, host, cfg)
        return
    if svg is None:
        for line in status_lines:        # what the server shows, even when a namespace cannot be read
            click.echo(line)
    with _reading_namespaces(f"dvrnet show {host}"):
        desired, observed = desired_state(cloud, host, cfg, rec)
    if svg is not None:
        _show_svg(svg, host, cloud, cfg, desired, observed, trace_path, inbound, src, lab_mode)
        return
    if trace_path or inbound:
        raise click.UsageError("--trace and --inbound go with --svg FILE (the path is drawn on the picture)")
    from .kernel.bird import bgp_lines
    for line in bgp_lines(sorted(n for n, ns in observed.namespaces.items() if "bird" in ns.processes)):
        click.echo(line)
    for rid, why in sorted(refused.items()):
        click.echo(f"# refused, left as it is: router {rid}: {why}")
    if what == "desired":
        click.echo(render(desired), nl=False)
    elif what == "actual":
        click.echo(render(observed), nl=False)
    else:
        plan = diff_states(desired, observed, netns_prefix)
        click.echo(str(plan) if plan or plan.conflicts else f"{host}: kernel matches the model (revision {revision})")


def _lab_neutron_config(host: str) -> tuple[str, ...]:
    """A lab built with --control neutron: HOST's l3_agent.ini, else nothing."""
    try:
        from .lab.neutron import NeutronLab
        lab = NeutronLab.load(os.environ.get("DVRNET_LAB_STATE", "/var/lib/dvrnet/lab"))
    except (OSError, ValueError, TypeError):
        return ()
    path = lab.agent_configs.get(host) if lab is not None else None
    return (path,) if path else ()


def _status_lines(server: str, host: str, token: str | None) -> list[str]:
    """`# status` lines of HOST's FIPs and router gateway ports, as the server shows them from the
    agents' reports (GET /v2.0/dvrnet/hosts/HOST/status), with the reason of each one not ACTIVE."""
    import httpx
    try:
        r = httpx.get(f"{server.rstrip('/')}/v2.0/dvrnet/hosts/{host}/status", timeout=8,
                      headers={"X-Auth-Token": token} if token else {})
        r.raise_for_status()
        st = r.json()["status"]
    except (httpx.HTTPError, ValueError, KeyError) as e:
        return [f"# statuses: cannot read them from {server}: {e}"]
    out = []
    for f in st["floatingips"]:
        out.append(f"# status: floating IP {f['floating_ip_address']} ({f['id']}): {f['status']}: {f['reason']}")
    for p in st["ports"]:
        out.append(f"# status: router gateway port {p['id']}: {p['status']}: {p['reason']}")
    return out


def _show_limits(cloud, host: str, cfg) -> None:
    from .kernel import netns
    from .kernel.connlimit import usage
    from .model.placement import routers_on_host, snat_routers_on_host
    from .plan import names, plan_host
    from .plan.connlimit import vm_limits
    from .plan.numbers import NFT_TABLE
    desired = plan_host(cloud, host, cfg)
    vms = {names.qrouter_ns(cfg.netns_prefix, r.id): vm_limits(cloud, r, host) for r in routers_on_host(cloud, host)}
    vms |= {names.snat_ns(cfg.netns_prefix, r.id): vm_limits(cloud, r, None) for r in snat_routers_on_host(cloud, host)}
    shown = 0
    for name, ns in desired.namespaces.items():
        table = ns.nft.get(("ip", NFT_TABLE))
        if table is None or not any(c.name == "conn_limit" for c in table.chains) or not netns.exists(name):
            continue
        u = usage(name, table, [ip for ip, _ in vms.get(name, ())])
        lim = f"{u.router_limit:,}" if u.router_limit else "none"
        click.echo(f"{name}: {u.connections:,} connections (conntrack max {u.conntrack_max:,}), router limit {lim}, "
                   f"{u.router_drops:,} dropped")
        for v in u.vms:
            vlim = f"{v.limit:,}" if v.limit else "none"
            click.echo(f"  {v.ip:<15} {v.connections:>9,} connections  limit {vlim:>9}  {v.drops:>9,} dropped")
        shown += 1
    if not shown:
        click.echo(f"{host}: no namespace with connection limits")


BENCH_SECTIONS = ["control", "dataplane", "noisy", "e2e", "routed", "memory", "e2e-scale", "fanout"]


@main.command()
@click.option("--quick", is_flag=True, help="Smoke run (N=1,000), a few minutes.")
@click.option("--skip", multiple=True, type=click.Choice(BENCH_SECTIONS),
              help="Leave a section out (repeatable): control, dataplane, noisy, e2e, routed, memory, e2e-scale "
                   "(+1 FIP -> first ping at N FIPs), fanout (the delta feed to many hosts).")
@click.option("--plot", default="dvrnet-bench.svg", show_default=True, help="Where to write the SVG plot.")
def bench(quick: bool, skip: tuple[str, ...], plot: str) -> None:
    """Benchmarks: ratios against Neutron's way and the raw floor, measured in one run."""
    from .bench import main as bench_main
    sys.exit(bench_main((["--quick"] if quick else []) + [f"--skip={s}" for s in skip] + ["--plot", plot]))


LAB_STATE = os.environ.get("DVRNET_LAB_STATE", "/var/lib/dvrnet/lab")
LAB_PREFIX = os.environ.get("DVRNET_LAB_PREFIX", "dvl-")


def _lab_prefix(_ctx, _param, value: str | None) -> str | None:
    from .lab.world import PREFIX_RE
    if value is not None and not PREFIX_RE.match(value):
        raise click.BadParameter(f"{value!r}: a lab prefix is 2-12 lowercase letters or digits, starting with "
                                 "a letter, then '-' (e.g. dvl-)")
    return value


def _lab_options(fn):
    fn = click.option("--state-dir", default=LAB_STATE, show_default=True, help="Where the lab keeps its state.")(fn)
    fn = click.option("--prefix", default=LAB_PREFIX, show_default=True, callback=_lab_prefix,
                      help="Name prefix of everything the lab creates.")(fn)
    return fn


def _existing_lab_options(fn):
    """--state-dir and --prefix of commands that use a running lab: the lab is the one in the
    state directory; --prefix, when given, must be that lab's."""
    fn = click.option("--state-dir", default=LAB_STATE, show_default=True, help="The lab's state directory.")(fn)
    fn = click.option("--prefix", default=None, callback=_lab_prefix,
                      help="The lab's name prefix: refuse a lab in --state-dir with another one "
                           f"(default: whichever lab is there; `lab up` uses {LAB_PREFIX}).")(fn)
    return fn


def _load_lab(state_dir: str, prefix: str | None = None):
    """The LabInfo in STATE_DIR (and of PREFIX, when given): one line when there is none."""
    from .lab.info import LabInfo
    try:
        info = LabInfo.load(state_dir)
    except FileNotFoundError:
        raise click.ClickException(f"no lab in {state_dir}: run `dvrnet lab up` first") from None
    except (OSError, ValueError, TypeError) as e:
        raise click.ClickException(f"cannot read the lab in {state_dir}: {e}") from None
    if prefix is not None and info.prefix != prefix:
        raise click.ClickException(f"the lab in {state_dir} has prefix {info.prefix}, not {prefix}: "
                                   f"give the --state-dir of the lab {prefix}")
    return info


@main.group()
def lab() -> None:
    """The article's figure on this machine, built from network namespaces, checked with packets."""


def _lab_up(prefix: str, state_dir: str, extra_fips: int = 0, routed: bool = False, port_kind: str = "veth",
            control: str = "dvrnet"):
    from .lab.up import up
    from .progress import Progress
    p = Progress.for_stream(sys.stderr, prefix="lab ")
    return up(prefix=prefix, state_dir=state_dir, extra_fips=extra_fips, reporter=p, routed=routed,
              port_kind=port_kind, control=control)


def _lab_check(state_dir: str, as_json: bool, prefix: str | None = None) -> bool:
    from .lab.checks import render_table, rows_json, run_checks
    info = _load_lab(state_dir, prefix)
    _need_root("lab check sends packets from the lab's namespaces")
    if info.tor is not None:
        from .lab.routed_checks import run_routed_checks
        rows = run_routed_checks(info)
    else:
        rows = run_checks(info)
    if as_json:
        click.echo(rows_json(rows))
    else:
        render_table(rows)
    return all(r.passed for r in rows)


@lab.command("up")
@_lab_options
@click.option("--extra-fips", type=click.IntRange(0, 10_000), default=0, show_default=True, metavar="N",
              help="N more FIPs besides the seed's (up to 10,000), each on a port of its own without a VM, bound "
                   "to compute1 and compute2, from two more external subnets (100.64.64.0/18 and "
                   "100.64.128.0/18, each with its own gateway): the control and data plane at a larger size.")
@click.option("--routed", is_flag=True, help="Routed mode (S6): a ToR running BIRD (AS 65000) instead of the L2 "
                                             "gateways; the external network is tagged dvrnet:routed.")
@click.option("--port-kind", type=click.Choice(["veth", "macvlan", "ovs", "ovs-veth"]), default="veth",
              show_default=True,
              help="The agents' router-port kind; ovs/ovs-veth run Open vSwitch (br-int) on every node "
                   "(docs/port-kinds.md).")
@click.option("--control", type=click.Choice(["dvrnet", "neutron"]), default="dvrnet", show_default=True,
              help="The control plane: dvrnet's own server, or a real neutron-server (with PostgreSQL and "
                   "RabbitMQ; `make neutron-venv`) whose L3 agents are `dvrnet neutron-agent`.")
def lab_up(prefix: str, state_dir: str, extra_fips: int, routed: bool, port_kind: str, control: str) -> None:
    """Build the lab: external segment, gateways, internet host, nodes, server, agents, the seed's resources."""
    _need_root("the lab creates network namespaces")
    if port_kind in ("ovs", "ovs-veth"):
        import shutil
        missing = [t for t in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl") if shutil.which(t) is None]
        if missing:
            raise click.ClickException(f"--port-kind {port_kind}: Open vSwitch is not installed ({', '.join(missing)} "
                                       "missing; `make deb` installs openvswitch-switch)")
    with _lab_failures():
        _lab_up(prefix, state_dir, extra_fips, routed, port_kind, control)


@lab.command("check")
@_existing_lab_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable rows.")
def lab_check(prefix: str | None, state_dir: str, as_json: bool) -> None:
    """Run the traffic checks; exit 1 when any fails."""
    if not _lab_check(state_dir, as_json, prefix):
        sys.exit(1)


@lab.command("info")
@_existing_lab_options
@click.option("--json/--text", "as_json", default=False, show_default=True,
              help="JSON (every field) or text for people (the default).")
def lab_info(prefix: str | None, state_dir: str, as_json: bool) -> None:
    """Where everything is: VMs, FIPs, gateways, the internet host, node prefixes, agent PIDs, server URL.

    Agent PIDs are those of the agents running now (found by their command line), also after an
    agent was restarted."""
    from .lab.agents import with_running_agents
    from .lab.info import info_text
    info = with_running_agents(_load_lab(state_dir, prefix))
    click.echo(info.to_json() if as_json else info_text(info), nl=as_json)


@lab.command("down")
@_lab_options
def lab_down(prefix: str, state_dir: str) -> None:
    """Remove everything the lab created (namespaces, links, processes, files), also after a crash."""
    _need_root("the lab's namespaces and processes belong to root")
    from .lab.down import down
    r = down(prefix, state_dir)
    click.echo(f"lab down: removed {len(r.namespaces)} namespaces, stopped {len(r.killed)} processes")


@main.command()
@_lab_options
def demo(prefix: str, state_dir: str) -> None:
    """What `make demo` runs: lab up, lab check, and how to look around."""
    _need_root("the lab creates network namespaces")
    with _lab_failures():
        info = _lab_up(prefix, state_dir)
    ok = _lab_check(state_dir, False, prefix)
    c1 = info.node("compute1")
    click.echo(f"""
The lab is up and stays up (API server: {info.server_url}). Look around:
  .venv/bin/dvrnet show compute1 --desired     what the model asks of compute1 (also --actual, --diff)
  ip netns | grep {c1.prefix}                     compute1's namespaces; then e.g. `ip -n <its fip- namespace> rule`
  .venv/bin/dvrnet lab info                    every VM, FIP, gateway, node prefix and agent PID
  .venv/bin/dvrnet lab check                   run the traffic checks again
Tear it down with `make lab-down` (or `.venv/bin/dvrnet lab down`).""")
    if not ok:
        sys.exit(1)


@main.command()
@click.argument("vm", required=False)
@click.argument("dst", required=False)
@click.option("--inbound", "fip", default=None, metavar="FIP",
              help="Trace a packet for FIP from the external segment to its VM, and the reply back out.")
@click.option("--from", "src", default=None, metavar="ADDR",
              help="--inbound: the packet's source (default: the gateway of the FIP's subnet).")
@click.option("--host", default=None,
              help="Trace on this node, from the server's view of HOST (a real node); default: every node of the lab.")
@click.option("--server", default=None, help="With --host: URL of `dvrnet server` (default: the lab's, else "
                                             "http://127.0.0.1:9696).")
@click.option("--token", default=None, envvar="DVRNET_TOKEN")
@click.option("--state-dir", default=LAB_STATE, show_default=True, help="The lab's state directory.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable hops.")
@_plan_options
@_l2_options
@_one_line_errors
def trace(vm, dst, fip, src, host, server, token, state_dir, as_json, netns_prefix, bridge_netns, external_bridge,
          bridge_mappings, port_kind, dvr_mac, uplinks, bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms, bfd_multiplier,
          blackhole_seconds, bgp_lease_seconds, integration_bridge, ovs_db, **dataplane) -> None:
    """Walk a packet namespace by namespace (model) and check each hop against the kernel: `trace VM DST`
    (outbound from VM: a lab VM name, a fixed IP or a port id) or `trace --inbound FIP` (in from the
    external segment: who answers ARP for the FIP, then to the VM and back out).

    Exit 1 when any hop is wrong; the first wrong hop is named."""
    with _reading_namespaces("dvrnet trace"):
        t = _run_trace(vm, dst, fip, src, host, server, token, state_dir,
                       lambda h, prefix, bridge: _plan_config(prefix, bridge, external_bridge, bridge_mappings,
                                                              port_kind, dvr_mac if dvr_mac else (
                                                                  _lab_node_mac(h) if server is None else None),
                                                              uplinks,
                                                              _bgp_config(bgp_local_as, bgp_peers, bgp_peer_as, bfd_ms,
                                                                          bfd_multiplier, blackhole_seconds, bgp_lease_seconds),
                                                              integration_bridge, **dataplane),
                       netns_prefix, bridge_netns)
    click.echo(t.to_json() if as_json else t.text())
    if not t.agree:
        sys.exit(1)


def _run_trace(vm, dst, fip, src, host, server, token, state_dir, config, netns_prefix, bridge_netns):
    """The trace a `dvrnet trace` command line asks for (lab or one real node)."""
    import ipaddress

    from .trace import TraceError, Tracer, lab_tracer, server_fip_host, server_node
    if fip is not None and (vm or dst):
        raise click.UsageError("give either VM DST or --inbound FIP, not both")
    if fip is None and not (vm and dst):
        raise click.UsageError("give VM DST (outbound) or --inbound FIP")
    for value, hint in ((dst, "DST"), (fip, "--inbound"), (src, "--from")):
        if value is not None:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise click.BadParameter(f"{value!r} is not an IPv4 address", param_hint=hint) from None
    if host is not None:
        if server is None:
            os.environ.setdefault("DVRNET_LAB_STATE", state_dir)
        url, prefix, bridge = _lab_defaults(host, server, netns_prefix, bridge_netns)
        tracer = Tracer([server_node(host, url, config(host, prefix, bridge), token)],
                        served_at=server_fip_host(url, token))
    else:
        from .lab.info import LabInfo
        try:
            info = LabInfo.load(state_dir)
        except FileNotFoundError:
            raise click.ClickException(f"no lab in {state_dir}: give --host (and --server) to trace on a node") from None
        tracer = lab_tracer(info)
    try:
        return tracer.inbound(fip, src) if fip is not None else tracer.trace(vm, dst)
    except TraceError as e:
        raise click.ClickException(str(e)) from None


@contextlib.contextmanager
def _lab_failures():
    """What `lab up` reports when the lab cannot be built (a command, the server or an agent
    failed; the lab's API calls refused): one line. Bugs stay bugs."""
    import httpx
    try:
        yield
    except (NotImplementedError, RecursionError):
        raise
    except (RuntimeError, httpx.HTTPError) as e:        # LabError, ApiError, DaemonError, start failures
        raise click.ClickException(str(e)) from None


def run() -> None:
    """Entry point: operator errors are one line on stderr and a non-zero exit (2 for a malformed
    command line, 1 otherwise); anything else is a bug: its traceback, one line saying so, exit 70."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dvrnet: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"dvrnet: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except DvrnetError as e:                            # bad input, unreachable server, refused call
        click.echo(f"dvrnet: {e}", err=True)
        sys.exit(1)
    except PermissionError as e:                        # not root
        click.echo(f"dvrnet: {e} (run it as root)", err=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - reported as what it is: a bug, with its traceback
        traceback.print_exc()
        click.echo(f"dvrnet: internal error, a bug in dvrnet (not in how it was called): "
                   f"{type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_BUG)


if __name__ == "__main__":  # pragma: no cover
    run()
