"""The metadata service's plan (plan/metadata.py): where a proxy is planned, what it sends, and how
the diff treats a running one (pure; the kernel side is exercised in tests/live/test_metadata.py)."""
from __future__ import annotations

from dataclasses import replace

from dvrnet.model import DeviceOwner
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.config import MetadataConfig
from dvrnet.plan.metadata import ROLE, argv_digest, config_body, metadata_process
from dvrnet.plan.numbers import NFT_METADATA_TABLE
from dvrnet.plan.process import marker
from dvrnet.plan.state import HostState
from dvrnet.reconcile import diff
from dvrnet.reconcile.ops import ProcStart, ProcStop
from dvrnet.reconcile.ownership import owns_nft_table
from dvrnet.scenarios.seed import build

SOCK = "/var/lib/neutron/metadata_proxy"
ON = PlanConfig(metadata=MetadataConfig(socket=SOCK))


def qrouters(state: HostState):
    return {n: ns for n, ns in state.namespaces.items() if n.startswith("qrouter-")}


def test_one_proxy_per_router_with_interfaces_and_only_when_a_socket_is_given():
    cloud = build()
    for host in ("compute1", "compute2"):
        qs = qrouters(plan_host(cloud, host, ON))
        assert qs and all(set(ns.processes) == {ROLE} for ns in qs.values())
        assert all(("ip", NFT_METADATA_TABLE) in ns.nft for ns in qs.values())
        off = qrouters(plan_host(cloud, host))
        assert all(not ns.processes and ("ip", NFT_METADATA_TABLE) not in ns.nft for ns in off.values())
    assert owns_nft_table("ip", NFT_METADATA_TABLE)


def test_a_router_without_interfaces_here_gets_no_proxy():
    cloud = build()
    rid = min(cloud.routers)
    keep = {pid: p for pid, p in cloud.ports.items()
            if not (p.device_id == rid and p.device_owner == DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value)}
    fips = {fid: f for fid, f in cloud.floatingips.items() if f.router_id != rid}
    bare = cloud.with_(ports=keep, floatingips=fips)
    for ns in qrouters(plan_host(bare, "compute1", ON)).values():
        assert rid not in ns.name
    ns = qrouters(plan_host(cloud, "compute1", ON))[f"qrouter-{rid}"]
    assert ROLE in ns.processes


def test_proxy_sends_the_router_id_and_the_vm_address_and_drops_spoofed_headers():
    body = config_body("qrouter-r1", "r1", MetadataConfig(socket=SOCK, port=9000, user="neutron", group="neutron"))
    lines = [ln.strip() for ln in body.splitlines()]
    assert "option forwardfor" in lines                       # X-Forwarded-For: the VM's address
    assert "http-request set-header X-Neutron-Router-ID r1" in lines
    assert "http-request del-header X-Neutron-Network-ID" in lines
    assert lines.index("http-request del-header X-Forwarded-For") < lines.index(f"server metadata-agent {SOCK}")
    assert "bind 0.0.0.0:9000" in lines and "user neutron" in lines and "group neutron" in lines


def test_the_command_line_names_the_configuration_and_its_runtime_directory():
    mc = MetadataConfig(socket=SOCK)
    p = metadata_process("qrouter-r1", "r1", mc)
    assert marker(p.argv) == ("qrouter-r1", ROLE)
    assert argv_digest(p.argv) == p.digest and p.files[0][0] in p.argv
    other = metadata_process("qrouter-r1", "r1", replace(mc, socket="/run/other.sock"))
    assert other.argv != p.argv and other.digest != p.digest


def test_diff_adopts_a_running_proxy_restarts_another_and_stops_a_stale_one():
    cloud = build()
    want = plan_host(cloud, "compute1", ON)
    name, ns = next(iter(qrouters(want).items()))
    running = replace(ns.processes[ROLE], files=(), pid=4242)      # as the reader sees it
    seen = HostState(want.host, {**want.namespaces, name: replace(ns, processes={ROLE: running})})
    ops = [op for op in diff(want, seen) if op.ns == name and "Proc" in type(op).__name__]
    starts = [op for op in diff(want, HostState(want.host, {**want.namespaces, name: replace(ns, processes={})}))
              if isinstance(op, ProcStart)]
    assert not ops and starts                      # adopted as it is; started when missing
    moved = plan_host(cloud, "compute1", replace(ON, metadata=MetadataConfig(socket="/run/other.sock")))
    restart = [op for op in diff(moved, seen) if op.ns == name and isinstance(op, ProcStart)]
    assert len(restart) == 1 and restart[0].old == running
    stops = [op for op in diff(plan_host(cloud, "compute1"), seen) if isinstance(op, ProcStop) and op.ns == name]
    assert [op.proc.pid for op in stops] == [4242]
