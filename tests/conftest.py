"""Shared test setup: root-only suites skip with a visible reason; per-test namespace prefixes
that are removed by name at teardown, also when the test fails; in-process servers and
Workspaces check every O(change) write against the full comparison (debug assertions)."""
from __future__ import annotations

import itertools
import os
import subprocess

import pytest

_counter = itertools.count()


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates network namespaces")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def verify_incremental_writes():
    """Every Workspace snapshot made incrementally is compared with a full build, and every store
    write's ChangeSet with the snapshot it must produce (O(n) per write: tests only)."""
    from dvrnet.ops import Workspace
    from dvrnet.store import Store
    saved = Workspace.verify_incremental, Store.verify_changesets
    Workspace.verify_incremental = Store.verify_changesets = True
    yield
    Workspace.verify_incremental, Store.verify_changesets = saved


def delete_namespaces(prefix: str) -> None:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def netns_prefix():
    """A prefix unique to this test in this run, e.g. `dvt1234-7-`; namespaces starting with it
    are deleted by name when the test ends, pass or fail."""
    prefix = f"dvt{os.getpid()}-{next(_counter)}-"
    yield prefix
    delete_namespaces(prefix)
