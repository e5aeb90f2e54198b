"""A throw-away PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

Debian's ``postgresql`` package (``.ci/run`` installs it) puts the server programs in
``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root, and CI runs as
root, so there the data folder is given to the ``postgres`` user the package creates and
the programs run through ``runuser``. The server listens on 127.0.0.1 only, on a free port,
with its unix socket in the temporary folder (never the system's /var/run/postgresql), and
asks for a password over TCP, so wrong credentials can be tested.

Use it through the fixtures in ``tests/conftest.py``: ``postgres`` (the server, one per test
session) and ``postgres_url`` (a fresh, empty database per test).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "kvision", "kvision-test"
SERVICE_USER = "postgres"  # created by Debian's package; the server runs as it under root


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def missing_reason() -> str | None:
    """Why no server can be started here, or None when it can."""
    if find_bindir() is None:
        return (
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed; "
            "apt-get install postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root, and there is no '{SERVICE_USER}' user to run PostgreSQL as"
    return None


@dataclass
class Server:
    """A running server; ``url(db)`` is an SQLAlchemy URL (psycopg2 driver) for a database."""

    root: Path
    port: int
    bindir: Path

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", str(self.root), "-p", str(self.port), "-U", USER, name)
        return name

    def stop(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop", check=False
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
        return subprocess.run(
            cmd, check=check, capture_output=True, text=True, timeout=120, cwd=self.root
        )


def start_server(attempts: int = 3) -> Server:
    """initdb a temporary cluster and start it on a free port (retried if the port is taken)."""
    root = Path(tempfile.mkdtemp(prefix="kvision-pg-"))  # under /tmp: reachable by postgres
    os.chmod(root, 0o700)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVICE_USER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = Server(root, 0, find_bindir())
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    try:
        server._run(
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        for attempt in range(attempts):
            server.port = _free_port()
            started = server._run(
                "pg_ctl",
                "-D",
                str(root / "data"),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                _options(root, server.port),
                "start",
                check=False,
            )
            if started.returncode == 0:
                return server
            if attempt == attempts - 1:
                log = (root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")
            time.sleep(0.5)
    except BaseException:
        server.stop()
        raise
    raise AssertionError("not reached")


def _options(root: Path, port: int) -> str:
    # Durability is not what the tests check, speed on a busy machine is: no fsync.
    return (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
