"""Rendering: rows → the operator's table (rich, through `dvrnet.console`: text printed as it is) or JSON."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .judge import Row


def rows_json(rows: Sequence[Row]) -> str:
    return json.dumps({"passed": all(r.passed for r in rows), "rows": [asdict(r) for r in rows]}, indent=2)


def render_table(rows: Sequence[Row], out=None) -> None:
    """The rows as a table on OUT (default: stdout), every cell printed as it is (dvrnet.console)."""
    from rich.table import Table

    from ...console import Text, console
    out = out or console()
    t = Table(title="dvrnet lab check", show_lines=False)
    for col in ("check", "expected path", "observed path", "result"):
        t.add_column(col, overflow="fold")
    for r in rows:
        verdict = Text("PASS", style="green") if r.passed else Text("FAIL", style="red")
        t.add_row(r.check, r.expected, r.observed, verdict)
    out.print(t)
    failed = sum(not r.passed for r in rows)
    out.print(f"{len(rows) - failed}/{len(rows)} passed")
