"""Per-namespace sysctls through /proc/sys, from a helper thread inside the namespace.

/proc/sys/net resolves against the namespace of the thread that opens it, so one setns'd thread
reads or writes every key of a namespace without spawning a process.
Keys are dotted (`net.ipv4.conf.fg-1234.proxy_arp`); a device name may itself contain dots.
"""
from __future__ import annotations

import os

from . import netns

_DEV_GROUPS = ("conf", "neigh")


def key_path(key: str) -> str:
    parts = key.split(".")
    if len(parts) >= 5 and parts[2] in _DEV_GROUPS:
        parts = parts[:3] + [".".join(parts[3:-1])] + parts[-1:]
    return os.path.join("/proc/sys", *parts)


def _ipv6_absent() -> bool:
    """This kernel has no IPv6 (`ipv6.disable=1` at boot, or not built): no /proc/sys/net/ipv6."""
    return not os.path.isdir("/proc/sys/net/ipv6")


def _off_anyway(key: str) -> bool:
    """`disable_ipv6` on a kernel without IPv6 holds by construction (read as 1, written as a no-op)."""
    return key.startswith("net.ipv6.") and key.endswith(".disable_ipv6") and _ipv6_absent()


def read(ns: str, keys: list[str]) -> dict[str, str]:
    """Values of the keys that exist (a key of an absent device is simply not returned)."""
    def body() -> dict[str, str]:
        out = {}
        for k in keys:
            try:
                with open(key_path(k)) as f:
                    out[k] = f.read().strip()
            except FileNotFoundError:
                if _off_anyway(k):
                    out[k] = "1"
            except PermissionError:
                pass
        return out
    return netns.run_in(ns, body) if keys else {}


def write(ns: str, items: list[tuple[str, str]]) -> dict[str, str]:
    """Write each key; return {key: error message} for the failures."""
    def body() -> dict[str, str]:
        errs = {}
        for k, v in items:
            try:
                with open(key_path(k), "w") as f:
                    f.write(v)
            except FileNotFoundError:
                if not _off_anyway(k):
                    errs[k] = "no such sysctl (device missing?)"
            except PermissionError as e:
                errs[k] = f"{'EPERM' if e.errno == 1 else 'EACCES'}: not permitted (read-only sysctl or no CAP_NET_ADMIN)"
            except OSError as e:
                errs[k] = f"{os.strerror(e.errno or 0)}"
        return errs
    return netns.run_in(ns, body) if items else {}
