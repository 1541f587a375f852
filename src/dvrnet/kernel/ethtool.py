"""Two ethtool settings through the SIOCETHTOOL ioctl, from a helper thread inside the namespace
(no process per device): a device's link state (carrier) and its transmit checksum offload
(`ethtool -K DEV tx on|off`).

The ioctl resolves device names in the namespace of the socket it is issued on, and a socket
belongs to the namespace of the thread that created it (`netns.run_in`).
ETHTOOL_STXCSUM changes the same feature bits as `ethtool -K DEV tx off` (the checksum features;
the kernel then drops TSO, which needs them); ETHTOOL_GTXCSUM reads them back.
"""
from __future__ import annotations

import array
import errno
import fcntl
import os
import socket
import struct

from . import netns

SIOCETHTOOL = 0x8946
ETHTOOL_GLINK = 0x0000000A
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017
_IFREQ = 40                              # sizeof(struct ifreq) on 64-bit Linux


def _value(sock: socket.socket, dev: str, cmd: int, data: int = 0) -> int:
    """One `struct ethtool_value` ioctl on DEV; returns its data field."""
    buf = array.array("B", struct.pack("=II", cmd, data))
    addr, _n = buf.buffer_info()
    ifr = struct.pack("16sP", dev.encode(), addr).ljust(_IFREQ, b"\0")
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifr)
    return struct.unpack("=II", buf.tobytes())[1]


def read(ns: str, carrier: list[str], tx: list[str]) -> tuple[dict[str, bool], dict[str, bool]]:
    """({dev: has carrier}, {dev: transmit checksum offload on}) for the devices of NS named in
    CARRIER and TX; a device that does not exist is left out (like a sysctl of an absent device)."""
    if not carrier and not tx:
        return {}, {}

    def body() -> tuple[dict[str, bool], dict[str, bool]]:
        links: dict[str, bool] = {}
        csum: dict[str, bool] = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            for out, devs, cmd in ((links, carrier, ETHTOOL_GLINK), (csum, tx, ETHTOOL_GTXCSUM)):
                for dev in devs:
                    try:
                        out[dev] = bool(_value(s, dev, cmd))
                    except OSError as e:
                        if e.errno != errno.ENODEV:
                            raise
        return links, csum
    return netns.run_in(ns, body)


def set_tx(ns: str, items: list[tuple[str, bool]]) -> dict[str, str]:
    """Set transmit checksum offload of each device; {dev: error message} for the failures."""
    def body() -> dict[str, str]:
        errs = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            for dev, on in items:
                try:
                    _value(s, dev, ETHTOOL_STXCSUM, 1 if on else 0)
                except OSError as e:
                    errs[dev] = ("Cannot find device" if e.errno == errno.ENODEV
                                 else f"{errno.errorcode.get(e.errno or 0, '')}: {os.strerror(e.errno or 0)}")
        return errs
    return netns.run_in(ns, body) if items else {}
