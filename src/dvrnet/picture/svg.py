"""`Picture` -> SVG text (pure, no dependencies; any browser or viewer shows it, nothing is needed
to make it).

Layout, top to bottom: the bridges of external networks (`br-ex`…) as bars, the fip- and snat-
namespaces, the qrouter- namespaces, the tenant networks' bridges as bars. Ports sit on the edge
of their namespace that faces what they connect to; a bridge port of dvrnet's (`dv-`) sits above
or below its peer so links run straight. Structure (what tests and tools read):
- `<g class="ns" data-ns=NAME data-kind=fip|qrouter|snat|other|bridges>`: one per namespace (the
  bridge namespace's group holds `<g class="bridge" data-bridge=NAME>` bars);
- `<g class="port" data-port="NS/DEV" data-status=…>`: one per port (bridge ports included);
- `<path class="link veth|macvlan" data-a=PORT data-b=PORT data-status=…>`: one per link;
- traced path: ports and links get class `on-path`, ports the hop numbers (`data-hops`);
- status (ok, missing, extra, differs) as `data-status` and colour, lines of text prefixed
  `−` (missing), `+` (extra), `≠` (differs).
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .build import Box, Bridge, Picture, Port

CW, LH = 6.7, 14            # monospace character width and line height at 11 px
PW, PH = 150, 44            # port box (of a namespace)
BPH = 34                    # port box on a bridge bar
PAD, GAP = 12, 28
BAR_H = 22
COLOURS = {"ok": "#333", "missing": "#c62828", "extra": "#ef6c00", "differs": "#c62828"}
FILL = {"fip": "#e3f2fd", "qrouter": "#e8f5e9", "snat": "#fff3e0", "other": "#f5f5f5"}
MARK = {"ok": "", "missing": "− ", "extra": "+ ", "differs": "≠ "}


def _port_side(box: Box, p: Port) -> str:
    if p.side in ("up", "down"):
        return p.side
    return "down" if box.kind == "fip" else "up"


def _box_width(box: Box) -> float:
    longest = max([len(box.ns) + 4] + [len(line.text) + 2 for line in box.lines])
    up = sum(1 for p in box.ports if _port_side(box, p) == "up")
    down = len(box.ports) - up
    return max(300.0, longest * CW + 2 * PAD, max(up, down, 1) * (PW + 10) + 2 * PAD)


def _box_height(box: Box) -> float:
    return PH + LH * 2 + len(box.lines) * LH + PH + PAD


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(self, x: float, y: float, s: str, cls: str = "", colour: str | None = None, anchor: str = "start",
             bold: bool = False) -> None:
        attrs = f' class="{cls}"' if cls else ""
        if colour:
            attrs += f' fill="{colour}"'
        if bold:
            attrs += ' font-weight="bold"'
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attrs}>{escape(s)}</text>')


def render(pic: Picture) -> str:
    svg = _Svg()
    pos: dict[str, tuple[float, float, str]] = {}        # port id -> edge anchor (x, y) and the side it faces
    rect: dict[str, float] = {}                           # port id -> y of its box's top

    # rows of namespaces
    row_a = [b for b in pic.boxes if b.kind in ("fip", "snat", "other")]
    row_b = [b for b in pic.boxes if b.kind == "qrouter"]
    ups = [b for b in pic.bridges if b.side == "up"]
    downs = [b for b in pic.bridges if b.side == "down"]
    top = 60 + len(ups) * (BAR_H + BPH + 30) + 70
    placed: list[tuple[Box, float, float, float, float]] = []
    y = top
    width = 0.0
    for row in (row_a, row_b):
        if not row:
            continue
        x = 20.0
        h_row = 0.0
        for box in row:
            w, h = _box_width(box), _box_height(box)
            placed.append((box, x, y, w, h))
            x += w + GAP
            h_row = max(h_row, h)
        width = max(width, x)
        y += h_row + 90
    bottom = y + 20
    for box, x, y0, w, h in placed:
        for side in ("up", "down"):
            ps = [p for p in box.ports if _port_side(box, p) == side]
            for i, p in enumerate(ps):
                px = x + PAD + i * (PW + 10) + PW / 2
                if side == "up":
                    rect[p.id], pos[p.id] = y0 - PH / 2, (px, y0 - PH / 2, "up")
                else:
                    rect[p.id], pos[p.id] = y0 + h - PH / 2, (px, y0 + h + PH / 2, "down")
    # bridge bars: dv- ports line up with their peers, the rest after them
    peer_of: dict[str, str] = {}
    for e in pic.edges:
        peer_of[e.a], peer_of[e.b] = e.b, e.a
    bars: list[tuple[Bridge, float]] = [(br, 60 + i * (BAR_H + BPH + 30)) for i, br in enumerate(ups)]
    bars += [(br, bottom + BPH + i * (BAR_H + BPH + 30)) for i, br in enumerate(downs)]
    for br, by in bars:
        lined = [pos[peer_of[p.id]][0] for p in br.ports if peer_of.get(p.id) in pos]
        free = max([width] + [x + PW for x in lined])
        for p in br.ports:
            peer = peer_of.get(p.id)
            if peer in pos:
                px = pos[peer][0]
            else:
                px = free + PW / 2
                free += PW + 10
            if br.side == "up":          # ports hang below the bar, facing down
                rect[p.id], pos[p.id] = by + BAR_H, (px, by + BAR_H + BPH, "down")
            else:
                rect[p.id], pos[p.id] = by - BPH, (px, by - BPH, "up")
        width = max(width, free)
    total_w = width + 20
    total_h = (bars[-1][1] + BAR_H if downs else bottom) + 70
    bar_y = {f"{pic.bridge_ns}/{br.name}": (by, br.side) for br, by in bars}   # a macvlan hangs off the bar

    svg.add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
            f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" font-family="DejaVu Sans Mono, monospace" font-size="11" '
            'xml:space="preserve">')
    svg.add("<style>.link{fill:none;stroke:#607d8b;stroke-width:1.6}.link.on-path{stroke:#f57c00;stroke-width:4}"
            ".port>rect.body{fill:#fff;stroke:#455a64}.port.on-path>rect.body{fill:#ffe0b2;stroke:#e65100;stroke-width:2}"
            ".port.status-missing>rect.body,.port.status-differs>rect.body{stroke:#c62828;stroke-dasharray:4 2;stroke-width:2}"
            ".port.status-extra>rect.body{stroke:#ef6c00;stroke-dasharray:2 2;stroke-width:2}"
            ".hop{fill:#e65100;font-weight:bold}</style>")
    svg.add('<rect width="100%" height="100%" fill="#fff"/>')
    svg.text(20, 24, pic.title, bold=True)
    if pic.path_text:
        svg.text(20, 42, pic.path_text, colour="#e65100")

    # links first (under the boxes)
    for e in pic.edges:
        if e.a not in pos or (e.b not in pos and e.b not in bar_y):
            continue
        x1, y1, s1 = pos[e.a]
        if e.b in bar_y:
            by, bside = bar_y[e.b]
            x2, y2, s2 = (x1, by + BAR_H, "down") if bside == "up" else (x1, by, "up")
        else:
            x2, y2, s2 = pos[e.b]
        d1 = -40 if s1 == "up" else 40
        d2 = -40 if s2 == "up" else 40
        cls = f"link {e.kind}" + (" on-path" if e.path else "") + f" status-{e.status}"
        dash = ' stroke-dasharray="6 3"' if e.status != "ok" else ""
        svg.add(f'<path class="{cls}" data-a={quoteattr(e.a)} data-b={quoteattr(e.b)} data-status="{e.status}"'
                f'{dash} d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + d1:.1f} {x2:.1f},{y2 + d2:.1f} {x2:.1f},{y2:.1f}"/>')

    for box, x, y0, w, h in placed:
        svg.add(f'<g class="ns status-{box.status}" data-ns={quoteattr(box.ns)} data-kind="{box.kind}" '
                f'data-status="{box.status}">')
        dash = ' stroke-dasharray="8 4"' if box.status in ("missing", "extra") else ""
        svg.add(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" fill="{FILL[box.kind]}" '
                f'stroke="{COLOURS[box.status] if box.status != "ok" else "#78909c"}"{dash}/>')
        ty = y0 + PH + 18
        svg.text(x + PAD, ty, MARK.get(box.status, "") + box.ns, colour=COLOURS[box.status], bold=True)
        for i, line in enumerate(box.lines):
            body = line.text.lstrip(" ")
            indent = line.text[: len(line.text) - len(body)]
            svg.text(x + PAD, ty + (i + 1) * LH, indent + MARK[line.status] + body,
                     colour=COLOURS[line.status] if line.status != "ok" else "#37474f")
        for p in box.ports:
            _port(svg, p, pos[p.id][0], rect[p.id], PH)
        svg.add("</g>")

    svg.add(f'<g class="ns" data-ns={quoteattr(pic.bridge_ns)} data-kind="bridges">')
    for br, by in bars:
        svg.add(f'<g class="bridge" data-bridge={quoteattr(br.name)}>')
        svg.add(f'<rect x="10" y="{by:.1f}" width="{total_w - 20:.1f}" height="{BAR_H}" rx="4" fill="#cfd8dc" '
                f'stroke="#546e7a"/>')
        svg.text(16, by + 15, f"{br.name}  (bridge in {pic.bridge_ns})", bold=True)
        for p in br.ports:
            _port(svg, p, pos[p.id][0], rect[p.id], BPH)
        svg.add("</g>")
    svg.add("</g>")

    ly = total_h - 40
    svg.text(20, ly, "legend:", bold=True)
    svg.text(80, ly, "− missing (desired, not in the kernel)", colour=COLOURS["missing"])
    svg.text(380, ly, "+ extra (not desired)", colour=COLOURS["extra"])
    svg.text(560, ly, "≠ differs", colour=COLOURS["differs"])
    svg.text(660, ly, "thick orange: the traced path (hop numbers on its ports)", colour="#e65100")
    svg.add("</svg>")
    return "\n".join(svg.parts) + "\n"


def _port(svg: _Svg, p: Port, x: float, top: float, h: float) -> None:
    cls = f"port status-{p.status}" + (" on-path" if p.on_path else "")
    hops = ",".join(str(i) for i in p.path)
    title = f"{p.ns}/{p.name} ({p.kind})" + (f": {p.note}" if p.note else "")
    svg.add(f'<g class="{cls}" data-port={quoteattr(p.id)} data-status="{p.status}"'
            + (f' data-hops="{hops}"' if hops else "") + ">")
    svg.add(f"<title>{escape(title)}</title>")
    svg.add(f'<rect class="body" x="{x - PW / 2:.1f}" y="{top:.1f}" width="{PW}" height="{h}" rx="3"/>')
    svg.text(x, top + 13, MARK[p.status] + p.name, anchor="middle", colour=COLOURS[p.status], bold=True)
    detail = (p.lines[0] if p.lines else "") or p.kind
    svg.text(x, top + 26, detail[:22], anchor="middle", colour="#546e7a")
    if h > 40 and len(p.lines) > 1:
        svg.text(x, top + 39, p.lines[1][:22], anchor="middle", colour="#90a4ae")
    if hops:
        w = 8 + 7 * len(hops)
        svg.add(f'<rect class="hop-badge" x="{x - PW / 2 - 4:.1f}" y="{top - 9:.1f}" width="{w}" height="14" rx="7" '
                f'fill="#e65100"/>')
        svg.text(x - PW / 2 - 4 + w / 2, top + 2, hops, anchor="middle", colour="#fff", bold=True)
    svg.add("</g>")
