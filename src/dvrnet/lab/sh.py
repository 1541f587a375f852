"""The lab's only way to touch the system: iproute2 batches, `nft -f`, sysctls and processes, each
run inside one named namespace. Nothing here ever addresses the root namespace's links, routes or
firewall: every command is `ip -n <ns>`, `bridge -n <ns>` or `ip netns exec <ns>`; the root-namespace
calls are `ip netns add/del/list/pids` only.

`parallel()` runs independent per-namespace batches at once (one process each), which is what keeps
the whole world build to a few hundred milliseconds.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """A lab command failed; the message names the namespace, the command and stderr."""


@dataclass(frozen=True)
class Cmd:
    """One process: argv and optional stdin, with the namespace it concerns (for messages)."""
    argv: tuple[str, ...]
    stdin: str | None = None
    ns: str = ""
    check: bool = True


def run(cmd: Cmd) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd.argv, input=cmd.stdin, capture_output=True, text=True, check=False)
    if cmd.check and p.returncode != 0:
        first = (cmd.stdin or "").strip().splitlines()[:1]
        raise LabError(f"[{cmd.ns or '-'}] {' '.join(cmd.argv)} failed (rc={p.returncode}): "
                       f"{p.stderr.strip() or p.stdout.strip()}" + (f" (batch starts: {first[0]})" if first else ""))
    return p


def parallel(cmds: Iterable[Cmd], workers: int = 16) -> list[subprocess.CompletedProcess]:
    cmds = list(cmds)
    if not cmds:
        return []
    if len(cmds) == 1:
        return [run(cmds[0])]
    with ThreadPoolExecutor(max_workers=min(workers, len(cmds))) as ex:
        return list(ex.map(run, cmds))


def ip_batch(ns: str, lines: Iterable[str], force: bool = False) -> Cmd:
    """`ip -n NS -batch -`. With force, errors of single lines do not stop the batch (idempotent
    re-runs: 'File exists')."""
    argv = ["ip", "-n", ns] + (["-force"] if force else []) + ["-batch", "-"]
    return Cmd(tuple(argv), "\n".join(lines) + "\n", ns, check=not force)


def bridge_batch(ns: str, lines: Iterable[str]) -> Cmd:
    return Cmd(("bridge", "-n", ns, "-force", "-batch", "-"), "\n".join(lines) + "\n", ns, check=False)


def nft(ns: str, text: str) -> Cmd:
    return Cmd(("ip", "netns", "exec", ns, "nft", "-f", "-"), text, ns)


def sysctl(ns: str, settings: dict[str, str | int]) -> Cmd:
    args = [f"{k}={v}" for k, v in settings.items()]
    return Cmd(("ip", "netns", "exec", ns, "sysctl", "-q", "-w", *args), None, ns)


def netns_exec(ns: str, *argv: str, check: bool = False) -> Cmd:
    return Cmd(("ip", "netns", "exec", ns, *argv), None, ns, check=check)


def list_netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()]


def netns_with_prefix(prefix: str) -> list[str]:
    if not prefix:
        raise ValueError("refusing an empty lab prefix")
    return [n for n in list_netns() if n.startswith(prefix)]


def netns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def add_netns(names: Iterable[str]) -> None:
    """Create the namespaces that do not exist yet (one `ip -batch` in the root namespace, which only
    runs `netns add`)."""
    have = set(list_netns())
    todo = [n for n in names if n not in have]
    if todo:
        run(Cmd(("ip", "-force", "-batch", "-"), "".join(f"netns add {n}\n" for n in todo), "root", check=False))
        missing = [n for n in todo if n not in set(list_netns())]
        if missing:
            raise LabError(f"could not create namespaces: {', '.join(missing)}")


@contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Move the calling *thread* into namespace NS for the block (sockets created inside stay there),
    then back. Use from worker threads only."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise LabError(f"setns({ns}) failed: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - would leave the thread astray
                raise LabError(f"setns back from {ns} failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(own)
        os.close(target)


def run_threads(fns: list[Callable[[], object]], workers: int = 16) -> list[object]:
    """Run callables in worker threads, results in order (exceptions are returned, not raised)."""
    def wrap(fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller as a failed row
            return e
    if not fns:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(fns))) as ex:
        return list(ex.map(wrap, fns))


