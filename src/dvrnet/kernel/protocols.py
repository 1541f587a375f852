"""Registers dvrnet's route protocol number so `ip route`/`ip rule` print "proto dvrnet".

Idempotent: writes /etc/iproute2/rt_protos.d/dvrnet.conf only when its content differs
(creating the directory if absent), atomically via rename.
"""
from __future__ import annotations

import os

from dvrnet.plan.numbers import RT_PROTO, RT_PROTO_NAME

RT_PROTOS_D = "/etc/iproute2/rt_protos.d"


def register_rt_proto(directory: str = RT_PROTOS_D) -> bool:
    """Returns True when the file was (re)written."""
    path = os.path.join(directory, f"{RT_PROTO_NAME}.conf")
    content = f"# dvrnet's routes and rules (written by dvrnet)\n{RT_PROTO} {RT_PROTO_NAME}\n"
    try:
        with open(path) as f:
            if f.read() == content:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(content)
    os.replace(tmp, path)
    return True
