"""Fan-out of the delta feed: one server, many hosts following it, one change.

One `dvrnet server` process (loopback, its own SQLite file) holds `fanout_cloud(hosts, routers,
fips)`: `routers` distributed routers, each with one tenant /16 and its SNAT on `network1`
(dvr_snat); `fips` VMs with a FIP each, VM i on router i % routers, each router's VMs on
hosts // routers of the `hosts` dvr hosts (so every host holds one router, and every host has an
agent-gateway port); the external network has a service subnet for the agent-gateway ports, a
subnet for the routers' gateways and one for the FIPs, plus one spare VM port per FIP sample.

Every host (the dvr hosts and network1) is followed by a lightweight client in this process (one
asyncio task per host with its own keep-alive connection, the HTTP/1.1 request and answer written
and read by hand, not an agent; httpx cost the bench ~7 ms of its own CPU per answer, so with
1,001 followers in one process the bench, not the server, set the latency): it long-polls
`GET /v2.0/dvrnet/hosts/<h>/changes?since=<cursor>&wait=300` and records, per answer, when it
came and its body size (uncompressed, headers excluded). Every follower starts from the cursor of
one snapshot (a follower needs no snapshot to measure deltas).

Per change, with every follower parked in its long-poll and the server idle (≤ 30 ms CPU per
second over half a second: it has answered every request so far): the clock and the server's CPU time
(/proc/<pid>/task/*/schedstat, all threads, nanoseconds) start, the change is made over the API,
and the window closes once no answer has come for `QUIET` seconds. Concerned hosts: those whose
answer had a non-empty delta; "others woken": hosts answered in the window without one. Reported:
payload bytes per concerned host (median) and per other host (sum over the others / their
number), hosts woken, the server's CPU from the request until the last concerned host had its
answer (its idle rate over the same time subtracted: the SQLite revision poller), and the time
from the request to each concerned host's answer (p50/p99 over all samples' hosts). The first write
after the server started pays for what the server builds lazily (its Workspace of the whole cloud,
the change log's `ViewTracker`): one +1 FIP before the samples, reported apart (`warmup`).
(a) one FIP created for a spare VM port (concerns the port's host alone: model/placement.py), then
deleted untimed; (b) one external subnet added (concerns every host), then deleted untimed.
Everything is in a temporary directory; the server is stopped by its PID, also on failure.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from urllib.parse import quote

import httpx

from ..model import (
    AgentMode,
    Cloud,
    DeviceOwner,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    Network,
    Port,
    Router,
    Subnet,
)
from ..model.placement import fip_host, router_hosts
from ..scenarios.seed import seed_id
from .stats import cpu_seconds, pct

QUIET = 0.5           # seconds without an answer that close a change's window
IDLE_BOUND = 0.03     # server CPU seconds per second below which it counts as idle
WAIT = 300            # the followers' long-poll (the server's maximum)


@dataclass
class ChangeStats:
    what: str
    samples: int = 0
    concerned: list[int] = field(default_factory=list)        # hosts with a non-empty delta, per sample
    others_woken: list[int] = field(default_factory=list)     # hosts answered without one, per sample
    bytes_concerned: list[int] = field(default_factory=list)  # body size, every concerned answer
    bytes_others: list[float] = field(default_factory=list)   # per sample: bytes to the others / their number
    cpu: list[float] = field(default_factory=list)            # server CPU seconds per sample, idle rate subtracted
    cpu_raw: list[float] = field(default_factory=list)        # the same, nothing subtracted
    idle_part: list[float] = field(default_factory=list)      # what was subtracted
    latency: list[float] = field(default_factory=list)        # seconds, every concerned answer
    last: list[float] = field(default_factory=list)           # seconds until the last concerned host, per sample
    errors: list[str] = field(default_factory=list)


@dataclass
class FanoutResult:
    hosts: int
    routers: int
    fips: int
    fip: ChangeStats = field(default_factory=lambda: ChangeStats("+1 FIP"))
    subnet: ChangeStats = field(default_factory=lambda: ChangeStats("+1 external subnet"))
    warmup: ChangeStats = field(default_factory=lambda: ChangeStats("+1 FIP, the first write after the server started"))
    idle_cpu_rate: float = 0.0        # server CPU seconds per second with every follower parked
    seed_s: float = 0.0
    error: str | None = None



def med(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def cpu_measurable(st: ChangeStats) -> bool:
    """The server's CPU per change is a measurement only when what its idle rate accounts for is
    under a fifth of what it spent (a loaded machine makes the idle rate and the windows large)."""
    return bool(st.cpu_raw) and med(st.idle_part) < 0.2 * med(st.cpu_raw)


def host_names(hosts: int) -> list[str]:
    return [f"h{i:04d}" for i in range(hosts)]


def fanout_cloud(hosts: int, routers: int, fips: int, spare_ports: int) -> Cloud:
    """The cloud described in the module doc, with agent-gateway ports settled by the Workspace
    (the server's own rule) and validated."""
    from ..ops import Workspace
    if routers > 250 or fips > 60_000 or hosts > 4000:
        raise ValueError("fanout_cloud: at most 250 routers, 60,000 FIPs and 4,000 hosts")
    ext = Network(seed_id("network", "public"), "public", external=True)
    svc = Subnet(seed_id("subnet", "fg-service"), ext.id, IPv4Network("100.64.0.0/20"), None,
                 service_types=(DeviceOwner.AGENT_GATEWAY.value,), name="fg-service")
    red = Subnet(seed_id("subnet", "red"), ext.id, IPv4Network("203.0.113.0/24"), IPv4Address("203.0.113.1"), name="red")
    pool = Subnet(seed_id("subnet", "fip-pool"), ext.id, IPv4Network("100.96.0.0/16"), IPv4Address("100.96.0.1"),
                  name="fip-pool")
    nets, subs, rtrs, ports, fls = [ext], [svc, red, pool], [], [], []
    names = host_names(hosts)
    hs = [Host(h, AgentMode.DVR) for h in names] + [Host("network1", AgentMode.DVR_SNAT)]
    per = max(1, -(-hosts // routers))          # every host holds a router
    tenant = []
    for r in range(routers):
        rid = seed_id("router", f"r{r}")
        net = Network(seed_id("network", f"t{r}"), f"t{r}", mtu=1450)
        sub = Subnet(seed_id("subnet", f"t{r}"), net.id, IPv4Network(f"10.{r}.0.0/16"), IPv4Address(f"10.{r}.0.1"))
        nets.append(net)
        subs.append(sub)
        tenant.append((net, sub))
        gw = Port(seed_id("port", f"gw{r}"), ext.id, DeviceOwner.ROUTER_GATEWAY.value, rid, "network1",
                  (FixedIP(red.id, IPv4Address("203.0.113.10") + r),), _mac(r, 0xf1))
        rtrs.append(Router(rid, f"r{r}", gateway=ExternalGateway(ext.id, gw.fixed_ips)))
        ports += [gw, Port(seed_id("port", f"qr{r}"), net.id, DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value, rid, "",
                           (FixedIP(sub.id, sub.gateway_ip),), _mac(r, 0xf2)),
                  Port(seed_id("port", f"sg{r}"), net.id, DeviceOwner.ROUTER_SNAT.value, rid, "network1",
                       (FixedIP(sub.id, sub.gateway_ip + 1),), _mac(r, 0xf3))]

    def host_of(i: int, r: int) -> str:
        return names[(r * per + (i // routers) % per) % hosts]
    for i in range(fips + spare_ports):
        r = i % routers
        net, sub = tenant[r]
        fixed = sub.gateway_ip + 2 + i // routers
        pid = seed_id("port", f"vm{i}")
        ports.append(Port(pid, net.id, "compute:nova", seed_id("server", f"vm{i}"), host_of(i, r),
                          (FixedIP(sub.id, fixed),), _mac(i, 0x10 + (i >> 16)), f"vm{i}" if i < fips else f"spare{i - fips}"))
        if i < fips:
            fls.append(FloatingIP(seed_id("floatingip", f"f{i}"), ext.id, IPv4Address("100.96.0.2") + i, pool.id,
                                  pid, fixed, rtrs[r].id))
    ws = Workspace(Cloud.of(nets, subs, rtrs, ports, fls, hs))
    ws.register_host("network1", "dvr_snat")       # one change: the server settles the agent-gateway ports
    return ws.snapshot()


def _router_of(cloud: Cloud, port_id: str) -> str:
    """The router with an interface on the subnet of PORT_ID's first fixed IP."""
    sid = cloud.ports[port_id].fixed_ips[0].subnet_id
    return next(p.device_id for p in cloud.ports_by_subnet.get(sid, ())
                if p.device_owner == DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value)


def _fip_concerns(cloud: Cloud, port_id: str) -> set[str]:
    """The hosts a FIP created for spare port PORT_ID concerns, by the one placement: the host
    serving it (`fip_host`, its port's), when its router is placed there."""
    port = cloud.ports[port_id]
    rid = _router_of(cloud, port_id)
    ext = cloud.routers[rid].gateway
    assert ext is not None
    f = FloatingIP("bench-probe", ext.network_id, IPv4Address("0.0.0.0"), "", port_id,
                   port.fixed_ips[0].ip_address, rid)
    host = fip_host(cloud, f)
    return {host} if host is not None and host in router_hosts(cloud, rid) else set()


def _mac(n: int, kind: int) -> str:
    return f"fa:16:3e:{kind:02x}:{(n >> 8) & 0xff:02x}:{n & 0xff:02x}"


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _quiesce(pid: int, bound: float, timeout: float = 120.0) -> None:
    """Until the server spends at most BOUND CPU seconds per second over half a second: parked
    followers are not enough, the server may still be answering their last requests."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(0.5)
        if (cpu_seconds(pid) - c0) / (time.monotonic() - t0) <= bound:
            return


class _Conn:
    """One follower's keep-alive HTTP/1.1 connection: a GET and its answer (Content-Length bodies,
    what the server sends), reconnecting when the server closed it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status, length, close = int(lines[0].split(b" ", 2)[1]), 0, False
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"connection":
                    close = v.strip().lower() == b"close"
            body = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Followers:
    """One long-polling task per host; `answers` collects (monotonic time, host, bytes, non-empty)."""

    def __init__(self, url: str, hosts: list[str], cursor: str):
        u = httpx.URL(url)
        self.conns = {h: _Conn(u.host, u.port or 80) for h in hosts}
        self.cursor = {h: cursor for h in hosts}
        self.answers: list[tuple[float, str, int, bool]] = []
        self.parked: set[str] = set()
        self.errors: list[str] = []
        self.news = asyncio.Event()
        self.tasks = [asyncio.create_task(self._follow(h)) for h in hosts]

    async def _follow(self, host: str) -> None:
        conn = self.conns[host]
        while True:
            self.parked.add(host)
            target = f"/v2.0/dvrnet/hosts/{host}/changes?since={quote(self.cursor[host], safe='')}&wait={WAIT}"
            try:
                status, data = await asyncio.wait_for(conn.get(target), WAIT + 30)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as e:
                self.parked.discard(host)
                self.errors.append(f"{host}: {type(e).__name__}: {e}"[:200])
                await asyncio.sleep(1)
                continue
            self.parked.discard(host)
            now = time.monotonic()
            if status != 200:
                self.errors.append(f"{host}: {status} {data[:200]!r}")
                await asyncio.sleep(1)
                continue
            body = json.loads(data)
            self.cursor[host] = body["cursor"]
            non_empty = bool(body.get("upserts") or body.get("deletes") or body.get("resync"))
            self.answers.append((now, host, len(data), non_empty))
            self.news.set()

    async def settle(self, timeout: float = 60.0) -> None:
        """Until every follower is parked and nothing has come for QUIET seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            n = len(self.answers)
            await asyncio.sleep(QUIET)
            if n == len(self.answers) and len(self.parked) == len(self.cursor):
                return

    async def until(self, start: int, expected: set[str], timeout: float = 60.0) -> set[str]:
        """Wait until every host in EXPECTED has had a non-empty answer after answer number START;
        returns those still missing after TIMEOUT seconds."""
        missing = set(expected)
        seen = start
        end = time.monotonic() + timeout
        while missing:
            for a in self.answers[seen:]:
                if a[3]:
                    missing.discard(a[1])
            seen = len(self.answers)
            if not missing:
                break
            self.news.clear()
            try:
                await asyncio.wait_for(self.news.wait(), max(0.0, end - time.monotonic()))
            except TimeoutError:
                break
        return missing

    def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for c in self.conns.values():
            c.close()


async def _measure(url: str, pid: int, res: FanoutResult, names: list[str], spare: list[str],
                   concerned_fip: list[set[str]], concerned_subnet: set[str], fip_samples: int, subnet_samples: int, progress, tick) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as api:
        # (a new connection per change: the server closes keep-alive connections idle for 5 s)
        first = (await api.get("/v2.0/dvrnet/hosts/network1/changes")).json()
        ext = next(n for n in (await api.get("/v2.0/networks")).json()["networks"] if n["router:external"])
        pool = next(s for s in (await api.get("/v2.0/subnets")).json()["subnets"] if s["name"] == "fip-pool")
        fol = Followers(url, names, first["cursor"])
        try:
            await fol.settle(timeout=120)
            await _quiesce(pid, IDLE_BOUND, timeout=600)     # the first long-polls are all answered
            c0, t0 = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(3.0)
            res.idle_cpu_rate = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
            progress(f"  fan-out: {len(names):,} followers parked; server idle CPU {res.idle_cpu_rate * 1000:.1f} ms/s")

            async def one(st: ChangeStats, expected: set[str], do, undo) -> None:
                await fol.settle()
                await _quiesce(pid, max(IDLE_BOUND, 2 * res.idle_cpu_rate))   # the last change's re-polls are done
                start = len(fol.answers)
                c0, t0 = cpu_seconds(pid), time.monotonic()
                try:
                    made = await do()
                except httpx.HTTPError as e:
                    st.errors.append(f"the change failed: {type(e).__name__}: {e}"[:200])
                    return
                missing = await fol.until(start, expected)
                t1 = time.monotonic()
                cpu = cpu_seconds(pid) - c0
                await asyncio.sleep(QUIET)          # answers to hosts it does not concern, if any
                got = fol.answers[start:]
                concerned = [a for a in got if a[3] and a[1] in expected]
                others = [a for a in got if a[1] not in expected or not a[3]]
                first_by_host: dict[str, float] = {}
                for a in concerned:
                    first_by_host.setdefault(a[1], a[0] - t0)
                st.samples += 1
                st.concerned.append(len(first_by_host))
                st.others_woken.append(len({a[1] for a in others}))
                st.bytes_concerned += [a[2] for a in concerned]
                n_others = len(names) - len(expected)
                st.bytes_others.append(sum(a[2] for a in others) / n_others if n_others else 0.0)
                st.latency += list(first_by_host.values())
                st.last.append(max(first_by_host.values(), default=float("nan")))
                st.cpu.append(max(0.0, cpu - res.idle_cpu_rate * (t1 - t0)))
                st.cpu_raw.append(cpu)
                st.idle_part.append(res.idle_cpu_rate * (t1 - t0))
                if missing:
                    st.errors.append(f"{len(missing)} concerned hosts had nothing after 60 s, e.g. {sorted(missing)[:3]}")
                await undo(made)
                if tick is not None:
                    tick()

            for k in [fip_samples, *range(fip_samples)]:        # the extra spare port first: the warm-up
                async def do_fip(k=k):
                    r = await api.post("/v2.0/floatingips", json={"floatingip": {
                        "floating_network_id": ext["id"], "subnet_id": pool["id"], "port_id": spare[k]}})
                    r.raise_for_status()
                    return r.json()["floatingip"]["id"]

                async def undo_fip(fid):
                    (await api.delete(f"/v2.0/floatingips/{fid}")).raise_for_status()
                await one(res.warmup if k == fip_samples else res.fip, concerned_fip[k], do_fip, undo_fip)
            for k in range(subnet_samples):
                async def do_sub(k=k):
                    r = await api.post("/v2.0/subnets", json={"subnet": {
                        "network_id": ext["id"], "cidr": f"100.{110 + k}.0.0/24", "ip_version": 4,
                        "name": f"bench-extra-{k}"}})
                    r.raise_for_status()
                    return r.json()["subnet"]["id"]

                async def undo_sub(sid):
                    (await api.delete(f"/v2.0/subnets/{sid}")).raise_for_status()
                await one(res.subnet, concerned_subnet, do_sub, undo_sub)
            await fol.settle()
        finally:
            fol.stop()
            res.fip.errors += fol.errors[:5]


def run(hosts: int, routers: int, fips: int, fip_samples: int, subnet_samples: int, progress=print,
        tick=None) -> FanoutResult:
    res = FanoutResult(hosts, routers, fips)
    d = tempfile.mkdtemp(prefix="dvrnet-bench-fanout-")
    proc = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        need = 2 * hosts + 200          # the followers' sockets here and the server's (a child inherits)
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), max(hard, need)), max(hard, need)))
        t = time.perf_counter()
        cloud = fanout_cloud(hosts, routers, fips, fip_samples + 1)
        from ..store import Change, Store
        url_db = f"sqlite:///{d}/dvrnet.db"
        store = Store(url_db)
        store.write(lambda s: Change(None, Cloud(cloud.networks, cloud.subnets, cloud.routers, cloud.ports,
                                                 cloud.floatingips, cloud.hosts, s.revision)))
        store.close()
        res.seed_s = time.perf_counter() - t
        progress(f"  fan-out: {fips:,} FIPs, {routers} routers, {hosts:,} hosts in the database ({res.seed_s:.1f}s)")
        port = _free_port()
        dvrnet = os.path.join(os.path.dirname(sys.executable), "dvrnet")
        with open(os.path.join(d, "server.log"), "w") as log:      # the child keeps its own descriptor
            proc = subprocess.Popen([dvrnet, "server", "--bind", f"127.0.0.1:{port}", "--db", url_db,
                                     "--state-dir", d], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dvrnet server exited with {proc.returncode}")
            try:
                if httpx.get(url + "/", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("dvrnet server not answering after 60 s")
            time.sleep(0.1)
        spare = sorted(p.id for p in cloud.ports.values() if p.name.startswith("spare"))
        spare.sort(key=lambda i: int(cloud.ports[i].name[5:]))
        concerned = [_fip_concerns(cloud, p) for p in spare]
        everyone = set().union(*(router_hosts(cloud, r) for r in cloud.routers)) | {"network1"}
        asyncio.run(_measure(url, proc.pid, res, host_names(hosts) + ["network1"], spare, concerned, everyone, fip_samples,
                             subnet_samples, progress, tick))
    except Exception as e:  # noqa: BLE001 - reported in the table; the server is stopped below
        res.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        shutil.rmtree(d, ignore_errors=True)
    return res


def main() -> int:
    """`python -m dvrnet.bench.fanout [HOSTS ROUTERS FIPS]`: the rows alone."""
    a = [int(x) for x in sys.argv[1:4]] or [1000, 100, 10_000]
    r = run(*a, fip_samples=10, subnet_samples=10)
    for st in (r.warmup, r.fip, r.subnet):
        print(f"{st.what}: samples {st.samples}, concerned {st.concerned}, others woken {st.others_woken}, "
              f"bytes/concerned {med(st.bytes_concerned):.0f}, bytes/other {med(st.bytes_others):.1f}, "
              f"server CPU {med(st.cpu) * 1e3:.1f} ms, latency p50 {pct(st.latency, 50) * 1e3:.0f} ms "
              f"p99 {pct(st.latency, 99) * 1e3:.0f} ms, last {med(st.last) * 1e3:.0f} ms; errors {st.errors[:2]}")
    print(f"idle {r.idle_cpu_rate * 1e3:.1f} ms/s; error {r.error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
