"""The one place dvrnet's output goes through rich: consoles that print text as it is.

Every rich Console dvrnet prints with is made by `console()`, with markup, emoji codes and
highlighting off, so no text it prints is reinterpreted: a MAC such as `fa:16:3e:ab:e5:9c` stays
a MAC (not `fa:16:3e🆎e5:9c`), `[brackets]` in an error or a name stay brackets. Styles are never
written inside the text: `styled()` builds a `rich.text.Text` from literal strings and explicit
(text, style) pairs. tests/unit/test_console.py checks both, and that no other module makes a
Console.
"""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

Part = str | tuple[str, str] | Text


def console(stderr: bool = False, **kw) -> Console:
    """A Console that prints every string literally (keyword arguments: rich's, e.g. width)."""
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, **kw)


def styled(*parts: Part) -> Text:
    """One line from literal strings and (text, style) pairs, e.g. `styled(("FAIL", "red"), " ", why)`."""
    return Text.assemble(*parts)


__all__ = ["Console", "Text", "console", "styled"]
