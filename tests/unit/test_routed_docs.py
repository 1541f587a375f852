"""docs/routed-mode.md shows BIRD configurations as dvrnet generates them: the node's (plan/bird.py)
and the lab ToR's (lab/tor.py). These tests regenerate both from the inputs the page names and
compare them line by line (only the `log` line and comments, which hold local paths, are left out
of the page), so the page cannot drift from the code."""
from __future__ import annotations

import re
from pathlib import Path

from dvrnet.lab.tor import tor_config
from dvrnet.plan.bird import bird_process, paths
from dvrnet.plan.config import BgpConfig, BgpPeer, default_asn

DOC = Path(__file__).resolve().parents[2] / "docs" / "routed-mode.md"
PUBLIC = ["203.0.113.0/24", "198.51.100.0/24"]


def _blocks() -> list[list[str]]:
    return [b.strip("\n").splitlines() for b in re.findall(r"```\n(.*?)```", DOC.read_text(), re.DOTALL)]


def _shown(text: str) -> list[str]:
    return [line for line in text.strip("\n").splitlines() if not line.startswith(("log ", "#"))]


def _block_starting(first: str) -> list[str]:
    found = [b for b in _blocks() if b and b[0].startswith(first)]
    assert len(found) == 1, f"docs/routed-mode.md: one block starting {first!r}, found {len(found)}"
    return found[0]


def test_docs_node_bird_configuration_is_the_generated_one():
    ns = "dvhb-c1-fip-ff4b90c1-ce82-44e2-bf3a-0d55b777b36b"          # the lab's compute1, as on the page
    assert default_asn("compute1") == 4262364057
    proc = bird_process(ns, "100.64.0.4", default_asn("compute1"), (BgpPeer("100.64.0.254", 65000),), PUBLIC,
                        "fg-4a4c2276-68", BgpConfig())
    conf = dict(proc.files)[paths(ns)["conf"]]
    assert _block_starting("define DVRNET_DIGEST") == _shown(conf)


def test_docs_tor_bird_configuration_is_the_labs():
    conf = tor_config("100.64.0.254", "100.64.0.0/24", PUBLIC, "/unused")
    # the page wraps the import filter's line; compare the statements, not the layout
    def words(lines: list[str]) -> list[str]:
        return " ".join(lines).split()
    assert words(_block_starting("router id 100.64.0.254")) == words(_shown(conf))
