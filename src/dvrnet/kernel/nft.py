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

import json
import subprocess

from dvrnet.plan.state import NftChain, NftMap, NftTable
from dvrnet.reconcile.nft_text import rule_tag
from dvrnet.reconcile.ownership import owns_nft_table

from . import netns
from .iproute import ReadError


def _run(ns: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    if not netns.exists(ns):
        raise netns.MissingNamespace(ns)
    return subprocess.run(netns.nsenter(ns) + ["nft", *args], input=stdin, capture_output=True, text=True)


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


def parse_table(items: list[dict], known_rules: dict[str, str]) -> NftTable | None:
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
            elems = frozenset((_value(e[0]), _value(e[1])) if "map" in it else (_value(e), None)
                              for e in m.get("elem", []))
            maps.append(NftMap(m["name"], _typ(m["type"]), _typ(m["map"]) if "map" in it else None, elems))
    if table is None:
        return None
    return NftTable(table["family"], table["name"],
                    tuple(NftChain(n, c.get("type", ""), c.get("hook", ""), int(c.get("prio", 0)),
                                   tuple(rules.get(n, ())), c.get("policy", "accept"))
                          for n, c in chains.items()),
                    tuple(maps))


def read_tables(ns: str, desired: dict[tuple[str, str], NftTable]) -> dict[tuple[str, str], NftTable]:
    p = _run(ns, ["-j", "list", "tables"])
    if p.returncode != 0:
        raise ReadError(f"{ns}: nft list tables: {p.stderr.strip()}")
    names = [(t["table"]["family"], t["table"]["name"])
             for t in json.loads(p.stdout)["nftables"] if "table" in t]
    out = {}
    for fam, name in names:
        if not owns_nft_table(fam, name):
            continue
        p = _run(ns, ["-j", "list", "table", fam, name])
        if p.returncode != 0:
            raise ReadError(f"{ns}: nft list table {fam} {name}: {p.stderr.strip()}")
        want = desired.get((fam, name))
        known = {rule_tag(r): r for c in (want.chains if want else ()) for r in c.rules}
        t = parse_table(json.loads(p.stdout)["nftables"], known)
        if t is not None:
            out[(fam, name)] = t
    return out
