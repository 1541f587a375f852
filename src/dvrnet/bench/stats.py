"""What the benchmarks compute from samples: nearest-rank percentiles (p99 of 50 samples is their
maximum, as the tables say), medians (NaN for no samples), and a process's CPU time."""
from __future__ import annotations

import os
import statistics


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def cpu_seconds(pid: int) -> float:
    """Seconds on CPU of every thread of PID so far (/proc/<pid>/task/*/schedstat: nanoseconds,
    where /proc/<pid>/stat counts 10 ms ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9
