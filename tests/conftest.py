"""Shared test setup: root-only suites skip with a visible reason; per-test namespace prefixes
that are removed by name at teardown, also when the test fails."""
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
