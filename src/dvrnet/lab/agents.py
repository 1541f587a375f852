"""Which `dvrnet agent` and `dvrnet neutron-agent` processes serve a lab's nodes, found by their
command line, whoever started them (`lab up`, `steps.restart_agents`, a test, an operator by hand).

An agent serves the node whose namespace prefix it was given: `dvrnet agent --netns-prefix <lab
prefix><short>-`, or for `dvrnet neutron-agent` the `[dvrnet] netns_prefix` of its `--config-file`s
(the last file that sets it wins, as oslo.config reads them), so `/proc/*/cmdline` says which node
each running agent is for. `lab info` reports these PIDs
(not the ones `lab up` saved), and `lab down` stops them too, so a restarted agent is neither
forgotten nor left running. Zombies and `--once` passes are not agents of a node.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import replace

from .info import LabInfo


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _started(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _config_prefix(files: list[str]) -> str | None:
    """`[dvrnet] netns_prefix` of oslo.config-style FILES (later ones win), None when unset."""
    found = None
    for path in files:
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            cp.read(path)
        except (configparser.Error, OSError):
            continue
        if cp.has_option("dvrnet", "netns_prefix"):
            found = cp.get("dvrnet", "netns_prefix").strip()
    return found


def agent_of(argv: list[str]) -> str | None:
    """The namespace prefix of a long-running `dvrnet agent` / `dvrnet neutron-agent` command
    line, else None."""
    if "--once" in argv:
        return None
    cmd = next((a for a in argv if a in ("agent", "neutron-agent")), None)
    if cmd is None:
        return None
    i = argv.index(cmd)
    if not any("dvrnet" in a for a in argv[:i]):
        return None
    rest = argv[i + 1:]
    if cmd == "neutron-agent":
        files = [rest[j + 1] if a == "--config-file" else a.split("=", 1)[1]
                 for j, a in enumerate(rest)
                 if (a == "--config-file" and j + 1 < len(rest)) or a.startswith("--config-file=")]
        return _config_prefix(files) or None
    for j, a in enumerate(rest):
        if a == "--netns-prefix" and j + 1 < len(rest):
            return rest[j + 1]
        if a.startswith("--netns-prefix="):
            return a.split("=", 1)[1]
    return None


def agent_pids(prefix: str) -> dict[str, list[int]]:
    """{node namespace prefix: pids, oldest first} of the running agents under the lab PREFIX."""
    out: dict[str, list[tuple[int, int]]] = {}
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        pid = int(d)
        node = agent_of(_argv(pid))
        if node is not None and node.startswith(prefix) and _alive(pid):
            out.setdefault(node, []).append((_started(pid), pid))
    return {n: [p for _, p in sorted(v)] for n, v in out.items()}


def with_running_agents(info: LabInfo) -> LabInfo:
    """INFO with each node's agent_pid the newest agent running for it now (None: none runs)."""
    found = agent_pids(info.prefix)
    nodes = [replace(n, agent_pid=(found.get(n.prefix) or [None])[-1]) for n in info.nodes]
    return replace(info, nodes=nodes)
