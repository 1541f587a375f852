"""Named network namespaces (/run/netns): list, create, delete, and run code inside one.

Invariants:
- A namespace is created only by `add()` (`ip netns add`), never as a side effect of entering it:
  `enter()` opens /run/netns/NAME read-only and fails with `MissingNamespace` when it is absent.
- `run_in()` switches only a short-lived helper thread (setns(CLONE_NEWNET) is per thread), so
  the calling thread's namespace never changes.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


class MissingNamespace(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"missing namespace {name}")
        self.name = name


def path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def list_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def add(name: str) -> str | None:
    """Create; "exists" is success. Returns an error message or None."""
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if p.returncode == 0 or "File exists" in p.stderr:
        return None
    return p.stderr.strip()


def delete(name: str) -> str | None:
    p = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, check=False)
    if p.returncode == 0 or "No such file" in p.stderr:
        return None
    return p.stderr.strip()


def enter(name: str) -> None:
    """setns the *calling thread* into namespace `name` (use only in a helper thread)."""
    try:
        fd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MissingNamespace(name) from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {name}: {os.strerror(e)}")
    finally:
        os.close(fd)


def run_in(name: str, fn: Callable[[], T]) -> T:
    """Run fn() in a fresh thread inside namespace `name`; re-raise its exception here."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            enter(name)
            box["r"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller, not swallowed
            box["e"] = e

    t = threading.Thread(target=body, name=f"netns:{name}")
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]                   # type: ignore[misc]  # the box holds the exception body raised
    return box["r"]                      # type: ignore[return-value]  # the box holds what body returned


def nsenter(name: str) -> list[str]:
    """argv prefix running a command in the namespace (network only; no /sys remount)."""
    return ["nsenter", f"--net={path(name)}"]
