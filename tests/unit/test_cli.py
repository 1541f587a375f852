"""Operator mistakes on the command line: one line on stderr naming the option and the reason,
non-zero exit, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest


def dvrnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvrnet.cli", *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args, words", [
    (("plan", "--scenario", "nope", "--host", "compute1"), ("--scenario", "nope")),
    (("plan", "--host", "nope"), ("--host", "nope")),
    (("plan",), ("--host",)),
    (("server", "--bind", "nonsense"), ("--bind", "HOST:PORT")),
    (("server", "--auth", "token"), ("--tokens",)),
    (("show", "compute1", "--server", "http://127.0.0.1:1"), ("compute1", "127.0.0.1:1")),
    (("agent", "--host", "h", "--mode", "bogus", "--server", "http://x"), ("--mode", "bogus")),
])
def test_bad_input_is_one_line(args, words):
    p = dvrnet(*args)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvrnet: "), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in p.stderr
