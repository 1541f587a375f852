"""End to end: from the API call creating a FIP to packets flowing to it.

A lab (`dvrnet.lab.up.up`, the seed scenario, its own prefix and state dir, FIPs off) with its
server and long-running agents. For each of `count` FIPs, round-robin over the VMs that have an
external subnet for a FIP: the clock starts, `POST /v2.0/floatingips` for the VM's port, then
one `ping -i 0.005 -c 1 -w 10` from the internet host to the new address runs until its first
reply (5 ms resolution); the clock stops there. The FIP is then deleted and the benchmark waits
(untimed) until it stops answering. `lab down` removes everything, also on failure.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import httpx

from .stats import p50, pct


@dataclass
class E2EResult:
    latencies: list[float] = field(default_factory=list)     # seconds
    failures: int = 0
    error: str | None = None

    def pct(self, q: float) -> float:
        return pct(self.latencies, q)

    @property
    def p50(self) -> float:
        return p50(self.latencies)

    @property
    def p99(self) -> float:
        return self.pct(99)


def _ping_until(ns: str, addr: str, deadline: float) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.005", "-c", "1",
                           "-w", str(deadline), addr], capture_output=True, check=False).returncode == 0


def _answers(ns: str, addr: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "0.2", addr],
                          capture_output=True, check=False).returncode == 0


def one_sample(c: httpx.Client, info, vm, subnets: dict[str, dict]) -> float | None:
    """One FIP for VM's port: seconds from the API call to the first ping reply (None: no reply
    within 10 s); then the FIP is deleted and, untimed, waited for until it stops answering."""
    sub = subnets[vm.fip_subnet]
    t0 = time.perf_counter()
    r = c.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": sub["network_id"], "subnet_id": sub["id"], "port_id": vm.port_id,
        "description": "dvrnet bench"}})
    r.raise_for_status()
    fip = r.json()["floatingip"]
    ok = _ping_until(info.internet_netns, fip["floating_ip_address"], 10)
    lat = time.perf_counter() - t0
    c.delete(f"/v2.0/floatingips/{fip['id']}").raise_for_status()
    end = time.monotonic() + 10
    while time.monotonic() < end and _answers(info.internet_netns, fip["floating_ip_address"]):
        time.sleep(0.02)
    return lat if ok else None


def run(lab_prefix: str, count: int, progress=print, tick=None) -> E2EResult:
    """TICK (progress): called after each FIP."""
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    res = E2EResult()
    state_dir = tempfile.mkdtemp(prefix="dvrnet-bench-lab-")
    try:
        t = time.perf_counter()
        info = up(prefix=lab_prefix, state_dir=state_dir, fips=False)
        progress(f"  end to end: lab up in {time.perf_counter() - t:.1f}s")
        with httpx.Client(base_url=info.server_url, timeout=30) as c:
            subnets = {s["name"]: s for s in c.get("/v2.0/subnets").json()["subnets"]}
            vms = [v for v in info.vms if v.fip_subnet and v.fip_subnet in subnets]
            if not vms:
                raise RuntimeError("no VM with a FIP subnet in the lab")
            for i in range(count):
                lat = one_sample(c, info, vms[i % len(vms)], subnets)
                if lat is not None:
                    res.latencies.append(lat)
                else:
                    res.failures += 1
                if tick is not None:
                    tick()
                elif (i + 1) % 25 == 0:
                    progress(f"  end to end: {i + 1}/{count} FIPs")
    except Exception as e:  # noqa: BLE001 - reported in the table; the lab is removed below
        res.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        try:
            down(lab_prefix, state_dir)
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    return res
