"""Agent memory (issue 11 item 6): one real `dvrnet agent` process following a real `dvrnet server`
(SQLite, loopback), through N floating IP create/delete cycles; its RSS after the first `WARMUP`
cycles against its RSS after all of them (target: growth ≤ 5 MiB over 1,000 cycles).

One cycle: `POST /v2.0/floatingips` on a VM port bound to the agent's host, wait until the FIP's
/32 is in the agent's fip- namespace (the agent applied it), `DELETE` it, wait until the /32 is gone.
RSS is VmRSS from /proc/<agent pid>/status, read when the agent has just converged (after the
delete). Root: the agent creates namespaces (prefix `dvbm<pid>-`, removed afterwards).

    python -m dvrnet.bench.memory [--cycles 1000] [--warmup 10]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx

from dvrnet.kernel import netns
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.names import fip_ns
from dvrnet.wire.codec import cloud_from_json

HOST = "compute1"


@dataclass
class MemoryResult:
    cycles: int = 0
    warmup: int = 0
    rss_warm: int = 0                   # bytes, after the warm-up cycles
    rss_end: int = 0                    # bytes, after every cycle
    samples: list[tuple[int, int]] = field(default_factory=list)    # (cycle, RSS bytes)
    cycle_p50: float = 0.0              # seconds per create/delete cycle (both applied)
    error: str | None = None

    @property
    def growth(self) -> int:
        return self.rss_end - self.rss_warm


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _ok(r: httpx.Response) -> dict:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}")
    return r.json() if r.content else {}


def _topology(c: httpx.Client) -> tuple[str, str]:
    """(external network id, VM port id) of a one-router cloud with the VM on HOST."""
    _ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": HOST, "mode": "dvr"}}))
    ext = _ok(c.post("/v2.0/networks", json={"network": {"name": "ext", "router:external": True}}))["network"]["id"]
    for cidr, extra in (("203.0.113.0/24", {}),
                        ("100.64.0.0/24", {"gateway_ip": None, "service_types": ["network:floatingip_agent_gateway"]})):
        _ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": ext, "cidr": cidr, **extra}}))
    r = _ok(c.post("/v2.0/routers", json={"router": {"name": "r", "external_gateway_info": {"network_id": ext}}}))["router"]["id"]
    net = _ok(c.post("/v2.0/networks", json={"network": {"name": "t"}}))["network"]["id"]
    sub = _ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net, "cidr": "10.0.0.0/24"}}))["subnet"]["id"]
    _ok(c.put(f"/v2.0/routers/{r}/add_router_interface", json={"subnet_id": sub}))
    port = _ok(c.post("/v2.0/ports", json={"port": {"network_id": net, "device_owner": "compute:nova",
                                                     "binding:host_id": HOST}}))["port"]["id"]
    return ext, port


def _bridges(prefix: str, c: httpx.Client) -> None:
    """The node's bridge namespace and bridges (its environment, as bench/control.py makes it)."""
    cloud = cloud_from_json(_ok(c.get(f"/v2.0/dvrnet/hosts/{HOST}/view"))["cloud"])
    want = plan_host(cloud, HOST, PlanConfig(netns_prefix=prefix, bridge_netns=prefix + "br"))
    br = prefix + "br"
    bridges = sorted({lk.master for lk in want.namespaces[br].links.values() if lk.master})
    subprocess.run(["ip", "netns", "add", br], capture_output=True, check=False)
    lines = [f"link add {b} type bridge" for b in bridges] + [f"link set {b} up" for b in bridges]
    subprocess.run(["ip", "-n", br, "-force", "-batch", "-"], input="\n".join(lines) + "\n", text=True,
                   capture_output=True, check=False)


def _has_route(ns: str, dst: str) -> bool:
    p = subprocess.run(["ip", "-n", ns, "-j", "route", "show", "table", "main", "exact", dst],
                       capture_output=True, text=True, check=False)
    return p.returncode == 0 and bool(json.loads(p.stdout or "[]"))


def _until(pred, timeout: float, what: str, alive) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if not alive():
            raise RuntimeError(f"the agent exited while waiting for {what}")
        if time.monotonic() > end:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.01)


def run(cycles: int = 1000, warmup: int = 10, progress=print, tick=None, prefix: str | None = None) -> MemoryResult:
    res = MemoryResult(cycles=cycles, warmup=warmup)
    prefix = prefix or f"dvbm{os.getpid()}-"
    work = tempfile.mkdtemp(prefix="dvrnet-bench-memory-")
    bin_ = os.path.join(os.path.dirname(sys.executable), "dvrnet")
    procs: list[subprocess.Popen] = []
    try:
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        log = open(os.path.join(work, "server.log"), "w")      # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([bin_, "server", "--bind", f"127.0.0.1:{port}", "--db",
                                       f"sqlite:///{work}/dvrnet.db", "--state-dir", work],
                                      stdout=log, stderr=subprocess.STDOUT))
        with httpx.Client(base_url=url, timeout=30) as c:
            _until(lambda: _up(c), 30, "the server to answer", lambda: procs[0].poll() is None)
            ext, vm = _topology(c)
            _bridges(prefix, c)
            ready = os.path.join(work, "ready")
            alog = open(os.path.join(work, "agent.log"), "w")  # noqa: SIM115 - closed with the process
            agent = subprocess.Popen([bin_, "agent", "--host", HOST, "--mode", "dvr", "--server", url,
                                      "--netns-prefix", prefix, "--bridge-netns", prefix + "br",
                                      "--ready-file", ready, "--log-level", "WARNING"],
                                     stdout=alog, stderr=subprocess.STDOUT)
            procs.append(agent)
            alive = lambda: agent.poll() is None
            _until(lambda: os.path.exists(ready), 60, "the agent's first converged pass", alive)
            ns = fip_ns(prefix, ext)
            times = []
            for i in range(1, cycles + 1):
                t = time.perf_counter()
                fip = _ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext,
                                                                            "port_id": vm}}))["floatingip"]
                dst = fip["floating_ip_address"]
                _until(lambda dst=dst: _has_route(ns, dst), 30, f"cycle {i}: {dst} applied", alive)
                _ok(c.delete(f"/v2.0/floatingips/{fip['id']}"))
                _until(lambda dst=dst: not _has_route(ns, dst), 30, f"cycle {i}: {dst} removed", alive)
                times.append(time.perf_counter() - t)
                if i == warmup:
                    res.rss_warm = rss(agent.pid)
                if i == warmup or i % max(1, cycles // 10) == 0 or i == cycles:
                    res.samples.append((i, rss(agent.pid)))
                    progress(f"  cycle {i:,}: agent RSS {rss(agent.pid) / 2**20:.1f} MiB")
                if tick is not None:
                    tick()
            res.rss_end = rss(agent.pid)
            times.sort()
            res.cycle_p50 = times[len(times) // 2]
    except (RuntimeError, OSError, httpx.HTTPError) as e:
        res.error = str(e)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for n in netns.list_names():
            if n.startswith(prefix):
                netns.delete(n)
        shutil.rmtree(work, ignore_errors=True)
    return res


def _up(c: httpx.Client) -> bool:
    try:
        return c.get("/v2.0/networks").status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dvrnet.bench.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=10)
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the memory benchmark needs root: the agent creates network namespaces", file=sys.stderr)
        return 2
    r = run(a.cycles, a.warmup)
    print(f"agent RSS after {r.warmup} cycles {r.rss_warm / 2**20:.1f} MiB, after {r.cycles:,} "
          f"{r.rss_end / 2**20:.1f} MiB: growth {r.growth / 2**20:+.1f} MiB (target ≤ 5 MiB); "
          f"cycle p50 {r.cycle_p50 * 1000:.0f} ms" + (f"; error: {r.error}" if r.error else ""))
    return 1 if r.error else 0


if __name__ == "__main__":
    sys.exit(main())
