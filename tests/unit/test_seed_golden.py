"""Golden files of the seed scenario's desired state, and the article's claims checked on them.

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_seed_golden.py`
and review the diff like code.
"""
from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from dvrnet.plan import PlanConfig, plan_host, render
from dvrnet.plan.config import MetadataConfig
from dvrnet.plan.fib import lookup
from dvrnet.scenarios.seed import SEED, build

GOLDEN = Path(__file__).parent.parent / "golden"
HOSTS = ("compute1", "compute2", "network1")
# with the metadata service on (Neutron's default socket), so the proxies and their redirect are in the files
METADATA_SOCKET = "/var/lib/neutron/metadata_proxy"
CFG = PlanConfig(metadata=MetadataConfig(socket=METADATA_SOCKET))


@pytest.fixture(scope="module")
def cloud():
    return build()


@pytest.mark.parametrize("host", HOSTS)
def test_golden(cloud, host):
    text = render(plan_host(cloud, host, CFG))
    path = GOLDEN / f"seed-{host}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"desired state of {host} changed; see the module docstring"


def test_same_model_gives_byte_identical_output():
    assert render(plan_host(build(), "compute1", CFG)) == render(plan_host(build(), "compute1", CFG))


def _fip_ns(state):
    (ns,) = [n for name, n in state.namespaces.items() if name.startswith("fip-")]
    return ns


def test_compute1_fips_leave_by_their_own_subnet_gateway(cloud):
    state = plan_host(cloud, "compute1")
    fip = _fip_ns(state)
    red, green = (next(s for s in cloud.subnets.values() if s.name == n) for n in ("red", "green"))
    local = [r for r in fip.routes if r.table == 254]
    seen = set()
    for route in local:
        fip_ip = ip_address(route.dst.split("/")[0])
        subnet = red if fip_ip in red.cidr else green
        v = lookup(fip, "192.0.2.10", src=str(fip_ip), iif=route.dev)
        assert v.route is not None and v.route.via == str(subnet.gateway_ip), (fip_ip, v)
        seen.add(subnet.name)
    assert seen == {"red", "green"}, "compute1 must host FIPs of both external subnets"
    fg = next(l for l in fip.links.values() if l.name.startswith("fg-"))
    (fg_addr,) = [a for a in fip.addresses if a.dev == fg.name]
    assert ip_address(fg_addr.ip) in ip_network("100.64.0.0/24")


def test_fip_rules_constant_when_router_or_fip_added(cloud):
    from dvrnet.ops import IpRequest, Workspace
    before = len(_fip_ns(plan_host(cloud, "compute1")).rules)
    ws = Workspace(cloud)
    ext = next(n for n in cloud.networks.values() if n.external)
    net = ws.create_network(name="net4", mtu=1450)
    sub = ws.create_subnet(net.id, "10.0.4.0/24", name="net4-subnet")
    r = ws.create_router(name="router3", external_gateway_info={"network_id": ext.id})
    ws.add_router_interface(r.id, subnet_id=sub.id)
    port = ws.create_port(net.id, device_owner="compute:nova", host="compute1", fixed_ips=[IpRequest(subnet_id=sub.id)])
    ws.create_floatingip(ext.id, port_id=port.id)
    after = plan_host(ws.snapshot(), "compute1")
    assert len(_fip_ns(after).rules) == before
    assert sum(1 for n in after.namespaces if n.startswith("qrouter-")) == 3


def test_cli_plan_prints_the_golden_state():
    out = subprocess.run([sys.executable, "-m", "dvrnet.cli", "plan", "--scenario", "seed", "--host", "compute1",
                          "--metadata-socket", METADATA_SOCKET],
                         capture_output=True, text=True, check=True).stdout
    assert out == (GOLDEN / "seed-compute1.txt").read_text()


def test_cli_unknown_host_is_one_line_error():
    p = subprocess.run([sys.executable, "-m", "dvrnet.cli", "plan", "--host", "nope"], capture_output=True, text=True, check=False)
    assert p.returncode != 0 and "nope" in p.stderr and "--host" in p.stderr


def test_seed_matches_the_article_figure(cloud):
    assert len([n for n in cloud.networks.values() if not n.external]) == 3
    assert len(cloud.routers) == 2
    vms = [p for p in cloud.ports.values() if p.device_owner.startswith("compute:")]
    assert len(vms) == 8 and {p.host for p in vms} == {"compute1", "compute2"}
    assert len(cloud.floatingips) == sum(1 for v in SEED.vms if v.fip_subnet)
