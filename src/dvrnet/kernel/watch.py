"""Which owned namespaces changed since they were last read: netlink event sockets per namespace.

    w = Watcher()
    w.add(["n1-qrouter-a", ...])      # open the sockets *before* the first read of a namespace
    dirt = w.poll()                   # {namespace: Dirt} for everything that happened since the last poll
    w.discard(["n1-qrouter-a"])       # namespace gone: close its sockets
    w.close()

Per namespace: one NETLINK_ROUTE socket subscribed to links, IPv4 addresses, IPv4 routes, IPv4
rules and neighbours, and one NETLINK_NETFILTER socket subscribed to NFNLGRP_NFTABLES, both
created by a helper thread that setns'd into the namespace (a socket stays bound to the
namespace it was created in; the caller's thread never changes namespace). Reading them is
non-blocking, from any thread.

Invariants:
- `poll()` drains every socket and reports what the events name; it never blocks. Anything it
  cannot account for is `Dirt.full`: a link or address event (IPv4 removes routes on a link or
  address change *without* route notifications), an overflowed socket (ENOBUFS: events lost),
  any other socket error, a message it cannot parse.
- Route events of other protocols than dvrnet's (94) are ignored (the reader keeps only proto 94
  routes); a dvrnet route event names its (table, dst) slice. Neighbour events are ignored unless
  the entry is permanent or is one the reader last saw as permanent (`set_neighbours`).
- Events are consumed *before* the reader reads, so an event that arrives during or after a read
  stays queued and makes the namespace dirty again: at worst one redundant read, never a missed
  change.
- A socket holds a reference on its namespace: after `ip netns del` the namespace (and the veth
  ends in it) lives until `discard()` closes the sockets. The reader discards every name missing
  from /run/netns at the start of each pass.
"""
from __future__ import annotations

import errno
import socket
import struct
import threading
from dataclasses import dataclass, field

from . import netns

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
RTMGRP_LINK, RTMGRP_NEIGH, RTMGRP_IPV4_IFADDR = 0x1, 0x4, 0x10
RTMGRP_IPV4_ROUTE, RTMGRP_IPV4_RULE = 0x40, 0x80
NFNLGRP_NFTABLES = 7
_SO_RCVBUFFORCE = 33
RCVBUF = 8 << 20

_LINK = (16, 17)                 # RTM_NEWLINK, RTM_DELLINK
_ADDR = (20, 21)
_ROUTE = (24, 25)
_NEIGH = (28, 29)
_RULE = (32, 33)
_NLMSG_ERROR, _NLMSG_DONE, _NLMSG_OVERRUN = 2, 3, 4
_RTA_DST, _RTA_TABLE = 1, 15
_NDA_DST = 1
_NUD_PERMANENT = 0x80
RT_PROTO = 94


@dataclass
class Dirt:
    """What changed in one namespace since its last poll. `full`: re-read everything."""
    full: bool = False
    routes: set[tuple[int, str]] = field(default_factory=set)     # (table, canonical dst)
    rules: bool = False
    neigh: bool = False
    nft: bool = False
    sysctls: bool = False            # never from events: set by the reader after it wrote sysctls
    why: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.full or bool(self.routes) or self.rules or self.neigh or self.nft or self.sysctls

    def mark_full(self, why: str) -> None:
        self.full = True
        if len(self.why) < 4:
            self.why.append(why)


def _dst(data: bytes, off: int, plen: int, attrs: dict[int, bytes], attr: int) -> str:
    if plen == 0:
        return "default"
    raw = attrs.get(attr)
    if raw is None or len(raw) != 4:
        raise ValueError("no IPv4 destination")
    return f"{socket.inet_ntoa(raw)}/{plen}"


def _attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    out, a = {}, start
    while a + 4 <= end:
        alen, atyp = struct.unpack_from("=HH", data, a)
        if alen < 4:
            break
        out[atyp & 0x7FFF] = data[a + 4:a + alen]
        a += (alen + 3) & ~3
    return out


class _Sockets:
    def __init__(self, name: str, rt: socket.socket, nf: socket.socket | None):
        self.name, self.rt, self.nf = name, rt, nf
        self.neigh: set[tuple[int, str]] = set()      # (ifindex, ip) last read as permanent

    def close(self) -> None:
        for s in (self.rt, self.nf):
            if s is not None:
                s.close()


def _open_in_current_netns() -> tuple[socket.socket, socket.socket | None]:
    rt = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                       NETLINK_ROUTE)
    try:
        try:
            rt.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            rt.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        rt.bind((0, RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE))
    except BaseException:
        rt.close()
        raise
    nf: socket.socket | None = None
    try:
        nf = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                           NETLINK_NETFILTER)
        try:
            nf.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 1 << 20)
        except OSError:
            pass
        nf.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
    except OSError:
        if nf is not None:
            nf.close()
        nf = None                        # no nfnetlink events: nft is re-checked every pass
    return rt, nf


class Watcher:
    def __init__(self) -> None:
        self._socks: dict[str, _Sockets] = {}
        self._pending: dict[str, Dirt] = {}
        self._lock = threading.Lock()
        self.opened = 0                   # sockets pairs opened (for tests and benchmarks)

    def __contains__(self, name: str) -> bool:
        return name in self._socks

    def names(self) -> set[str]:
        return set(self._socks)

    def add(self, names: list[str]) -> dict[str, str]:
        """Open sockets in each namespace (one helper thread enters them in turn).
        Returns {name: error} for namespaces that could not be watched."""
        todo = [n for n in names if n not in self._socks]
        if not todo:
            return {}
        opened: dict[str, tuple] = {}
        errors: dict[str, str] = {}

        def body() -> None:
            for n in todo:
                try:
                    netns.enter(n)
                    opened[n] = _open_in_current_netns()
                except netns.MissingNamespace as e:
                    errors[n] = str(e)
                except OSError as e:
                    errors[n] = f"cannot watch: {e}"
        t = threading.Thread(target=body, name="netns:watch")
        t.start()
        t.join()
        with self._lock:
            for n, (rt, nf) in opened.items():
                self._socks[n] = _Sockets(n, rt, nf)
                self.opened += 1
        return errors

    def discard(self, names) -> None:
        with self._lock:
            for n in names:
                s = self._socks.pop(n, None)
                if s is not None:
                    s.close()
                self._pending.pop(n, None)

    def close(self) -> None:
        self.discard(list(self._socks))

    def set_neighbours(self, name: str, keys: set[tuple[int, str]]) -> None:
        """(ifindex, ip) of the permanent neighbours the reader just saw in `name`."""
        s = self._socks.get(name)
        if s is not None:
            s.neigh = keys

    def watches_nft(self, name: str) -> bool:
        s = self._socks.get(name)
        return s is not None and s.nf is not None

    def poll(self) -> dict[str, Dirt]:
        """Drain every socket; {namespace: Dirt} for namespaces with relevant events."""
        with self._lock:
            for s in self._socks.values():
                d = self._pending.setdefault(s.name, Dirt())
                self._drain_rt(s, d)
                if s.nf is not None:
                    self._drain_nf(s, d)
            out = {n: d for n, d in self._pending.items() if d}
            self._pending = {}
        return out

    @staticmethod
    def _recv_all(sock: socket.socket, d: Dirt, what: str):
        while True:
            try:
                yield sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError as e:
                d.mark_full(f"{what}: {'overflow (ENOBUFS)' if e.errno == errno.ENOBUFS else e}")
                if e.errno != errno.ENOBUFS:
                    return

    def _drain_rt(self, s: _Sockets, d: Dirt) -> None:
        for data in self._recv_all(s.rt, d, "rtnetlink"):
            if d.full:
                continue                 # keep draining; nothing finer matters any more
            try:
                self._parse_rt(s, data, d)
            except (ValueError, struct.error) as e:
                d.mark_full(f"unparsed rtnetlink event: {e}")

    @staticmethod
    def _drain_nf(s: _Sockets, d: Dirt) -> None:
        assert s.nf is not None
        for data in Watcher._recv_all(s.nf, d, "nfnetlink"):
            if data:
                d.nft = True

    @staticmethod
    def _parse_rt(s: _Sockets, data: bytes, d: Dirt) -> None:
        off = 0
        while off + 16 <= len(data):
            ln, typ = struct.unpack_from("=LH", data, off)
            if ln < 16 or off + ln > len(data):
                raise ValueError("truncated netlink message")
            body, end = off + 16, off + ln
            if typ in _LINK or typ in _ADDR:
                d.mark_full("link" if typ in _LINK else "address")
                return
            if typ in _ROUTE:
                family, dst_len, _src, _tos, table, proto = struct.unpack_from("=BBBBBB", data, body)
                if family == socket.AF_INET and proto == RT_PROTO:
                    attrs = _attrs(data, body + 12, end)
                    if _RTA_TABLE in attrs:
                        table = struct.unpack("=I", attrs[_RTA_TABLE][:4])[0]
                    d.routes.add((table, _dst(data, body, dst_len, attrs, _RTA_DST)))
            elif typ in _RULE:
                d.rules = True
            elif typ in _NEIGH:
                family, _p1, _p2, ifindex, state = struct.unpack_from("=BBHiH", data, body)
                if family == socket.AF_INET:
                    attrs = _attrs(data, body + 12, end)
                    ip = attrs.get(_NDA_DST)
                    key = (ifindex, socket.inet_ntoa(ip) if ip and len(ip) == 4 else "")
                    if state & _NUD_PERMANENT or key in s.neigh:
                        d.neigh = True
            elif typ == _NLMSG_OVERRUN:
                d.mark_full("overrun")
                return
            elif typ == _NLMSG_ERROR:
                d.mark_full("netlink error message")
                return
            off += (ln + 3) & ~3
