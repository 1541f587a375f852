"""The lab's daemon control (dvrnet.lab.daemons): started in their own dirs on loopback, stopped
by the pids they started with, also when a later start fails."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dvrnet.lab import daemons as D


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: PostgreSQL is run as the unprivileged user 'nobody'")


@pytest.fixture
def base():
    d = tempfile.mkdtemp(prefix="dvrnet-dmn-")       # /tmp: 'nobody' (PostgreSQL) can enter it
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_a_failed_start_stops_what_was_started(base):
    _need_root()
    pid_dir = str(base / "pids")
    with pytest.raises(D.DaemonError, match="make neutron-venv"), D.DaemonSet() as ds:
        pg = ds.add(D.start_postgres(str(base / "pg"), pid_dir=pid_dir))
        assert D.alive(pg.pid)
        assert Path(pid_dir, "postgres.pid").read_text().split() == [str(pg.pid)]
        ds.add(D.start_neutron_server(str(base / "n"), pg.url, "rabbit://x@127.0.0.1:1/",
                                      venv=str(base / "no-such-venv"), pid_dir=pid_dir))
    assert not D.alive(pg.pid)
    assert not os.path.exists(os.path.join(pid_dir, "postgres.pid"))


def test_postgres_refuses_a_directory_nobody_cannot_enter(tmp_path):
    _need_root()
    os.chmod(tmp_path.parent, 0o700)
    with pytest.raises(D.DaemonError, match="cannot enter"):
        D.start_postgres(str(tmp_path / "pg"))


def test_stop_from_pid_files_after_a_crash(base):
    """What `lab down` does when the process that started the daemons is gone."""
    _need_root()
    pid_dir = str(base / "pids")
    pg = D.start_postgres(str(base / "pg"), pid_dir=pid_dir)
    url = D.create_database(pg, "neutron")
    assert url.endswith("/neutron")
    stopped = D.stop_from_pid_files(pid_dir)
    assert pg.pid in stopped and not D.alive(pg.pid)
    assert os.listdir(pid_dir) == []
