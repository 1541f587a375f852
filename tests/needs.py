"""Shared skips of the suites that need real parts: one place says what is missing and how to get it."""
from __future__ import annotations

import os
import shutil

import pytest


def neutron_lab(bird: bool = False) -> None:
    """Skip unless a Neutron lab can run here: root, neutron-server's venv, and BIRD 2 when BIRD."""
    from dvrnet.lab.daemons import neutron_venv
    if os.geteuid() != 0:
        pytest.skip("needs root: the lab creates network namespaces")
    if not os.path.exists(os.path.join(neutron_venv(), "bin", "neutron-server")):
        pytest.skip(f"no neutron-server in {neutron_venv()}: `make neutron-venv` builds it (needs PyPI)")
    if bird and shutil.which("bird") is None:
        pytest.skip("routed mode needs BIRD 2 (`make deb` installs bird2)")
