"""Connection limits with real packets (root): the planner's dvrnet table (plan/connlimit.py) applied
by the reconciler into a vm - qrouter - ext chain of namespaces; TCP connections held open from two
"VMs" (10.0.0.5 and 10.0.0.6, both with a FIP) and from the internet side to a FIP.

Proves: a VM beyond its limit gets no new connection and each refused one is counted for it, while
its neighbour behind the same router still connects and pings; the router limit caps the sum and
counts its drops; DNATed inbound connections count against the VM they reach; a port override
replaces the agent's limit (0: none); dynamic sets filled by the packet path never show up as a
difference (a second sync writes nothing); `dvrnet show --limits`'s reader reports usage.
"""
from __future__ import annotations

import errno
import socket
import subprocess

import pytest

from dvrnet.kernel import Reconciler, netns
from dvrnet.kernel.connlimit import usage
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.numbers import NFT_TABLE
from dvrnet.plan.qrouter import fip_nat_table
from dvrnet.plan.state import HostState, Namespace

pytestmark = pytest.mark.root

A, B, DST = "10.0.0.5", "10.0.0.6", "192.0.2.10"
FIPS = [("100.64.0.5", A), ("100.64.0.6", B)]


def sh(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, input=stdin, check=True, capture_output=True, text=True)


def build(p: str) -> tuple[str, str, str]:
    vm, qr, ext = p + "vm", p + "qr", p + "ext"
    for n in (vm, qr, ext):
        sh("ip", "netns", "add", n)
    sh("ip", "-n", vm, "link", "add", "vm0", "type", "veth", "peer", "name", "qr0", "netns", qr)
    sh("ip", "-n", qr, "link", "add", "rfp0", "type", "veth", "peer", "name", "fpr0", "netns", ext)
    sh("ip", "-n", vm, "-batch", "-", stdin=f"link set lo up\nlink set vm0 up\naddress add {A}/24 dev vm0\n"
       f"address add {B}/24 dev vm0\nroute add default via 10.0.0.1\n")
    sh("ip", "-n", ext, "-batch", "-", stdin="link set lo up\nlink set fpr0 up\naddress add 169.254.64.1/31 dev fpr0\n"
       f"address add {DST}/32 dev lo\nroute add 100.64.0.0/10 via 169.254.64.0 dev fpr0 onlink\n")
    sh("ip", "-n", qr, "-batch", "-", stdin="link set lo up\nlink set qr0 up\nlink set rfp0 up\n"
       "address add 10.0.0.1/24 dev qr0\naddress add 169.254.64.0/31 dev rfp0\n"
       "route add default via 169.254.64.1 dev rfp0 onlink table 16\n"
       "rule add priority 32768 fwmark 0x10/0x10 lookup 16\n")
    sh("ip", "netns", "exec", qr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    return vm, qr, ext


def apply_limits(p: str, qr: str, cfg: PlanConfig, overrides: dict[str, int | None] | None = None) -> Reconciler:
    lim = [(ip, (overrides or {}).get(ip)) for _, ip in FIPS]
    table = fip_nat_table("rfp0", FIPS, lim, cfg)
    desired = HostState("h", {qr: Namespace(qr, nft={("ip", NFT_TABLE): table}, managed=False)})
    r = Reconciler(prefix=p)
    res = r.sync(desired)
    assert res.ok, str(res)
    return r


def desired_table(cfg: PlanConfig, overrides=None):
    return fip_nat_table("rfp0", FIPS, [(ip, (overrides or {}).get(ip)) for _, ip in FIPS], cfg)


class Listener:
    """A TCP listener in namespace NS that accepts and keeps every connection."""

    def __init__(self, ns: str, addr: str, port: int) -> None:
        def mk() -> socket.socket:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(512)
            return s
        self.sock = netns.run_in(ns, mk)

    def close(self) -> None:
        self.sock.close()


def connect_many(ns: str, src: str | None, dst: str, port: int, n: int, timeout: float = 0.6) -> list[socket.socket]:
    """Open N connections at once from SRC; return the established ones (the caller closes them)."""
    def body() -> list[socket.socket]:
        import select
        pending, ok = [], []
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            if src:
                s.bind((src, 0))
            e = s.connect_ex((dst, port))
            assert e in (0, errno.EINPROGRESS), e
            pending.append(s)
        _, w, _ = select.select([], pending, [], timeout)
        for s in pending:
            if s in w and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                ok.append(s)
            else:
                s.close()
        return ok
    return netns.run_in(ns, body)


def rst_close(s: socket.socket) -> None:
    """Close with a reset: conntrack marks the connection closed at once (a FIN to a peer that
    still holds its end would leave it counted, as it should)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def ping(ns: str, src: str, dst: str = DST) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-I", src, dst],
                          capture_output=True, check=False).returncode == 0


def by_ip(u):
    return {v.ip: v for v in u.vms}


def test_vm_limit_drops_and_counts_while_the_neighbour_keeps_working(netns_prefix):
    vm, qr, ext = build(netns_prefix)
    cfg = PlanConfig(vm_conn_limit=4, router_conn_limit=0)
    r = apply_limits(netns_prefix, qr, cfg)
    srv = Listener(ext, DST, 5000)
    held = []
    try:
        held += connect_many(vm, A, DST, 5000, 7)
        assert len(held) == 4                              # A: its limit, no more
        more = connect_many(vm, B, DST, 5000, 4)          # B: its own limit, unaffected by A
        held += more
        assert len(more) == 4
        assert not ping(vm, A)                             # a ping is a new connection too
        for s in more[:1]:
            rst_close(s)
        held.remove(more[0])
        # the reset crosses the router's conntrack asynchronously: a ping sent before it did is
        # still over B's limit (and counted as a drop), so ping until one gets through
        tries = 0
        while True:
            tries += 1
            if ping(vm, B):
                break
            assert tries < 10, "B's ping never fitted after one of its connections was reset"
        u = by_ip(usage(qr, desired_table(cfg)))
        assert u[A].limit == 4 and u[A].connections == 4 and u[A].drops == 3 + 1
        assert u[B].drops == tries - 1 and u[B].connections == 4          # 3 TCP + the ping
        # the packet path filled vm_conns and vm_drops: not a difference
        res = r.sync(HostState("h", {qr: Namespace(qr, nft={("ip", NFT_TABLE): desired_table(cfg)},
                                                   managed=False)}), full=True)
        assert res.ok and not res.plan, str(res.plan)
        for s in held[:2]:                                 # A closes two: two new ones fit again
            rst_close(s)
        held = held[2:]
        held += connect_many(vm, A, DST, 5000, 3)
        assert len(held) == 4 - 2 + 3 + 2
    finally:
        for s in held:
            s.close()
        srv.close()
        r.close()


def test_router_limit_caps_the_sum_and_counts(netns_prefix):
    vm, qr, ext = build(netns_prefix)
    cfg = PlanConfig(vm_conn_limit=4, router_conn_limit=6)
    r = apply_limits(netns_prefix, qr, cfg)
    srv = Listener(ext, DST, 5000)
    held = []
    try:
        held += connect_many(vm, A, DST, 5000, 4)
        assert len(held) == 4
        b = connect_many(vm, B, DST, 5000, 3)
        held += b
        assert len(b) == 2
        u = usage(qr, desired_table(cfg))
        assert u.router_limit == 6 and u.router_drops == 1 and by_ip(u)[B].drops == 0
    finally:
        for s in held:
            s.close()
        srv.close()
        r.close()


def test_inbound_dnat_connections_count_for_the_vm(netns_prefix):
    vm, qr, ext = build(netns_prefix)
    cfg = PlanConfig(vm_conn_limit=3, router_conn_limit=0)
    r = apply_limits(netns_prefix, qr, cfg)
    srv, out = Listener(vm, A, 6000), Listener(ext, DST, 5000)
    held = []
    try:
        held += connect_many(ext, DST, "100.64.0.5", 6000, 5)       # to A's FIP
        assert len(held) == 3
        assert by_ip(usage(qr, desired_table(cfg)))[A].drops == 2
        assert connect_many(vm, A, DST, 5000, 1) == []                # A's own outbound: same count
        assert by_ip(usage(qr, desired_table(cfg)))[A].drops == 3
        assert len(connect_many(vm, B, DST, 5000, 3)) == 3
    finally:
        for s in held:
            s.close()
        srv.close()
        out.close()
        r.close()


def test_port_override_replaces_the_agent_limit(netns_prefix):
    vm, qr, ext = build(netns_prefix)
    cfg = PlanConfig(vm_conn_limit=4, router_conn_limit=0)
    r = apply_limits(netns_prefix, qr, cfg, {A: 2, B: 0})
    srv = Listener(ext, DST, 5000)
    held = []
    try:
        a = connect_many(vm, A, DST, 5000, 4)
        b = connect_many(vm, B, DST, 5000, 12)
        held += a + b
        assert (len(a), len(b)) == (2, 12)
        u = by_ip(usage(qr, desired_table(cfg, {A: 2, B: 0}), [A, B]))
        assert (u[A].limit, u[B].limit, u[A].drops) == (2, None, 2)
        # the override changes: a new limit value is a structure change (table replaced, counts reset)
        r2 = apply_limits(netns_prefix, qr, cfg, {A: 3, B: 0})
        r2.close()
    finally:
        for s in held:
            s.close()
        srv.close()
        r.close()


def test_a_limit_over_several_lists_admits_exactly_the_limit(netns_prefix):
    """256 = 8 lists of 32 (plan/connlimit.py buckets): one VM opening alone gets all 256, no more;
    its neighbour's own lists are untouched."""
    vm, qr, ext = build(netns_prefix)
    cfg = PlanConfig(vm_conn_limit=256, router_conn_limit=0)
    r = apply_limits(netns_prefix, qr, cfg)
    srv = Listener(ext, DST, 5000)
    held = []
    try:
        held += connect_many(vm, A, DST, 5000, 300, timeout=2.0)
        assert len(held) == 256
        b = connect_many(vm, B, DST, 5000, 10)
        held += b
        assert len(b) == 10
        assert by_ip(usage(qr, desired_table(cfg)))[A].drops == 300 - 256
    finally:
        for s in held:
            s.close()
        srv.close()
        r.close()
