"""Fixtures for the Python driver tests: a real bindsd (binary from $BINDSD) with a PostgreSQL bind
(`main`), a MariaDB bind (`users`) and a SQLite bind (`appmeta`).

The database servers come from $BINDS_TEST_PG_URL / $BINDS_TEST_MYSQL_URL (scripts/testdb.sh);
without them the tests fail, unless BINDS_ALLOW_NO_DB=1 (then only SQLite runs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BINDSD = os.environ.get("BINDSD", str(ROOT / "build-test" / "server" / "bindsd"))
PG_URL = os.environ.get("BINDS_TEST_PG_URL")
MYSQL_URL = os.environ.get("BINDS_TEST_MYSQL_URL")
ALLOW_NO_DB = os.environ.get("BINDS_ALLOW_NO_DB") == "1"

BIND_OF = {"postgresql": "main", "mysql": "users", "sqlite": "appmeta"}
BACKENDS = ["postgresql", "mysql", "sqlite"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, root: Path, extra_binds: tuple = ()):
        """extra_binds: more binds.yaml lines under `binds:` (e.g. a bind with a statement_timeout)."""
        self.root = root
        self.sock_path = str(root / "bindsd.sock")
        self.port = free_port()
        self.config = root / "binds.yaml"
        lines = ["listen:", f"  unix: {self.sock_path}", f"  tcp: 127.0.0.1:{self.port}",
                 "default: main" if PG_URL else "default: appmeta", "binds:"]
        if PG_URL:
            lines.append(f"  main: {PG_URL}")
        if MYSQL_URL:
            lines.append(f"  users: {MYSQL_URL}")
        lines.append(f"  appmeta: sqlite:///{root}/appmeta.db")
        lines.extend(extra_binds)
        self.config.write_text("\n".join(lines) + "\n")
        self.proc = None
        self.log_path = root / "bindsd.log"
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BINDSD, "--config", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"bindsd exited with {self.proc.returncode}:\n{self.log()}")
            # Both listeners: bindsd opens TCP before the Unix socket, and a test may use either.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
                    u.settimeout(1)
                    u.connect(self.sock_path)
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"bindsd did not start listening:\n{self.log()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, backend: str, bind: str | None = None, unix: bool = False) -> str:
        bind = bind or BIND_OF[backend]
        if unix:
            return f"{backend}+binds:///{bind}?socket={self.sock_path}&timeout=60"
        return f"{backend}+binds://127.0.0.1:{self.port}/{bind}?timeout=60"


@pytest.fixture(scope="session")
def daemon():
    if not os.access(BINDSD, os.X_OK):
        pytest.fail(f"bindsd binary not found at {BINDSD} (set BINDSD)")
    missing = [n for n, v in (("BINDS_TEST_PG_URL", PG_URL), ("BINDS_TEST_MYSQL_URL", MYSQL_URL)) if not v]
    if missing and not ALLOW_NO_DB:
        pytest.fail(f"{', '.join(missing)} not set: start test databases with scripts/testdb.sh "
                    "(or set BINDS_ALLOW_NO_DB=1 to run the SQLite part only)")
    root = Path(tempfile.mkdtemp(prefix="binds-py-"))
    d = Daemon(root)
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def need(backend: str) -> None:
    if backend == "postgresql" and not PG_URL or backend == "mysql" and not MYSQL_URL:
        pytest.skip(f"no {backend} test database (BINDS_ALLOW_NO_DB=1)")


@pytest.fixture(params=BACKENDS)
def backend(request):
    need(request.param)
    return request.param


@pytest.fixture
def dbapi_conn(daemon, backend):
    import binds
    c = binds.connect("127.0.0.1", daemon.port, BIND_OF[backend], timeout=60)
    yield c
    c.close()


def connect_and_run(daemon, bind: str, statements=(), **kwargs):
    """A binds connection to bind, after running statements in a committed transaction."""
    import binds
    c = binds.connect("127.0.0.1", daemon.port, bind, timeout=60, **kwargs)
    cur = c.cursor()
    for sql in statements:
        cur.execute(sql)
    c.commit()
    return c


@pytest.fixture(scope="module")
def pg_direct():
    """psycopg2 straight to the test PostgreSQL (autocommit, UUIDs as uuid.UUID)."""
    need("postgresql")
    import psycopg2
    import psycopg2.extras
    c = psycopg2.connect(PG_URL)
    c.autocommit = True
    psycopg2.extras.register_uuid(conn_or_curs=c)
    yield c
    c.close()


@pytest.fixture(scope="module")
def mysql_direct():
    """pymysql straight to the test MariaDB (autocommit)."""
    need("mysql")
    import pymysql
    u = urllib.parse.urlparse(MYSQL_URL)
    c = pymysql.connect(host=u.hostname, port=u.port or 3306, user=urllib.parse.unquote(u.username),
                        password=urllib.parse.unquote(u.password or ""), database=u.path.lstrip("/"),
                        autocommit=True)
    yield c
    c.close()
