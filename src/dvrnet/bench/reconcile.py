"""Reconcile benchmark: one fip-/qrouter- pair with N FIPs (default 10,000).

Rows (one run, same machine, fresh namespaces each; namespaces `dvb<pid>-*` are removed at exit):
- cold apply: Reconciler.sync from empty (read + diff + apply; verify timed separately);
- raw floor: the same routes through one `ip -batch` and the same maps through one `nft -f`;
- Neutron's way: one `ip` process per route and one `nft` process per element pair, measured on
  min(N, 1000) objects and extrapolated linearly to N (stated in the output);
- no-change pass: time and number of writes (must be 0);
- add one FIP to the N-FIP state: plan → kernel (diff on a fresh read, apply).
Usage: python -m dvrnet.bench.reconcile [--quick] [-n N]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from ipaddress import IPv4Address

from dvrnet.kernel import Reconciler, netns
from dvrnet.kernel import nft as nft_kernel
from dvrnet.plan.state import Address, HostState, Link, Namespace, NftChain, NftMap, NftTable, Route
from dvrnet.reconcile import diff
from dvrnet.reconcile.nft_text import table_script
from dvrnet.reconcile.ops import RouteReplace


def fips(n: int) -> dict[str, str]:
    base_f, base_x = int(IPv4Address("100.80.0.0")), int(IPv4Address("10.128.0.0"))
    return {str(IPv4Address(base_f + i)): str(IPv4Address(base_x + i)) for i in range(n)}


def state(p: str, fipmap: dict[str, str]) -> HostState:
    fip, qr = f"{p}fip-ext", f"{p}qrouter-r1"
    f = Namespace(fip, links={"fpr-r1": Link("fpr-r1", "veth", qr, "rfp-r1")},
                  addresses=frozenset({Address("fpr-r1", "169.254.64.1/31")}),
                  routes=frozenset(Route(254, f"{a}/32", via="169.254.64.0", dev="fpr-r1", onlink=True)
                                   for a in fipmap))
    q = Namespace(qr, links={"rfp-r1": Link("rfp-r1", "veth", fip, "fpr-r1")},
                  addresses=frozenset({Address("rfp-r1", "169.254.64.0/31")}),
                  nft={("ip", "dvrnet"): NftTable("ip", "dvrnet", (
                      NftChain("pre_nat", "nat", "prerouting", -100, ('iifname "rfp-r1" dnat to ip daddr map @fip2fixed',)),
                      NftChain("post_nat", "nat", "postrouting", 100, ('oifname "rfp-r1" snat to ip saddr map @fixed2fip',))),
                      (NftMap("fip2fixed", "ipv4_addr", "ipv4_addr", frozenset(fipmap.items())),
                       NftMap("fixed2fip", "ipv4_addr", "ipv4_addr", frozenset((b, a) for a, b in fipmap.items()))))})
    return HostState("bench", {fip: f, qr: q})


def _sh(argv: list[str], stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, check=True, capture_output=True, text=True)


def _pair(p: str) -> tuple[str, str]:
    fip, qr = f"{p}fip-ext", f"{p}qrouter-r1"
    _sh(["ip", "netns", "add", fip]); _sh(["ip", "netns", "add", qr])
    _sh(["ip", "-n", fip, "link", "add", "fpr-r1", "type", "veth", "peer", "name", "rfp-r1", "netns", qr])
    for ns, dev, a in ((fip, "fpr-r1", "169.254.64.1/31"), (qr, "rfp-r1", "169.254.64.0/31")):
        _sh(["ip", "-n", ns, "link", "set", dev, "up"])
        _sh(["ip", "-n", ns, "address", "add", a, "dev", dev, "noprefixroute"])
    return fip, qr


def raw_floor(p: str, want: HostState) -> float:
    fip, qr = _pair(p)
    routes = [op.line() for op in diff(want, HostState("x", {}), p).ops if isinstance(op, RouteReplace)]
    script = table_script(want.namespaces[qr].nft[("ip", "dvrnet")], replace=False)
    t = time.perf_counter()
    _sh(["ip", "-n", fip, "-batch", "-"], "\n".join(routes) + "\n")
    _sh(netns.nsenter(qr) + ["nft", "-f", "-"], script)
    return time.perf_counter() - t


def neutron_way(p: str, want: HostState, sample: int) -> tuple[float, int]:
    fip, qr = _pair(p)
    script = table_script(NftTable("ip", "dvrnet", want.namespaces[qr].nft[("ip", "dvrnet")].chains,
                                   tuple(NftMap(m.name, m.key_type, m.data_type) for m in
                                         want.namespaces[qr].nft[("ip", "dvrnet")].maps)), replace=False)
    _sh(netns.nsenter(qr) + ["nft", "-f", "-"], script)
    items = sorted(want.namespaces[qr].nft[("ip", "dvrnet")].maps[0].elements)[:sample]
    t = time.perf_counter()
    for f, x in items:
        _sh(["ip", "-n", fip, "route", "add", f"{f}/32", "via", "169.254.64.0", "dev", "fpr-r1", "onlink", "proto", "94"])
        _sh(["ip", "netns", "exec", qr, "nft", (f"add element ip dvrnet fip2fixed {{ {f} : {x} }}; "
             f"add element ip dvrnet fixed2fip {{ {x} : {f} }}")])
    return time.perf_counter() - t, len(items)


def cleanup(prefix: str) -> None:
    for n in netns.list_names():
        if n.startswith(prefix):
            netns.delete(n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=1,000")
    ap.add_argument("-n", type=int, default=None)
    a = ap.parse_args(argv)
    n = a.n or (1000 if a.quick else 10000)
    if os.geteuid() != 0:
        print("needs root: creates network namespaces", file=sys.stderr)
        return 2
    top = f"dvb{os.getpid()}-"
    try:
        fm = fips(n)
        # cold apply through the reconciler
        p = top + "r-"
        r = Reconciler(p)
        want = state(p, fm)
        t = time.perf_counter()
        res = r.sync(want, verify=False)
        cold = time.perf_counter() - t
        assert not res.errors, res.errors[:3]
        t = time.perf_counter()
        vdiff = r.plan(want)
        verify_t = time.perf_counter() - t
        assert not vdiff, str(vdiff)[:2000]
        # no-change pass, steady state (nft generation unchanged since the last read)
        t = time.perf_counter()
        res0 = r.sync(want)
        nochange = time.perf_counter() - t
        # ... and the same with nft's tables listed again (a fresh agent process)
        nft_kernel._CACHE.clear()
        t = time.perf_counter()
        res0b = r.sync(want)
        nochange_cold = time.perf_counter() - t
        # add one FIP: plan → kernel
        extra = dict(fm)
        extra["100.95.255.1"] = "10.191.255.1"
        want1 = state(p, extra)
        observed = r.observe(want1)
        t = time.perf_counter()
        plan1 = diff(want1, observed, p)
        t_plan = time.perf_counter()
        errs1 = r.apply(plan1)
        add_one = time.perf_counter() - t_plan
        add_one_diff = t_plan - t
        assert not errs1 and not r.plan(want1), errs1
        floor = raw_floor(top + "f-", state(top + "f-", fm))
        sample = min(n, 1000)
        nt, cnt = neutron_way(top + "n-", state(top + "n-", fm), sample)
        neutron = nt * n / cnt
        print(f"reconcile benchmark: one fip-/qrouter- pair, N={n:,} FIPs "
              f"({n:,} fip /32 routes + {2 * n:,} NAT map elements)")
        print(f"  cold apply (read+diff+apply)  {cold * 1000:9.1f} ms   "
              f"[read {res.timings['read'] * 1000:.1f}, diff {res.timings['diff'] * 1000:.1f}, "
              f"apply {res.timings['apply'] * 1000:.1f} ms; {len(res.plan)} ops]")
        print(f"  raw floor (ip -batch + nft -f) {floor * 1000:8.1f} ms   cold/floor = {cold / floor:.2f}x")
        print(f"  Neutron's way (1 process/obj)  {neutron * 1000:8.0f} ms   neutron/cold = {neutron / cold:.1f}x"
              f"   (measured {cnt:,} FIPs in {nt:.2f} s, extrapolated linearly to {n:,})")
        print(f"  verify read+diff after apply   {verify_t * 1000:8.1f} ms   (diff empty)")
        print(f"  no-change pass                 {nochange * 1000:8.1f} ms   writes = {res0.plan.writes}, ops = {len(res0.plan)}"
              f"   (first pass of a fresh process, nft listed again: {nochange_cold * 1000:.1f} ms, "
              f"writes = {res0b.plan.writes})")
        print(f"  add one FIP (plan -> kernel)   {add_one * 1000:8.1f} ms   (computing the plan on the "
              f"full state: {add_one_diff * 1000:.1f} ms)  ops: " + "; ".join(str(o) for o in plan1)[:300])
        return 0
    finally:
        cleanup(top)


if __name__ == "__main__":
    sys.exit(main())
