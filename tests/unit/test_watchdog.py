"""Routed mode's watchdog (plan/watchdog.py, kernel/watchdog.py): the plan gives each routed
namespace's BIRD a stale configuration beside its normal one (longer AS path, its own digest) and
a watchdog whose command line is its configuration; one tick of the watchdog loads the stale
configuration only when the lease has lapsed and BIRD does not run it already. The BIRD here is
a stand-in speaking BIRD's control protocol on a real UNIX socket (the real daemon is in
tests/kernel/test_routed_bird.py and tests/lab/test_routed.py)."""
from __future__ import annotations

import os
import socket
import threading
import time

from dvrnet.kernel import watchdog as wd
from dvrnet.plan import PlanConfig, plan_host
from dvrnet.plan.config import BgpConfig
from dvrnet.plan.watchdog import ROLE, lease_path
from dvrnet.scenarios.seed import ROUTED, build


class FakeBird:
    """Answers `eval DVRNET_DIGEST` with its digest and `configure "FILE"` by taking FILE's."""
    def __init__(self, path: str, digest: str) -> None:
        self.path, self.digest, self.commands = path, digest, []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                f = conn.makefile("rwb")
                f.write(b"0001 BIRD 2.0.12 ready.\n")
                f.flush()
                cmd = f.readline().decode().strip()
                self.commands.append(cmd)
                if cmd == "eval DVRNET_DIGEST":
                    f.write(f"0000 {self.digest}\n".encode())
                elif cmd.startswith("configure "):
                    self.digest = "stale-0123456789abcdef" if "stale" in cmd else "0123456789abcdef"
                    f.write(b"0002-Reading configuration from x\n0003 Reconfigured\n")
                f.flush()

    def close(self) -> None:
        self.srv.close()


def test_plan_gives_routed_namespaces_a_stale_configuration_and_a_watchdog():
    cloud = build(ROUTED)
    cmd = ("/usr/bin/python3", "-I", "-S", "/x/watchdog.py")
    host = plan_host(cloud, "compute1", PlanConfig(netns_prefix="t-", bgp=BgpConfig(watchdog=cmd, lease_s=4)))
    (ns,) = [n for n in host.namespaces.values() if "bird" in n.processes]
    bird, dog = ns.processes["bird"], ns.processes[ROLE]
    files = dict(bird.files)
    normal = next(t for p, t in files.items() if p.endswith("/bird.conf"))
    stale = next(t for p, t in files.items() if p.endswith("/bird-stale.conf"))
    asn = BgpConfig().asn("compute1")
    assert f'DVRNET_DIGEST = "{bird.digest}"' in normal and f'DVRNET_DIGEST = "stale-{bird.digest}"' in stale
    assert "prepend" not in normal and stale.count(f"bgp_path.prepend({asn});") == 3
    # the stale one differs in the export filter only
    assert [x for x in normal.splitlines()[1:] if "export" not in x] == [x for x in stale.splitlines()[1:]
                                                                         if "export" not in x]
    assert dog.argv[:4] == cmd and dog.argv[dog.argv.index("--lease") + 1] == lease_path(ns.name)
    assert dog.argv[dog.argv.index("--seconds") + 1] == "4" and not dog.files and dog.digest
    # no watchdog without its command, or with lease 0
    for bgp in (BgpConfig(), BgpConfig(watchdog=cmd, lease_s=0)):
        h = plan_host(cloud, "compute1", PlanConfig(netns_prefix="t-", bgp=bgp))
        assert all(ROLE not in n.processes for n in h.namespaces.values())


def _lease(path: str, age: float) -> None:
    with open(path, "a"):
        pass
    t = time.monotonic() - age
    os.utime(path, (t, t))


def test_one_tick(tmp_path):
    ctl, lease, stale = str(tmp_path / "ctl"), str(tmp_path / "lease"), str(tmp_path / "bird-stale.conf")
    bird = FakeBird(ctl, "0123456789abcdef")
    logs: list[str] = []
    try:
        _lease(lease, 1.0)
        assert not wd.check(lease, 5.0, ctl, stale, logs.append)
        assert bird.commands == []                          # fresh lease: BIRD is not even asked
        _lease(lease, 6.0)
        assert wd.check(lease, 5.0, ctl, stale, logs.append)
        assert bird.commands == ["eval DVRNET_DIGEST", f'configure "{stale}"']
        assert bird.digest.startswith("stale-") and "announcing with the stale configuration" in logs[-1]
        assert not wd.check(lease, 5.0, ctl, stale, logs.append)      # already stale: asked, not reloaded
        assert bird.commands[-1] == "eval DVRNET_DIGEST"
        os.unlink(lease)                                    # no lease at all counts as lapsed
        bird.digest = "0123456789abcdef"
        assert wd.check(lease, 5.0, ctl, stale, logs.append)
    finally:
        bird.close()
    _lease(lease, 6.0)
    assert not wd.check(lease, 5.0, str(tmp_path / "nobody"), stale, logs.append)
    assert "BIRD not answering" in logs[-1]


def test_arguments_are_checked():
    import pytest
    for argv, why in ((["--lease", "x"], "missing --ctl, --seconds, --stale"), (["--lease"], "needs a value"),
                      (["x"], "unexpected argument")):
        with pytest.raises(SystemExit, match=why):
            wd._args(argv)
