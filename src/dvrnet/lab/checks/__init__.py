"""`lab check`: the traffic checks of issue 5 (item 2), proving each packet's PATH with counters.

Every upstream gateway counts, per (address . protocol), packets entering from the external segment
(`in_src`, `in_dst`) and leaving onto it (`out_src`, `out_dst`) — see world.gateway_counters_nft.
For an external address A (a FIP or a SNAT address) a correct flow through gateway G shows on G
`in_src[A] > 0` (A's packets reach G from the segment) and `out_dst[A] > 0` (packets for A leave G to
the segment), and nothing for A anywhere else: no other gateway sees A at all, and no gateway ever
sees A arriving as a destination from the segment (`in_dst`, a hairpin) or leaving as a source
(`out_src`). A flow that must not cross a gateway (FIP→FIP, SNAT→FIP) leaves every counter of its
addresses flat. TCP checks also report the source address the far end saw (the responder echoes it),
so a reply that arrives by the wrong path or with the wrong NAT fails.

Checks are plain data (`Check`), built from a `LabInfo` by `plan_checks`; `run_checks` runs them in
rounds — checks whose (address, protocol) counter keys are disjoint run in parallel within a round,
with one counter snapshot before and after — then the negative checks on the segment (ARP for
non-FIP addresses, packets sent to an `fg-` MAC for addresses its node does not host). A check that
cannot pass (nothing is configured yet, an fg- port is missing, a FIP has no router) reports FAILED
with the reason, never passes vacuously.

The judging functions (`judge_gateway_path`, `judge_flat`, `judge_arp`, `judge_fg`) are pure and
take counter deltas, so the row logic is unit-tested with fabricated values.

The package is split by what each part computes: `plan` (LabInfo → checks and rounds, pure),
`run` (traffic, counters and discovery in the lab's namespaces → rows), `judge` (counter deltas and
traffic → a row's verdict, pure), `render` (rows → table or JSON).
"""
from .judge import Counters, Row, Traffic, delta, judge_arp, judge_fg, judge_flat, judge_gateway_path, per_gateway
from .plan import Check, plan_checks, schedule
from .render import render_table, rows_json
from .run import discover_fg, parse_counters, ping, read_counters, run_checks, snat_holder

__all__ = [
    "Check",
    "Counters",
    "Row",
    "Traffic",
    "delta",
    "discover_fg",
    "judge_arp",
    "judge_fg",
    "judge_flat",
    "judge_gateway_path",
    "parse_counters",
    "per_gateway",
    "ping",
    "plan_checks",
    "read_counters",
    "render_table",
    "rows_json",
    "run_checks",
    "schedule",
    "snat_holder",
]
