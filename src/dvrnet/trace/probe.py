"""What the trace asks the kernel, one namespace at a time (read-only): a route lookup with the
packet's inputs (`ip route get DST from SRC iif DEV mark M`), a neighbour entry, an element of an
nftables map, a sysctl, a device's MAC; in routed mode, what the namespace's BIRD announces."""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass

from ..kernel import netns, sysctl
from .hops import KernelAnswer


def _ip(ns: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=False)


def route_get(ns: str, dst: str, src: str, iif: str, mark: int) -> KernelAnswer:
    argv = ["route", "get", dst, "from", src, "iif", iif]
    if mark:
        argv += ["mark", hex(mark)]
    p = _ip(ns, *argv)
    err = (p.stderr.strip() or "no answer").splitlines()[-1]
    if p.returncode != 0 or not p.stdout.strip():
        return KernelAnswer(False, text=f"refused ({err})")
    try:
        r = json.loads(p.stdout)[0]
    except (ValueError, IndexError):
        return KernelAnswer(False, text=f"unreadable answer: {p.stdout.strip()[:100]}")
    if r.get("type") in ("blackhole", "unreachable", "prohibit"):
        return KernelAnswer(False, text=r["type"])
    table = str(r.get("table", "main"))
    text = " ".join(x for x in (dst, f"via {r['gateway']}" if r.get("gateway") else "", f"dev {r.get('dev')}",
                                f"table {table}") if x)
    return KernelAnswer(True, r.get("dev"), r.get("gateway"), table, text)


@dataclass(frozen=True)
class Neigh:
    mac: str | None
    state: str                   # "PERMANENT", "REACHABLE", ... or "none"

    def text(self) -> str:
        return "no entry" if self.mac is None and self.state == "none" else f"{self.mac or '-'} {self.state.lower()}"


def neighbour(ns: str, dev: str, ip: str) -> Neigh:
    p = _ip(ns, "neigh", "show", "to", ip, "dev", dev)
    try:
        rows = json.loads(p.stdout or "[]") if p.returncode == 0 else []
    except ValueError:
        rows = []
    for r in rows:
        if r.get("dst") == ip:
            return Neigh(r.get("lladdr"), ",".join(r.get("state") or ["none"]))
    return Neigh(None, "none")


_ELEM = re.compile(r"elements = \{\s*([^}]*?)\s*\}", re.DOTALL)


def map_value(ns: str, family: str, table: str, name: str, key: str) -> str | None:
    """The value of KEY in the nftables map NAME (None: no such element, table or namespace)."""
    if not netns.exists(ns):
        return None
    p = subprocess.run(netns.nsenter(ns) + ["nft", "get", "element", family, table, name, f"{{ {key} }}"],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return None
    m = _ELEM.search(p.stdout)
    if not m:
        return None
    for item in m.group(1).split(","):
        k, _, v = item.partition(":")
        if k.strip() == key:
            return v.strip() or None
    return None


def sysctl_value(ns: str, key: str) -> str | None:
    try:
        return sysctl.read(ns, [key]).get(key)
    except (OSError, netns.MissingNamespace):
        return None


def link_mac(ns: str, dev: str) -> str | None:
    p = _ip(ns, "link", "show", "dev", dev)
    try:
        rows = json.loads(p.stdout or "[]") if p.returncode == 0 else []
    except ValueError:
        return None
    return rows[0].get("address") if rows else None


def bird_announces(ns: str, prefix: str) -> list[tuple[str, str, str, bool]] | str:
    """(session, state, info, PREFIX announced on it) for each BGP session of NS's BIRD (asked on
    its control socket), or why it cannot be asked."""
    from ..kernel.bird import BirdError, command, sessions
    from ..plan.bird import paths
    try:
        out = []
        for s in sessions(ns):
            rows = command(paths(ns)["ctl"], f"show route export {s.name} {prefix}")
            out.append((s.name, s.state, s.info, any(t.split()[:1] == [prefix] for _c, t in rows)))
    except BirdError as e:
        return f"BIRD not answering ({e})"
    if not out and not os.path.exists(paths(ns)["ctl"]):
        return f"no BIRD control socket {paths(ns)['ctl']}"
    return out
