"""BIRD 2, kernel side: talk to a running instance over its control socket (the protocol `birdc`
speaks: one command line in, numbered reply lines out), load a new configuration, and read its
sessions for `dvrnet show`. The plan side (configuration text) is `plan/bird.py`.

- `digest(proc)`: the `DVRNET_DIGEST` constant of the configuration the process *runs* (`eval`),
  so an agent restarted beside a running BIRD knows whether it must reload — and adopts it
  without a restart (no session drops, no FIP withdrawn);
- `reload(proc)`: `configure "<conf>"`; BIRD re-reads it and reconfigures live, restarting only
  the protocols whose options changed (a FIP is never a configuration change);
- `sessions(ns)`: each BGP protocol's state and the number of prefixes it exports;
  `bgp_lines(namespaces)`: what `dvrnet show` prints of them (one line per session).
"""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass

from dvrnet.plan.bird import STALE, paths
from dvrnet.plan.state import Process


class BirdError(OSError):
    pass


def command(ctl: str, cmd: str, timeout: float = 3.0) -> list[tuple[int, str]]:
    """(code, text) reply lines of one CLI command (continuation lines carry the last code)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(ctl)
        f = s.makefile("rwb")
        f.readline()                                  # "0001 BIRD x.y ready."
        f.write(cmd.encode() + b"\n")
        f.flush()
        out: list[tuple[int, str]] = []
        code = 0
        while True:
            line = f.readline().decode(errors="replace")
            if not line:
                raise BirdError(f"{ctl}: connection closed during {cmd!r}")
            line = line.rstrip("\n")
            if len(line) >= 5 and line[:4].isdigit() and line[4] in " -":
                code = int(line[:4])
                out.append((code, line[5:]))
                if line[4] == " ":
                    return out
            else:
                out.append((code, line.removeprefix(" ")))
    except OSError as e:
        raise BirdError(f"{ctl}: {e}") from None
    finally:
        s.close()


def digest(proc: Process, ns: str) -> str:
    """The digest of the configuration the process runs; "" when it cannot be asked."""
    try:
        rows = command(paths(ns)["ctl"], "eval DVRNET_DIGEST", timeout=1.0)
    except BirdError:
        return ""
    for _code, text in rows:
        m = re.fullmatch(r'"?([0-9a-z-]+)"?', text.strip())     # "<digest>" or "stale-<digest>"
        if m:
            return m.group(1)
    return ""


def wait_ready(ns: str, timeout: float = 5.0) -> str | None:
    """Wait until the control socket answers; None, or why not."""
    end = time.monotonic() + timeout
    last = "no control socket"
    while time.monotonic() < end:
        try:
            command(paths(ns)["ctl"], "show status", timeout=0.5)
            return None
        except BirdError as e:
            last = str(e)
        time.sleep(0.02)
    return f"BIRD not answering after {timeout:.0f}s: {last}"


def reload(proc: Process, ns: str) -> str | None:
    conf = paths(ns)["conf"]
    try:
        rows = command(paths(ns)["ctl"], f'configure "{conf}"', timeout=10.0)
    except BirdError as e:
        return str(e)
    text = "; ".join(t for _c, t in rows)
    if any(c in (3, 4, 18, 19, 20) for c, _t in rows) or "Reconfigur" in text:
        return None                                   # 0003 reconfigured, 0004 in progress, ...
    return f"configure failed: {text}"


@dataclass
class Session:
    name: str
    state: str                  # BIRD's: "up", "start", ...
    info: str                   # "Established", "Active", "Connect" ... plus the last error
    exported: int | None        # prefixes announced to the peer


def sessions(ns: str) -> list[Session]:
    ctl = paths(ns)["ctl"]
    if not os.path.exists(ctl):
        return []
    out = []
    for code, text in command(ctl, "show protocols"):
        parts = text.split()
        if code in (1002, 0) and len(parts) >= 4 and parts[1] == "BGP":
            out.append(Session(parts[0], parts[3], " ".join(parts[5:]), None))
    for s in out:
        try:
            rows = command(ctl, f"show route export {s.name} count")
            m = re.search(r"(\d+) of \d+ routes", " ".join(t for _c, t in rows))
            s.exported = int(m.group(1)) if m else None
        except BirdError:
            s.exported = None
    return out


def bgp_lines(namespaces) -> list[str]:
    """`bgp <namespace> <session>: <state> <info>, <n> prefixes announced[, stale ...]` per
    session of each namespace's BIRD; one `bgp <namespace>: BIRD not answering (...)` line for
    a BIRD that does not answer."""
    out = []
    for name in namespaces:
        try:
            ss = sessions(name)
            stale = digest(Process("bird", ()), name).startswith(STALE)
        except BirdError as e:
            out.append(f"bgp {name}: BIRD not answering ({e})")
            continue
        note = ", stale: the agent's lease expired, AS path prepended (plan/watchdog.py)" if stale else ""
        for x in ss:
            out.append(f"bgp {name} {x.name}: {x.state} {x.info}".rstrip()
                       + f", {x.exported if x.exported is not None else '?'} prefixes announced{note}")
    return out
