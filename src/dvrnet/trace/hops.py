"""What a trace reports: hops, the kernel's answers and the checks made at each hop.

A `Hop` is one routing decision in one namespace: the model's (`plan.fib.lookup` over the desired
state) and the kernel's (`ip route get` with the same inputs), plus `checks` of the kernel objects
the packet needs there (the neighbour of the next hop, a NAT map element, proxy ARP, a device's
MAC). A hop is right (`ok`) when both answers agree and every check holds; the first hop that is
not is the one a trace names (`Trace.first_wrong`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class KernelAnswer:
    ok: bool
    dev: str | None = None
    gateway: str | None = None
    table: str | None = None
    text: str = ""


@dataclass
class Check:
    what: str                    # e.g. "neighbour 10.0.1.5 on qr-1234", "proxy ARP on fg-1234"
    want: str
    got: str
    ok: bool

    def line(self) -> str:
        return f"{'ok' if self.ok else 'WRONG'}  {self.what}: " + (self.got if self.ok else f"want {self.want}, kernel {self.got}")


@dataclass
class Hop:
    node: str
    ns: str
    iif: str
    src: str
    dst: str
    mark: int
    rule: str
    route: str
    action: str
    dev: str | None
    via: str | None
    table: str | None
    kernel: KernelAnswer
    routes_agree: bool           # the model's and the kernel's route lookups agree
    note: str = ""
    leg: str = "out"             # "in": towards the VM (inbound trace), "out": from it
    checks: list[Check] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        """Right: the lookups agree and every check holds."""
        return self.routes_agree and all(c.ok for c in self.checks)

    def line(self) -> str:
        ours = self.route if self.action == "route" else self.action
        out = (f"{self.node} {self.ns}\n"
               f"    in {self.iif} from {self.src} to {self.dst} mark {self.mark:#x}\n"
               f"    model:  {self.rule} -> {ours}\n"
               f"    kernel: {self.kernel.text}\n")
        out += "".join(f"    {c.line()}\n" for c in self.checks)
        verdict = "agree" if self.agree else ("DISAGREE" if not self.routes_agree else "WRONG")
        return out + f"    {verdict}" + (f"; {self.note}" if self.note else "")


@dataclass
class Trace:
    vm: str                      # outbound: the VM; inbound: the FIP
    dst: str
    hops: list[Hop] = field(default_factory=list)
    end: str = ""
    gateway: str | None = None   # the upstream gateway the packet leaves by (its name), if any
    direction: str = "outbound"  # "outbound" | "inbound"
    entry: str = ""              # inbound: who answers ARP (or routes) for the FIP, with which MAC

    broken: str = ""             # why the walk could not be completed here (nothing planned, ...)

    @property
    def agree(self) -> bool:
        return bool(self.hops) and all(h.agree for h in self.hops) and not self.broken

    @property
    def first_wrong(self) -> int | None:
        """1-based index of the first hop that is not right, or None."""
        return next((i for i, h in enumerate(self.hops, 1) if not h.agree), None)

    def text(self) -> str:
        head = (f"trace --inbound {self.vm} from {self.dst}" if self.direction == "inbound"
                else f"trace {self.vm} -> {self.dst}")
        out = [head]
        if self.entry:
            out.append(f"entry: {self.entry}")
        out += [f"{i}. [{h.leg}] {h.line()}" if self.direction == "inbound" else f"{i}. {h.line()}"
                for i, h in enumerate(self.hops, 1)]
        out.append(f"=> {self.end}")
        if self.broken:
            out.append(f"INCOMPLETE: {self.broken}")
        w = self.first_wrong
        if not self.hops:
            out.append("no hop traced here")
        elif w is None and not self.broken:
            out.append("model and kernel agree on every hop")
        elif w is not None:
            bad = [str(i) for i, h in enumerate(self.hops, 1) if not h.agree]
            h = self.hops[w - 1]
            why = next((c.what for c in h.checks if not c.ok), None) or "the route lookups disagree"
            out.append(f"first wrong hop: {w} ({h.node} {h.ns}: {why}); model and kernel DISAGREE on "
                       f"hop(s) {', '.join(bad)}")
        return "\n".join(out)

    def to_json(self) -> str:
        d = asdict(self)
        for h, hd in zip(self.hops, d["hops"]):
            hd["agree"] = h.agree
        return json.dumps({**d, "agree": self.agree, "first_wrong": self.first_wrong}, indent=2)
