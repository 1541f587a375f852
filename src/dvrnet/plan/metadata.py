"""The metadata service of a qrouter- namespace, plan side: the proxy `Process` and the redirect
table (the kernel side, how a running proxy is recognised and waited for, is `kernel/metadata.py`).

A VM asks http://169.254.169.254/ through its router; in every qrouter- namespace that has qr-
ports on this host (and only when the agent knows neutron-metadata-agent's socket):
- table `ip dvrnet_metadata` redirects TCP from qr- ports to 169.254.169.254:80 to the proxy's
  port (`MetadataConfig.port`, 9697 as upstream's `metadata_port`); the port accepts only such
  redirected connections (a VM cannot reach the proxy's port directly), and nothing to
  169.254.169.254 is ever forwarded out of the router (no metadata request leaves by rfp-/sg-
  when the redirect is missing). A table of its own: the FIP NAT table is never rewritten for it;
- one haproxy (Debian's, as upstream's agent runs; chosen over a proxy of dvrnet's own: 3x less
  memory and half the CPU to start, per router, measured in docs/neutron.md) listens on
  0.0.0.0:port and forwards each request to the metadata agent's unix socket with the headers
  upstream's proxy sends: `X-Neutron-Router-ID: <router id>` (any X-Neutron-Network-ID the VM sent is
  removed, as upstream does, so a request cannot claim another network) and
  `X-Forwarded-For: <the VM's address>` (one the VM sent itself is dropped first);
- the proxy's configuration file is named after its digest and given on its command line, so the
  command line says which configuration runs: a running proxy is adopted as it is after an agent
  restart (same pid), and another configuration is a restart (a proxy is stateless; requests take
  milliseconds). Its runtime directory (plan/process.py) holds that file and its pid file.
"""
from __future__ import annotations

import re

from .builder import NsBuilder
from .config import MetadataConfig
from .numbers import METADATA_ADDRESS, NFT_METADATA_TABLE
from .process import digest, runtime_dir
from .state import NftChain, NftTable, Process

ROLE = "metadata"
ROUTER_HEADER = "X-Neutron-Router-ID"
NETWORK_HEADER = "X-Neutron-Network-ID"
_CONF = re.compile(r"/haproxy-([0-9a-f]{16})\.cfg\Z")


def paths(ns: str) -> dict[str, str]:
    d = runtime_dir(ns, ROLE)
    return {"dir": d, "pid": f"{d}/pid"}


def config_body(ns: str, router_id: str, mc: MetadataConfig) -> str:
    assert mc.socket is not None
    owner = [f"    user {mc.user}"] if mc.user else []
    owner += [f"    group {mc.group}"] if mc.group else []
    return "\n".join([
        f"# dvrnet: metadata proxy of router {router_id} in {ns} (generated from the plan; do not edit)",
        "global",
        "    maxconn 1024",
        "    nbthread 1",
        f"    pidfile {paths(ns)['pid']}",
        "    daemon",
        *owner,
        "",
        "defaults",
        "    mode http",
        "    option http-server-close",
        "    option forwardfor",
        "    retries 3",
        "    timeout http-request 30s",
        "    timeout connect 30s",
        "    timeout client 32s",
        "    timeout server 32s",
        "    timeout http-keep-alive 30s",
        "",
        "listen metadata",
        f"    bind 0.0.0.0:{mc.port}",
        "    http-request del-header X-Forwarded-For",
        f"    http-request del-header {NETWORK_HEADER}",
        f"    http-request set-header {ROUTER_HEADER} {router_id}",
        f"    server metadata-agent {mc.socket}",
    ]) + "\n"


def metadata_process(ns: str, router_id: str, mc: MetadataConfig) -> Process:
    body = config_body(ns, router_id, mc)
    d = digest(body)
    conf = f"{paths(ns)['dir']}/haproxy-{d}.cfg"
    return Process(ROLE, (mc.haproxy, "-f", conf), ((conf, body),), d)


def argv_digest(argv: tuple[str, ...] | list[str]) -> str:
    """The digest a proxy's command line names (its configuration file), "" if none."""
    for a in argv:
        m = _CONF.search(a)
        if m:
            return m.group(1)
    return ""


def redirect_table(port: int) -> NftTable:
    return NftTable("ip", NFT_METADATA_TABLE, chains=(
        NftChain("pre_redirect", "nat", "prerouting", -100,
                 (f'iifname "qr-*" ip daddr {METADATA_ADDRESS} tcp dport 80 redirect to :{port}',)),
        NftChain("input_guard", "filter", "input", 0,
                 (f"tcp dport {port} ct original ip daddr {METADATA_ADDRESS} accept",
                  f"tcp dport {port} drop")),
        NftChain("forward_guard", "filter", "forward", 0,
                 (f'iifname "qr-*" ip daddr {METADATA_ADDRESS} drop',)),
    ))


def add_metadata(ns: NsBuilder, router_id: str, mc: MetadataConfig) -> None:
    """Into NsBuilder NS (a qrouter- with qr- ports): the proxy and its redirect."""
    if not mc.enabled:
        return
    ns.process(metadata_process(ns.name, router_id, mc))
    ns.table(redirect_table(mc.port))
