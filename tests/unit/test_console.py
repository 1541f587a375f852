"""Operator output through rich prints text as it is: no markup, no emoji codes, no highlighting
(a MAC such as fa:16:3e:ab:e5:9c contains the emoji code `:ab:`), and every Console dvrnet prints
with is made in one place, `dvrnet.console`."""
from __future__ import annotations

import ast
import pathlib

import dvrnet
from dvrnet.console import console, styled
from dvrnet.lab.checks import Row, render_table

MAC = "fa:16:3e:ab:e5:9c"
TRICKY = f"{MAC} [red]not red[/] [bold]x[/bold] :smile: [brackets]"


def test_table_cells_are_printed_as_they_are(capsys):
    render_table([Row(f"ARP who-has {MAC}", TRICKY, f"1 replies from {MAC}", False, "segment ARP"),
                  Row("[check]", "expected [x]", "observed [/]", True)])
    out = capsys.readouterr().out
    assert MAC in out and "🆎" not in out and "😄" not in out
    for text in ("[red]not red[/]", "[bold]x[/bold]", ":smile:", "[brackets]", "[check]", "expected [x]",
                 "observed [/]", "FAIL", "PASS", "1/2 passed"):
        assert text in out, (text, out)


def test_console_and_styled_keep_text_literal(capsys):
    c = console(width=200)
    c.print(TRICKY)
    c.print(styled(("lab", "dim"), f" {TRICKY}"))
    assert capsys.readouterr().out.splitlines() == [TRICKY, f"lab {TRICKY}"]
    err = console(stderr=True, width=200)
    err.print(TRICKY)
    assert capsys.readouterr().err.strip() == TRICKY


def test_only_dvrnet_console_makes_a_rich_console():
    src = pathlib.Path(dvrnet.__file__).parent
    makers = []
    for f in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rich.console" \
                    and any(a.name == "Console" for a in node.names):
                makers.append(str(f.relative_to(src)))
    assert makers == ["console.py"], makers


def test_progress_live_lines_and_bar_print_text_as_it_is():
    import io

    from dvrnet.progress import Progress
    buf = io.StringIO()
    p = Progress(lambda _m: None, live=True, stream=buf)
    p.say(TRICKY)
    with p.task(f"FIPs for {MAC} [x]", 2) as advance:
        advance(2)
    out = buf.getvalue()
    assert TRICKY in out and f"FIPs for {MAC} [x]" in out and "🆎" not in out, out
