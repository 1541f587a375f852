"""`dvrnet neutron-agent` configuration: the operator's own Neutron files, read with oslo.config.

    dvrnet neutron-agent --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/l3_agent.ini

What is read, and its Neutron meaning (options dvrnet does not know are ignored, as oslo.config does):
- `[DEFAULT] host` (default: the hostname) — the name ports are bound to and the agent reports;
- `[DEFAULT] transport_url` (and `[oslo_messaging_rabbit]`: TLS, several hosts, heartbeats — all
  as oslo.messaging reads them), `rpc_response_timeout`;
- `[DEFAULT] agent_mode` — `dvr` (compute node) or `dvr_snat` (network node); `legacy` and
  `dvr_no_external` are refused;
- `[DEFAULT] interface_driver` + `ovs_use_veth` -> dvrnet's port kind (docs/port-kinds.md):
  `linuxbridge` (or its class path) plugs router ports into Linux bridges as `veth` (or `macvlan`
  with `[dvrnet] port_kind`); `openvswitch` (or its class path) plugs them into the integration
  bridge as Neutron's OVSInterfaceDriver does: `ovs` (internal ports), with `ovs_use_veth = True`
  `ovs-veth`. A `[dvrnet] port_kind` of the other family than the driver is refused;
- `[OVS] integration_bridge` (br-int) and `[OVS] ovsdb_connection` (Neutron's default
  tcp:127.0.0.1:6640; unix:PATH too) — read with the OVS driver only: the bridge ports plug into
  and the database of the ovs-vswitchd running in `[dvrnet] bridge_netns`;
- `[AGENT] report_interval` — seconds between `report_state` calls (30 by default, as upstream);
- the metadata proxies (plan/metadata.py), as upstream's agent reads them: `[DEFAULT]
  enable_metadata_proxy` (True), `metadata_proxy_socket` (`$state_path/metadata_proxy`, with
  `state_path` /var/lib/neutron), `metadata_port` (9697), `metadata_proxy_user`/`_group` (what
  haproxy runs as once bound; empty: the agent's own);
- `[dvrnet] adopt_neutron_state` (False; or `dvrnet neutron-agent --adopt-neutron-state`): take
  over neutron-l3-agent's objects found on the node (kernel/takeover.py) instead of refusing;
- `[dvrnet]`: `external_bridge`, `bridge_mappings` (external network id -> bridge), `bridge_netns`,
  `netns_prefix`, `port_kind`, `dvr_mac` and `uplinks` (the distributed gateway's L2 guard,
  plan/l2.py), `resync_interval` (full kernel read), `neutron_resync_interval`
  (get_router_ids + sync_routers; catches what Neutron does not notify, e.g. a new external
  subnet), `coalesce_window` (routers_updated within it cause one sync_routers per router),
  `listen_notifications` (read `[oslo_messaging_notifications] topics` for subnet writes: a subnet
  added to an external network is fetched at once instead of at the next full sync);
- routed mode (docs/routed-mode.md; used by external networks tagged `dvrnet:routed` only), the
  options of `dvrnet agent` under `[dvrnet]`, with its defaults and bounds (plan/config.py):
  `bgp_local_as` (default derived from the host), `bgp_peer` (ADDRESS:AS[:PASSWORD], repeatable:
  one line each; default the gateway of the fg-/qg- subnet with `bgp_peer_as`), `bgp_peer_as`
  (65000), `bfd_ms` (100), `bfd_multiplier` (3), `blackhole_seconds` (3.0), `bgp_lease_seconds`
  (5.0; 0: no watchdog).
Bad values: `ConfigError` naming the option and the reason (one line from the CLI).
"""
from __future__ import annotations

import re
import socket
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from oslo_config import cfg

from ..model.errors import DvrnetError
from ..plan import PlanConfig
from ..plan.config import (
    ASN_RANGE,
    BFD_MS_RANGE,
    BFD_MULTIPLIER_RANGE,
    SECONDS_RANGE,
    BgpConfig,
    MetadataConfig,
    parse_bgp_peer,
)

MODES = ("dvr", "dvr_snat")
BRIDGE_DRIVERS = ("linuxbridge", "neutron.agent.linux.interface.BridgeInterfaceDriver")
OVS_DRIVERS = ("openvswitch", "neutron.agent.linux.interface.OVSInterfaceDriver")


class ConfigError(DvrnetError):
    pass


DEFAULT_OPTS = [
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="example.domain",
               help="The host name this agent serves (binding:host_id)."),
    cfg.StrOpt("agent_mode", default="legacy", help="dvr or dvr_snat."),
    cfg.StrOpt("interface_driver", help="How router ports are plugged (linuxbridge)."),
    cfg.BoolOpt("ovs_use_veth", default=False, help="OVS ports as veth pairs."),
    cfg.StrOpt("state_path", default="/var/lib/neutron", help="Neutron's state directory."),
    cfg.BoolOpt("enable_metadata_proxy", default=True, help="Run the metadata proxies."),
    cfg.StrOpt("metadata_proxy_socket", default="$state_path/metadata_proxy",
               help="neutron-metadata-agent's unix socket."),
    cfg.PortOpt("metadata_port", default=9697, help="The metadata proxy's port in each router namespace."),
    cfg.StrOpt("metadata_proxy_user", default="", help="User the metadata proxy runs as (empty: the agent's)."),
    cfg.StrOpt("metadata_proxy_group", default="", help="Group the metadata proxy runs as."),
]
OVS_OPTS = [        # Neutron's own names and defaults (neutron/conf/agent/ovs_conf.py)
    cfg.StrOpt("integration_bridge", default="br-int", help="The OVS bridge router ports plug into."),
    cfg.StrOpt("ovsdb_connection", default="tcp:127.0.0.1:6640", help="The OVS database (tcp:IP:PORT or unix:PATH)."),
]
AGENT_OPTS = [
    cfg.FloatOpt("report_interval", default=30.0, help="Seconds between state reports."),
    cfg.StrOpt("availability_zone", default="nova"),
]
DVRNET_OPTS = [
    cfg.StrOpt("external_bridge", default="br-ex", help="Bridge on the external segment."),
    cfg.DictOpt("bridge_mappings", default={}, help="external network id:bridge, for networks on their own segment."),
    cfg.StrOpt("bridge_netns", default="dvrnet-bridges", help="Namespace holding the node's bridges."),
    cfg.StrOpt("netns_prefix", default="", help="Prefix of every namespace dvrnet owns (the lab sets one)."),
    cfg.StrOpt("port_kind", help="veth or macvlan with linuxbridge, ovs or ovs-veth with openvswitch "
                                 "(default: from interface_driver and ovs_use_veth)."),
    cfg.FloatOpt("resync_interval", default=60.0, help="Seconds between full kernel reads."),
    cfg.FloatOpt("neutron_resync_interval", default=60.0, help="Seconds between full syncs with neutron-server."),
    cfg.FloatOpt("coalesce_window", default=0.2, help="Seconds notifications are gathered before fetching."),
    cfg.FloatOpt("max_backoff", default=10.0, help="Cap of the retry delay while neutron-server is away."),
    cfg.StrOpt("dvr_mac", help="This node's own MAC for routed frames leaving it with a qr- MAC (plan/l2.py; "
                               "default: derived from host)."),
    cfg.ListOpt("uplinks", default=[], help="Bridge ports leading off the node besides VXLAN/VLAN/bond ports."),
    cfg.BoolOpt("adopt_neutron_state", default=False,
                help="Take over neutron-l3-agent's objects found on the node (docs/neutron.md)."),
    # routed mode: `dvrnet agent`'s --bgp-*, --bfd-*, --blackhole-seconds (bounds checked in bgp_config)
    cfg.IntOpt("bgp_local_as", help="Routed mode: this node's AS (default: a private 4-byte AS derived from host)."),
    cfg.MultiStrOpt("bgp_peer", default=[],
                    help="Routed mode: a ToR session ADDRESS:AS[:PASSWORD]; repeatable, one per line "
                         "(default: the gateway of the fg-/qg- subnet, AS bgp_peer_as)."),
    cfg.IntOpt("bgp_peer_as", default=65000, help="Routed mode: the ToR's AS when no bgp_peer is given."),
    cfg.IntOpt("bfd_ms", default=100, help="Routed mode: BFD interval in milliseconds (x bfd_multiplier)."),
    cfg.IntOpt("bfd_multiplier", default=3, help="Routed mode: BFD detection multiplier."),
    cfg.FloatOpt("blackhole_seconds", default=3.0,
                 help="Routed mode: how long a FIP that left this node stays a blackhole here."),
    cfg.FloatOpt("bgp_lease_seconds", default=5.0,
                 help="Routed mode: the watchdog's lease (0: no watchdog; docs/routed-mode.md)."),
    cfg.BoolOpt("listen_notifications", default=False,
                help="Read Neutron's notification bus ([oslo_messaging_notifications] topics, needs driver = "
                     "messagingv2 on neutron-server): a subnet written on an external network is fetched at once."),
]


@dataclass(frozen=True)
class AgentConfig:
    host: str
    mode: str
    plan: PlanConfig
    report_interval: float
    resync_interval: float
    neutron_resync_interval: float
    coalesce_window: float
    max_backoff: float
    rpc_timeout: float
    interface_driver: str
    availability_zone: str
    adopt_neutron_state: bool = False
    listen_notifications: bool = False
    notification_topics: tuple[str, ...] = ("notifications",)
    ovs_db: str | None = None           # the OVS kinds: [OVS] ovsdb_connection


OVS_KINDS = ("ovs", "ovs-veth")


def port_kind_for(interface_driver: str | None, ovs_use_veth: bool, override: str | None) -> str:
    """dvrnet's port kind for Neutron's interface driver (see the module docstring)."""
    from ..plan.plug import PORT_KINDS
    drv = (interface_driver or "").strip()
    if drv and drv not in BRIDGE_DRIVERS + OVS_DRIVERS:
        raise ConfigError(f"interface_driver = {drv}: unknown to dvrnet (linuxbridge or openvswitch)")
    ovs = drv in OVS_DRIVERS
    kind = (override or "").strip() or (("ovs-veth" if ovs_use_veth else "ovs") if ovs else "veth")
    if kind not in PORT_KINDS:
        raise ConfigError(f"[dvrnet] port_kind = {kind}: one of {', '.join(PORT_KINDS)}")
    if ovs != (kind in OVS_KINDS):
        raise ConfigError(f"[dvrnet] port_kind = {kind} contradicts interface_driver = {drv or 'linuxbridge'}: "
                          f"{'ovs or ovs-veth' if ovs else 'veth or macvlan'} with that driver")
    if ovs and override and (kind == "ovs-veth") != ovs_use_veth:
        raise ConfigError(f"[dvrnet] port_kind = {kind} contradicts ovs_use_veth = {ovs_use_veth}")
    return kind


def bgp_config(d) -> BgpConfig:
    """Routed mode's BgpConfig from the `[dvrnet]` group D, bounds as `dvrnet agent` checks them;
    ConfigError naming the option."""
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    def bounded(name: str, lo: float, hi: float) -> None:
        v = getattr(d, name)
        if v is not None and not lo <= v <= hi:
            raise ConfigError(f"[dvrnet] {name} = {num(v)}: must be {num(lo)}-{num(hi)}")
    for name, (lo, hi) in (("bgp_local_as", ASN_RANGE), ("bgp_peer_as", ASN_RANGE), ("bfd_ms", BFD_MS_RANGE),
                           ("bfd_multiplier", BFD_MULTIPLIER_RANGE), ("blackhole_seconds", SECONDS_RANGE),
                           ("bgp_lease_seconds", SECONDS_RANGE)):
        bounded(name, lo, hi)
    peers = []
    for item in d.bgp_peer:
        try:
            peers.append(parse_bgp_peer(item.strip()))
        except ValueError as e:
            raise ConfigError(f"[dvrnet] bgp_peer = {item}: {e}") from None
    from ..kernel.watchdog import command as watchdog_command
    return BgpConfig(local_as=d.bgp_local_as, peers=tuple(peers), peer_as=d.bgp_peer_as, bfd_ms=d.bfd_ms,
                     bfd_multiplier=d.bfd_multiplier, blackhole_s=d.blackhole_seconds, lease_s=d.bgp_lease_seconds,
                     watchdog=watchdog_command() if d.bgp_lease_seconds > 0 else ())


def register(conf: cfg.ConfigOpts) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging as om
        from oslo_messaging import opts as om_opts
    # Neutron's exchange first: list_opts() copies oslo.messaging's options, which must stay equal
    # to the ones the transport registers itself (rpc.transport sets the same default)
    om.set_transport_defaults(control_exchange="neutron")
    for group, opts in om_opts.list_opts():     # transport_url, rpc_response_timeout, [oslo_messaging_rabbit]
        for o in opts:
            try:
                conf.register_opt(o, group=None if group == "DEFAULT" else group)
            except cfg.DuplicateOptError:
                pass
    for opts, group in ((DEFAULT_OPTS, None), (AGENT_OPTS, "AGENT"), (OVS_OPTS, "OVS"), (DVRNET_OPTS, "dvrnet")):
        for o in opts:
            try:
                conf.register_opt(o, group=group)
            except cfg.DuplicateOptError:
                pass


def load(config_files: Sequence[str], conf: cfg.ConfigOpts | None = None, host: str | None = None) -> AgentConfig:
    """Parse CONFIG_FILES (in order; later ones win) into an AgentConfig. conf: oslo.config's
    global CONF by default (oslo.messaging reads its transport options there)."""
    conf = conf if conf is not None else cfg.CONF
    register(conf)
    args = [a for f in config_files for a in ("--config-file", f)]
    try:
        conf(args, project="neutron", default_config_files=[], default_config_dirs=[])
    except (cfg.ConfigFilesNotFoundError, cfg.ConfigFileParseError) as e:
        raise ConfigError(str(e)) from None
    try:
        mode = conf.agent_mode
        d = conf.dvrnet
        kind = port_kind_for(conf.interface_driver, conf.ovs_use_veth, d.port_kind)
        rpc_timeout = float(getattr(conf, "rpc_response_timeout", 60) or 60)
        report_interval = conf.AGENT.report_interval
        az = conf.AGENT.availability_zone
        metadata = MetadataConfig(socket=conf.metadata_proxy_socket if conf.enable_metadata_proxy else None,
                                  port=conf.metadata_port, user=conf.metadata_proxy_user or None,
                                  group=conf.metadata_proxy_group or None)
        topics = tuple(t for t in conf.oslo_messaging_notifications.topics if t) or ("notifications",)
        bridge, ovs_db = conf.OVS.integration_bridge, conf.OVS.ovsdb_connection
        bgp = bgp_config(d)
    except (cfg.Error, ValueError) as e:
        raise ConfigError(f"configuration: {e}") from None
    if not conf.transport_url:
        raise ConfigError("[DEFAULT] transport_url is not set (neutron.conf has it: pass that file too)")
    if mode not in MODES:
        raise ConfigError(f"agent_mode = {mode}: dvrnet serves DVR nodes only (agent_mode = dvr or dvr_snat)")
    for name in ("resync_interval", "neutron_resync_interval", "max_backoff"):
        if getattr(d, name) <= 0:
            raise ConfigError(f"[dvrnet] {name} = {getattr(d, name)}: must be positive")
    if d.coalesce_window < 0:
        raise ConfigError(f"[dvrnet] coalesce_window = {d.coalesce_window}: must not be negative")
    if report_interval <= 0:
        raise ConfigError(f"[AGENT] report_interval = {report_interval}: must be positive")
    mac = (d.dvr_mac or "").strip().lower() or None
    if mac is not None and (not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac) or int(mac[:2], 16) & 1
                            or mac == "00:00:00:00:00:00"):
        raise ConfigError(f"[dvrnet] dvr_mac = {d.dvr_mac}: expected a unicast MAC like fa:16:3f:00:00:01")
    ovs = kind in OVS_KINDS
    if ovs and not (ovs_db or "").startswith(("unix:", "tcp:")):
        raise ConfigError(f"[OVS] ovsdb_connection = {ovs_db}: expected unix:PATH or tcp:IP:PORT")
    if ovs and not (bridge or "").strip():
        raise ConfigError("[OVS] integration_bridge is empty: the OVS bridge router ports plug into")
    plan = PlanConfig(netns_prefix=d.netns_prefix, bridge_netns=d.bridge_netns, external_bridge=d.external_bridge,
                      port_kind=kind, bridge_mappings=tuple(sorted(d.bridge_mappings.items())), dvr_mac=mac,
                      uplinks=tuple(u.strip() for u in d.uplinks if u.strip()), metadata=metadata, bgp=bgp,
                      **({"integration_bridge": bridge.strip()} if ovs else {}))
    return AgentConfig(host=host or conf.host, mode=mode, plan=plan, report_interval=report_interval,
                       resync_interval=d.resync_interval, neutron_resync_interval=d.neutron_resync_interval,
                       coalesce_window=d.coalesce_window, max_backoff=d.max_backoff, rpc_timeout=rpc_timeout,
                       interface_driver=conf.interface_driver or "linuxbridge", availability_zone=az,
                       adopt_neutron_state=d.adopt_neutron_state,
                       listen_notifications=d.listen_notifications, notification_topics=topics,
                       ovs_db=ovs_db if ovs else None)
