"""dvrnet's nftables tables in a namespace: read them (`nft -j`), write them (`nft -f`).

Invariants:
- Only tables that `ownership.owns_nft_table` claims are listed or written; foreign tables in
  the same namespace are never read past their name and never written.
- Rules are identified by their `dv:` comment tag (see `reconcile/nft_text.py`): a tagged rule
  whose tag matches a desired rule reads back as that rule's text; any other rule reads back as
  `<untagged rule handle N>` and forces a table replace.
- Every write is one `nft -f` transaction: it applies whole or not at all.
"""
from __future__ import annotations

import errno
import json
import os
import re
import socket
import struct
import subprocess
from dataclasses import dataclass, replace

from dvrnet.plan.state import NftChain, NftMap, NftTable
from dvrnet.reconcile.nft_text import rule_tag
from dvrnet.reconcile.ownership import owns_nft_table

from . import netns
from .iproute import ReadError


def _run(ns: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    if not netns.exists(ns):
        raise netns.MissingNamespace(ns)
    return subprocess.run(netns.nsenter(ns) + ["nft", *args], input=stdin, capture_output=True, text=True, check=False)


def apply_script(ns: str, script: str) -> str | None:
    """Run one transaction; return None or the error message (first error lines)."""
    try:
        p = _run(ns, ["-f", "-"], script)
    except netns.MissingNamespace as e:
        return str(e)
    if p.returncode == 0:
        return None
    errs = [ln.split("Error: ", 1)[1] for ln in p.stderr.splitlines() if "Error: " in ln]
    return "; ".join(dict.fromkeys(errs)) or p.stderr.strip()


def _value(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def _typ(t) -> str:
    return t if isinstance(t, str) else " . ".join(t)


def parse_table(items: list[dict], known_rules: dict[str, str],
                dynamic: frozenset[str] = frozenset()) -> NftTable | None:
    """DYNAMIC: names of the sets whose elements the packet path owns (desired `NftMap.dynamic`):
    read back as declarations only (nft's JSON does not print `flags dynamic`)."""
    table, chains, rules, maps = None, {}, {}, []
    for it in items:
        if "table" in it:
            table = it["table"]
        elif "chain" in it:
            c = it["chain"]
            chains[c["name"]] = c
            rules.setdefault(c["name"], [])
        elif "rule" in it:
            r = it["rule"]
            text = known_rules.get(r.get("comment", ""), f"<untagged rule handle {r.get('handle')}>")
            rules.setdefault(r["chain"], []).append(text)
        elif "map" in it or "set" in it:
            m = it.get("map") or it["set"]
            dyn = m["name"] in dynamic
            elems = frozenset() if dyn else frozenset(
                (_value(e[0]), _value(e[1])) if "map" in it else (_value(e), None) for e in m.get("elem", []))
            maps.append(NftMap(m["name"], _typ(m["type"]), _typ(m["map"]) if "map" in it else None, elems,
                               dynamic=dyn, size=m.get("size")))
    if table is None:
        return None
    return NftTable(table["family"], table["name"],
                    tuple(NftChain(n, c.get("type", ""), c.get("hook", ""), int(c.get("prio", 0)),
                                   tuple(rules.get(n, ())), c.get("policy", "accept"))
                          for n, c in chains.items()),
                    tuple(maps))


# --- table names and the ruleset generation straight from nfnetlink -----------------------------
# `nft list tables` fills nft's whole cache first (every set with its elements): ~95 ms in a
# namespace holding 20k map elements, for a list of names. An NFT_MSG_GETTABLE dump on a netlink
# socket from a thread inside the namespace returns the same names in well under 1 ms.
# The same socket reads the namespace's nftables generation (NFT_MSG_GETGEN; every committed
# transaction bumps it) and its netns cookie (SO_NETNS_COOKIE, never reused): a table parsed
# when (cookie, generation) was X is still exactly what the kernel holds while they are still X,
# so an unchanged namespace is not listed again (`nft -j list table` of 20k elements: ~150-200 ms).
_NETLINK_NETFILTER = 12
_NFT_GETTABLE = (10 << 8) | 1                 # NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE
_NFT_GETGEN, _NFT_NEWGEN = (10 << 8) | 16, (10 << 8) | 15
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NFTA_TABLE_NAME = _NFTA_GEN_ID = 1
_SO_NETNS_COOKIE = 71
_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}


def _messages(data: bytes):
    """(type, family, {attr type: payload}) of each netlink message; raises on an error reply."""
    off = 0
    while off + 16 <= len(data):
        ln, typ = struct.unpack_from("=LH", data, off)
        if ln < 16:
            raise OSError(errno.EPROTO, "short netlink message")
        if typ == _NLMSG_ERROR:
            err = struct.unpack_from("=i", data, off + 16)[0]
            if err:
                raise OSError(-err, os.strerror(-err))
        attrs, a = {}, off + 20
        while a + 4 <= off + ln:
            alen, atyp = struct.unpack_from("=HH", data, a)
            if alen < 4:
                break
            attrs[atyp & 0x7FFF] = data[a + 4:a + alen]
            a += (alen + 3) & ~3
        yield typ, data[off + 16] if ln > 16 else 0, attrs
        off += (ln + 3) & ~3


@dataclass(frozen=True)
class Snapshot:
    tables: tuple[tuple[str, str], ...]      # (family, name), as `nft list tables` prints them
    version: tuple[int, int] | None          # (netns cookie, generation); None: not available


def snapshot(ns: str) -> Snapshot:
    """The tables of the namespace and the version of its nftables ruleset, from one socket."""
    def body() -> Snapshot:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as s:
            s.bind((0, 0))
            version = None
            try:
                cookie = int.from_bytes(s.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8), "little")
                s.send(struct.pack("=LHHLLBBH", 20, _NFT_GETGEN, _NLM_F_REQUEST, 1, 0, 0, 0, 0))
                for typ, _, attrs in _messages(s.recv(1 << 16)):
                    if typ == _NFT_NEWGEN and _NFTA_GEN_ID in attrs:
                        version = (cookie, struct.unpack(">I", attrs[_NFTA_GEN_ID][:4])[0])
            except OSError as e:
                if e.errno not in (errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
            s.send(struct.pack("=LHHLLBBH", 20, _NFT_GETTABLE, _NLM_F_REQUEST | _NLM_F_DUMP, 2, 0, 0, 0, 0))
            out: list[tuple[str, str]] = []
            while True:
                done = False
                for typ, fam, attrs in _messages(s.recv(1 << 16)):
                    if typ in (_NLMSG_DONE, _NLMSG_ERROR):
                        done = True
                    elif _NFTA_TABLE_NAME in attrs:
                        out.append((_FAMILIES.get(fam, str(fam)),
                                    attrs[_NFTA_TABLE_NAME].split(b"\0", 1)[0].decode()))
                if done:
                    return Snapshot(tuple(out), version)
    return netns.run_in(ns, body)


def list_tables(ns: str) -> list[tuple[str, str]]:
    """(family, name) of every nftables table in the namespace (what `nft list tables` prints)."""
    return list(snapshot(ns).tables)


# (namespace, family, table) -> (version, known rule tags, parsed table); see `snapshot`
_CACHE: dict[tuple[str, str, str], tuple[tuple[int, int], frozenset, NftTable | None]] = {}
_CACHE_MAX = 4096
# Rules that change sets from the packet path do so without a new generation: a table is cached
# only when every set its rules change is one whose elements are not compared (`NftMap.dynamic`).
_DYNAMIC = re.compile(r"\b(?:add|update|delete)\s+@(\w+)")


def _cacheable(want: NftTable | None) -> bool:
    if want is None:
        return True
    dyn = {m.name for m in want.maps if m.dynamic}
    return all(name in dyn for c in want.chains for r in c.rules for name in _DYNAMIC.findall(r))


# Our own element transactions, verified by the generation instead of a listing (issue 11 item
# 4): after the agent's apply commits an element-only transaction (`NftElements`) in a namespace
# whose tables were cached at version (cookie, G), `committed` records what those tables hold
# after it (the cached value with the op's elements deleted and added). If the next read finds the
# namespace at (cookie, G + k) with k the number of such transactions we committed, no other
# transaction ran in between (every commit bumps the generation; ours are atomic): the tables are
# exactly that, so a +1 FIP does not list a table of 20,000 elements again. Anything else — another
# nft op, a failed one, a foreign transaction (the generation is off by one), a table without a
# cached value — drops the record and the table is listed. Tables taken this way are *unverified*:
# a full read (the periodic resync, `trust_commits=False`) lists them again (level-triggered).
_COMMITTED: dict[str, tuple[tuple[int, int], int, dict[tuple[str, str], tuple[frozenset, NftTable | None]]]] = {}
_UNVERIFIED: set[tuple[str, str, str]] = set()


def _with_elements(t: NftTable, delete, add) -> NftTable:
    gone: dict[str, set] = {}
    new: dict[str, set] = {}
    for name, k, _v in delete:
        gone.setdefault(name, set()).add(k)
    for name, k, v in add:
        new.setdefault(name, set()).add((k, v))
    maps = tuple(replace(m, elements=frozenset(e for e in m.elements if e[0] not in gone.get(m.name, ()))
                         | frozenset(new.get(m.name, ())))
                 if (m.name in gone or m.name in new) else m for m in t.maps)
    return replace(t, maps=maps)


def committed(ns: str, op) -> None:
    """apply: the element-only transaction OP (reconcile.ops.NftElements) committed in NS."""
    exp = _COMMITTED.get(ns)
    if exp is None:
        hit = _CACHE.get((ns, op.family, op.table))
        if hit is None or hit[2] is None:
            return
        v = hit[0]
        exp = (v, 0, {(f, t): (h[1], h[2]) for (n, f, t), h in _CACHE.items() if n == ns and h[0] == v})
    v, count, tables = exp
    cur = tables.get((op.family, op.table))
    names = {m.name for m in cur[1].maps} if cur is not None and cur[1] is not None else set()
    if cur is None or cur[1] is None or any(e[0] not in names for e in op.add + op.delete):
        _COMMITTED.pop(ns, None)
        return
    _COMMITTED[ns] = (v, count + 1, {**tables, (op.family, op.table): (cur[0], _with_elements(cur[1], op.delete, op.add))})


def uncommitted(ns: str) -> None:
    """apply: some other nft op ran (or one failed) in NS: its tables are listed next time."""
    _COMMITTED.pop(ns, None)


def read_tables(ns: str, desired: dict[tuple[str, str], NftTable],
                trust_commits: bool = False) -> dict[tuple[str, str], NftTable]:
    """The owned tables of NS. A table unchanged since it was last listed (same netns cookie and
    generation) is not listed again; with TRUST_COMMITS (the agent's partial reads), neither is one
    changed since only by our own element transactions (`committed`)."""
    try:
        snap = snapshot(ns)
    except OSError as e:
        raise ReadError(f"{ns}: nft list tables: {e.strerror or e}") from None
    mine = _COMMITTED.pop(ns, None)
    if (not trust_commits or mine is None or snap.version is None or mine[0][0] != snap.version[0]
            or (mine[0][1] + mine[1]) & 0xFFFFFFFF != snap.version[1]):
        mine = None
    out = {}
    for fam, name in snap.tables:
        if not owns_nft_table(fam, name):
            continue
        want = desired.get((fam, name))
        known = {rule_tag(r): r for c in (want.chains if want else ()) for r in c.rules}
        dynamic = frozenset(m.name for m in want.maps if m.dynamic) if want else frozenset()
        tags = frozenset(known.items()) | {("dynamic set", n) for n in dynamic}
        key = (ns, fam, name)
        hit = _CACHE.get(key)
        cacheable = snap.version is not None and _cacheable(want)
        ours = mine[2].get((fam, name)) if mine is not None else None
        if cacheable and ours is not None and ours[0] == tags:
            t = ours[1]
            _CACHE[key] = (snap.version, tags, t) 
            _UNVERIFIED.add(key)
        elif (cacheable and hit is not None and hit[0] == snap.version and hit[1] == tags
              and (trust_commits or key not in _UNVERIFIED)):
            t = hit[2]
        else:
            p = _run(ns, ["-j", "list", "table", fam, name])
            if p.returncode != 0:
                raise ReadError(f"{ns}: nft list table {fam} {name}: {p.stderr.strip()}")
            try:
                doc = json.loads(p.stdout)["nftables"]
            except (ValueError, KeyError, TypeError) as e:
                # e.g. nft 1.0.6 cannot print a table's `flags owner` in JSON (a foreign process
                # owns it): the namespace is unreadable, not the pass broken
                raise ReadError(f"{ns}: nft list table {fam} {name}: output is not nftables JSON "
                                f"({type(e).__name__}: {e})") from None
            t = parse_table(doc, known, dynamic)
            _UNVERIFIED.discard(key)
            if cacheable and not (t is not None and any(r.startswith("<untagged") for c in t.chains
                                                          for r in c.rules)):
                if len(_CACHE) >= _CACHE_MAX:
                    _CACHE.clear()
                    _UNVERIFIED.clear()
                _CACHE[(ns, fam, name)] = (snap.version, tags, t)
        if t is not None:
            out[(fam, name)] = t
    return out
