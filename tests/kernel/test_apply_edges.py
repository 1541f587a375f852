"""The apply path's cheap edges (root): gratuitous ARP from a protocol-0 packet socket puts the
same frame on the wire as before (`garp.frame`); the procfs look at conntrack finds entries by source
and says "maybe" whenever it cannot look."""
from __future__ import annotations

import socket
import subprocess

import pytest

from dvrnet.kernel import apply as A
from dvrnet.kernel import garp, netns

pytestmark = pytest.mark.root


def sh(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, input=stdin, check=True, capture_output=True, text=True)


def test_garp_frame_reaches_the_peer(netns_prefix):
    ns = netns_prefix + "g"
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "add", "fg-x", "type", "veth", "peer", "name", "fg-y")
    sh("ip", "-n", ns, "link", "set", "fg-x", "up")
    sh("ip", "-n", ns, "link", "set", "fg-y", "up")

    def listen() -> socket.socket:
        r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(garp.ETH_P_ARP))
        r.bind(("fg-y", garp.ETH_P_ARP))
        r.settimeout(2)
        return r
    r = netns.run_in(ns, listen)
    try:
        garp.announce(ns, "fg-x", ["203.0.113.9", "203.0.113.10"])
        got = [r.recv(2048)[:42] for _ in range(2)]
    finally:
        r.close()
    mac = got[0][6:12]
    assert got == [garp.frame(mac, "203.0.113.9"), garp.frame(mac, "203.0.113.10")]
    with pytest.raises(OSError):
        garp.announce(ns, "nodev", ["203.0.113.9"])


def test_conntrack_look_by_source(netns_prefix):
    ns = netns_prefix + "c"
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", ns, "nft", "add table ip t; add chain ip t o { type filter hook output priority 0; }; "
       "add rule ip t o ct state new counter")
    sh("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "127.0.0.1")
    if not netns.run_in(ns, lambda: __import__("os").path.exists("/proc/thread-self/net/nf_conntrack")):
        pytest.skip("no nf_conntrack procfs on this kernel")
    assert A._conntrack_names(ns, ["127.0.0.1"])
    assert not A._conntrack_names(ns, ["127.0.0.10", "10.9.9.9"])
    assert A._conntrack_names(netns_prefix + "missing", ["10.9.9.9"])      # cannot look: maybe


def test_conntrack_entries_stay_when_the_nat_transaction_fails(netns_prefix):
    """A `fixed2fip` element change forgets the conntrack entries of its fixed IPs only when its
    nft transaction committed: a failed one (here: the table does not exist) changed no NAT."""
    from dvrnet.plan.state import NftMap
    from dvrnet.reconcile import ops as O
    ns = netns_prefix + "q"
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", ns, "nft", "add table ip t; add chain ip t o { type filter hook output priority 0; }; "
       "add rule ip t o ct state new counter")
    sh("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "127.0.0.1")

    def entries() -> str:
        def body() -> str:
            with open("/proc/thread-self/net/nf_conntrack") as f:
                return f.read()
        return netns.run_in(ns, body)
    if not netns.run_in(ns, lambda: __import__("os").path.exists("/proc/thread-self/net/nf_conntrack")):
        pytest.skip("no nf_conntrack procfs on this kernel")
    assert "src=127.0.0.1 " in entries()
    op = O.NftElements(ns, family="ip", table="dvrnet", add=(("fixed2fip", "127.0.0.1", "203.0.113.9"),),
                       maps=(NftMap("fixed2fip", "ipv4_addr", "ipv4_addr"),))
    errors = A.execute(O.Plan((op,)))
    assert len(errors) == 1 and errors[0].op is op
    assert "src=127.0.0.1 " in entries(), "conntrack entries deleted for a NAT change that did not happen"
    # the same change, committed: the entries go
    sh("ip", "netns", "exec", ns, "nft", "add table ip dvrnet; add map ip dvrnet fixed2fip { type ipv4_addr : ipv4_addr; }")
    assert A.execute(O.Plan((op,))) == []
    assert "src=127.0.0.1 " not in entries()
