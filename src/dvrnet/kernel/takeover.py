"""Taking a node over from neutron-l3-agent, kernel side: read what upstream's agent may have left
in the namespaces dvrnet is about to own, and remove it (which objects are upstream's is decided
by the pure `reconcile/takeover.py`).

`NeutronState` is what the reconciler of an agent carries (`Reconciler(neutron=...)`): on each
plan until one finds nothing of upstream's, it reads every managed namespace of the observed
state (routes and rules of any protocol, iptables/ip6tables through iptables-save, a few
sysctls, haproxy processes in it) and then either
- without `adopt` (the default): raises `NeutronStateFound` naming the first upstream object,
  before anything is applied — the node is left exactly as it is;
- with `adopt` (`--adopt-neutron-state`): adds their removal to the plan (`takeover.merge`).
Once a read finds nothing it is not done again by this agent (a node dvrnet runs holds none of
upstream's objects). Cost of a read: one `ip` dump per namespace, `iptables-save` only where
iptables tables exist (seen from nftables' table list, or /proc/net/ip*_tables_names for the
legacy kind), one /proc scan.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dvrnet.plan.state import HostState
from dvrnet.reconcile.ops import Op, Plan
from dvrnet.reconcile.ownership import Ownership
from dvrnet.reconcile.takeover import (
    SYSCTLS,
    Found,
    Seen,
    SeenChain,
    SeenProcess,
    SeenRoute,
    SeenRule,
    UpstreamIptablesDel,
    UpstreamPeerAdopt,
    UpstreamProcStop,
    UpstreamRouteDel,
    UpstreamRuleDel,
    UpstreamSysctlReset,
    VethRekey,
    find,
    merge,
    takeover_plan,
)

from . import iproute, netns, nft, sysctl
from .process import terminate
from .read import table_num

log = logging.getLogger("dvrnet.takeover")
IPT_TABLES = frozenset({"raw", "mangle", "nat", "filter", "security"})
_RULE_KEYS = frozenset({"priority", "src", "srclen", "iif", "table", "protocol", "flags"})
_GONE = ("No such process", "No such file or directory", "Cannot find device", "does not exist",
         "No chain/target/match by that name", "Bad rule")


class NeutronStateFound(RuntimeError):
    """A node holds neutron-l3-agent's objects and the agent was not told to take them over."""


# --- reading ---------------------------------------------------------------------------------
def _routes(items: list[dict]) -> tuple[SeenRoute, ...]:
    out = []
    for r in items:
        dst = r.get("dst", "")
        if ":" in dst:
            continue
        out.append(SeenRoute(table_num(r.get("table")), dst, str(r.get("protocol", "boot")), r.get("dev"),
                             r.get("gateway"), r.get("type", "unicast"), int(r.get("metric", 0))))
    return tuple(out)


def _rules(items: list[dict]) -> tuple[SeenRule, ...]:
    out = []
    for r in items:
        src = r.get("src")
        src = None if src in (None, "all") else (f"{src}/{r['srclen']}" if "srclen" in r else src)
        table = r.get("table")
        try:
            tnum = table_num(table) if table is not None else None
        except ValueError:
            tnum = None
        out.append(SeenRule(int(r["priority"]), str(r.get("protocol", "")), tnum, src, r.get("iif"),
                            bool(set(r) - _RULE_KEYS)))
    return tuple(out)


def _iptables_tables(ns: str) -> dict[str, set[str]]:
    """{family: iptables tables present} without running iptables: nftables' table list (the
    nf_tables kind) and the legacy kind's /proc/net/ip*_tables_names."""
    out: dict[str, set[str]] = {"ip": set(), "ip6": set()}
    for fam, name in nft.list_tables(ns):
        if fam in out and name in IPT_TABLES:
            out[fam].add(name)

    def legacy() -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        for fam, path in (("ip", "/proc/net/ip_tables_names"), ("ip6", "/proc/net/ip6_tables_names")):
            try:
                with open(path) as f:
                    got[fam] = {x.strip() for x in f if x.strip()}
            except OSError:
                pass
        return got
    for fam, names in netns.run_in(ns, legacy).items():
        out[fam] |= names & IPT_TABLES
    return out


def parse_save(text: str, family: str) -> tuple[list[SeenChain], bool, set[str]]:
    """(chains, nf_tables kind, tables iptables-save could not show) of iptables-save output."""
    chains: dict[tuple[str, str], SeenChain] = {}
    rules: dict[tuple[str, str], list[str]] = {}
    table, nft_kind, bad = "", "nf_tables" in text.split("\n", 1)[0], set()
    for line in text.splitlines():
        if line.startswith("# Table `") and "incompatible" in line:
            bad.add(line.split("`")[1].rstrip("'"))
        elif line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-"])[:2]
            chains[(table, name)] = SeenChain(family, table, name, policy)
            rules.setdefault((table, name), [])
        elif line.startswith("-A "):
            name, _, rest = line[3:].partition(" ")
            rules.setdefault((table, name), []).append(rest)
    out = [SeenChain(c.family, c.table, c.name, c.policy, tuple(rules.get(k, ()))) for k, c in chains.items()]
    return out, nft_kind, bad


def _save(ns: str, family: str) -> str:
    tool = "iptables-save" if family == "ip" else "ip6tables-save"
    p = subprocess.run(netns.nsenter(ns) + [tool], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise iproute.ReadError(f"{ns}: {tool}: {p.stderr.strip()}")
    return p.stdout


def haproxies() -> list[tuple[int, tuple[str, ...], tuple[int, int] | None]]:
    """(pid, argv, network namespace inode) of every haproxy on the host."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        if not argv or os.path.basename(argv[0]) != "haproxy":
            continue
        try:
            st = os.stat(f"/proc/{d}/ns/net")
            ino: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ino = None
        out.append((int(d), argv, ino))
    return out


def read(ns: str, procs: list[tuple[int, tuple[str, ...], tuple[int, int] | None]]) -> Seen:
    routes, rules = iproute.dump(ns, ["route show table all", "rule show"])
    chains: list[SeenChain] = []
    kinds: dict[str, bool] = {}
    bad: set[tuple[str, str]] = set()
    for fam, present in _iptables_tables(ns).items():
        if present:
            cs, kind, incompatible = parse_save(_save(ns, fam), fam)
            chains += cs
            kinds[fam] = kind
            bad |= {(fam, t) for t in incompatible}
    try:
        st = os.stat(netns.path(ns))
        here = (st.st_dev, st.st_ino)
    except OSError:
        here = None
    mine = tuple(SeenProcess(pid, argv) for pid, argv, ino in procs if ino is not None and ino == here)
    return Seen(ns, _routes(routes), _rules(rules), tuple(chains), sysctl.read(ns, list(SYSCTLS)), mine,
                kinds, frozenset(bad))


# --- the reconciler's hook ---------------------------------------------------------------------
class NeutronState:
    """Upstream's objects on this node: refuse them, or take them over (module docstring)."""

    def __init__(self, prefix: str = "", adopt: bool = False) -> None:
        self.own = Ownership(prefix)
        self.prefix = prefix
        self.adopt = adopt
        self.pending = True
        self.last: list[Found] = []

    def scan(self, desired: HostState, observed: HostState) -> list[Found]:
        names = sorted(n for n, o in observed.namespaces.items()
                       if o.managed and self.own.owns_namespace(n) and netns.exists(n))
        procs = haproxies()

        def one(n: str) -> Found | None:
            try:
                return find(read(n, procs), self.prefix, desired.namespaces.get(n))
            except netns.MissingNamespace:
                return None
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = [f for f in pool.map(one, names) if f]
        return found

    def amend(self, plan: Plan, desired: HostState, observed: HostState,
              diff: Callable[[HostState], Plan] | None = None) -> Plan:
        """PLAN (the diff of DESIRED against OBSERVED) for a node with upstream's objects; DIFF:
        the same diff against another observed state (`takeover.takeover_plan` keeps ports)."""
        found = self.scan(desired, observed)
        self.last = found
        if not found:
            self.pending = False
            return plan
        if not self.adopt:
            conflicts = sorted(o for f in found for o in f.conflicts())
            if conflicts:
                n = len(conflicts)
                raise NeutronStateFound(
                    f"{conflicts[0].describe()} is neutron-l3-agent's ({n} such object{'s' if n != 1 else ''} "
                    f"on this node); stop neutron-l3-agent and run the agent once with --adopt-neutron-state "
                    f"to take them over (docs/neutron.md); nothing was changed")
            self.pending = False                 # only sysctl values: left as they are, not looked for again
            return plan
        n = sum(len(f.objects()) for f in found)
        log.warning("taking over from neutron-l3-agent: removing %d of its objects in %d namespaces", n, len(found))
        if diff is None:
            return merge(plan, found)
        return takeover_plan(desired, observed, found, diff)


# --- execution ---------------------------------------------------------------------------------
# rtnetlink, by hand (as nft.py reads nftables): RTM_SETLINK with IFLA_ADDRESS, RTM_NEWNEIGH with
# NDA_DST + NDA_LLADDR, each request acknowledged; a socket keeps the namespace it was opened in
_RTM_SETLINK, _RTM_NEWNEIGH, _NLMSG_ERROR = 19, 28, 2
_F_REQUEST, _F_ACK, _F_REPLACE, _F_CREATE = 0x1, 0x4, 0x100, 0x400
_IFLA_ADDRESS, _NDA_DST, _NDA_LLADDR, _NUD_PERMANENT = 1, 1, 2, 0x80


def _nlattr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * (-n % 4)


def _nlmsg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=LHHLL", 16 + len(body), kind, flags, seq, 0) + body


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _rtnl(ns: str, devs: list[str]) -> tuple[socket.socket, dict[str, int]]:
    def body() -> tuple[socket.socket, dict[str, int]]:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        s.bind((0, 0))
        return s, {d: socket.if_nametoindex(d) for d in devs}
    return netns.run_in(ns, body)


def _acks(s: socket.socket, want: int) -> list[str]:
    errs: list[str] = []
    got = 0
    s.settimeout(2.0)
    while got < want:
        data = s.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            ln, kind = struct.unpack_from("=LH", data, off)
            if kind == _NLMSG_ERROR:
                got += 1
                err = struct.unpack_from("=i", data, off + 16)[0]
                if err:
                    errs.append(os.strerror(-err))
            off += (ln + 3) & ~3 if ln else len(data)
    return errs


def rekey(op: VethRekey) -> str | None:
    """Both MAC changes, then every neighbour, back to back on two pre-opened sockets."""
    a_devs = {op.dev} | {n.dev for ns, n in op.neighbours if ns == op.ns}
    b_devs = {op.peer} | {n.dev for ns, n in op.neighbours if ns == op.peer_ns}
    try:
        sa, ia = _rtnl(op.ns, sorted(a_devs))
        sb, ib = _rtnl(op.peer_ns, sorted(b_devs))
    except (OSError, netns.MissingNamespace) as e:
        return f"cannot open netlink: {e}"
    sent = {id(sa): 0, id(sb): 0}
    try:
        for sock, idx, dev, mac in ((sa, ia, op.dev, op.mac), (sb, ib, op.peer, op.peer_mac)):
            if mac:
                body = struct.pack("=BBHiII", 0, 0, 0, idx[dev], 0, 0) + _nlattr(_IFLA_ADDRESS, _mac_bytes(mac))
                sock.send(_nlmsg(_RTM_SETLINK, _F_REQUEST | _F_ACK, 1, body))
                sent[id(sock)] += 1
        for ns, n in op.neighbours:
            sock, idx = (sa, ia) if ns == op.ns else (sb, ib)
            body = (struct.pack("=BBHiHBB", socket.AF_INET, 0, 0, idx[n.dev], _NUD_PERMANENT, 0, 0)
                    + _nlattr(_NDA_DST, socket.inet_aton(n.ip)) + _nlattr(_NDA_LLADDR, _mac_bytes(n.mac)))
            sock.send(_nlmsg(_RTM_NEWNEIGH, _F_REQUEST | _F_ACK | _F_CREATE | _F_REPLACE, 2, body))
            sent[id(sock)] += 1
        errs = _acks(sa, sent[id(sa)]) + _acks(sb, sent[id(sb)])
    except OSError as e:
        return f"netlink: {e}"
    finally:
        sa.close()
        sb.close()
    return "; ".join(errs) or None


def _gone(msg: str) -> bool:
    return any(g in msg for g in _GONE)


def _iptables(ns: str, op: UpstreamIptablesDel) -> str | None:
    nft.uncommitted(ns)      # iptables-nft commits nftables transactions of its own: list the tables again
    tool = "iptables-restore" if op.family == "ip" else "ip6tables-restore"
    p = subprocess.run(netns.nsenter(ns) + [tool, "--noflush"], input=op.script(), capture_output=True,
                       text=True, check=False)
    if p.returncode != 0 and not _gone(p.stderr):
        return f"{tool}: {p.stderr.strip()[:300]}"
    if op.drop_table:
        m = nft.apply_script(ns, f"delete table {op.family} {op.table}\n")
        if m and "No such file" not in m:
            return f"nft delete table {op.family} {op.table}: {m}"
    return None


def rename(ns: str, ops: list[UpstreamPeerAdopt]) -> list[tuple[Op, str]]:
    """Rename the bridge ends of upstream's ports while they are up, in one `ip -batch`: the
    ports keep their carrier and nothing is interrupted (kernels from 6.2 on allow it). The ones
    the kernel refuses (EBUSY before 6.2) go down, are renamed and come up again, all of them in
    one batch (one interruption for every FIP behind them: about the time the kernel takes to
    give a link its queue back, tens of milliseconds measured, more under load); one whose rename
    still fails is brought up under its old name and reported."""
    refused = sorted({e.line for e in iproute.batch(ns, [op.live_line() for op in ops]) if 0 <= e.line < len(ops)})
    if not refused:
        return []
    again = [ops[i] for i in refused]
    text = [op.down_line() for op in again] + [op.rename_line() for op in again]
    failed: dict[int, list[str]] = {}
    for e in iproute.batch(ns, text):
        if len(again) <= e.line < len(text):
            failed.setdefault(e.line - len(again), []).append(e.message)
    ups = [op.up_line(renamed=i not in failed) for i, op in enumerate(again)]
    for e in iproute.batch(ns, ups):
        if 0 <= e.line < len(ups):
            failed.setdefault(e.line, []).append(e.message)
    return [(again[i], "; ".join(m)) for i, m in sorted(failed.items())]


def run(ns: str, ops: list[Op]) -> list[tuple[Op, str]]:
    """Execute the removal ops of one namespace, in order; (op, reason) of each failure."""
    errors: list[tuple[Op, str]] = []
    lines: list[Op] = []
    renames: list[UpstreamPeerAdopt] = []

    def flush() -> None:
        if lines:
            for e in iproute.batch(ns, [op.line() for op in lines]):
                if 0 <= e.line < len(lines) and not _gone(e.message):
                    errors.append((lines[e.line], e.message))
            lines.clear()
        if renames:
            errors.extend(rename(ns, renames))
            renames.clear()
    for op in ops:
        if isinstance(op, (UpstreamRouteDel, UpstreamRuleDel)):
            if renames:
                flush()
            lines.append(op)
            continue
        if isinstance(op, UpstreamPeerAdopt):
            if lines:
                flush()
            renames.append(op)
            continue
        flush()
        if isinstance(op, VethRekey):
            msg = rekey(op)
        elif isinstance(op, UpstreamProcStop):
            terminate(op.proc.pid)
            msg = None
        elif isinstance(op, UpstreamIptablesDel):
            msg = _iptables(ns, op)
        elif isinstance(op, UpstreamSysctlReset):
            msg = sysctl.write(ns, [(op.key, op.value)]).get(op.key)
        else:
            msg = f"not a takeover op: {op}"
        if msg:
            errors.append((op, msg))
    flush()
    return errors


__all__ = ["NeutronState", "NeutronStateFound", "parse_save", "read", "run"]
