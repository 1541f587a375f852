"""What the stateless FIP option (PlanConfig.stateless_fips, docs/dataplane.md) changes, with real
packets (root), each finding next to the default conntrack NAT in the same topology (fipchain.py):

- both directions are rewritten from the same maps, and no conntrack entry is made for FIP traffic;
- connection limits do not apply to it (they match `ct state new`);
- ICMP "fragmentation needed" from beyond the node reaches the VM with the FIP as the inner source
  (conntrack NAT rewrites the inner header, stateless cannot: nft writes raw payload without fixing
  the ICMP checksum), so the VM never learns the path MTU; TCP SYNs are clamped to stateless_mss
  instead (UDP path MTU discovery is lost);
- IP fragments pass both ways (every fragment carries the IP header that is rewritten);
- a FIP move takes effect on the next packet of a running flow (no conntrack entry to forget);
- FIP->FIP (turning in the next namespace, as in a fip- namespace) works both ways.
SNAT->FIP and FIP->FIP across nodes with stateless FIPs: tests/lab/test_stateless_lab.py.
"""
from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest
from fipchain import DST, FAR, FIP_A, FIP_B, A, B, apply, build, conntrack_lines, table

from dvrnet.kernel import netns
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.numbers import NFT_TABLE
from dvrnet.plan.state import HostState, Namespace

pytestmark = pytest.mark.root
MODES = {"stateful": PlanConfig(), "stateless": PlanConfig(stateless_fips=True)}


def udp(ns: str, addr: str, port: int) -> socket.socket:
    def mk() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(2)
        return s
    return netns.run_in(ns, mk)


def tcp_listen(ns: str, addr: str, port: int) -> socket.socket:
    def mk() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
        s.settimeout(2)
        return s
    return netns.run_in(ns, mk)


def tcp_connect(ns: str, src: str | None, dst: str, port: int, timeout: float = 1.0) -> socket.socket | None:
    def mk() -> socket.socket | None:
        s = socket.socket()
        s.settimeout(timeout)
        if src:
            s.bind((src, 0))
        try:
            s.connect((dst, port))
        except OSError:
            s.close()
            return None
        return s
    return netns.run_in(ns, mk)


@pytest.mark.parametrize("mode", MODES)
def test_both_directions_and_conntrack(netns_prefix, mode):
    vm, qr, ext, _ = build(netns_prefix)
    r = apply(netns_prefix, qr, MODES[mode])
    a, e, lis = udp(vm, A, 7000), udp(ext, DST, 7000), tcp_listen(vm, A, 6000)
    try:
        a.sendto(b"out", (DST, 7000))
        data, peer = e.recvfrom(100)
        assert (data, peer[0]) == (b"out", FIP_A)
        e.sendto(b"back", peer)
        assert a.recvfrom(100) == (b"back", (DST, 7000))
        c = tcp_connect(ext, DST, FIP_A, 6000)
        assert c is not None
        conn, who = lis.accept()
        assert who[0] == DST
        conn.close()
        c.close()
        ours = [ln for ln in conntrack_lines(qr) if A in ln or FIP_A in ln]
        assert (not ours) if mode == "stateless" else ours, ours
    finally:
        for s in (a, e, lis):
            s.close()
        r.close()


@pytest.mark.parametrize("mode", MODES)
def test_connection_limits_apply_only_to_the_conntrack_path(netns_prefix, mode):
    vm, qr, ext, _ = build(netns_prefix)
    cfg = PlanConfig(stateless_fips=mode == "stateless", vm_conn_limit=2, router_conn_limit=0)
    r = apply(netns_prefix, qr, cfg)
    lis = tcp_listen(ext, DST, 6000)
    held = []
    try:
        for _ in range(6):
            c = tcp_connect(vm, A, DST, 6000, timeout=0.5)
            if c is not None:
                held.append(c)
        assert len(held) == (6 if mode == "stateless" else 2)
    finally:
        for s in held:
            s.close()
        lis.close()
        r.close()


def _icmp_listener(ns: str) -> socket.socket:
    def mk() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        s.settimeout(2)
        return s
    return netns.run_in(ns, mk)


@pytest.mark.parametrize("mode", MODES)
def test_pmtu_from_beyond_the_node(netns_prefix, mode):
    vm, qr, _, _ = build(netns_prefix)
    r = apply(netns_prefix, qr, MODES[mode])
    raw = _icmp_listener(vm)

    def send_big() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, 10, 2)              # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        s.bind((A, 0))
        s.sendto(b"x" * 1400, (FAR, 7001))
        s.close()
    try:
        netns.run_in(vm, send_big)
        inner_src = None
        end = time.monotonic() + 2
        while time.monotonic() < end:
            pkt = raw.recv(2048)
            ihl = (pkt[0] & 0xF) * 4
            typ, code = pkt[ihl], pkt[ihl + 1]
            if (typ, code) == (3, 4):                       # fragmentation needed
                mtu = struct.unpack("!H", pkt[ihl + 6:ihl + 8])[0]
                inner_src = socket.inet_ntoa(pkt[ihl + 8 + 12:ihl + 8 + 16])
                break
        assert mtu == 1300
        learned = "mtu 1300" in subprocess.run(["ip", "-n", vm, "route", "get", FAR, "from", A], capture_output=True,
                                               text=True, check=False).stdout
        if mode == "stateful":
            assert (inner_src, learned) == (A, True)        # conntrack rewrote the inner header
        else:
            assert (inner_src, learned) == (FIP_A, False)   # the VM's stack finds no such flow
    finally:
        raw.close()
        r.close()


@pytest.mark.parametrize("mode", MODES)
def test_tcp_mss(netns_prefix, mode):
    vm, qr, ext, _ = build(netns_prefix)
    r = apply(netns_prefix, qr, MODES[mode])
    lis_out, lis_in = tcp_listen(ext, DST, 6100), tcp_listen(vm, A, 6101)
    try:
        c = tcp_connect(vm, A, DST, 6100)                   # VM -> internet: the SYN
        conn, _ = lis_out.accept()
        out_mss = netns.run_in(ext, lambda: conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
        c2 = tcp_connect(ext, DST, FIP_A, 6101)            # internet -> FIP: the SYN-ACK
        in_mss = netns.run_in(ext, lambda: c2.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
        for s in (c, conn, c2):
            s.close()
        if mode == "stateless":
            assert out_mss <= 1360 and in_mss <= 1360, (out_mss, in_mss)
        else:
            assert out_mss > 1360 and in_mss > 1360, (out_mss, in_mss)
    finally:
        lis_out.close()
        lis_in.close()
        r.close()


@pytest.mark.parametrize("mode,cfg", [("stateful", PlanConfig()), ("stateless", PlanConfig(stateless_fips=True)),
                                      ("stateless, no conntrack in the namespace",
                                       PlanConfig(stateless_fips=True, conn_limits=False))])
def test_fragments_both_ways(netns_prefix, mode, cfg):
    vm, qr, ext, _ = build(netns_prefix)
    r = apply(netns_prefix, qr, cfg)
    a, e = udp(vm, A, 7002), udp(ext, DST, 7002)
    body = bytes(range(256)) * 12                            # 3,072 bytes: three fragments at MTU 1500
    try:
        e.sendto(body, (FIP_A, 7002))
        got, peer = a.recvfrom(4096)
        assert got == body and peer == (DST, 7002)
        a.sendto(body[::-1], peer)
        got, peer = e.recvfrom(4096)
        assert got == body[::-1] and peer[0] == FIP_A
    finally:
        a.close()
        e.close()
        r.close()


@pytest.mark.parametrize("mode", MODES)
def test_fip_move_takes_effect_on_the_next_packet(netns_prefix, mode):
    vm, qr, ext, _ = build(netns_prefix)
    r = apply(netns_prefix, qr, MODES[mode])
    a, b, e = udp(vm, A, 7003), udp(vm, B, 7003), udp(ext, DST, 7003)
    try:
        e.sendto(b"1", (FIP_A, 7003))
        assert a.recvfrom(10)[0] == b"1"
        a.sendto(b"r", (DST, 7003))                          # the flow is two-way (conntrack: replied)
        e.recvfrom(10)
        apply(netns_prefix, qr, MODES[mode], fips=[(FIP_A, B)], r=r)        # FIP_A moves to B
        e.sendto(b"2", (FIP_A, 7003))
        assert b.recvfrom(10)[0] == b"2"
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recvfrom(10)
    finally:
        for s in (a, b, e):
            s.close()
        r.close()


@pytest.mark.parametrize("mode", MODES)
def test_fip_to_fip(netns_prefix, mode):
    vm, qr, _, _ = build(netns_prefix)
    r = apply(netns_prefix, qr, MODES[mode])
    a, b = udp(vm, A, 7004), udp(vm, B, 7004)
    try:
        a.sendto(b"hi", (FIP_B, 7004))
        data, peer = b.recvfrom(10)
        assert (data, peer) == (b"hi", (FIP_A, 7004))
        b.sendto(b"yo", peer)
        assert a.recvfrom(10) == (b"yo", (FIP_B, 7004))
    finally:
        a.close()
        b.close()
        r.close()


def test_stateless_table_round_trips(netns_prefix):
    """Planned, applied, read back equal: a second full pass after traffic writes nothing."""
    _, qr, ext, _ = build(netns_prefix)
    cfg = MODES["stateless"]
    r = apply(netns_prefix, qr, cfg)
    e = udp(ext, DST, 7005)
    try:
        e.sendto(b"x", (FIP_A, 7005))
        again = r.sync(HostState("h", {qr: Namespace(qr, nft={("ip", NFT_TABLE): table(cfg)}, managed=False)}),
                       full=True)
        assert again.ok and not again.plan, str(again.plan)
    finally:
        e.close()
        r.close()
