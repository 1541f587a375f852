"""The benchmarks' order statistics: nearest-rank percentiles (p99 of 50 samples is their
maximum, as the tables say), medians; NaN for no samples."""
from __future__ import annotations

import statistics


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
