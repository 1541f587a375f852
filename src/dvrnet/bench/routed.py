"""Routed mode (issue 15's targets): how fast and at what cost a FIP reaches the ToR by BGP, with
the real BIRD 2 configurations dvrnet generates.

Pair (no lab): a node namespace running the agent's BIRD configuration of a routed fip-
namespace (plan/bird.py, the default timers) and a ToR namespace running the lab's (lab/tor.py),
on one veth. Clocks read netlink: a route event socket in the ToR namespace timestamps the
moment the ToR's kernel has (or drops) a route.
- kernel /32 -> route on the ToR: `singles` times, one /32 (protocol 94, the way the agent writes
  FIP routes) is added on the node; the clock starts at the node's route event (its kernel has
  it) and stops at the ToR's (both sockets are read by one thread of this process): p50/p99;
- `bulk` /32s at once (10,000 in the full run): one `ip -batch` on the node; the clock starts at
  the node's event for the last of them and stops at the ToR's event for the last of them; then
  the same for their deletion;
- BIRD CPU per change: time on CPU (/proc/<pid>/task/*/schedstat, nanoseconds) of the node's and
  the ToR's BIRD over the single changes (an add and a delete each), and over the bulk announcement.
Lab (`lab up --routed`, FIPs off):
- API -> route on the ToR: `POST /v2.0/floatingips` for a VM's port; the clock stops at the ToR's
  route event for the address via the VM's node: p50/p99;
- migration gap: a VM with a FIP migrates between the compute nodes (its tap moves to the other
  node's bridge, its port's binding:host_id changes) under ping every 10 ms from the internet
  host, `moves` times: the longest gap of each move (p50, max).
Everything is named with the caller's prefix and removed at the end, also on failure.
"""
from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .stats import cpu_seconds

RTMGRP_IPV4_ROUTE = 0x40
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTA_DST = 1


@dataclass
class RoutedResult:
    kernel_to_tor: list[float] = field(default_factory=list)    # seconds, one /32 each
    bulk_n: int = 0
    bulk_announce: float = float("nan")
    bulk_withdraw: float = float("nan")
    cpu_node_per_change: float = float("nan")                  # seconds of CPU per single change
    cpu_tor_per_change: float = float("nan")
    cpu_node_bulk: float = float("nan")
    cpu_tor_bulk: float = float("nan")
    api_to_tor: list[float] = field(default_factory=list)
    migration_gaps: list[float] = field(default_factory=list)  # longest gap per move
    migration_lost: list[int] = field(default_factory=list)
    failures: int = 0
    error: str | None = None




class RouteEvents:
    """IPv4 route events of one namespace: `wait(dsts, new)` returns when every /32 of DSTS was
    added (new) or deleted, with the time of the last event (time.perf_counter())."""
    def __init__(self, ns: str) -> None:
        from ..kernel import netns

        def open_sock() -> socket.socket:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
            try:
                s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)        # SO_RCVBUFFORCE: 10k events at once
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            s.bind((0, RTMGRP_IPV4_ROUTE))
            return s
        self.sock = netns.run_in(ns, open_sock)

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> list[tuple[int, str]]:
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return out
            off = 0
            while off + 16 <= len(data):
                ln, typ = struct.unpack_from("=IH", data, off)
                if ln < 16:
                    break
                if typ in (RTM_NEWROUTE, RTM_DELROUTE) and ln >= 28:
                    plen = data[off + 17]
                    a, end = off + 28, off + ln
                    while a + 4 <= end:
                        alen, atyp = struct.unpack_from("=HH", data, a)
                        if alen < 4:
                            break
                        if atyp == RTA_DST and alen == 8:
                            out.append((typ, f"{socket.inet_ntoa(data[a + 4:a + 8])}/{plen}"))
                        a += (alen + 3) & ~3
                off += (ln + 3) & ~3

    def drain(self) -> None:
        self._read()

    def wait(self, dsts, new: bool, timeout: float) -> float | None:
        todo = set(dsts)
        want = RTM_NEWROUTE if new else RTM_DELROUTE
        end = time.perf_counter() + timeout
        last = None
        while todo:
            left = end - time.perf_counter()
            if left <= 0:
                return None
            select.select([self.sock], [], [], left)
            now = time.perf_counter()
            for typ, dst in self._read():
                if typ == want and dst in todo:
                    todo.discard(dst)
                    last = now
        return last


class Routes:
    """Adds and deletes `<dst>/32 dev lo proto 94` in one namespace over this process's own
    netlink socket (no fork on the clock): `change(dsts, new)` returns when the kernel has
    acknowledged every one, at time.perf_counter()."""
    def __init__(self, ns: str) -> None:
        from ..kernel import netns

        def open_sock() -> socket.socket:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
            try:
                s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            s.bind((0, 0))
            return s
        self.sock = netns.run_in(ns, open_sock)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _msg(self, dst: str, new: bool) -> bytes:
        self.seq += 1
        flags = 0x1 | 0x4 | ((0x400 | 0x200) if new else 0)       # REQUEST|ACK (|CREATE|EXCL)
        rtmsg = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 94, 253, 1, 0)
        attrs = struct.pack("=HH4s", 8, RTA_DST, socket.inet_aton(dst.split("/")[0])) + struct.pack("=HHI", 8, 4, 1)
        body = rtmsg + attrs
        return struct.pack("=IHHII", 16 + len(body), RTM_NEWROUTE if new else RTM_DELROUTE, flags, self.seq, 0) + body

    def change(self, dsts, new: bool, chunk: int = 500) -> float:
        dsts = list(dsts)
        errors = []
        for i in range(0, len(dsts), chunk):
            part = dsts[i:i + chunk]
            self.sock.sendall(b"".join(self._msg(d, new) for d in part))
            acks = 0
            while acks < len(part):
                data = self.sock.recv(1 << 20)
                off = 0
                while off + 16 <= len(data):
                    ln, typ = struct.unpack_from("=IH", data, off)
                    if ln < 16:
                        break
                    if typ == 2:                                 # NLMSG_ERROR: an ack (0) or an error
                        acks += 1
                        err = struct.unpack_from("=i", data, off + 16)[0]
                        if err:
                            errors.append(os.strerror(-err))
                    off += (ln + 3) & ~3
        t = time.perf_counter()
        if errors:
            raise OSError(f"{len(errors)} route {'adds' if new else 'deletes'} failed: {errors[0]}")
        return t


def _sh(*argv: str, input: str | None = None) -> None:
    p = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}: {p.stderr.strip()[:300]}")


def _addrs(n: int, base: str = "10.200.0.0") -> list[str]:
    b = struct.unpack("!I", socket.inet_aton(base))[0]
    return [socket.inet_ntoa(struct.pack("!I", b + 1 + i)) + "/32" for i in range(n)]


def pair(prefix: str, singles: int, bulk: int, res: RoutedResult, say=print) -> None:
    """The node/ToR pair measurements (module docstring) into RES."""
    from ..kernel import netns
    from ..kernel.bird import wait_ready
    from ..lab.tor import start as tor_start
    from ..plan.bird import bird_process
    from ..plan.config import BgpConfig, BgpPeer
    from ..plan.process import runtime_dir
    node, tor = f"{prefix}rnode", f"{prefix}rtor"
    state = tempfile.mkdtemp(prefix="dvrnet-bench-routed-")
    public = ["10.200.0.0/16"]
    pids: list[int] = []
    try:
        for ns in (node, tor):
            _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", node, "link", "add", "fg-bench", "type", "veth", "peer", "name", "seg0", "netns", tor)
        _sh("ip", "-n", node, "-batch", "-", input="addr add 100.64.0.1/24 dev fg-bench\nlink set fg-bench up\n"
            "link set lo up\n")
        _sh("ip", "-n", tor, "-batch", "-", input="addr add 100.64.0.254/24 dev seg0\nlink set seg0 up\nlink set lo up\n")
        tor_pid, _ctl = tor_start(tor, state, "100.64.0.254", "100.64.0.0/24", public)
        pids.append(tor_pid)
        proc = bird_process(node, "100.64.0.1", 4200000001, (BgpPeer("100.64.0.254", 65000),), public, "fg-bench",
                            BgpConfig())
        os.makedirs(runtime_dir(node, "bird"), exist_ok=True)
        for path, text in proc.files:
            with open(path, "w") as f:
                f.write(text)
        subprocess.run(netns.nsenter(node) + list(proc.argv), check=True, capture_output=True, start_new_session=True)
        err = wait_ready(node)
        if err:
            raise RuntimeError(err)
        with open(f"{runtime_dir(node, 'bird')}/pid") as f:
            node_pid = int(f.read().strip())
        pids.append(node_pid)
        ev = RouteEvents(tor)
        try:
            probe = _addrs(1, "10.200.200.0")[0]                  # wait for the session: one route through
            end = time.monotonic() + 30
            _sh("ip", "-n", node, "route", "add", probe, "dev", "lo", "proto", "94")
            if ev.wait([probe], True, 30) is None:
                raise RuntimeError("the BGP session to the ToR did not come up in 30 s")
            _sh("ip", "-n", node, "route", "del", probe, "dev", "lo", "proto", "94")
            ev.wait([probe], False, 10)
            say(f"  routed: node/ToR BIRD pair up in {30 - (end - time.monotonic()):.1f}s")
            rt = Routes(node)
            try:
                c0 = (cpu_seconds(node_pid), cpu_seconds(tor_pid))
                for a in _addrs(singles, "10.200.100.0"):
                    ev.drain()
                    t0 = rt.change([a], True)             # the node's kernel has it
                    t1 = ev.wait([a], True, 10)           # the ToR's kernel has it
                    if t1 is None:
                        res.failures += 1
                    else:
                        res.kernel_to_tor.append(t1 - t0)
                    rt.change([a], False)
                    ev.wait([a], False, 10)
                c1 = (cpu_seconds(node_pid), cpu_seconds(tor_pid))
                n = max(1, 2 * singles)
                res.cpu_node_per_change = (c1[0] - c0[0]) / n
                res.cpu_tor_per_change = (c1[1] - c0[1]) / n
                if bulk:
                    addrs = _addrs(bulk)
                    res.bulk_n = bulk
                    for new in (True, False):
                        ev.drain()
                        c0 = (cpu_seconds(node_pid), cpu_seconds(tor_pid))
                        t0 = rt.change(addrs, new)        # the node's kernel has (dropped) them all
                        t1 = ev.wait(addrs, new, 60)      # and the ToR's
                        took = (t1 - t0) if t1 is not None else float("nan")
                        time.sleep(0.5)                   # let both BIRDs finish their work
                        c1 = (cpu_seconds(node_pid), cpu_seconds(tor_pid))
                        if new:
                            res.bulk_announce = took
                            res.cpu_node_bulk, res.cpu_tor_bulk = c1[0] - c0[0], c1[1] - c0[1]
                        else:
                            res.bulk_withdraw = took
            finally:
                rt.close()
        finally:
            ev.close()
    finally:
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for ns in (node, tor):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(runtime_dir(node, "bird").rsplit("/", 1)[0], ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def lab(prefix: str, count: int, moves: int, res: RoutedResult, say=print, tick=None) -> None:
    """The lab measurements (module docstring) into RES."""
    import httpx

    from ..lab.down import down
    from ..lab.traffic import Flow, Traffic
    from ..lab.up import up
    state_dir = tempfile.mkdtemp(prefix="dvrnet-bench-routed-lab-")
    try:
        t = time.perf_counter()
        info = up(prefix=prefix, state_dir=state_dir, routed=True, fips=False)
        say(f"  routed: lab up in {time.perf_counter() - t:.1f}s")
        assert info.tor is not None
        ev = RouteEvents(info.tor["netns"])
        try:
            with httpx.Client(base_url=info.server_url, timeout=30) as c:
                subnets = {s["name"]: s for s in c.get("/v2.0/subnets").json()["subnets"]}
                vms = [v for v in info.vms if v.fip_subnet and v.fip_subnet in subnets]
                for i in range(count):
                    vm = vms[i % len(vms)]
                    sub = subnets[vm.fip_subnet]
                    ev.drain()
                    t0 = time.perf_counter()
                    r = c.post("/v2.0/floatingips", json={"floatingip": {
                        "floating_network_id": sub["network_id"], "subnet_id": sub["id"], "port_id": vm.port_id}})
                    r.raise_for_status()
                    f = r.json()["floatingip"]
                    a = f["floating_ip_address"] + "/32"
                    t1 = ev.wait([a], True, 10)
                    if t1 is None:
                        res.failures += 1
                    else:
                        res.api_to_tor.append(t1 - t0)
                    c.delete(f"/v2.0/floatingips/{f['id']}").raise_for_status()
                    ev.wait([a], False, 10)
                    if tick is not None:
                        tick()
                # migration: a VM with a FIP moves between the compute nodes (its tap to the other
                # node's bridge, its port's binding:host_id), back and forth
                vm = vms[0]
                nodes = {n.name: n for n in info.nodes if n.mode == "dvr"}
                if moves and len(nodes) >= 2:
                    sub = subnets[vm.fip_subnet]
                    f = c.post("/v2.0/floatingips", json={"floatingip": {
                        "floating_network_id": sub["network_id"], "subnet_id": sub["id"], "port_id": vm.port_id}})
                    f.raise_for_status()
                    addr = f.json()["floatingip"]["floating_ip_address"]
                    ev.wait([addr + "/32"], True, 10)
                    tap = ("tap" + vm.port_id.replace("-", ""))[:14]
                    from ..plan.names import tenant_bridge
                    for i in range(moves):
                        old = nodes[vm.node]
                        new = next(n for n in nodes.values() if n.name != vm.node)
                        with Traffic([Flow("inet→fip", "icmp", info.internet_netns, addr)], state_dir) as tr:
                            time.sleep(0.5)
                            _sh("ip", "-n", old.bridge_netns, "link", "set", tap, "netns", new.bridge_netns)
                            _sh("ip", "-n", new.bridge_netns, "link", "set", tap, "master",
                                tenant_bridge(vm.network_id), "up")
                            c.put(f"/v2.0/ports/{vm.port_id}",
                                  json={"port": {"binding:host_id": new.name}}).raise_for_status()
                            time.sleep(1.5)
                            out = tr.stop()["inet→fip"]
                        vm.node = new.name
                        res.migration_gaps.append(out.max_gap_s)
                        res.migration_lost.append(out.lost)
        finally:
            ev.close()
    except Exception as e:  # noqa: BLE001 - reported in the table; the lab is removed below
        res.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        try:
            down(prefix, state_dir)
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


def run(prefix: str, singles: int, bulk: int, count: int, moves: int, say=print, tick=None) -> RoutedResult:
    res = RoutedResult()
    try:
        pair(prefix, singles, bulk, res, say)
    except Exception as e:  # noqa: BLE001 - reported in the table
        res.error = f"pair: {type(e).__name__}: {e}"[:300]
    lab(prefix + "l-", count, moves, res, say, tick)
    return res
