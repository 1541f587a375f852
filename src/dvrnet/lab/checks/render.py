"""Rendering: rows → the operator's table (rich) or JSON."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .judge import Row


def rows_json(rows: Sequence[Row]) -> str:
    return json.dumps({"passed": all(r.passed for r in rows), "rows": [asdict(r) for r in rows]}, indent=2)


def render_table(rows: Sequence[Row], console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title="dvrnet lab check", show_lines=False)
    for col in ("check", "expected path", "observed path", "result"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r.check, r.expected, r.observed, "[green]PASS[/]" if r.passed else "[red]FAIL[/]")
    (console or Console()).print(t)
    failed = sum(not r.passed for r in rows)
    (console or Console()).print(f"{len(rows) - failed}/{len(rows)} passed")
