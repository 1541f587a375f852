"""Progress of long operations (`lab up` with many FIPs, `dvrnet bench`, a big cold apply): a live
bar on a terminal (rich), plain lines otherwise — one when a task starts, at most one every
`every` seconds while it runs, one when it ends — so logs and CI output stay readable.

    p = Progress.for_stream(sys.stderr)
    p.say("physical world built")
    with p.task("FIPs through the API", total=400) as advance:
        for ...:
            advance()          # thread-safe; advance(n) for n at once

`Progress.plain(say)` writes its lines through SAY (a logger, print) and never draws; a task
with total 0 says nothing. Each task's last line gives its count and duration. The live bar prints
through `dvrnet.console` (text as it is: no markup, no emoji codes).
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Say = Callable[[str], None]


class Progress:
    def __init__(self, say: Say, live: bool = False, stream: TextIO | None = None, every: float = 2.0,
                 prefix: str = ""):
        self._say = (lambda m: say(prefix + m)) if prefix else say
        self.prefix = prefix
        self.live = live
        self.stream = stream
        self.every = every
        self._console = None
        if live:
            from .console import console
            self._console = console(file=stream or sys.stderr)

    @classmethod
    def for_stream(cls, stream: TextIO | None = None, every: float = 2.0, prefix: str = "") -> Progress:
        """Live on a terminal, plain lines on STREAM otherwise; PREFIX before every line."""
        stream = stream or sys.stderr
        live = bool(getattr(stream, "isatty", lambda: False)())
        return cls(lambda m: print(m, file=stream, flush=True), live=live, stream=stream, every=every, prefix=prefix)

    @classmethod
    def plain(cls, say: Say, every: float = 2.0) -> Progress:
        return cls(say, live=False, every=every)

    def say(self, msg: str) -> None:
        if self._console is not None:
            from .console import Text
            self._console.print(Text(self.prefix + msg, style="dim"))
        else:
            self._say(msg)

    @contextmanager
    def task(self, what: str, total: int) -> Iterator[Callable[..., None]]:
        if total <= 0:
            yield lambda n=1: None
            return
        t0 = time.monotonic()
        if self._console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar
            bar = Bar(                                      # the description is printed as it is
                TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self._console, transient=False)
            with bar:
                tid = bar.add_task(what, total=total)
                yield lambda n=1: bar.advance(tid, n)
            return
        lock = threading.Lock()
        state = {"done": 0, "last": t0}
        self._say(f"{what}: 0/{total:,}")

        def advance(n: int = 1) -> None:
            with lock:
                state["done"] += n
                now = time.monotonic()
                if now - state["last"] >= self.every and state["done"] < total:
                    state["last"] = now
                    rate = state["done"] / max(now - t0, 1e-9)
                    self._say(f"{what}: {state['done']:,}/{total:,} ({rate:,.0f}/s)")
        try:
            yield advance
        finally:
            self._say(f"{what}: {state['done']:,}/{total:,} in {time.monotonic() - t0:.1f}s")


def silent() -> Progress:
    return Progress(lambda _m: None)


__all__ = ["Progress", "silent"]
