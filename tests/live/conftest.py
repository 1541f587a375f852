"""Live-change scenarios (issue 6): one lab per module under a prefix unique to this run
(`dvx<pid><n>-`), torn down by name at the end, pass or fail; a summary table of packets lost per
scenario and flow is printed at the end of the run (pytest_terminal_summary, independent of -s)."""
from __future__ import annotations

import itertools
import os
import subprocess

import pytest

from dvrnet.lab.traffic import FlowResult

_n = itertools.count()
# (scenario, phase, FlowResult, limit) — limit: max packets lost allowed (None: reported only),
# and for gap-bounded flows the bound is in the phase text.
LOSSES: list[tuple[str, str, FlowResult, int | None]] = []


def unique_prefix() -> str:
    return f"dvx{os.getpid() % 100000}{next(_n)}-"


def record(scenario: str, phase: str, results: dict[str, FlowResult], zero: set[str] | None = None) -> None:
    """Remember results for the summary; flows in `zero` (default: all) are asserted to lose 0
    by the caller (`assert_zero`)."""
    for name, r in results.items():
        limit = 0 if (zero is None or name in zero) else None
        LOSSES.append((scenario, phase, r, limit))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not LOSSES:
        return
    tr = terminalreporter
    tr.section("live changes: packets lost per scenario (issue 6)")
    tr.write_line(f"{'scenario':34s} {'phase':34s} {'flow':22s} {'kind':4s} {'sent':>6s} {'lost':>5s} "
                  f"{'max gap':>9s}  asserted")
    for scenario, phase, r, limit in LOSSES:
        gap = "inf" if r.max_gap_s == float("inf") else f"{r.max_gap_s * 1000:.0f} ms"
        verdict = "lost == 0" if limit == 0 else "reported"
        if limit == 0 and (r.lost or r.error):
            verdict += "  FAILED"
        err = f"  ({r.error})" if r.error else ""
        tr.write_line(f"{scenario:34s} {phase:34s} {r.name:22s} {r.kind:4s} {r.sent:6d} {r.lost:5d} {gap:>9s}  "
                      f"{verdict}{err}")
    per = {}
    for scenario, _p, r, limit in LOSSES:
        if limit == 0:
            per[scenario] = per.get(scenario, 0) + r.lost
    tr.write_line("")
    tr.write_line("total lost on traffic the change does not concern: " +
                  ", ".join(f"{s}: {n}" for s, n in per.items()))


@pytest.fixture(scope="module")
def live_lab(tmp_path_factory):
    """The seed lab (server + 3 agents), torn down by name at the end, pass or fail."""
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = unique_prefix()
    state = str(tmp_path_factory.mktemp("live") / "state")
    try:
        info = up(prefix, state)
        yield info
    finally:
        rep = down(prefix, state)
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
        left = [n for n in names if n.startswith(prefix)]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        assert not left and not rep.leftover_namespaces, f"namespaces left behind: {left}"
        assert prefix not in ps and state not in ps, "lab processes left behind"
