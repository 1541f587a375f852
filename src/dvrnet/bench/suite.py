"""`dvrnet bench [--quick]`: control plane, data plane and end-to-end benchmarks, measured side by side
in one run on this machine; prints a table and writes an SVG plot. A benchmark, not a test: it
reports targets as met or missed and never fails on them.

Everything it creates is named `dvb<pid>…` (namespaces) or `dvb<pid>e-` (the lab) and removed by
name at the end, also on failure. Needs root.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time

from rich.table import Table

from ..console import Console, Text, console, styled
from ..kernel.connlimit import conntrack_max
from ..progress import Progress
from . import control, dataplane, e2e, e2e_scale, fanout, memory, noisy, routed
from .stats import p50, pct
from .svg import plot

FULL = {"sizes": (100, 1000, 10000), "neutron": (100, 100), "dp_sizes": (1, 1000, 10000), "rounds": 5,
        "lookups": 5000, "e2e": 100, "flow_s": 2.0, "noisy_flows": 200_000, "noisy_s": 10.0, "noisy_over": None,
        "routed": (200, 10000, 100, 10), "memory": (1000, 10), "e2e_scale": ((10, 1000, 10000), 150),
        "fanout": (1000, 100, 10000, 10, 10)}
QUICK = {"sizes": (100, 1000), "neutron": (5, 10), "dp_sizes": (1,), "rounds": 2, "lookups": 1000, "e2e": 5,
         "flow_s": 0.5, "noisy_flows": 2000, "noisy_s": 1.0, "noisy_over": 2000, "routed": (20, 1000, 5, 2),
         "memory": (20, 5), "e2e_scale": ((10, 30), 2), "fanout": (10, 3, 30, 2, 1)}


def exponent(ns: list[int], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(n)."""
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys) if y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else float("nan")


def _ms(s: float) -> str:
    if math.isnan(s):
        return "—"
    return f"{s * 1000:,.0f} ms" if s >= 0.1 else f"{s * 1000:,.1f} ms"


def _verdict(ok: bool) -> tuple[str, str]:
    return ("met", "green") if ok else ("missed", "red")


def _rate(v: float, what: str) -> str:
    if math.isnan(v):
        return "—"
    if what == "tcp":
        return f"{v / 1e9:.2f}"
    return f"{v / 1000:,.1f}k" if v >= 10000 else f"{v:,.0f}"


def _dataplane_tables(out: Console, dp: list[dataplane.DataRow]) -> None:
    direct = next((d for d in dp if d.name == "direct"), None)
    t = Table(title="2. Data plane: through a qrouter- namespace with N FIPs (medians of interleaved rounds)")
    cols = ("layout", "reachable", "ip route get µs", "ping -f rt/s", "TCP Gbit/s", "UDP 18 B pkt/s",
            "new conn/s", "runs (UDP kpkt/s)")
    for col in cols:
        t.add_column(col, justify="left" if col in ("layout", "runs (UDP kpkt/s)") else "right")
    for d in dp:
        cells = []
        for what in ("tcp", "udp", "crr"):
            cell = _rate(d.med(what), what)
            if dataplane.generator_limited(d, direct, what):
                cells.append(styled(cell, " ", ("(gen)", "yellow")))
            else:
                cells.append(Text(cell))
        t.add_row(d.label, "yes" if d.ok else Text("NO", style="red"), "—" if math.isnan(d.route_get_med)
                  else f"{d.route_get_med:.1f}", f"{d.pps_med:,.0f}", *cells,
                  " ".join(f"{x / 1000:.0f}" for x in d.udp), end_section=d.name in ("direct", "floor"))
    out.print(t)
    out.print("  (gen): within 10% of the generator alone (first row, same rounds): limited by the generator, "
              "a lower bound of the path, not a comparison")
    for d in dp:
        for e in dict.fromkeys(d.errors):
            out.print(styled("  ", ("error", "red"), f" {d.label}: {e}"))
    by = {(d.name, d.n): d for d in dp}
    sizes = sorted({d.n for d in dp if d.name == "dvrnet"})
    if not sizes:
        return
    lo, hi = sizes[0], sizes[-1]
    dv_lo, dv_hi = by[("dvrnet", lo)], by[("dvrnet", hi)]
    pp = dv_lo.pps_med / dv_hi.pps_med - 1
    out.print(styled(f"  target: dvrnet ping -f at N={hi:,} within 10% of N={lo} (+ = slower): {pp:+.0%} ",
                     _verdict(abs(pp) <= 0.10)))
    for what, name in (("tcp", "TCP"), ("udp", "UDP")):
        parts = []
        for n in sizes:
            dv, ne = by[("dvrnet", n)], by.get(("neutron", n))
            if ne is None:
                continue
            ratio = dv.med(what) / ne.med(what) if ne.med(what) else float("nan")
            need = 0.97 if n == lo else 2.0
            gen = " (gen-limited)" if dataplane.generator_limited(dv, direct, what) else ""
            if parts:
                parts.append("; ")
            parts += [f"N={n:,} {ratio:.2f}× (≥ {need:g}×) ", _verdict(ratio >= need), gen]
        out.print(styled(f"  target {name}: dvrnet / Neutron's layout: ", *parts))
    fl, st = by.get(("floor", 0)), by.get(("stateless", hi))
    if fl and st:
        ratio = st.med("udp") / fl.med("udp") if fl.med("udp") else float("nan")
        gen = dataplane.generator_limited(st, direct, "udp") or dataplane.generator_limited(fl, direct, "udp")
        out.print(styled(f"  target: stateless UDP at N={hi:,} ≥ 0.95× the floor: {ratio:.2f}× ",
                         _verdict(ratio >= 0.95 and not gen),
                         " (generator-limited: not a measurement)" if gen else ""))


def _noisy_table(out: Console, nn: list[noisy.NoisyResult]) -> None:
    t = Table(title="4. Noisy neighbour: one VM holds established UDP flows; another VM behind the same router "
                    "connects and pings every 10 ms")
    for col in ("limits", "flows tried", "held", "conntrack entries", "noisy VM drops", "pings lost",
                "connections failed", "slowest connect"):
        t.add_column(col, justify="left" if col == "limits" else "right")
    for r in nn:
        t.add_row(r.limits, f"{r.flows:,}", f"{r.held:,}", f"{r.conntrack:,}", f"{r.noisy_drops:,}",
                  f"{r.lost} of {r.pings}", f"{r.failed} of {r.connects}", f"{r.worst_connect_ms:.1f} ms")
    out.print(t)
    for r in nn:
        if r.error:
            out.print(styled("  ", ("error", "red"), f" {r.label}: {r.error}"))
    d = nn[0]
    out.print(styled("  target with default limits: 0 lost, 0 failed: ",
                     _verdict(not d.error and d.pings > 0 and d.lost == 0 and d.failed == 0)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dvrnet bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (< 2 min): N up to 1,000, few rounds")
    ap.add_argument("--plot", default="dvrnet-bench.svg", help="where to write the SVG plot")
    ap.add_argument("--skip", action="append", default=[],      # the same names as cli.BENCH_SECTIONS
                    choices=["control", "dataplane", "noisy", "e2e", "routed", "memory", "e2e-scale", "fanout"])
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("dvrnet bench needs root: it creates network namespaces", file=sys.stderr)
        return 2
    k = QUICK if a.quick else FULL
    out = console(width=150) if not sys.stdout.isatty() else console()
    prog = Progress.for_stream(sys.stderr)
    say = prog.say
    top = f"dvb{os.getpid()}"
    t_start = time.perf_counter()
    load = os.getloadavg()[0]
    rows: list[control.ControlRow] = []
    sample = None
    dp: list[dataplane.DataRow] = []
    nn: list[noisy.NoisyResult] = []
    ee = None
    rr = None
    mm = None
    es = None
    fo = None
    try:
        if "control" not in a.skip:
            say(f"control plane: N = {', '.join(f'{n:,}' for n in k['sizes'])} FIPs over {control.ROUTERS} routers")
            with prog.task("control plane sizes", len(k["sizes"])) as tick:
                for n in k["sizes"]:
                    rows.append(control.run_n(top + "-", n, say))
                    tick()
            r_s, f_s = k["neutron"]
            say(f"control plane: Neutron's way, one process per object, routers={r_s}, FIPs={f_s}")
            sample = control.neutron_measure(top + "-", r_s, f_s)
            for row in rows:
                row.neutron_cold = row.neutron_procs * sample.per_proc
                row.neutron_measured = (r_s, f_s) == (control.ROUTERS, row.n)
                if row.neutron_measured:
                    row.neutron_cold = sample.seconds
        if "dataplane" not in a.skip:
            say("data plane: building the configurations")
            with prog.task("data plane rounds", k["rounds"]) as tick:
                dp = dataplane.run(top + "-", k["dp_sizes"], k["rounds"], k["lookups"], say, tick,
                                   flow_seconds=k["flow_s"])
        if "noisy" not in a.skip:
            say(f"noisy neighbour: {k['noisy_flows']:,} held flows, probes for {k['noisy_s']:g} s")
            # without limits the noisy VM tries more flows than the table holds: the failure limits prevent
            over = k["noisy_over"] or int((conntrack_max() or 262144) * 1.1)
            nn = [noisy.run(top + "-nn", k["noisy_flows"], k["noisy_s"], True, say),
                  noisy.run(top + "-nn", over, k["noisy_s"], False, say)]
        if "e2e" not in a.skip:
            say(f"end to end: a lab, {k['e2e']} FIPs")
            with prog.task("end to end FIPs", k["e2e"]) as tick:
                ee = e2e.run(f"{top}e-", k["e2e"], say, tick)
        if "routed" not in a.skip and shutil.which("bird"):
            singles, bulk, count, moves = k["routed"]
            say(f"routed mode: {singles} single /32s, {bulk:,} at once, {count} FIPs through the API, "
                f"{moves} migrations")
            with prog.task("routed FIPs", count) as tick:
                rr = routed.run(f"{top}r", singles, bulk, count, moves, say, tick)
        if "memory" not in a.skip:
            cycles, warmup = k["memory"]
            say(f"agent memory: one agent, {cycles:,} FIP create/delete cycles")
            with prog.task("agent memory cycles", cycles) as tick:
                mm = memory.run(cycles, warmup, say, tick, prefix=f"{top}m-")
        if "e2e-scale" not in a.skip:
            sizes, samples = k["e2e_scale"]
            say(f"end to end at N: a lab holding {', '.join(f'{n:,}' for n in sizes)} FIPs, {samples} samples each")
            with prog.task("end to end at N samples", len(sizes) * samples) as tick:
                es = e2e_scale.run(f"{top}s-", sizes, samples, say, tick)
        if "fanout" not in a.skip:
            hosts, routers, fips, fs, ss = k["fanout"]
            say(f"fan-out: one server, {fips:,} FIPs over {routers} routers, {hosts:,} hosts following the feed")
            with prog.task("fan-out changes", fs + ss + 1) as tick:
                fo = fanout.run(hosts, routers, fips, fs, ss, say, tick)
    finally:
        control.cleanup(top + "-")

    out.print(styled((f"dvrnet bench{' --quick' if a.quick else ''}", "bold"),
                     f"  ({os.cpu_count()} CPUs, load {load:.2f} at start, {time.perf_counter() - t_start:.0f} s)"))
    if rows:
        t = Table(title="1. Control plane, one node: N FIPs over 100 routers (101 namespaces)")
        for col in ("N", "row", "cold", "no change", "+1 FIP", "+1 external subnet", "processes", "vs dvrnet"):
            t.add_column(col, justify="right" if col not in ("row",) else "left")
        for r in rows:
            t.add_row(f"{r.n:,}", "dvrnet", _ms(r.cold), f"{_ms(r.nochange)} ({r.nochange_writes} writes)",
                      _ms(r.add_fip), _ms(r.add_subnet), "", "1×")
            t.add_row("", "dvrnet, agent pass (incremental)", "—",
                      f"{_ms(r.inc_nochange)} ({r.inc_nochange_writes} writes)", _ms(r.inc_add_fip),
                      _ms(r.inc_add_subnet), "",
                      f"+1 FIP/floor {r.inc_add_fip / r.floor_inc_add_fip:.1f}×" if r.floor_inc_add_fip else "—")
            t.add_row("", "raw floor", _ms(r.floor_cold), "—", _ms(r.floor_add_fip), _ms(r.floor_add_subnet),
                      f"{r.floor_procs:,}", f"dvrnet/floor {r.cold / r.floor_cold:.2f}×" if r.floor_cold else "—")
            pp = sample.per_proc if sample else float("nan")
            t.add_row("", "Neutron's way" + ("" if r.neutron_measured else " (extrap.)"),
                      _ms(r.neutron_cold), "—", _ms(r.neutron_add_fip_procs * pp),
                      _ms(r.neutron_add_subnet_procs * pp), f"{r.neutron_procs:,}",
                      f"{r.neutron_cold / r.cold:.0f}× slower" if r.cold else "—", end_section=True)
        out.print(t)
        ns = [r.n for r in rows]
        e_d, e_f, e_n = (exponent(ns, [r.cold for r in rows]), exponent(ns, [r.floor_cold for r in rows]),
                         exponent(ns, [r.neutron_cold for r in rows]))
        out.print(f"fitted exponent of cold cost vs N (log-log least squares): dvrnet {e_d:.2f}, "
                  f"raw floor {e_f:.2f}, Neutron's way {e_n:.2f}")
        for r in rows:
            out.print(f"  N={r.n:,}: planner {_ms(r.plan_s)}; dvrnet cold = read {_ms(r.cold_timings.get('read', 0))} "
                      f"+ diff {_ms(r.cold_timings.get('diff', 0))} + apply {_ms(r.cold_timings.get('apply', 0))} "
                      f"({r.ops:,} ops), verify diff empty: {r.converged}; no-change with nft listed again: "
                      f"{_ms(r.nochange_fresh)}; +1 FIP planning {_ms(r.add_fip_plan)}"
                      + (f"; errors: {r.errors[:3]}" if r.errors else ""))
            out.print(f"  N={r.n:,}: agent pass (incremental) = planner + sync: no change {_ms(r.inc_nochange)} "
                      f"(sync {_ms(r.inc_nochange_sync)}), +1 FIP {_ms(r.inc_add_fip)} (sync "
                      f"{_ms(r.inc_add_fip_sync)}, {r.inc_add_fip_read} namespaces read; floor "
                      f"{_ms(r.floor_inc_add_fip)}), +1 subnet {_ms(r.inc_add_subnet)} (sync "
                      f"{_ms(r.inc_add_subnet_sync)}; floor {_ms(r.floor_inc_add_subnet)}); converged: {r.inc_converged}")
        if sample:
            out.print(f"  Neutron's way measured on routers={sample.routers}, FIPs={sample.fips}: "
                      f"{sample.procs:,} processes in {sample.seconds:.1f} s = {sample.per_proc * 1000:.1f} ms "
                      f"per process ({sample.failures} failed); other N = their exact process count × that cost "
                      "(gratuitous ARP processes left out)")
        big = rows[-1]
        out.print(styled(f"  targets at N={big.n:,}: dvrnet ≤ 2× floor: ", _verdict(big.cold <= 2 * big.floor_cold),
                         f" ({big.cold / big.floor_cold:.2f}×); ≥ 20× faster than Neutron's way: ",
                         _verdict(big.neutron_cold >= 20 * big.cold), f" ({big.neutron_cold / big.cold:.0f}×); "
                         "near-linear (exponent ≤ 1.1): ", _verdict(e_d <= 1.1)))
    if dp:
        _dataplane_tables(out, dp)
    if ee is not None:
        t = Table(title="3. End to end: API call → first ping reply from the internet host")
        for col in ("FIPs", "p50", "p99", "max", "failures"):
            t.add_column(col, justify="right")
        t.add_row(str(len(ee.latencies) + ee.failures), _ms(ee.p50), _ms(ee.p99),
                  _ms(max(ee.latencies)) if ee.latencies else "—", str(ee.failures))
        out.print(t)
        if ee.error:
            out.print(styled("  ", ("error:", "red"), f" {ee.error}"))
        out.print(styled("  target p99 ≤ 1 s: ", _verdict(ee.p99 <= 1.0 and not ee.failures and not ee.error)))
    if nn:
        _noisy_table(out, nn)
    if rr is not None:
        _routed_table(out, rr)
    if mm is not None:
        _memory_table(out, mm)
    if es is not None:
        _scale_table(out, es)
    if fo is not None:
        _fanout_table(out, fo)
    plot(a.plot, rows, dp, ee, es)
    out.print(f"plot: {a.plot}")
    return 0


def _memory_table(out: Console, m: memory.MemoryResult) -> None:
    t = Table(title="6. Agent memory: one agent against a real server, FIP create/delete cycles")
    for col in ("cycles", f"RSS after {m.warmup}", "RSS at the end", "growth", "cycle p50", "target"):
        t.add_column(col, justify="right")
    mib = 2 ** 20
    t.add_row(f"{m.cycles:,}", f"{m.rss_warm / mib:.1f} MiB", f"{m.rss_end / mib:.1f} MiB",
              f"{m.growth / mib:+.1f} MiB", _ms(m.cycle_p50),
              styled("growth ≤ 5 MiB ", _verdict(not m.error and m.rss_end > 0 and m.growth <= 5 * mib)))
    out.print(t)
    if m.samples:
        out.print("  RSS by cycle: " + ", ".join(f"{i:,}: {b / mib:.1f} MiB" for i, b in m.samples))
    if m.error:
        out.print(styled("  ", ("error:", "red"), f" {m.error}"))


def _scale_table(out: Console, es: e2e_scale.ScaleResult) -> None:
    t = Table(title="7. End to end at N FIPs: +1 FIP API call → first ping reply from the internet host")
    for col in ("FIPs held", "samples", "p50", "p99", "max", "failures", "agents converged after adding"):
        t.add_column(col, justify="right")
    for r in es.rows:
        e = r.result
        t.add_row(f"{r.n:,}", str(len(e.latencies) + e.failures), _ms(e.p50), _ms(e.p99),
                  _ms(max(e.latencies)) if e.latencies else "—", str(e.failures), f"{r.converge_s:.1f} s")
    out.print(t)
    if es.error:
        out.print(styled("  ", ("error:", "red"), f" {es.error}"))
    done = [r for r in es.rows if r.result.latencies]
    if len(done) >= 2:
        lo, hi = done[0], done[-1]
        ok = hi.result.p99 <= 0.100 and not hi.result.failures
        ratio = hi.result.p99 / lo.result.p99 if lo.result.p99 else float("nan")
        out.print(styled(f"  target p99 ≤ 100 ms at N={hi.n:,}: ", _verdict(ok), f" ({_ms(hi.result.p99)}); within 1.5× "
                         f"of p99 at N={lo.n:,}: ", _verdict(ratio <= 1.5), f" ({ratio:.2f}×)"))


def _fanout_table(out: Console, fo: fanout.FanoutResult) -> None:
    t = Table(title=f"8. Fan-out: one server with {fo.fips:,} FIPs over {fo.routers} routers, {fo.hosts + 1:,} hosts "
                    "long-polling the delta feed (asyncio clients)")
    for col in ("change", "samples", "hosts concerned", "others woken", "bytes / concerned host",
                "bytes / other host", "server CPU", "concerned host has it p50", "p99", "last host (median)"):
        t.add_column(col, justify="left" if col == "change" else "right")
    for st in (fo.warmup, fo.fip, fo.subnet):
        t.add_row(st.what, str(st.samples), f"{fanout.med(st.concerned):,.0f}", f"{max(st.others_woken, default=0):,}",
                  f"{fanout.med(st.bytes_concerned):,.0f}", f"{max(st.bytes_others, default=0):,.1f}",
                  (_ms(fanout.med(st.cpu)) if fanout.cpu_measurable(st) else
                   f"({_ms(fanout.med(st.cpu_raw))} − {_ms(fanout.med(st.idle_part))} idle)"),
                  _ms(pct(st.latency, 50)), _ms(pct(st.latency, 99)),
                  _ms(fanout.med(st.last)))
    out.print(t)
    out.print(f"  server idle with every follower parked: {fo.idle_cpu_rate * 1000:.1f} ms CPU/s (subtracted; a "
              f"cell in parentheses: raw − idle share, not a measurement); database seeded in {fo.seed_s:.1f} s")
    for st in (fo.warmup, fo.fip, fo.subnet):
        for e in st.errors[:3]:
            out.print(styled("  ", ("error", "red"), f" {st.what}: {e}"))
    if fo.error:
        out.print(styled("  ", ("error:", "red"), f" {fo.error}"))
    f, s = fo.fip, fo.subnet
    if f.samples:
        out.print(styled("  targets +1 FIP: ≤ 4 KB per concerned host ", _verdict(fanout.med(f.bytes_concerned) <= 4096),
                         "; ≤ 100 B to the others ", _verdict(max(f.bytes_others, default=0) <= 100),
                         "; server CPU ≤ 5 ms ", _verdict(fanout.med(f.cpu) <= 0.005) if fanout.cpu_measurable(f)
                         else "not measured (the server's idle share is too large at this load)",
                         "; p99 ≤ 200 ms ", _verdict(pct(f.latency, 99) <= 0.200)))
    if s.samples:
        out.print(styled("  target +1 external subnet: every host has it, p99 ≤ 500 ms ",
                         _verdict(pct(s.latency, 99) <= 0.500 and not s.errors)))


def _routed_table(out: Console, rr: routed.RoutedResult) -> None:
    t = Table(title="5. Routed mode (BGP, BIRD 2, the agent's and the lab ToR's configurations)")
    for col in ("what", "samples", "p50", "p99 / max", "target"):
        t.add_column(col, justify="left" if col in ("what", "target") else "right")
    k = rr.kernel_to_tor
    t.add_row("kernel /32 → route on the ToR", str(len(k)), _ms(p50(k)), _ms(pct(k, 99)),
              styled("p99 ≤ 50 ms ", _verdict(pct(k, 99) <= 0.050)) if k else "—")
    a = rr.api_to_tor
    t.add_row("API call → route on the ToR", str(len(a)), _ms(p50(a)), _ms(pct(a, 99)),
              styled("p99 ≤ 150 ms ", _verdict(pct(a, 99) <= 0.150)) if a else "—")
    g = rr.migration_gaps
    t.add_row("VM migration under ping -i 0.01: longest gap", str(len(g)), _ms(p50(g)),
              _ms(max(g)) if g else "—", styled("≤ 100 ms ", _verdict(bool(g) and max(g) <= 0.100)) if g else "—")
    t.add_row(f"{rr.bulk_n:,} /32s at once → all on the ToR", "1", _ms(rr.bulk_announce), "",
              styled("≤ 1 s ", _verdict(rr.bulk_announce <= 1.0)) if rr.bulk_n else "—")
    t.add_row(f"{rr.bulk_n:,} /32s deleted → all gone from the ToR", "1", _ms(rr.bulk_withdraw), "", "")
    t.add_row("BIRD CPU per single change (node / ToR)", str(2 * len(k)),
              f"{rr.cpu_node_per_change * 1000:.2f} / {rr.cpu_tor_per_change * 1000:.2f} ms", "", "measured")
    t.add_row(f"BIRD CPU for {rr.bulk_n:,} at once (node / ToR)", "1",
              f"{rr.cpu_node_bulk * 1000:.0f} / {rr.cpu_tor_bulk * 1000:.0f} ms", "", "measured")
    out.print(t)
    if rr.migration_lost:
        out.print(f"  migrations: pings lost per move {rr.migration_lost}; failures (no route within 10 s): "
                  f"{rr.failures}")
    if rr.error:
        out.print(styled("  ", ("error:", "red"), f" {rr.error}"))


if __name__ == "__main__":
    sys.exit(main())
