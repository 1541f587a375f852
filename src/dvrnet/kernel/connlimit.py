"""What the connection limits (plan/connlimit.py) see right now in one namespace: per VM its
connections, limit and drops; per router the same. For `dvrnet show --limits`; read-only.

- connections of a fixed IP: conntrack entries of the namespace whose original source is that IP
  (outbound) or whose reply source is that IP while the original destination is not (DNATed
  inbound), read from /proc/net/nf_conntrack inside the namespace; the router's: the namespace's
  nf_conntrack_count. TCP entries in CLOSE or TIME_WAIT are left out, as `ct count` leaves them
  out. (`ct count` keeps its own lists, which drop a closed connection only when
  they are next walked: both can differ briefly.)
- limit: from the planned rules (`numgen inc mod K ct count over P` is a limit of K * P);
- drops: the counters in the dynamic set `vm_drops` and the router rule's counter.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from dvrnet.plan.numbers import NFT_TABLE
from dvrnet.plan.state import NftTable

from . import netns

_VM_RULE = re.compile(r"ip saddr @(vms\w*) add @\w+ \{ ip saddr \. numgen inc mod (\d+) ct count over (\d+) \}")
_RT_RULE = re.compile(r"^add @rt_conns \{ numgen inc mod (\d+) ct count over (\d+) \}")


@dataclass(frozen=True)
class VmUsage:
    ip: str
    connections: int
    limit: int | None            # None: no per-VM limit
    drops: int


@dataclass(frozen=True)
class Usage:
    namespace: str
    connections: int             # nf_conntrack_count of the namespace
    conntrack_max: int
    router_limit: int | None
    router_drops: int
    vms: tuple[VmUsage, ...]


def limits_of(table: NftTable) -> tuple[dict[str, int], int | None]:
    """({fixed IP: limit}, router limit) that TABLE's conn_limit chain enforces."""
    sets = {m.name: m for m in table.maps}
    per_ip: dict[str, int] = {}
    router = None
    for c in table.chains:
        if c.name != "conn_limit_new":
            continue
        for r in c.rules:
            m = _VM_RULE.search(r)
            if m and m.group(1) in sets:
                for ip, _ in sets[m.group(1)].elements:
                    per_ip[ip] = int(m.group(2)) * int(m.group(3))
            m = _RT_RULE.search(r)
            if m:
                router = int(m.group(1)) * int(m.group(2))
    return per_ip, router


def _conntrack(ns: str) -> tuple[Counter, int, int]:
    def body() -> tuple[Counter, int, int]:
        per: Counter = Counter()
        try:
            with open("/proc/thread-self/net/nf_conntrack") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 5 and parts[2] == "tcp" and parts[5] in ("CLOSE", "TIME_WAIT"):
                        continue                   # closed: `ct count` does not count it either
                    srcs = [p[4:] for p in parts if p.startswith("src=")]
                    dsts = [p[4:] for p in parts if p.startswith("dst=")]
                    if not srcs:
                        continue
                    per[srcs[0]] += 1
                    if len(srcs) > 1 and dsts and srcs[1] != dsts[0]:
                        per[srcs[1]] += 1
        except FileNotFoundError:
            pass
        vals = []
        for k in ("nf_conntrack_count", "nf_conntrack_max"):
            try:
                with open(f"/proc/sys/net/netfilter/{k}") as f:
                    vals.append(int(f.read()))
            except (FileNotFoundError, ValueError):
                vals.append(0)
        return per, vals[0], vals[1]
    return netns.run_in(ns, body)


def _nft_json(ns: str, *args: str) -> list[dict]:
    p = subprocess.run(netns.nsenter(ns) + ["nft", "-j", "list", *args], capture_output=True, text=True,
                       check=False)
    if p.returncode != 0:
        return []
    return json.loads(p.stdout).get("nftables", [])


def drops(ns: str) -> tuple[dict[str, int], int]:
    """({fixed IP: dropped new connections}, dropped by the router limit)."""
    per: dict[str, int] = {}
    for it in _nft_json(ns, "set", "ip", NFT_TABLE, "vm_drops"):
        for e in it.get("set", {}).get("elem", []):
            el = e.get("elem", {}) if isinstance(e, dict) else {}
            if "val" in el:
                per[str(el["val"])] = int(el.get("counter", {}).get("packets", 0))
    router = 0
    for it in _nft_json(ns, "chain", "ip", NFT_TABLE, "conn_limit_new"):
        rule = it.get("rule")
        if not rule:
            continue
        exprs = rule.get("expr", [])
        if any("set" in x and x["set"].get("set") == "@rt_conns" for x in exprs):
            router += sum(int(x["counter"].get("packets", 0)) for x in exprs
                          if isinstance(x.get("counter"), dict))
    return per, router


def conntrack_max() -> int | None:
    """net.netfilter.nf_conntrack_max of this kernel (every namespace sees the same, read-only
    inside namespaces); None when conntrack is not loaded."""
    try:
        with open("/proc/sys/net/netfilter/nf_conntrack_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def usage(ns: str, table: NftTable, vm_ips: Iterable[str] = ()) -> Usage:
    """Usage in namespace NS of the limits TABLE (the planned dvrnet table) enforces, for every
    fixed IP it limits, every one in VM_IPS (limited or not) and every one with drops."""
    per_ip, router = limits_of(table)
    conns, count, cmax = _conntrack(ns)
    per_drop, rdrop = drops(ns)
    ips = sorted(set(per_ip) | set(per_drop) | set(vm_ips), key=lambda s: tuple(int(x) for x in s.split(".")))
    return Usage(ns, count, cmax, router, rdrop,
                 tuple(VmUsage(ip, conns.get(ip, 0), per_ip.get(ip), per_drop.get(ip, 0)) for ip in ips))
