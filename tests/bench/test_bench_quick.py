"""`dvrnet bench --quick` runs to the end, prints its tables and (stderr not a terminal) plain
progress lines per phase. A smoke run of a benchmark: no timing target is asserted here
(benchmarks are not timed tests)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


@pytest.mark.timeout(1200)   # a hang guard for a smoke run of every section (three labs), not a speed bound
def test_bench_quick_prints_the_table(tmp_path):
    dvrnet = os.path.join(os.path.dirname(sys.executable), "dvrnet")
    proc = subprocess.Popen([dvrnet, "bench", "--quick"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate(timeout=1100)
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert p.returncode == 0, p.stderr[-3000:]
    titles = ["1. Control plane", "2. Data plane", "3. End to end", "fitted exponent", "6. Agent memory",
              "7. End to end at N FIPs", "8. Fan-out", "+1 external subnet"]
    if shutil.which("bird"):
        titles += ["5. Routed mode", "kernel /32 → route on the ToR", "API call → route on the ToR",
                   "VM migration", "/32s at once → all on the ToR", "BIRD CPU per single change"]
    for title in titles:
        assert title in p.stdout, p.stdout[-3000:]
    memory = p.stdout.split("6. Agent memory", 1)[1]
    assert "error:" not in memory.split("plot:", 1)[0], memory
    if shutil.which("bird"):
        routed = p.stdout.split("5. Routed mode", 1)[1].split("plot:", 1)[0]
        assert "error:" not in routed, routed
    scale_and_fanout = p.stdout.split("7. End to end at N FIPs", 1)[1].split("plot:", 1)[0]
    assert not [x for x in scale_and_fanout.splitlines() if x.lstrip().startswith("error")], scale_and_fanout
    assert "+1 FIP" in scale_and_fanout.split("8. Fan-out", 1)[1], scale_and_fanout
    svg = (tmp_path / "dvrnet-bench.svg").read_text()
    assert svg.startswith("<svg") and "+1 FIP: API call" in svg
    # progress (not a terminal here): plain lines for each phase, start and end
    for task in ("control plane sizes", "data plane rounds", "end to end FIPs", "end to end at N samples",
                 "fan-out changes"):
        assert any(x.startswith(f"{task}: 0/") for x in p.stderr.splitlines()), p.stderr[-3000:]
        assert any(x.startswith(f"{task}: ") and " in " in x for x in p.stderr.splitlines()), p.stderr[-3000:]
    leftovers = [n for n in os.listdir("/run/netns") if n.startswith("dvb")] if os.path.isdir("/run/netns") else []
    assert not [n for n in leftovers if n.startswith(f"dvb{proc.pid}")], leftovers
