"""A small hand-written SVG plot of a bench run (no plotting library needed): cold convergence vs N
(log-log), data-plane round trips per second vs N and, when measured, +1 FIP API call → first
ping (p50, p99) against the FIPs the lab holds (log-log)."""
from __future__ import annotations

import math
from html import escape

W, H, M = 440, 300, 56
COLORS = {"p50": "#1f77b4", "p99": "#d62728", "dvrnet": "#1f77b4", "raw floor": "#2ca02c", "Neutron's way": "#d62728", "floor": "#2ca02c",
          "neutron": "#d62728", "stateless": "#9467bd"}


def _ticks(lo: float, hi: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _panel(x0: int, title: str, xlabel: str, ylabel: str, series: dict[str, list[tuple[float, float]]],
           logy: bool = True) -> list[str]:
    pts = [p for s in series.values() for p in s if p[1] > 0 and p[1] == p[1]]
    if not pts:
        return []
    xs = _ticks(min(p[0] for p in pts), max(p[0] for p in pts))
    if logy:
        ys = _ticks(min(p[1] for p in pts), max(p[1] for p in pts))
        ylo, yhi = math.log10(ys[0]), math.log10(ys[-1])
        fy = lambda v: H - M - (math.log10(v) - ylo) / ((yhi - ylo) or 1) * (H - 2 * M)
    else:
        top = max(p[1] for p in pts) * 1.1
        ys = [top * i / 4 for i in range(5)]
        fy = lambda v: H - M - v / top * (H - 2 * M)
    xlo, xhi = math.log10(xs[0]), math.log10(xs[-1])
    fx = lambda v: x0 + M + (math.log10(v) - xlo) / ((xhi - xlo) or 1) * (W - 2 * M)
    o = [f'<text x="{x0 + W / 2}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
         f'<rect x="{x0 + M}" y="{M}" width="{W - 2 * M}" height="{H - 2 * M}" fill="none" stroke="#999"/>']
    for v in xs:
        o.append(f'<text x="{fx(v):.1f}" y="{H - M + 16}" text-anchor="middle">{v:,.0f}</text>')
    for v in ys:
        y = fy(v) if (not logy or v > 0) else H - M
        lab = (f"{v:g}" if v < 1000 else f"{v / 1000:g}k") if logy else f"{v / 1000:.0f}k"
        o.append(f'<line x1="{x0 + M}" x2="{x0 + W - M}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        o.append(f'<text x="{x0 + M - 4}" y="{y + 4:.1f}" text-anchor="end">{lab}</text>')
    o.append(f'<text x="{x0 + W / 2}" y="{H - 14}" text-anchor="middle">{escape(xlabel)}</text>')
    o.append(f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" transform="rotate(-90 {x0 + 14} {H / 2})">'
             f'{escape(ylabel)}</text>')
    for i, (name, s) in enumerate(series.items()):
        s = [p for p in s if p[1] > 0 and p[1] == p[1]]
        c = COLORS.get(name, "#555")
        if len(s) > 1:
            o.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                     + " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in s) + '"/>')
        o += [f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{c}"/>' for x, y in s]
        o.append(f'<text x="{x0 + M + 8}" y="{M + 14 + 14 * i}" fill="{c}">{escape(name)}</text>')
    return o


def scale_panel(x0: int, points: list[tuple[int, float, float]]) -> list[str]:
    """+1 FIP latency (p50, p99 seconds) against the FIPs the lab holds, log-log."""
    return _panel(x0, "+1 FIP: API call → first ping", "FIPs in the lab (N)", "milliseconds", {
        "p50": [(n, p50 * 1000) for n, p50, _ in points], "p99": [(n, p99 * 1000) for n, _, p99 in points]})


def plot(path: str, rows, dp, ee, es=None) -> None:
    """ES: `e2e_scale.ScaleResult` (its rows with latencies make the third panel)."""
    scale = [r for r in (es.rows if es is not None else []) if r.result.latencies]
    alone = bool(scale) and not rows and not dp      # only the third panel: drawn on its own
    panels = 1 if alone else 3 if scale else 2
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{panels * W}" height="{H}" font-family="sans-serif" '
             'font-size="11">'), '<rect width="100%" height="100%" fill="white"/>']
    if scale:
        parts += scale_panel(0 if alone else 2 * W, [(r.n, r.result.p50, r.result.p99) for r in scale])
    if rows:
        parts += _panel(0, "Cold convergence, 100 routers", "FIPs (N)", "seconds", {
            "dvrnet": [(r.n, r.cold) for r in rows], "raw floor": [(r.n, r.floor_cold) for r in rows],
            "Neutron's way": [(r.n, r.neutron_cold) for r in rows]})
    if dp:
        floor = next((d.pps_med for d in dp if d.name == "floor"), float("nan"))
        ns = sorted({d.n for d in dp if d.name not in ("floor", "direct")})
        parts += _panel(W, "Data plane: ping -f through qrouter", "FIPs in the qrouter (N)",
                        "round trips per second", {
                            "dvrnet": [(d.n, d.pps_med) for d in dp if d.name == "dvrnet"],
                            "neutron": [(d.n, d.pps_med) for d in dp if d.name == "neutron"],
                            "stateless": [(d.n, d.pps_med) for d in dp if d.name == "stateless"],
                            "floor": [(n, floor) for n in ns]})
    if ee is not None and ee.latencies:
        parts.append(f'<text x="{W}" y="{H - 2}" text-anchor="middle">end to end, {len(ee.latencies)} FIPs: '
                     f'p50 {ee.p50 * 1000:.0f} ms, p99 {ee.p99 * 1000:.0f} ms</text>')
    parts.append("</svg>\n")
    with open(path, "w") as f:
        f.write("\n".join(parts))
