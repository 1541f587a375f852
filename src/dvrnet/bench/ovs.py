"""What the Open vSwitch port kinds cost (docs/port-kinds.md), measured against a real
ovs-vswitchd (userspace datapath) in a throw-away namespace (root):

    python -m dvrnet.bench.ovs [--ports 100] [--rounds 3]

Per kind (ovs, ovs-veth): plugging N router ports into br-int in one reconciler pass (one
namespace, N ports), reading them back (a full read with the OVS overlay), a pass with nothing
to do; then replacing all N ports by the other kind (N replacement groups, one port at a time);
and the database read alone: one JSON-RPC select over the socket against one `ovs-vsctl list`.
Medians of the rounds. Prints one line per measurement; removes everything it made.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ..plan.names import OVS_OWNER_KEY
from ..plan.state import HostState, Link, Namespace, OvsPort


def state(prefix: str, br: str, kind: str, n: int) -> HostState:
    ns = f"{prefix}qrouter-bench"
    links: dict[str, Link] = {}
    br_links: dict[str, Link] = {}
    ports: dict[str, OvsPort] = {}
    for i in range(n):
        dev, dv, mac = f"qr-b{i:010d}", f"dv-b{i:010d}", f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        ids = (("attached-mac", mac), (OVS_OWNER_KEY, prefix), ("iface-id", f"port-{i}"), ("iface-status", "active"))
        if kind == "ovs":
            links[dev] = Link(dev, "ovs", br, "br-int", mac=mac, mtu=1450)
            ports[dev] = OvsPort(dev, "br-int", "internal", ids, 1450)
        else:
            links[dev] = Link(dev, "veth", br, dv, mac=mac, mtu=1450, tx_csum=False)
            br_links[dv] = Link(dv, "veth", ns, dev, mac=f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                                mtu=1450, ovs="br-int")
            ports[dv] = OvsPort(dv, "br-int", "", ids, 1450)
    return HostState("bench", {ns: Namespace(ns, links), br: Namespace(br, br_links, managed=False, ovs_ports=ports)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dvrnet.bench.ovs")
    ap.add_argument("--ports", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prefix", default="dvbo-", help="namespace prefix of everything it makes")
    a = ap.parse_args(argv)
    if shutil.which("ovs-vswitchd") is None:
        print("Open vSwitch is not installed (make deb)", file=sys.stderr)
        return 1
    from ..kernel import Reconciler
    from ..kernel.ovs import Switch, read_ports
    from ..lab import ovs as labovs
    prefix = a.prefix
    br = f"{prefix}br"
    tmp = tempfile.mkdtemp(prefix="dvrnet-bench-ovs-")
    subprocess.run(["ip", "netns", "add", br], check=True)
    inst = labovs.start(br, f"{tmp}/ovs")
    res: dict[str, list[float]] = {}

    def timed(key: str, fn, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        res.setdefault(key, []).append(time.perf_counter() - t)
        return out
    try:
        sw = Switch(br, inst.db, timeout=30)
        n = a.ports
        for _ in range(a.rounds):
            for first, second in (("ovs", "ovs-veth"), ("ovs-veth", "ovs")):
                r = Reconciler(prefix=prefix, switch=sw)
                d1, d2 = state(prefix, br, first, n), state(prefix, br, second, n)
                out = timed(f"{first}: plug {n} ports (one pass)", r.sync, d1, verify=False)
                assert not out.errors, out.errors[:3]
                timed(f"{first}: read back (full read with the OVS overlay)", r.observe, d1)
                out = timed(f"{first}: a pass with nothing to do", r.sync, d1)
                assert out.ok and not out.plan, str(out)
                out = timed(f"{first} -> {second}: replace {n} ports, one group each", r.sync, d2, verify=False)
                assert not out.errors and len(out.plan.groups) == n, out.errors[:3]
                assert r.sync(d2).ok
                timed("database read: one JSON-RPC select", read_ports, sw)
                timed("database read: one `ovs-vsctl list Interface`", subprocess.run,
                      ["ovs-vsctl", f"--db={inst.db}", "-f", "json", "list", "Interface"], capture_output=True, check=True)
                empty = HostState("bench", {br: Namespace(br, managed=False)})
                assert r.sync(empty).ok
        for k, v in res.items():
            print(f"{k:62s} {statistics.median(v) * 1000:8.1f} ms  (median of {len(v)})")
    finally:
        labovs.stop(inst)
        subprocess.run(["ip", "netns", "del", f"{prefix}qrouter-bench"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", br], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
