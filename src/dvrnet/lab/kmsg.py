"""The kernel log as the lab reads it: what the kernel said about L2 hygiene while the lab ran.

Two messages mean a MAC shared between nodes crossed them (issue 17, item 4):
- `<bridge>: received packet on <port> with own address as source address (addr:<mac>, vlan:<n>)`:
  a bridge got a frame whose source is one of its own (local) addresses;
- `IPv6: <dev>: IPv6 duplicate address <addr> used by <mac> detected!`: duplicate address
  detection of a link-local address derived from a shared MAC saw the other node's probe.

`KernelLog()` opens /dev/kmsg positioned after the last record, so `new()` returns exactly what
the kernel logged since; `l2_complaints(messages, devices)` keeps the two kinds naming one of
DEVICES. A log that cannot be read raises `KernelLogUnreadable`: a check that cannot look has not
passed.
"""
from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

KMSG = "/dev/kmsg"

OWN_ADDRESS = re.compile(r"^(?P<bridge>\S+): received packet on (?P<dev>\S+) with own address as source address")
DUPLICATE = re.compile(r"^IPv6: (?P<dev>\S+): IPv6 duplicate address (?P<addr>\S+) used by (?P<mac>\S+) detected")


class KernelLogUnreadable(OSError):
    pass


@dataclass(frozen=True)
class Complaint:
    kind: str            # "own address" | "duplicate address"
    devices: tuple[str, ...]
    text: str


class KernelLog:
    def __init__(self, path: str = KMSG):
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as e:
            raise KernelLogUnreadable(e.errno, f"cannot read the kernel log ({path}): {e.strerror}") from None
        self.lost = 0            # records overwritten before they were read (ring buffer wrapped)

    def new(self) -> list[str]:
        """The messages logged since the last call (or since opening)."""
        out = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.EPIPE:       # overwritten records: the next read goes on after them
                    self.lost += 1
                    continue
                raise KernelLogUnreadable(e.errno, f"reading {self.path}: {e.strerror}") from None
            if not rec:
                return out
            line = rec.decode(errors="replace").split("\n", 1)[0]
            out.append(line.split(";", 1)[1] if ";" in line else line)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def l2_complaints(messages: Iterable[str], devices: Iterable[str] | None = None) -> list[Complaint]:
    """The two L2 messages among MESSAGES that name one of DEVICES (all of them when None)."""
    devs = None if devices is None else set(devices)
    out = []
    for m in messages:
        own = OWN_ADDRESS.match(m)
        if own:
            names = (own["bridge"], own["dev"])
            if devs is None or devs & set(names):
                out.append(Complaint("own address", names, m))
            continue
        dup = DUPLICATE.match(m)
        if dup and (devs is None or dup["dev"] in devs):
            out.append(Complaint("duplicate address", (dup["dev"],), m))
    return out


__all__ = ["Complaint", "KernelLog", "KernelLogUnreadable", "l2_complaints"]
