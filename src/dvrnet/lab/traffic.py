"""Continuous traffic with loss accounting, for the live-change tests (issue 6).

    flows = fip_flows(info, ["vm1", "vm2"]) + outbound_flows(info, ["vm3"]) + [tcp_flow(info, "vm4")]
    with Traffic(flows, info.state_dir) as tr:      # warm-up probe per flow, then probers start
        ...change something...
        results = tr.stop()                         # {flow name: FlowResult}
    results["inet→vm1"].lost, .max_gap_s, .outages

Probes (each one small stdlib-only Python process, `ip netns exec <lab ns> python -I -S -c CODE`):
- `icmp`: echo requests from a raw socket every `interval` (10 ms) to one address; replies are
  matched by (source, ICMP id, seq). On SIGTERM it stops sending, waits up to `linger` for the
  replies still in flight, and prints one JSON line: sent, received, lost, duplicates, the lost
  sequence numbers, and the outages (runs of lost probes with the send time of the last reply before
  and the first reply after: `gap_s`, the time traffic was interrupted, to within one interval).
- `tcp`: a receiver in the destination namespace and a sender in the source namespace; the sender
  writes one 32-byte message (sequence number, send time) every `interval`; the receiver checks the
  sequence is contiguous and records the longest time between two messages. On SIGTERM the sender
  half-closes, the receiver prints its report at EOF and closes. lost = sent - received (TCP
  itself never loses data; a broken connection does), `max_gap_s` is the longest stall.
Bounds: every probe stops by itself after `max_seconds` (and ICMP after max_seconds/interval
probes); every process has a pid file in `<state dir>/pids/` and the lab namespace in its command
line, so `lab down` finds it; `Traffic.__exit__` kills whatever is still running. Only addresses
inside lab namespaces are ever probed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Self

from .info import LabInfo

CODE = r"""
import json, os, signal, socket, struct, sys, threading, time
class Stop:
    # not threading.Event: Event.set() from a signal handler can deadlock on the Event's own lock
    flag = False
    def set(self): self.flag = True
    def is_set(self): return self.flag
    def wait(self, t):
        end = time.monotonic() + t
        while not self.flag:
            r = end - time.monotonic()
            if r <= 0: break
            time.sleep(min(r, 0.005))
        return self.flag
stop = Stop()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
signal.signal(signal.SIGINT, lambda *a: stop.set())
mode = sys.argv[1]

def out(d):
    sys.stdout.write(json.dumps(d) + "\n"); sys.stdout.flush()

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

if mode == "icmp":
    dst, ident, interval, max_s, linger = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.2)
    sent, got, dups = [], {}, [0]
    def rx():
        while True:
            try:
                data, addr = s.recvfrom(4096)
            except socket.timeout:
                if stop.is_set() and (len(got) >= len(sent) or time.monotonic() > stop_at[0]):
                    return
                continue
            except OSError:
                return
            ihl = (data[0] & 15) * 4
            if len(data) < ihl + 8 or addr[0] != dst:
                continue
            t, code, ck, i, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if t != 0 or i != ident:
                continue
            if seq in got: dups[0] += 1
            else: got[seq] = time.monotonic()
            if stop.is_set() and len(got) >= len(sent):
                return
    stop_at = [float("inf")]
    th = threading.Thread(target=rx, daemon=True); th.start()
    t0w, t0 = time.time(), time.monotonic()
    n_max = int(max_s / interval)
    seq = 0
    while not stop.is_set() and seq < n_max and seq < 65535:
        due = t0 + seq * interval
        d = due - time.monotonic()
        if d > 0 and stop.wait(d): break
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + struct.pack("!d", time.time()) + b"dvrnet-lab-probe" * 2
        pkt = hdr[:2] + struct.pack("!H", csum(hdr)) + hdr[4:]
        try:
            s.sendto(pkt, (dst, 0))
        except OSError:
            pass
        sent.append(time.monotonic()); seq += 1
    stop.set(); stop_at[0] = time.monotonic() + linger
    th.join(linger + 0.5)
    lost = [i for i in range(len(sent)) if i not in got]
    outages, i = [], 0
    while i < len(lost):
        j = i
        while j + 1 < len(lost) and lost[j + 1] == lost[j] + 1: j += 1
        a, b = lost[i], lost[j]
        before = sent[a - 1] if a > 0 else None
        after = sent[b + 1] if b + 1 < len(sent) else None
        gap = (after - before) if (before is not None and after is not None) else None
        outages.append({"first_seq": a, "last_seq": b, "lost": b - a + 1,
                        "start": t0w + (sent[a] - t0), "gap_s": gap})
        i = j + 1
    out({"kind": "icmp", "dst": dst, "sent": len(sent), "received": len(got), "lost": len(lost),
         "duplicates": dups[0], "lost_seqs": lost[:200], "outages": outages[:50], "t0": t0w,
         "interval": interval, "duration": (sent[-1] - sent[0]) if sent else 0.0})

elif mode == "tcp-recv":
    port, max_s, ready = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port)); ls.listen(1); ls.settimeout(0.2)
    open(ready, "w").close()
    end = time.monotonic() + max_s
    rep = {"kind": "tcp-recv", "received": 0, "bytes": 0, "seq_errors": 0, "max_gap_s": 0.0, "eof": False}
    c = None
    while c is None and not stop.is_set() and time.monotonic() < end:
        try: c, _ = ls.accept()
        except socket.timeout: pass
    if c is not None:
        c.settimeout(0.2); buf = b""; expect = 0; last = None
        while time.monotonic() < end:
            try: d = c.recv(65536)
            except socket.timeout:
                if stop.is_set(): break
                continue
            except OSError as e:
                rep["error"] = str(e); break
            if not d:
                rep["eof"] = True; break
            rep["bytes"] += len(d); buf += d
            now = time.monotonic()
            while len(buf) >= 32:
                m, buf = buf[:32], buf[32:]
                seq = struct.unpack("!Q", m[:8])[0]
                if seq != expect: rep["seq_errors"] += 1
                expect = seq + 1; rep["received"] += 1
                if last is not None: rep["max_gap_s"] = max(rep["max_gap_s"], now - last)
                last = now
        try: c.close()
        except OSError: pass
    out(rep)

elif mode == "tcp-send":
    dst, port, interval, max_s = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    rep = {"kind": "tcp-send", "sent": 0, "bytes": 0}
    c = None; end = time.monotonic() + 5
    while c is None and time.monotonic() < end and not stop.is_set():
        try: c = socket.create_connection((dst, port), timeout=1)
        except OSError as e:
            rep["connect_error"] = str(e); time.sleep(0.1)
    if c is None:
        rep["error"] = "could not connect: " + rep.get("connect_error", "stopped")
        out(rep); sys.exit(0)
    rep.pop("connect_error", None)
    c.settimeout(max_s)
    t0 = time.monotonic(); seq = 0; end = t0 + max_s
    while not stop.is_set() and time.monotonic() < end:
        due = t0 + seq * interval; d = due - time.monotonic()
        if d > 0 and stop.wait(d): break
        try: c.sendall(struct.pack("!Qd", seq, time.time()) + b"\0" * 16)
        except OSError as e:
            rep["error"] = str(e); break
        seq += 1; rep["sent"] = seq; rep["bytes"] = seq * 32
    try:
        c.shutdown(socket.SHUT_WR); c.settimeout(5)
        while c.recv(4096): pass
    except OSError as e:
        rep.setdefault("error", "at close: " + str(e))
    out(rep)
"""


@dataclass(frozen=True)
class Flow:
    """One probe: ICMP from `src_ns` to `dst`, or a TCP stream from `src_ns` to `dst:port` whose
    receiver listens in `dst_ns` (dst is the address the sender connects to, e.g. a FIP)."""
    name: str
    kind: str                   # "icmp" | "tcp"
    src_ns: str
    dst: str
    dst_ns: str | None = None
    port: int = 0


@dataclass
class FlowResult:
    name: str
    kind: str
    sent: int
    received: int
    lost: int
    max_gap_s: float            # longest interruption (ICMP: between replies around lost probes; TCP: stall)
    outages: list[dict] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None
    raw: dict = field(default_factory=dict)

    def line(self) -> str:
        err = f" error={self.error}" if self.error else ""
        return (f"{self.name:28s} {self.kind:4s} sent={self.sent:6d} recv={self.received:6d} lost={self.lost:5d} "
                f"max_gap={self.max_gap_s * 1000:7.1f} ms{err}")


def _cmd(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-I", "-S", "-c", CODE, *map(str, args)]


class Traffic:
    """Start `flows` in the background; `stop()` returns {name: FlowResult}. A context manager:
    leaving the block kills any probe still running (also on failure)."""

    def __init__(self, flows: list[Flow], state_dir: str, interval: float = 0.01, max_seconds: float = 120.0,
                 linger: float = 1.0, warm: bool = True):
        names = [f.name for f in flows]
        if len(set(names)) != len(names):
            raise ValueError(f"flow names must be unique: {names}")
        self.flows = flows
        self.interval = interval
        self.max_seconds = max_seconds
        self.linger = linger
        self.pid_dir = os.path.join(state_dir, "pids")
        self.warm = warm
        self.senders: dict[str, subprocess.Popen] = {}
        self.receivers: dict[str, subprocess.Popen] = {}
        self.started_at: float | None = None
        self.results: dict[str, FlowResult] | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def _spawn(self, key: str, argv: list[str]) -> subprocess.Popen:
        os.makedirs(self.pid_dir, exist_ok=True)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        with open(os.path.join(self.pid_dir, f"traffic-{key}.pid"), "w") as f:
            f.write(f"{p.pid}\n")
        return p

    def _key(self, f: Flow) -> str:
        return "".join(c if c.isalnum() else "_" for c in f.name)

    def warm_up(self, timeout: float = 5.0) -> None:
        """One successful ping per flow before counting starts (ARP and conntrack warm)."""
        end = time.monotonic() + timeout
        todo = list(self.flows)
        while todo:
            procs = [(f, subprocess.Popen(["ip", "netns", "exec", f.src_ns, "ping", "-c", "1", "-W", "1", "-q", f.dst],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)) for f in todo]
            todo = [f for f, p in procs if p.wait() != 0]
            if todo and time.monotonic() > end:
                raise RuntimeError("no reply before the traffic started: " + ", ".join(f.name for f in todo))

    def start(self) -> Traffic:
        if self.warm:
            self.warm_up()
        ready_files = []
        for i, f in enumerate(self.flows):
            if f.kind == "tcp":
                ready = os.path.join(self.pid_dir, f"traffic-{self._key(f)}.ready")
                if os.path.exists(ready):
                    os.unlink(ready)
                self.receivers[f.name] = self._spawn(self._key(f) + "-rx", _cmd(
                    f.dst_ns or "", "tcp-recv", f.port, self.max_seconds + 10, ready))
                ready_files.append((f, ready))
        end = time.monotonic() + 5
        for f, ready in ready_files:
            while not os.path.exists(ready):
                if self.receivers[f.name].poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"TCP receiver of {f.name} not listening: {self.receivers[f.name].stderr.read()}")
                time.sleep(0.01)
        for i, f in enumerate(self.flows):
            if f.kind == "icmp":
                ident = (os.getpid() * 16 + i) & 0xFFFF
                argv = _cmd(f.src_ns, "icmp", f.dst, ident, self.interval, self.max_seconds, self.linger)
            elif f.kind == "tcp":
                argv = _cmd(f.src_ns, "tcp-send", f.dst, f.port, self.interval, self.max_seconds)
            else:
                raise ValueError(f"flow {f.name}: unknown kind {f.kind!r}")
            self.senders[f.name] = self._spawn(self._key(f), argv)
        self.started_at = time.time()
        return self

    def stop(self) -> dict[str, FlowResult]:
        if self.results is not None:
            return self.results
        for p in self.senders.values():
            _signal(p, signal.SIGTERM)
        out: dict[str, FlowResult] = {}
        sender_reports = {n: _report(p, self.linger + 10) for n, p in self.senders.items()}
        for p in self.receivers.values():
            if p.poll() is None:
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    _signal(p, signal.SIGTERM)
        recv_reports = {n: _report(p, 5) for n, p in self.receivers.items()}
        for f in self.flows:
            s = sender_reports.get(f.name, {})
            if f.kind == "icmp":
                gaps = [o["gap_s"] for o in s.get("outages", []) if o.get("gap_s") is not None]
                if any(o.get("gap_s") is None for o in s.get("outages", [])):
                    gaps.append(float("inf"))      # lost at the very start or end: no reply to bound it
                out[f.name] = FlowResult(f.name, "icmp", s.get("sent", 0), s.get("received", 0),
                                         s.get("lost", s.get("sent", 0)), max(gaps, default=0.0),
                                         s.get("outages", []), s.get("duplicates", 0), s.get("error"), s)
            else:
                r = recv_reports.get(f.name, {})
                err = s.get("error") or r.get("error")
                if r and not r.get("eof"):
                    err = err or "receiver saw no orderly end of the stream"
                if r.get("seq_errors"):
                    err = err or f"{r['seq_errors']} sequence errors"
                sent, rec = s.get("sent", 0), r.get("received", 0)
                out[f.name] = FlowResult(f.name, "tcp", sent, rec, max(0, sent - rec),
                                         r.get("max_gap_s", 0.0), [], 0, err, {"sender": s, "receiver": r})
        self.results = out
        self._cleanup()
        return out

    def _cleanup(self) -> None:
        for p in list(self.senders.values()) + list(self.receivers.values()):
            if p.poll() is None:
                _signal(p, signal.SIGKILL)
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    pass
        for f in self.flows:
            for key in (self._key(f), self._key(f) + "-rx"):
                for suffix in (".pid", ".ready"):
                    try:
                        os.unlink(os.path.join(self.pid_dir, f"traffic-{key}{suffix}"))
                    except FileNotFoundError:
                        pass

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self._cleanup()
            raise

    def __exit__(self, *exc) -> None:
        self._cleanup()


def _signal(p: subprocess.Popen, sig: int) -> None:
    try:
        p.send_signal(sig)
    except ProcessLookupError:
        pass


def _report(p: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(p, signal.SIGKILL)
        out, err = p.communicate()
        return {"error": "probe did not stop in time"}
    for line in reversed(out.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {"error": f"probe exited {p.returncode} without a report: {err.strip()[-300:]}"}


# --- flow builders (lab addresses only) -----------------------------------------------------------
def fip_flows(info: LabInfo, vms: list[str] | None = None) -> list[Flow]:
    """ICMP from the internet host to the FIP of each VM (default: every VM with a FIP)."""
    chosen = [v for v in info.vms if v.fip and (vms is None or v.name in vms)]
    return [Flow(f"inet→{v.name}", "icmp", info.internet_netns, v.fip) for v in chosen]


def outbound_flows(info: LabInfo, vms: list[str]) -> list[Flow]:
    """ICMP from each VM to the internet host (through its FIP, or SNAT without one)."""
    return [Flow(f"{v}→inet", "icmp", info.vm(v).netns, info.internet_address) for v in vms]


def tcp_flow(info: LabInfo, vm: str, port: int = 5100) -> Flow:
    """A TCP stream from the internet host to the VM's FIP (receiver in the VM)."""
    v = info.vm(vm)
    if not v.fip:
        raise ValueError(f"{vm} has no FIP")
    return Flow(f"tcp inet→{vm}", "tcp", info.internet_netns, v.fip, dst_ns=v.netns, port=port)


def unconcerned_flows(info: LabInfo, exclude_vms: set[str] = frozenset(), exclude_routers: set[str] = frozenset(),
                      exclude_fip_subnets: set[str] = frozenset(), tcp: bool = True) -> list[Flow]:
    """Traffic a change must not touch: pings to the FIPs of every VM not excluded, pings out of
    every such VM that has a FIP, and one TCP stream to the first of them."""
    keep = [v for v in info.vms if v.fip and v.name not in exclude_vms and v.router not in exclude_routers
            and v.fip_subnet not in exclude_fip_subnets]
    flows = fip_flows(info, [v.name for v in keep]) + outbound_flows(info, [v.name for v in keep])
    if tcp and keep:
        flows.append(tcp_flow(info, keep[0].name))
    return flows


def summary(results: dict[str, FlowResult]) -> str:
    return "\n".join(r.line() for r in results.values())


__all__ = [
    "Flow",
    "FlowResult",
    "Traffic",
    "fip_flows",
    "outbound_flows",
    "summary",
    "tcp_flow",
    "unconcerned_flows",
]
