"""End to end at N FIPs: +1 FIP API call -> first ping reply, with the lab holding N FIPs.

One lab (`lab.up`, the seed scenario plus the extra subnets and networks of `--extra-fips`
(`resources.with_extra_fips`), the seed's VMs without FIPs, its own prefix and state dir). For
each size N, ascending: extra FIPs (ports without VMs on compute1/compute2, bulk requests) are
added until the cloud holds N, the agents are waited for until every node's kernel matches its
desired state (`steps.wait_converged`), then `samples` times, round-robin over the VMs that have
an external subnet for a FIP: the clock starts, `POST /v2.0/floatingips` for the VM's port, one
`ping -i 0.005` from the internet host to the new address until its first reply (5 ms
resolution), the clock stops; the FIP is deleted and the benchmark waits (untimed) until it stops
answering (`e2e.py`'s sample). p50/p99/max per N. `lab down` removes everything, also on failure.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field

import httpx

from .e2e import E2EResult, one_sample


@dataclass
class ScaleRow:
    n: int
    result: E2EResult = field(default_factory=E2EResult)
    converge_s: float = float("nan")     # from the last extra FIP request to every node converged


@dataclass
class ScaleResult:
    rows: list[ScaleRow] = field(default_factory=list)
    up_s: float = float("nan")
    error: str | None = None


def _topology(c: httpx.Client):
    """The lab's Topology as `resources.create_extra_fips` needs it, read back from the API."""
    from ..lab.resources import Topology, _ok
    nets = _ok(c.get("/v2.0/networks"))["networks"]
    subs = _ok(c.get("/v2.0/subnets"))["subnets"]
    ext = next(n for n in nets if n["router:external"])
    topo = Topology(external_network=ext)
    topo.external_subnets = {s["name"]: s for s in subs if s["network_id"] == ext["id"]}
    by_id = {n["id"]: n for n in nets}
    for s in subs:
        net = by_id.get(s["network_id"])
        if net is not None and not net["router:external"]:
            topo.networks[net["name"]] = net
            topo.subnets[net["name"]] = s
    return topo


def run(lab_prefix: str, sizes: tuple[int, ...], samples: int, progress=print, tick=None) -> ScaleResult:
    """TICK (progress): called after each sample."""
    from ..lab import resources
    from ..lab.down import down
    from ..lab.info import LabInfo
    from ..lab.steps import wait_converged
    from ..lab.up import up
    from ..scenarios.seed import SEED
    res = ScaleResult()
    state_dir = tempfile.mkdtemp(prefix="dvrnet-bench-lab-")
    try:
        t = time.perf_counter()
        info = up(prefix=lab_prefix, state_dir=state_dir, scenario=resources.with_extra_fips(SEED), fips=False)
        res.up_s = time.perf_counter() - t
        progress(f"  end to end at N: lab up in {res.up_s:.1f}s")
        with httpx.Client(base_url=info.server_url, timeout=120) as c:
            topo = _topology(c)
            subnets = {s["name"]: s for s in c.get("/v2.0/subnets").json()["subnets"]}
            vms = [v for v in info.vms if v.fip_subnet and v.fip_subnet in subnets]
            if not vms:
                raise RuntimeError("no VM with a FIP subnet in the lab")
            held = 0
            for n in sorted(sizes):
                row = ScaleRow(n)
                res.rows.append(row)
                if n > held:
                    progress(f"  end to end at N: {n - held:,} more FIPs (to {n:,})")
                    resources.create_extra_fips(c, topo, resources.with_extra_fips(SEED), n - held, start=held)
                    held = n
                t = time.perf_counter()
                wait_converged(LabInfo.load(state_dir), timeout=600)
                row.converge_s = time.perf_counter() - t
                progress(f"  end to end at N={n:,}: agents converged {row.converge_s:.1f}s after the last request")
                for i in range(samples):
                    lat = one_sample(c, info, vms[i % len(vms)], subnets)
                    if lat is None:
                        row.result.failures += 1
                    else:
                        row.result.latencies.append(lat)
                    if tick is not None:
                        tick()
    except Exception as e:  # noqa: BLE001 - reported in the table; the lab is removed below
        res.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        try:
            down(lab_prefix, state_dir)
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    return res
