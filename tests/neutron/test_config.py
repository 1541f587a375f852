"""`dvrnet neutron-agent` reads the operator's neutron.conf + l3_agent.ini with oslo.config."""
from __future__ import annotations

import pytest
from oslo_config import cfg

from dvrnet.neutron.config import ConfigError, load, port_kind_for


def files(tmp_path, l3: str, neutron: str = "[DEFAULT]\ntransport_url = rabbit://u:p@10.0.0.1:5672,u:p@10.0.0.2:5672/\n"):
    a, b = tmp_path / "neutron.conf", tmp_path / "l3_agent.ini"
    a.write_text(neutron)
    b.write_text(l3)
    return [str(a), str(b)]


def test_operator_files(tmp_path):
    conf = cfg.ConfigOpts()
    c = load(files(tmp_path, "[DEFAULT]\nhost = compute7\nagent_mode = dvr_snat\ninterface_driver = linuxbridge\n"
                             "[AGENT]\nreport_interval = 12\n[dvrnet]\nbridge_mappings = net-a:br-a,net-b:br-b\n"
                             "neutron_resync_interval = 45\n"), conf)
    assert (c.host, c.mode, c.report_interval, c.neutron_resync_interval) == ("compute7", "dvr_snat", 12.0, 45.0)
    assert c.plan.port_kind == "veth" and c.plan.bridge_mappings == (("net-a", "br-a"), ("net-b", "br-b"))
    assert c.plan.bridge_for("net-b") == "br-b" and c.plan.bridge_for("other") == "br-ex"
    assert conf.transport_url == "rabbit://u:p@10.0.0.1:5672,u:p@10.0.0.2:5672/"   # several hosts, for oslo.messaging


@pytest.mark.parametrize("l3, why", [
    ("[DEFAULT]\nagent_mode = legacy\n", "agent_mode = legacy"),
    ("[DEFAULT]\nagent_mode = dvr\ninterface_driver = openvswitch\n[dvrnet]\nport_kind = veth\n",
     "port_kind = veth contradicts interface_driver = openvswitch"),
    ("[DEFAULT]\nagent_mode = dvr\n[dvrnet]\nport_kind = ovs\n", "port_kind = ovs contradicts interface_driver = linuxbridge"),
    ("[DEFAULT]\nagent_mode = dvr\ninterface_driver = openvswitch\n[dvrnet]\nport_kind = ovs-veth\n",
     "contradicts ovs_use_veth = False"),
    ("[DEFAULT]\nagent_mode = dvr\ninterface_driver = openvswitch\n[OVS]\novsdb_connection = /run/db.sock\n",
     r"\[OVS\] ovsdb_connection = /run/db.sock: expected unix:PATH or tcp:IP:PORT"),
    ("[DEFAULT]\nagent_mode = dvr\ninterface_driver = nonsense\n", "unknown to dvrnet"),
    ("[DEFAULT]\nagent_mode = dvr\n[dvrnet]\nport_kind = tap\n", "port_kind = tap"),
    ("[DEFAULT]\nagent_mode = dvr\n[dvrnet]\nneutron_resync_interval = 0\n", "must be positive"),
    ("[DEFAULT]\nagent_mode = dvr\n[AGENT]\nreport_interval = abc\n", "report_interval"),
])
def test_bad_values_name_the_option(tmp_path, l3, why):
    with pytest.raises(ConfigError, match=why):
        load(files(tmp_path, l3), cfg.ConfigOpts())


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="l3_agent.ini"):
        load([str(tmp_path / "l3_agent.ini")], cfg.ConfigOpts())


def test_openvswitch_driver_plugs_into_the_integration_bridge(tmp_path):
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\ninterface_driver = openvswitch\n"), cfg.ConfigOpts())
    assert (c.plan.port_kind, c.plan.integration_bridge, c.ovs_db) == ("ovs", "br-int", "tcp:127.0.0.1:6640")
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\ninterface_driver = neutron.agent.linux.interface.OVSInterfaceDriver\n"
                             "ovs_use_veth = True\n[OVS]\nintegration_bridge = br-x\novsdb_connection = unix:/run/o/db.sock\n"),
             cfg.ConfigOpts())
    assert (c.plan.port_kind, c.plan.integration_bridge, c.ovs_db) == ("ovs-veth", "br-x", "unix:/run/o/db.sock")
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\ninterface_driver = linuxbridge\n"), cfg.ConfigOpts())
    assert c.ovs_db is None         # [OVS] is read with the OVS driver only


def test_port_kinds():
    assert port_kind_for("neutron.agent.linux.interface.BridgeInterfaceDriver", False, None) == "veth"
    assert port_kind_for("linuxbridge", False, "macvlan") == "macvlan"


def test_metadata_and_takeover_options_as_upstream_reads_them(tmp_path):
    """Issue 13: the metadata proxies from upstream's own options, and the takeover switch."""
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\n"), cfg.ConfigOpts())
    assert c.plan.metadata.socket == "/var/lib/neutron/metadata_proxy" and c.plan.metadata.port == 9697
    assert c.plan.metadata.user is None and not c.adopt_neutron_state
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\nstate_path = /srv/neutron\nmetadata_port = 9000\n"
                             "metadata_proxy_user = neutron\n[dvrnet]\nadopt_neutron_state = true\n"), cfg.ConfigOpts())
    assert c.plan.metadata.socket == "/srv/neutron/metadata_proxy" and c.plan.metadata.port == 9000
    assert c.plan.metadata.user == "neutron" and c.adopt_neutron_state
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\nenable_metadata_proxy = false\n"), cfg.ConfigOpts())
    assert not c.plan.metadata.enabled


def test_routed_mode_options_default_as_the_agent(tmp_path):
    """Issue 15: `dvrnet agent`'s --bgp-*, --bfd-*, --blackhole-seconds as [dvrnet] options, with
    the same defaults (the CLI's defaults, read off its options) into PlanConfig.bgp."""
    from dvrnet.cli import agent
    from dvrnet.kernel.watchdog import command
    defaults = {p.name: p.default for p in agent.params}
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\n"), cfg.ConfigOpts())
    b = c.plan.bgp
    assert (b.local_as, b.peers, b.peer_as, b.bfd_ms, b.bfd_multiplier, b.blackhole_s, b.lease_s) == (
        defaults["bgp_local_as"], (), defaults["bgp_peer_as"], defaults["bfd_ms"], defaults["bfd_multiplier"],
        defaults["blackhole_seconds"], defaults["bgp_lease_seconds"])
    assert b.watchdog == command()          # as the agent runs it: with the watchdog
    assert b.asn("compute1") == 4262364057  # the AS derived from the host (docs/routed-mode.md)


def test_routed_mode_options_set(tmp_path):
    c = load(files(tmp_path, "[DEFAULT]\nagent_mode = dvr\n[dvrnet]\nbgp_local_as = 65101\n"
                             "bgp_peer = 100.64.0.254:65000\nbgp_peer = 100.64.0.253:65010:se:cret\n"
                             "bfd_ms = 300\nbfd_multiplier = 5\nblackhole_seconds = 0\nbgp_lease_seconds = 0\n"),
             cfg.ConfigOpts())
    b = c.plan.bgp
    assert b.local_as == 65101 and b.asn("compute1") == 65101
    assert [(p.address, p.asn, p.password) for p in b.peers] == [("100.64.0.254", 65000, None),
                                                                  ("100.64.0.253", 65010, "se:cret")]
    assert (b.bfd_ms, b.bfd_multiplier, b.blackhole_s, b.lease_s, b.watchdog) == (300, 5, 0.0, 0.0, ())


def test_routed_mode_bounds_are_the_agents(tmp_path):
    """The bounds the CLI's options check (click ranges) are the ones the config checks."""
    from dvrnet.cli import agent
    from dvrnet.plan import config as pc
    rng = {p.name: (p.type.min, p.type.max) for p in agent.params if hasattr(p.type, "min")}
    assert rng["bgp_local_as"] == rng["bgp_peer_as"] == pc.ASN_RANGE
    assert rng["bfd_ms"] == pc.BFD_MS_RANGE and rng["bfd_multiplier"] == pc.BFD_MULTIPLIER_RANGE
    assert rng["blackhole_seconds"] == rng["bgp_lease_seconds"] == pc.SECONDS_RANGE


@pytest.mark.parametrize("opt, why", [
    ("bgp_local_as = 0", r"\[dvrnet\] bgp_local_as = 0: must be 1-4294967294"),
    ("bgp_peer_as = 4294967295", r"\[dvrnet\] bgp_peer_as = 4294967295: must be 1-4294967294"),
    ("bfd_ms = 5", r"\[dvrnet\] bfd_ms = 5: must be 10-10000"),
    ("bfd_multiplier = 256", r"\[dvrnet\] bfd_multiplier = 256: must be 1-255"),
    ("blackhole_seconds = -1", r"\[dvrnet\] blackhole_seconds = -1: must be 0-3600"),
    ("bgp_lease_seconds = 3601", r"\[dvrnet\] bgp_lease_seconds = 3601: must be 0-3600"),
    ("bfd_ms = fast", "bfd_ms"),
    ("bgp_peer = tor:65000", r"\[dvrnet\] bgp_peer = tor:65000: .*expected ADDRESS:AS\[:PASSWORD\]"),
    ("bgp_peer = 100.64.0.254", r"\[dvrnet\] bgp_peer = 100.64.0.254: .*expected ADDRESS:AS"),
    ("bgp_peer = 100.64.0.254:0", r"\[dvrnet\] bgp_peer = 100.64.0.254:0: .*AS must be"),
])
def test_routed_mode_bad_values_name_the_option(tmp_path, opt, why):
    with pytest.raises(ConfigError, match=why):
        load(files(tmp_path, f"[DEFAULT]\nagent_mode = dvr\n[dvrnet]\n{opt}\n"), cfg.ConfigOpts())
