"""Processes as owned objects: how one is named, where its runtime files live, how it is found.

A `state.Process` is part of its namespace's desired state like a route: the diff starts it when
it is missing, reloads it when its configuration digest differs, restarts it when its command
line differs (or it died), stops it when it is no longer desired or its namespace goes. Nothing
about it is kept on disk as state:
- its runtime directory is derived from the namespace and the role:
  `RUN_DIR/<namespace>/<role>/` (configuration, control socket, pid file, log); the files are
  rebuilt from the plan on every start and reload and never read back;
- a running instance is found again by its *marker*: an argument of its command line under its
  runtime directory (e.g. BIRD's `-s RUN_DIR/<ns>/bird/ctl`), in the network namespace of that
  name (the reader checks /proc/<pid>/ns/net against /run/netns/<ns>);
- what configuration it runs is asked of the process itself (the role's kernel module), so an
  agent restarted next to a running instance adopts it without restarting it.
Ownership: a process is dvrnet's when its marker names a namespace dvrnet owns (its prefix).
"""
from __future__ import annotations

import hashlib

RUN_DIR = "/run/dvrnet"


def runtime_dir(ns: str, role: str) -> str:
    return f"{RUN_DIR}/{ns}/{role}"


def marker(argv: tuple[str, ...] | list[str]) -> tuple[str, str] | None:
    """(namespace, role) named by the first argument under RUN_DIR, if any."""
    head = RUN_DIR + "/"
    for a in argv:
        if a.startswith(head):
            parts = a[len(head):].split("/")
            if len(parts) >= 2 and parts[0] and parts[1]:
                return parts[0], parts[1]
    return None


def digest(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def argv_digest(argv: tuple[str, ...]) -> str:
    """The digest of a process whose command line is all its configuration."""
    return digest(*argv)
