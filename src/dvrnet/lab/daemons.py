"""Daemons the lab and the tests run for themselves: PostgreSQL, RabbitMQ, neutron-server.

There is no systemd here, so each daemon is started by hand in a directory of its own (data, run
socket, log side by side), listens on 127.0.0.1 only, at a port picked free, and is stopped by the
process id recorded when it started — also when a later step failed (`DaemonSet` stops what it
started, in reverse order, whatever happened).

Invariants:
- `start_*` returns only once the daemon answers (PostgreSQL accepts connections, RabbitMQ passed
  `await_startup`, neutron-server answers `GET /`); on failure it stops what it started and raises
  `DaemonError` with the tail of the daemon's log;
- every started daemon writes `<pid dir>/<name>.pid` (the lab's `down` reads them), and `stop()`
  ends exactly the processes it started: PostgreSQL's postmaster (SIGINT: fast shutdown),
  RabbitMQ's Erlang VM and the epmd started for it on its own port, neutron-server's whole
  process group (its API and RPC workers; the RPC worker does not exit with its parent);
- nothing is shared with another instance: ports, Erlang node name, epmd port, cookie, dirs.
"""
from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Self

log = logging.getLogger("dvrnet.lab")


class DaemonError(RuntimeError):
    """A daemon could not be started; the message says which and why (log tail included)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: str, n: int = 600) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of PIDS is alive (reaping our children); returns the ones still alive."""
    end = time.monotonic() + timeout
    left = list(pids)
    while left:
        for p in left:
            _reap(p)
        left = [p for p in left if alive(p)]
        if not left or time.monotonic() > end:
            break
        time.sleep(0.05)
    return left


def kill_pids(pids: list[int], sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """SIG to each pid, SIGKILL to those still alive after GRACE seconds."""
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    for p in wait_gone(pids, grace):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(pids, 5)


def group_members(pgid: int) -> list[int]:
    """Processes whose process group is PGID (a daemon started in a session of its own)."""
    out = []
    for d in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d.split("/")[2]))
    return sorted(out)


@dataclass
class Daemon:
    """One started daemon: NAME, its main PID, its directory, the endpoint it serves (URL), its
    log, and the extra pids it owns (epmd). `stop()` ends them (idempotent)."""
    name: str
    pid: int
    dir: str
    url: str
    log: str
    pid_file: str | None = None
    extra_pids: list[int] = field(default_factory=list)
    stopper: Callable[[Daemon], None] | None = None
    env: dict[str, str] = field(default_factory=dict)       # what its control tools need (rabbitmqctl)
    ports: tuple[int, ...] = ()                             # RabbitMQ: (amqp, distribution, epmd[, amqps])
    tls_url: str = ""                                       # RabbitMQ: its TLS listener (rabbit://...)
    tls_ca: str = ""                                        # ... and the certificate that signs it
    node: str = ""                                          # RabbitMQ: its Erlang node name
    proc: subprocess.Popen | None = None                    # when started by this process

    def stop(self) -> None:
        if self.stopper is not None:
            self.stopper(self)
        else:
            kill_pids([self.pid, *self.extra_pids])
        if self.pid_file and os.path.exists(self.pid_file):
            os.unlink(self.pid_file)


def _write_pid(pid_dir: str | None, name: str, pids: list[int]) -> str | None:
    if not pid_dir:
        return None
    os.makedirs(pid_dir, exist_ok=True)
    path = os.path.join(pid_dir, f"{name}.pid")
    with open(path, "w") as f:
        f.write("".join(f"{p}\n" for p in pids))
    return path


def _as_unprivileged(path: str) -> tuple[list[str], int, int]:
    """(argv prefix, uid, gid) to run a daemon as `nobody` when we are root (PostgreSQL refuses
    to run as root); the directory PATH is handed to that user."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise DaemonError("running as root and there is no 'nobody' user to run PostgreSQL as") from None
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return ["runuser", "-u", "nobody", "--"], nobody.pw_uid, nobody.pw_gid


# ---- PostgreSQL ------------------------------------------------------------------------------

def postgres_bindir() -> str | None:
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(initdbs[-1]) if initdbs else None


def start_postgres(base: str, name: str = "postgres", pid_dir: str | None = None,
                   user: str = "dvrnet", timeout: float = 60) -> Daemon:
    """initdb + start in BASE (created; data/, socket and pg.log inside) as an unprivileged user,
    trust authentication, listening on 127.0.0.1 at a free port. url: postgresql://USER@…/postgres."""
    bindir = postgres_bindir()
    if bindir is None:
        raise DaemonError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; `make setup` installs it)")
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o700)
    if os.geteuid() == 0:
        parent = os.path.dirname(os.path.abspath(base))
        while parent != "/":
            if not os.stat(parent).st_mode & 0o001:
                raise DaemonError(f"PostgreSQL runs as 'nobody', who cannot enter {parent} (mode "
                                  f"{os.stat(parent).st_mode & 0o777:o}): put its directory {base} elsewhere")
            parent = os.path.dirname(parent)
    prefix, _uid, _gid = _as_unprivileged(base)
    data, log = os.path.join(base, "data"), os.path.join(base, "pg.log")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": base}

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(prefix + args, capture_output=True, text=True, timeout=timeout, env=env, cwd=base,
                              check=False)

    r = run([os.path.join(bindir, "initdb"), "-D", data, "-U", user, "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"])
    if r.returncode != 0:
        raise DaemonError(f"PostgreSQL initdb in {data} failed: {r.stderr.strip()[-400:]}")
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={base} "
            f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    r = run([os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-o", opts, "-w", "-t", str(int(timeout)), "start"])
    pid = _postmaster_pid(data)
    if r.returncode != 0 or pid is None:
        if pid is not None:
            kill_pids([pid], signal.SIGQUIT)
        raise DaemonError(f"PostgreSQL did not start: {r.stderr.strip()[-300:]} {_tail(log)}")
    d = Daemon(name, pid, base, f"postgresql://{user}@127.0.0.1:{port}/postgres", log,
               stopper=lambda d: kill_pids([d.pid], signal.SIGINT, grace=15))
    d.pid_file = _write_pid(pid_dir, name, [pid])
    return d


def _postmaster_pid(data: str) -> int | None:
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def create_database(d: Daemon, db: str, owner: str | None = None) -> str:
    """CREATE DATABASE DB on the server of D (psql over its socket); returns its postgresql:// URL."""
    user = d.url.split("//", 1)[1].split("@", 1)[0]
    port = d.url.rsplit(":", 1)[1].split("/", 1)[0]
    sql = f'CREATE DATABASE "{db}"' + (f' OWNER "{owner}"' if owner else "")
    r = subprocess.run(["psql", "-h", d.dir, "-p", port, "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                        "-c", sql], capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        raise DaemonError(f"CREATE DATABASE {db} failed: {r.stderr.strip()[-300:]}")
    return d.url.rsplit("/", 1)[0] + "/" + db


# ---- RabbitMQ ------------------------------------------------------------------------------

RABBIT_BIN = "/usr/lib/rabbitmq/bin"


def self_signed_cert(base: str) -> tuple[str, str]:
    """(certificate, key) in BASE for 127.0.0.1, made once with openssl: its own CA (what a
    client verifies the broker with: ssl_ca_file = the certificate)."""
    cert, key = os.path.join(base, "tls-cert.pem"), os.path.join(base, "tls-key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                           capture_output=True, text=True, timeout=60, check=False)
        if r.returncode != 0:
            raise DaemonError(f"openssl could not make a certificate: {r.stderr.strip()[-300:]}")
        os.chmod(key, 0o600)        # RabbitMQ runs as the lab's user (root), as the agents do
    return cert, key


def start_rabbitmq(base: str, name: str = "rabbitmq", pid_dir: str | None = None, node: str | None = None,
                   timeout: float = 90, ports: tuple[int, ...] | None = None, wait: bool = True,
                   tls: bool = False) -> Daemon:
    """RabbitMQ in BASE (mnesia/, log/, config, cookie), AMQP on 127.0.0.1 at a free port, with
    an epmd of its own on another free port. url: rabbit://guest:guest@127.0.0.1:PORT/.
    TLS: also AMQP over TLS on another port (tls_url; a self-signed certificate, tls_ca).
    PORTS (amqp, distribution, epmd[, amqps]) and NODE: start it again as it was (after a kill).
    wait=False: return once it is launched; `await_rabbitmq` then waits for it (so the lab
    prepares PostgreSQL and Neutron's database while the Erlang VM boots)."""
    server = os.path.join(RABBIT_BIN, "rabbitmq-server")
    epmd = shutil.which("epmd") or next(iter(sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))), None)
    if not os.path.exists(server) or epmd is None:
        raise DaemonError("RabbitMQ is not installed (no /usr/lib/rabbitmq/bin/rabbitmq-server; `make setup` installs it)")
    os.makedirs(base, exist_ok=True)
    ports = tuple(ports or (free_port(), free_port(), free_port()))
    if tls and len(ports) < 4:
        ports = (*ports[:3], free_port())
    port, dist_port, epmd_port = ports[:3]
    node = node or f"dvrnet{port}@localhost"
    conf = os.path.join(base, "rabbitmq.conf")
    tls_conf = ""
    if tls:
        cert, key = self_signed_cert(base)
        tls_conf = (f"listeners.ssl.default = 127.0.0.1:{ports[3]}\nssl_options.cacertfile = {cert}\n"
                    f"ssl_options.certfile = {cert}\nssl_options.keyfile = {key}\n"
                    "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n")
    with open(conf, "w") as f:
        f.write(f"listeners.tcp.default = 127.0.0.1:{port}\n"
                "loopback_users = none\n"
                "log.console = false\nlog.file.level = info\n" + tls_conf)
    plugins = os.path.join(base, "enabled_plugins")
    with open(plugins, "w") as f:
        f.write("[].\n")
    cookie = os.path.join(base, ".erlang.cookie")
    if not os.path.exists(cookie):
        with open(cookie, "w") as f:
            f.write(f"dvrnet{os.urandom(8).hex()}")
        os.chmod(cookie, 0o400)
    log_dir = os.path.join(base, "log")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": base, "LC_ALL": "C.UTF-8",
           "RABBITMQ_NODENAME": node, "RABBITMQ_MNESIA_BASE": os.path.join(base, "mnesia"),
           "RABBITMQ_LOG_BASE": log_dir, "RABBITMQ_CONFIG_FILE": conf, "RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
           "RABBITMQ_PID_FILE": os.path.join(base, "rabbit.pid"), "ERL_EPMD_ADDRESS": "127.0.0.1",
           "ERL_EPMD_PORT": str(epmd_port), "RABBITMQ_DIST_PORT": str(dist_port)}
    log = os.path.join(base, "rabbitmq.out")
    with open(log, "ab") as out:
        ep = subprocess.Popen([epmd, "-address", "127.0.0.1", "-port", str(epmd_port)], env=env,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        p = subprocess.Popen([server], env=env, cwd=base, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             start_new_session=True)
    d = Daemon(name, p.pid, base, f"rabbit://guest:guest@127.0.0.1:{port}/", log, extra_pids=[ep.pid],
               stopper=_stop_rabbit)
    d.ports = ports
    if tls:
        d.tls_url, d.tls_ca = f"rabbit://guest:guest@127.0.0.1:{ports[3]}/", os.path.join(base, "tls-cert.pem")
    d.node = node
    d.pid_file = _write_pid(pid_dir, name, [p.pid, ep.pid])
    d.env = env
    d.proc = p
    if wait:
        await_rabbitmq(d, timeout)
    return d


def await_rabbitmq(d: Daemon, timeout: float = 90) -> Daemon:
    """Return once the RabbitMQ of D passed `await_startup`; stops it and raises DaemonError if it
    does not within TIMEOUT seconds (or exits)."""
    try:
        end = time.monotonic() + timeout
        # first the AMQP port, by connecting to it (a socket, no CPU): each rabbitmqctl is an Erlang
        # VM of its own (seconds of CPU on a loaded machine), which slowed the broker's own boot when
        # it was asked every half second; then one `await_startup` says the boot is complete
        while time.monotonic() < end and not (d.proc is not None and d.proc.poll() is not None):
            try:
                socket.create_connection(("127.0.0.1", d.ports[0]), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        while True:     # await_startup fails at once while the node has not registered with epmd
            r = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", d.node, "await_startup",
                                "--timeout", str(int(timeout))], env=d.env, capture_output=True, text=True,
                               timeout=timeout + 10, check=False)
            if r.returncode == 0:
                break
            if (d.proc is not None and d.proc.poll() is not None) or time.monotonic() > end:
                raise DaemonError(f"RabbitMQ did not start (rc {r.returncode}): {r.stderr.strip()[-300:]} {_tail(d.log)}")
            time.sleep(0.5)
    except BaseException:
        d.stop()
        raise
    return d


def _stop_rabbit(d: Daemon) -> None:
    # The Erlang VM (beam) exits on SIGTERM after a clean shutdown; its own helpers
    # (erl_child_setup, inet_gethost) live in its session and die with it.
    pids = [d.pid, *group_members(d.pid)]
    kill_pids(sorted(set(pids)), signal.SIGTERM, grace=20)
    kill_pids(d.extra_pids, signal.SIGTERM, grace=5)


def rabbit_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


# ---- neutron-server ---------------------------------------------------------------------------

NEUTRON_CONF = """[DEFAULT]
core_plugin = ml2
service_plugins = router
router_distributed = True
auth_strategy = noauth
allow_overlapping_ips = True
bind_host = 127.0.0.1
bind_port = {port}
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
transport_url = {transport_url}
state_path = {state}
api_paste_config = {paste}
notify_nova_on_port_status_changes = False
notify_nova_on_port_data_changes = False
agent_down_time = {agent_down_time}
# the lab's underlay is not Neutron's business: 1550 lets an external network on VXLAN (the lab's
# second one) have the 1500 of the lab's segments; tenant networks ask for their 1450 themselves
global_physnet_mtu = 1550
log_file = {log}
debug = {debug}

[database]
connection = {db}

[oslo_concurrency]
lock_path = {state}/lock

[agent]
report_interval = 10
"""

ML2_CONF = """[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security

[ml2_type_flat]
flat_networks = {physnet}

[ml2_type_vxlan]
vni_ranges = 1:1000
"""


def neutron_venv(root: str | None = None) -> str:
    """The neutron-server venv `make neutron-venv` builds (.venv-neutron beside the sources), or
    $DVRNET_NEUTRON_VENV."""
    env = os.environ.get("DVRNET_NEUTRON_VENV")
    if env:
        return env
    if root is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.path.join(root, ".venv-neutron")


def write_neutron_config(base: str, db_url: str, transport_url: str, port: int, venv: str,
                         physnet: str = "physnet1", agent_down_time: int = 75, debug: bool = False,
                         extra: str = "") -> list[str]:
    """neutron.conf and ml2_conf.ini in BASE; returns the --config-file arguments."""
    state = os.path.join(base, "state")
    os.makedirs(os.path.join(state, "lock"), exist_ok=True)
    paste_src = os.path.join(venv, "etc", "neutron", "api-paste.ini")
    paste = os.path.join(base, "api-paste.ini")
    if not os.path.exists(paste_src):
        raise DaemonError(f"{paste_src} is missing: is {venv} a neutron venv? (`make neutron-venv`)")
    shutil.copyfile(paste_src, paste)
    conf = os.path.join(base, "neutron.conf")
    ml2 = os.path.join(base, "ml2_conf.ini")
    db = db_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    with open(conf, "w") as f:
        f.write(NEUTRON_CONF.format(port=port, transport_url=transport_url, state=state, paste=paste, db=db,
                                    agent_down_time=agent_down_time, log=os.path.join(base, "neutron-server.log"),
                                    debug=debug) + extra)
    with open(ml2, "w") as f:
        f.write(ML2_CONF.format(physnet=physnet))
    return ["--config-file", conf, "--config-file", ml2]


def _neutron_exe(venv: str, name: str) -> str:
    exe = os.path.join(venv, "bin", name)
    if not os.path.exists(exe):
        raise DaemonError(f"{exe} is missing: run `make neutron-venv` (neutron-server lives in its own venv)")
    return exe


def migrate_neutron_db(base: str, db_url: str, venv: str | None = None) -> None:
    """`neutron-db-manage upgrade heads` on DB_URL (a configuration of its own in BASE/migrate:
    the migration needs the database only, not RabbitMQ)."""
    venv = venv or neutron_venv()
    exe = _neutron_exe(venv, "neutron-db-manage")
    mig = os.path.join(base, "migrate")
    os.makedirs(mig, exist_ok=True)
    args = write_neutron_config(mig, db_url, "rabbit://", 0, venv)
    r = subprocess.run([exe, *args, "upgrade", "heads"], capture_output=True, text=True, timeout=300, check=False)
    if r.returncode != 0:
        raise DaemonError(f"neutron-db-manage upgrade heads failed: {(r.stderr or r.stdout).strip()[-600:]}")


def start_neutron_server(base: str, db_url: str, transport_url: str, venv: str | None = None,
                         name: str = "neutron-server", pid_dir: str | None = None, timeout: float = 180,
                         debug: bool = False, migrated: bool = False, extra_conf: str = "") -> Daemon:
    """Write the configuration, migrate the database (`migrate_neutron_db`, unless MIGRATED), start
    neutron-server in a session of its own and wait until its API answers. url: http://127.0.0.1:PORT.
    EXTRA_CONF: more neutron.conf text (sections of its own, e.g. TLS to RabbitMQ)."""
    import httpx
    venv = venv or neutron_venv()
    exe = _neutron_exe(venv, "neutron-server")
    os.makedirs(base, exist_ok=True)
    port = free_port()
    args = write_neutron_config(base, db_url, transport_url, port, venv, debug=debug, extra=extra_conf)
    log = os.path.join(base, "neutron-server.log")
    out = os.path.join(base, "neutron-server.out")
    if not migrated:
        migrate_neutron_db(base, db_url, venv)
    with open(out, "ab") as o:
        p = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL, stdout=o, stderr=o, start_new_session=True)
    d = Daemon(name, p.pid, base, f"http://127.0.0.1:{port}", log, stopper=_stop_neutron)
    d.pid_file = _write_pid(pid_dir, name, [p.pid])
    try:
        end = time.monotonic() + timeout
        while True:
            if p.poll() is not None:
                raise DaemonError(f"neutron-server exited with {p.returncode}: {_tail(out)} {_tail(log)}")
            try:
                if httpx.get(d.url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise DaemonError(f"neutron-server not answering on {d.url} after {timeout:.0f}s: {_tail(log)}")
            time.sleep(0.2)
    except BaseException:
        d.stop()
        raise
    return d


def _stop_neutron(d: Daemon) -> None:
    """SIGTERM to every process of its group at once: the parent and its API and RPC workers
    (the RPC worker does not follow its parent's SIGTERM)."""
    pids = sorted({d.pid, *group_members(d.pid)})
    kill_pids(pids, signal.SIGTERM, grace=10)
    left = group_members(d.pid)
    if left:
        kill_pids(left, signal.SIGKILL, grace=5)


# ---- a set of them, stopped together --------------------------------------------------------

class DaemonSet:
    """Daemons started one after another, stopped in reverse order (also when a later start
    failed): `with DaemonSet() as ds: pg = ds.add(start_postgres(...)); ...`."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []

    def add(self, d: Daemon) -> Daemon:
        self.daemons.append(d)
        return d

    def stop(self) -> None:
        while self.daemons:
            d = self.daemons.pop()
            try:
                d.stop()
            except Exception:       # keep stopping the others
                log.exception("stopping %s (pid %d) failed", d.name, d.pid)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def neutron_stack(base: str, pid_dir: str | None = None, venv: str | None = None,
                  debug: bool = False) -> Iterator[dict[str, Daemon]]:
    """PostgreSQL + RabbitMQ + neutron-server in BASE; yields {"postgres", "rabbitmq",
    "neutron"} and stops all three afterwards."""
    with DaemonSet() as ds:
        pg = ds.add(start_postgres(os.path.join(base, "pg"), pid_dir=pid_dir))
        rabbit = ds.add(start_rabbitmq(os.path.join(base, "rabbit"), pid_dir=pid_dir))
        db = create_database(pg, "neutron")
        neutron = ds.add(start_neutron_server(os.path.join(base, "neutron"), db, rabbit.url, venv=venv,
                                              pid_dir=pid_dir, debug=debug))
        yield {"postgres": pg, "rabbitmq": rabbit, "neutron": neutron}


def stop_from_pid_files(pid_dir: str, names: tuple[str, ...] = ("neutron-server", "rabbitmq", "postgres")) -> list[int]:
    """After a crash: end the daemons whose pid files are in PID_DIR (by those pids and their
    process groups), in order; returns the pids signalled."""
    out: list[int] = []
    for name in names:
        path = os.path.join(pid_dir, f"{name}.pid")
        try:
            with open(path) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
        pids = [p for p in pids if alive(p)]
        group = sorted({m for p in pids for m in group_members(p)} | set(pids))
        sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
        kill_pids(group, sig, grace=15)
        out += group
        os.unlink(path)
    return out
