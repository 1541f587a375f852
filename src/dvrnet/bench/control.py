"""Control plane on one node: cold convergence, a no-change pass, one FIP added, one external subnet
added, for N FIPs over 100 routers (`scale_cloud(routers=100, fips=N)` through the real planner,
applied by the real Reconciler: 100 qrouter- namespaces + the fip- namespace).

Three ways of applying the same desired state, each into its own namespaces (unique prefix):
- dvrnet: `Reconciler.sync` (read + diff + apply; verify is run after and must be empty);
- dvrnet, agent pass (incremental): what the agent does when a view arrives — its
  `HostPlanner.plan` (plan/incremental.py: re-plans only what changed; equal to `plan_host`),
  then `Reconciler(prefix, watch=True).sync` (netlink events say which namespaces changed; only
  those are read, verify included); measured after one untimed full pass;
- raw floor: the same objects, no read and no diff: one `ip -batch` for the namespaces, one
  `ip -n NS -batch` per namespace for its links, then per namespace one `ip -batch` of all its
  objects + one `nft -f` of its tables + its sysctls through /proc (no process), namespaces one
  after the other;
- Neutron's way: one process per object (`ip netns add`, `ip -n NS link/address/route/neigh …`,
  `ip netns exec NS sysctl -w`, and per FIP `ip rule add from <fixed> lookup 16` + an `iptables`
  DNAT and SNAT rule, one `iptables` per other rule). Gratuitous ARPs are left out of this row
  (Neutron runs one `arping` process per FIP; leaving it out favours Neutron). Measured in full
  at the smallest N; for larger N extrapolated from the measured cost per process and the exact
  process count of that N's plan (stated in the output).
"""
from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass, field

from dvrnet.kernel import Reconciler, netns, nft, sysctl
from dvrnet.plan import plan_host
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.incremental import HostPlanner
from dvrnet.plan.numbers import QR_FIP_TABLE
from dvrnet.plan.state import HostState
from dvrnet.reconcile import diff
from dvrnet.reconcile.ops import Garp, LinkAdd, NetnsAdd, NftElements, NftReplaceTable, Op, Plan, SysctlSet
from dvrnet.scenarios.scale import scale_cloud

ROUTERS = 100
HOST = "compute1"


def _sh(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def cfg(prefix: str) -> PlanConfig:
    return PlanConfig(netns_prefix=prefix, bridge_netns=prefix + "br")


def desired(prefix: str, n: int, extra_subnets: int = 0, routers: int = ROUTERS) -> HostState:
    return plan_host(scale_cloud(routers=routers, fips=n, extra_subnets=extra_subnets), HOST, cfg(prefix))


def make_bridges(prefix: str, want: HostState) -> None:
    """The node's bridge namespace and bridges (the node's environment, not dvrnet's, not timed)."""
    br = prefix + "br"
    bridges = sorted({lk.master for lk in want.namespaces[br].links.values() if lk.master})
    if _sh(["ip", "netns", "add", br]).returncode not in (0, 1):
        raise RuntimeError(f"ip netns add {br}")
    lines = [f"link add {b} type bridge" for b in bridges] + [f"link set {b} up" for b in bridges]
    p = _sh(["ip", "-n", br, "-force", "-batch", "-"], "\n".join(lines) + "\n")
    if p.returncode != 0 and "File exists" not in p.stderr:
        raise RuntimeError(p.stderr)


# --- raw floor --------------------------------------------------------------------------------
def _by_ns(ops: list[Op]) -> dict[str, list[Op]]:
    out: dict[str, list[Op]] = {}
    for op in ops:
        out.setdefault(op.ns, []).append(op)
    return out


def floor_apply(plan: Plan) -> tuple[float, int]:
    """Execute a plan with the fewest processes: returns (seconds, processes). Lines and scripts are
    rendered before the clock starts; errors raise."""
    ops = [op for op in plan if not isinstance(op, Garp)]
    adds = [op.line() for op in ops if isinstance(op, NetnsAdd)]
    link_adds = {ns: "\n".join(o.line() for o in v) + "\n"
                 for ns, v in _by_ns([op for op in ops if op.stage == 1 and isinstance(op, LinkAdd)]).items()}
    link_sets = {ns: "\n".join(o.line() for o in v) + "\n"
                 for ns, v in _by_ns([op for op in ops if op.stage == 1 and not isinstance(op, LinkAdd)]).items()}
    inner = []
    for ns, v in _by_ns([op for op in ops if op.stage == 2]).items():
        ip = "\n".join(o.line() for o in v if o.tool == "ip")
        scripts = "".join(o.script() for o in v if o.tool == "nft")              # type: ignore[attr-defined]  # tool "nft" ops have script()
        sysctls = [(o.key, o.value) for o in v if isinstance(o, SysctlSet)]
        inner.append((ns, ip + "\n" if ip else "", scripts, sysctls))
    if any(op.stage == 3 for op in ops):
        raise ValueError("floor_apply: plans with teardown are not used here")
    procs = 0

    def run(argv: list[str], stdin: str) -> None:
        nonlocal procs
        procs += 1
        p = _sh(argv, stdin)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()[:500]}")

    t = time.perf_counter()
    if adds:
        run(["ip", "-batch", "-"], "\n".join(adds) + "\n")
    for group in (link_adds, link_sets):
        for ns, text in group.items():
            run(["ip", "-n", ns, "-batch", "-"], text)
    for ns, ip, scripts, sysctls in inner:
        if ip:
            run(["ip", "-n", ns, "-batch", "-"], ip)
        if scripts:
            run(netns.nsenter(ns) + ["nft", "-f", "-"], scripts)
        if sysctls:
            errs = sysctl.write(ns, sysctls)
            if errs:
                raise RuntimeError(f"{ns}: {errs}")
    return time.perf_counter() - t, procs


# --- Neutron's way ----------------------------------------------------------------------------
def neutron_commands(plan: Plan) -> list[list[str]]:
    """One process per object, as Neutron's L3 agent does it (see the module docstring)."""
    cmds: list[list[str]] = []
    prio = 32768
    for op in plan:
        ns = op.ns
        if isinstance(op, NetnsAdd):
            cmds.append(["ip", "netns", "add", ns])
        elif op.tool == "ip":
            cmds.append(["ip", "-n", ns, *shlex.split(op.line())])
        elif isinstance(op, SysctlSet):
            cmds.append(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{op.key.replace('.', '/')}={op.value}"])
        elif isinstance(op, (NftReplaceTable, NftElements)):
            if isinstance(op, NftReplaceTable):
                rules = [r for c in op.table.chains for r in c.rules]
                cmds += [["ip", "netns", "exec", ns, "iptables", "-w", "-A", "FORWARD", "-j", "ACCEPT"]
                         for _ in rules]
                pairs = [(k, v) for m in op.table.maps if m.name == "fip2fixed" for k, v in sorted(m.elements)]
            else:
                pairs = [(k, v) for name, k, v in op.add if name == "fip2fixed"]
            rfp = "rfp-+"
            for fip, fixed in pairs:
                prio += 1
                cmds.append(["ip", "-n", ns, "rule", "add", "from", str(fixed), "lookup", str(QR_FIP_TABLE),
                             "priority", str(prio)])
                cmds.append(["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-A", "PREROUTING",
                             "-d", f"{fip}/32", "-i", rfp, "-j", "DNAT", "--to-destination", str(fixed)])
                cmds.append(["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING",
                             "-s", f"{fixed}/32", "-o", rfp, "-j", "SNAT", "--to-source", str(fip)])
        # Garp: left out (see module docstring)
    return cmds


def neutron_run(cmds: list[list[str]]) -> tuple[float, int]:
    """Run each command as its own process: (seconds, failures)."""
    bad = 0
    t = time.perf_counter()
    for c in cmds:
        if subprocess.run(c, capture_output=True, check=False).returncode != 0:
            bad += 1
    return time.perf_counter() - t, bad


# --- one N ------------------------------------------------------------------------------------
@dataclass
class ControlRow:
    n: int
    plan_s: float = 0.0                 # planner, plan_host on the full model
    ops: int = 0
    cold: float = 0.0
    cold_timings: dict = field(default_factory=dict)
    converged: bool = False
    nochange: float = 0.0
    nochange_writes: int = -1
    nochange_fresh: float = 0.0         # nft tables listed again (first pass of a new process)
    add_fip: float = 0.0
    add_fip_plan: float = 0.0
    add_subnet: float = 0.0
    add_subnet_plan: float = 0.0
    floor_cold: float = 0.0
    floor_procs: int = 0
    floor_add_fip: float = 0.0
    floor_add_subnet: float = 0.0
    neutron_procs: int = 0
    neutron_cold: float = 0.0
    neutron_measured: bool = False
    neutron_add_fip_procs: int = 0
    neutron_add_subnet_procs: int = 0
    errors: list[str] = field(default_factory=list)
    # agent pass, incremental (Reconciler(watch=True)): plan_host + sync, and sync alone
    inc_nochange: float = 0.0
    inc_nochange_sync: float = 0.0
    inc_nochange_writes: int = -1
    inc_add_fip: float = 0.0
    inc_add_fip_sync: float = 0.0
    inc_add_fip_read: int = 0           # namespaces read (in full or in part) by that pass
    inc_add_subnet: float = 0.0
    inc_add_subnet_sync: float = 0.0
    inc_converged: bool = False
    floor_inc_add_fip: float = 0.0
    floor_inc_add_subnet: float = 0.0


def cleanup(prefix: str) -> None:
    for n in netns.list_names():
        if n.startswith(prefix):
            netns.delete(n)


def run_n(top: str, n: int, progress=print) -> ControlRow:
    row = ControlRow(n)
    # dvrnet
    p = f"{top}d{n}-"
    try:
        t = time.perf_counter()
        want = desired(p, n)
        row.plan_s = time.perf_counter() - t
        make_bridges(p, want)
        r = Reconciler(p)
        t = time.perf_counter()
        res = r.sync(want, verify=False)
        row.cold = time.perf_counter() - t
        row.cold_timings, row.ops = res.timings, len(res.plan)
        row.errors += [str(e) for e in res.errors][:5]
        row.converged = not r.plan(want)
        t = time.perf_counter()
        res0 = r.sync(want)
        row.nochange, row.nochange_writes = time.perf_counter() - t, res0.plan.writes
        nft._CACHE.clear()
        t = time.perf_counter()
        r.sync(want)
        row.nochange_fresh = time.perf_counter() - t
        t = time.perf_counter()
        want1 = desired(p, n + 1)
        row.add_fip_plan = time.perf_counter() - t
        t = time.perf_counter()
        res1 = r.sync(want1, verify=False)
        row.add_fip = time.perf_counter() - t
        row.errors += [str(e) for e in res1.errors][:5]
        t = time.perf_counter()
        want2 = desired(p, n + 1, extra_subnets=1)
        row.add_subnet_plan = time.perf_counter() - t
        t = time.perf_counter()
        res2 = r.sync(want2, verify=False)
        row.add_subnet = time.perf_counter() - t
        row.errors += [str(e) for e in res2.errors][:5]
        if r.plan(want2):
            row.errors.append("dvrnet: not converged after adding a subnet")
        incremental(row, p, n)
    finally:
        cleanup(p)
    progress(f"  N={n:,}: dvrnet cold {row.cold:.2f}s, no-change {row.nochange:.2f}s")
    # raw floor
    p = f"{top}f{n}-"
    try:
        want = desired(p, n)
        make_bridges(p, want)
        row.floor_cold, row.floor_procs = floor_apply(diff(want, HostState(HOST, {}), p))
        want1 = desired(p, n + 1)
        row.floor_add_fip, _ = floor_apply(diff(want1, want, p))
        want2 = desired(p, n + 1, extra_subnets=1)
        row.floor_add_subnet, _ = floor_apply(diff(want2, want1, p))
        # the floor for the incremental row's changes (same objects, one more FIP / subnet)
        want3 = desired(p, n + 2, extra_subnets=1)
        row.floor_inc_add_fip, _ = floor_apply(diff(want3, want2, p))
        row.floor_inc_add_subnet, _ = floor_apply(diff(desired(p, n + 2, extra_subnets=2), want3, p))
    except RuntimeError as e:
        row.errors.append(f"floor: {e}")
    finally:
        cleanup(p)
    progress(f"  N={n:,}: floor cold {row.floor_cold:.2f}s")
    # Neutron's way: process counts (exact); the time is filled in by `neutron_measure`
    want = desired(f"{top}n{n}-", n)
    row.neutron_procs = len(neutron_commands(diff(want, HostState(HOST, {}), f"{top}n{n}-")))
    want1 = desired(f"{top}n{n}-", n + 1)
    row.neutron_add_fip_procs = len(neutron_commands(diff(want1, want, f"{top}n{n}-")))
    want2 = desired(f"{top}n{n}-", n + 1, extra_subnets=1)
    row.neutron_add_subnet_procs = len(neutron_commands(diff(want2, want1, f"{top}n{n}-")))
    return row


def incremental(row: ControlRow, p: str, n: int) -> None:
    """The agent's pass with incremental reads, on the namespaces that hold desired(n + 1, 1 subnet)."""
    def timed(fips: int, subnets: int) -> tuple[float, float, object]:
        cloud = scale_cloud(routers=ROUTERS, fips=fips, extra_subnets=subnets)   # the feed's decode: not timed
        t = time.perf_counter()
        want = planner.plan(cloud)                                                # as the agent plans
        t1 = time.perf_counter()
        res = r.sync(want)
        t2 = time.perf_counter()
        if not res.ok:
            row.errors += [str(e) for e in res.errors][:3] + list(res.differences)[:3]
        return t2 - t, t2 - t1, res
    planner = HostPlanner(HOST, cfg(p))
    with Reconciler(p, watch=True) as r:
        first = scale_cloud(routers=ROUTERS, fips=n + 1, extra_subnets=1)
        r.sync(planner.plan(first), full=True)                                     # opens the sockets
        row.inc_nochange, row.inc_nochange_sync, res = timed(n + 1, 1)
        row.inc_nochange_writes = res.plan.writes
        assert r.observer is not None
        row.inc_add_fip, row.inc_add_fip_sync, res = timed(n + 2, 1)
        row.inc_add_fip_read = len(r.observer.last_dirty)
        row.inc_add_subnet, row.inc_add_subnet_sync, res = timed(n + 2, 2)
        row.inc_converged = not Reconciler(p).plan(desired(p, n + 2, extra_subnets=2))


@dataclass
class NeutronSample:
    routers: int
    fips: int
    procs: int
    seconds: float
    failures: int

    @property
    def per_proc(self) -> float:
        return self.seconds / max(self.procs, 1)


def neutron_measure(top: str, routers: int, fips: int) -> NeutronSample:
    """Run Neutron's way in full for scale_cloud(routers, fips)."""
    p = f"{top}nm-"
    try:
        want = desired(p, fips, routers=routers)
        make_bridges(p, want)
        cmds = neutron_commands(diff(want, HostState(HOST, {}), p))
        secs, bad = neutron_run(cmds)
        return NeutronSample(routers, fips, len(cmds), secs, bad)
    finally:
        cleanup(p)
