"""Open vSwitch instances for the lab and the tests: one ovsdb-server and one ovs-vswitchd
(userspace `netdev` datapath) per namespace — a second ovs-vswitchd in one namespace fails
(`datapath ovs-netdev already exists but cannot be opened`), one per simulated node works.

Each instance has its own directory (its database, sockets, logs; OVS_RUNDIR, OVS_LOGDIR and
OVS_DBDIR point there) and its daemons run inside the namespace with pid files in that
directory, so they are stopped by pid (`stop`), also after a crash (`lab down` finds them by
pid file and by namespace). Nothing is started through systemd or in the root namespace.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class OvsLabError(RuntimeError):
    pass


@dataclass(frozen=True)
class Instance:
    netns: str
    dir: str

    @property
    def sock(self) -> str:
        return os.path.join(self.dir, "db.sock")

    @property
    def db(self) -> str:
        return f"unix:{self.sock}"

    def pidfile(self, daemon: str) -> str:
        return os.path.join(self.dir, f"{daemon}.pid")

    def ctl(self, daemon: str) -> str:
        return os.path.join(self.dir, f"{daemon}.ctl")

    def pid(self, daemon: str) -> int | None:
        """The daemon's pid from its pid file, if that process is this instance's daemon (its
        command line names the daemon and this directory: a recycled pid is never ours)."""
        try:
            with open(self.pidfile(daemon)) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cl = f.read()
        except (OSError, ValueError):
            return None
        return pid if daemon.encode() in cl and self.dir.encode() in cl else None

    def vsctl(self, *args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess:
        p = subprocess.run(["ovs-vsctl", f"--db={self.db}", f"--timeout={int(timeout)}", *args],
                           capture_output=True, text=True, check=False)
        if check and p.returncode != 0:
            raise OvsLabError(f"[{self.netns}] ovs-vsctl {' '.join(args)}: {p.stderr.strip()}")
        return p


def _env(d: str) -> dict[str, str]:
    return {**os.environ, "OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d, "OVS_SYSCONFDIR": d}


def _wait(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise OvsLabError(f"{what} after {timeout:.0f}s")
        time.sleep(0.01)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _detach(inst: Instance, daemon: str, argv: list[str]) -> None:
    old = inst.pid(daemon)
    if _alive(old):
        return
    log = os.path.join(inst.dir, f"{daemon}.out")
    with open(log, "ab") as out:
        p = subprocess.run(["ip", "netns", "exec", inst.netns, daemon, *argv, "--detach", "--no-chdir",
                            f"--pidfile={inst.pidfile(daemon)}", f"--unixctl={inst.ctl(daemon)}",
                            f"--log-file={os.path.join(inst.dir, daemon + '.log')}"],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_env(inst.dir), check=False)
    if p.returncode != 0:
        raise OvsLabError(f"[{inst.netns}] {daemon} did not start (rc={p.returncode}); see {log}")
    _wait(lambda: _alive(inst.pid(daemon)), 10, f"[{inst.netns}] no {daemon} pid")


def start(netns: str, directory: str, bridges: tuple[str, ...] = ("br-int",)) -> Instance:
    """A database and an ovs-vswitchd inside NETNS (which must exist), bridges with the userspace
    datapath. Idempotent: running daemons are kept."""
    inst = Instance(netns, directory)
    os.makedirs(directory, exist_ok=True)
    conf = os.path.join(directory, "conf.db")
    if not os.path.exists(conf):
        subprocess.run(["ovsdb-tool", "create", conf, SCHEMA], check=True, capture_output=True)
    _detach(inst, "ovsdb-server", [conf, f"--remote=punix:{inst.sock}",
                                   "--remote=db:Open_vSwitch,Open_vSwitch,manager_options"])
    _wait(lambda: os.path.exists(inst.sock), 10, f"[{netns}] no database socket {inst.sock}")
    inst.vsctl("--no-wait", "init")
    start_vswitchd(inst)
    args: list[str] = []
    for b in bridges:
        args += ["--", "--may-exist", "add-br", b, "--", "set", "Bridge", b, "datapath_type=netdev"]
    if args:
        inst.vsctl(*args)
    return inst


def start_vswitchd(inst: Instance) -> int:
    _detach(inst, "ovs-vswitchd", [inst.db])
    pid = inst.pid("ovs-vswitchd")
    assert pid is not None
    return pid


def kill_vswitchd(inst: Instance, sig: int = signal.SIGKILL, daemon: str = "ovs-vswitchd") -> int | None:
    """Stop ovs-vswitchd (or DAEMON) without cleanup, as a crash would: its taps stay where they are."""
    pid = inst.pid(daemon)
    if _alive(pid):
        assert pid is not None
        os.kill(pid, sig)
        _wait(lambda: not _alive(pid), 10, f"[{inst.netns}] {daemon} {pid} still alive")
    return pid


def stop(inst: Instance) -> list[int]:
    """ovs-vswitchd (`exit --cleanup`, then by pid), then the database server, by pid."""
    stopped = []
    pid = inst.pid("ovs-vswitchd")
    if _alive(pid):
        subprocess.run(["ovs-appctl", "-t", inst.ctl("ovs-vswitchd"), "--timeout=5", "exit", "--cleanup"],
                       capture_output=True, check=False)
    for daemon in ("ovs-vswitchd", "ovsdb-server"):
        pid = inst.pid(daemon)
        if not _alive(pid):
            continue
        assert pid is not None
        stopped.append(pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + 2
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.01)
            if not _alive(pid):
                break
    return stopped
