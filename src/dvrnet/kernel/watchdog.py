"""Routed mode's watchdog, the daemon (the plan side and the why: plan/watchdog.py).

    python -I -S watchdog.py --lease FILE --seconds S --ctl BIRD_CTL --stale STALE_CONF --log FILE

Every `tick` (a quarter second, at most S/4) it reads the lease (FILE's mtime, a CLOCK_MONOTONIC
time the agent writes); when the lease is older than S seconds and the BIRD behind BIRD_CTL does
not already run a stale configuration (its `DVRNET_DIGEST` starts with "stale-"), it asks that
BIRD to load STALE_CONF (`configure "STALE_CONF"`): the same FIPs, announced with a longer AS
path. It never goes back by itself: the agent, renewing the lease again, reloads the normal
configuration. A BIRD that does not answer is asked again at the next tick.

Standalone on purpose: only the standard library, run with `-I -S` (no site packages), so one
per routed namespace costs a few MB and starts in tens of milliseconds. It detaches (fork, new
session, standard streams to /dev/null) so the agent's start returns at once; SIGTERM ends it.
`command()` is the argv prefix the agent gives the plan (`BgpConfig.watchdog`).
"""
from __future__ import annotations

import os
import socket
import sys
import time

STALE = "stale-"                # plan/bird.py STALE


def command() -> tuple[str, ...]:
    return (sys.executable, "-I", "-S", os.path.abspath(__file__))


def ask(ctl: str, cmd: str, timeout: float = 2.0) -> list[tuple[int, str]]:
    """(code, text) lines of one BIRD CLI command (the protocol of kernel/bird.py `command`)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(ctl)
        f = s.makefile("rwb")
        f.readline()
        f.write(cmd.encode() + b"\n")
        f.flush()
        out: list[tuple[int, str]] = []
        code = 0
        while True:
            line = f.readline().decode(errors="replace").rstrip("\n")
            if not line:
                raise OSError(f"connection closed during {cmd!r}")
            if len(line) >= 5 and line[:4].isdigit() and line[4] in " -":
                code = int(line[:4])
                out.append((code, line[5:]))
                if line[4] == " ":
                    return out
            else:
                out.append((code, line.removeprefix(" ")))
    finally:
        s.close()


def lease_age(path: str, now: float) -> float:
    try:
        return now - os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


def running_stale(ctl: str) -> bool:
    return any(t.strip().strip('"').startswith(STALE) for _c, t in ask(ctl, "eval DVRNET_DIGEST"))


def check(lease: str, seconds: float, ctl: str, stale_conf: str, log) -> bool:
    """One tick; True when it loaded the stale configuration."""
    age = lease_age(lease, time.monotonic())
    if age <= seconds:
        return False
    try:
        if running_stale(ctl):
            return False
        reply = " ".join(t for _c, t in ask(ctl, f'configure "{stale_conf}"', timeout=10.0))
    except OSError as e:
        log(f"lease {age:.1f}s old; BIRD not answering: {e}")
        return False
    log(f"lease {age:.1f}s old (> {seconds:g}s): announcing with the stale configuration: {reply}")
    return True


def _args(argv: list[str]) -> dict[str, str]:
    out = {}
    it = iter(argv)
    for a in it:
        if not a.startswith("--"):
            raise SystemExit(f"watchdog: unexpected argument {a!r}")
        try:
            out[a[2:]] = next(it)
        except StopIteration:
            raise SystemExit(f"watchdog: {a} needs a value") from None
    missing = {"lease", "seconds", "ctl", "stale"} - set(out)
    if missing:
        raise SystemExit(f"watchdog: missing {', '.join('--' + m for m in sorted(missing))}")
    return out


def _detach() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    fd = os.open(os.devnull, os.O_RDWR)
    for n in (0, 1, 2):
        os.dup2(fd, n)
    if fd > 2:
        os.close(fd)


def main(argv: list[str]) -> None:
    a = _args(argv)
    seconds = float(a["seconds"])
    tick = min(0.25, seconds / 4)
    os.makedirs(os.path.dirname(a["lease"]), exist_ok=True)
    if not os.path.exists(a["lease"]):                      # a fresh watchdog gives a fresh lease
        with open(a["lease"], "a"):
            pass
        t = time.monotonic()
        os.utime(a["lease"], (t, t))
    _detach()
    log_path = a.get("log")

    def log(msg: str) -> None:
        if log_path:
            with open(log_path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
    log(f"watching {a['lease']} ({seconds:g}s) for {a['ctl']}")
    while True:
        check(a["lease"], seconds, a["ctl"], a["stale"], log)
        time.sleep(tick)


if __name__ == "__main__":
    main(sys.argv[1:])
