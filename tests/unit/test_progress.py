"""Progress of long operations (progress.py): plain lines when not on a terminal (start, at most
one per `every` seconds, end with count and time), a rich bar on a terminal, safe from threads."""
from __future__ import annotations

import io
import threading

from dvrnet.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines():
    lines: list[str] = []
    p = Progress.plain(lines.append, every=0)
    p.say("step one")
    with p.task("FIPs", 3) as tick:
        for _ in range(3):
            tick()
    assert lines[0] == "step one" and lines[1] == "FIPs: 0/3"
    assert any(x.startswith("FIPs: 1/3 (") for x in lines) and lines[-1].startswith("FIPs: 3/3 in ")
    lines.clear()
    with Progress.plain(lines.append, every=3600).task("ops", 1000) as tick:
        for _ in range(1000):
            tick()
    assert len(lines) == 2 and lines[-1].startswith("ops: 1,000/1,000 in ")
    lines.clear()
    with Progress.plain(lines.append).task("nothing", 0) as tick:
        tick()
    assert lines == []


def test_for_stream_plain_when_not_a_terminal_and_prefix():
    out = io.StringIO()
    p = Progress.for_stream(out, prefix="lab ")
    assert not p.live
    p.say("world built")
    with p.task("12 more FIPs", 12) as tick:
        tick(12)
    text = out.getvalue().splitlines()
    assert text[0] == "lab world built" and text[1] == "lab 12 more FIPs: 0/12"
    assert text[-1].startswith("lab 12 more FIPs: 12/12 in ")


def test_live_bar_on_a_terminal_from_threads():
    out = _Tty()
    p = Progress.for_stream(out)
    assert p.live
    with p.task("applying ops", 400) as tick:
        ts = [threading.Thread(target=lambda: [tick() for _ in range(100)]) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    text = out.getvalue()
    assert "applying ops" in text and "400/400" in text
    assert "\x1b[" in text                     # drawn with terminal control sequences, not plain lines
