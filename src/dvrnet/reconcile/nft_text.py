"""nftables text for dvrnet's tables: pure rendering, shared by the plan printer and the kernel.

Invariants:
- A table is always (re)written whole in one `nft -f` transaction: `add table` (so the delete
  cannot fail) + `delete table` + the full definition with its elements. Nothing else in the
  namespace's ruleset is touched.
- Every rule carries `comment "dv:<hash of its text>"`. nft prints rules back normalised
  (`or 0x10` becomes `| 0x00000010`), so the reader identifies rules by this tag, not by text.
- Element changes are `delete element` statements before `add element` statements in one
  transaction (a changed map value is a delete + add of the same key).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from socket import inet_aton, inet_ntoa

from dvrnet.plan.state import NftMap, NftTable

TAG = "dv:"


def rule_tag(text: str) -> str:
    return TAG + hashlib.sha256(text.encode()).hexdigest()[:16]


def _elem(key: str, value: str | None) -> str:
    return key if value is None else f"{key} : {value}"


def sorted_elements(elements) -> list[tuple[str, str | None]]:
    """Elements in `_sort` order; when every key is a canonical IPv4 address (the FIP maps) the
    same order comes from the packed address, ~4x cheaper than `_sort` on 20k elements."""
    try:
        keyed = [(inet_aton(k), v or "", k, v) for k, v in elements]
        if all(inet_ntoa(p) == k for p, _, k, _ in keyed):
            keyed.sort(key=_first2)
            return [(k, v) for _, _, k, v in keyed]
    except (OSError, ValueError, TypeError):
        pass
    return sorted(elements, key=_sort)


def _first2(t: tuple) -> tuple:
    return (t[0], t[1])


def _map_decl(m: NftMap) -> str:
    typ = f"type {m.key_type}" + (f" : {m.data_type}" if m.data_type else "")
    kind = "map" if m.data_type else "set"
    body = f"    {kind} {m.name} {{\n        {typ};\n"
    if m.size is not None:
        body += f"        size {m.size};\n"
    if m.dynamic:
        body += "        flags dynamic;\n"
    if m.elements:
        body += "        elements = { " + ", ".join(_elem(k, v) for k, v in sorted_elements(m.elements)) + " }\n"
    return body + "    }\n"


def table_script(t: NftTable, replace: bool = True) -> str:
    out = []
    if replace:
        out += [f"add table {t.family} {t.name}\n", f"delete table {t.family} {t.name}\n"]
    out.append(f"table {t.family} {t.name} {{\n")
    out += [_map_decl(m) for m in t.maps]
    for c in t.chains:
        out.append(f"    chain {c.name} {{\n")
        if c.hook:                               # a base chain; without a hook: a regular chain (jump target)
            out.append(f"        type {c.type} hook {c.hook} priority {c.priority}; policy {c.policy};\n")
        out += [f'        {r} comment "{rule_tag(r)}"\n' for r in c.rules]
        out.append("    }\n")
    out.append("}\n")
    return "".join(out)


def element_lines(family: str, table: str, verb: str,
                  elements: Iterable[tuple[str, str, str | None]]) -> list[str]:
    by_map: dict[str, list[str]] = {}
    for name, key, value in sorted(elements, key=lambda e: (e[0], _sort((e[1], e[2])))):
        by_map.setdefault(name, []).append(_elem(key, value))
    return [f"{verb} element {family} {table} {name} {{ {', '.join(items)} }}\n"
            for name, items in by_map.items()]


def _sort(kv: tuple[str, str | None]) -> tuple:
    k, v = kv
    try:
        return (0, tuple(map(int, k.split("."))), v or "")
    except ValueError:
        return (1, k, v or "")
