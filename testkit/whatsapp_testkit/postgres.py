"""A throwaway PostgreSQL server for tests, benchmarks and the demo (standard library only).

    with Postgres() as pg:             # initdb in a temp dir, 127.0.0.1:<free port>
        connect(pg.dsn)                # postgresql://postgres@127.0.0.1:PORT/whatsapp
        with pg.outage():              # stopped here (data kept) ...
            ...
        # ... and back on the same port

or from a shell: ``python -m whatsapp_testkit.postgres up|down|status`` (state in
<repo>/.run/postgres, or $WHATSAPP_POSTGRES_DIR; `up` prints
``export WHATSAPP_OPERATOR_DATABASE_URL=...``; see daemon.Daemon).

Binaries: $PG_BIN, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH. Run as root,
the server runs as the `postgres` user (PostgreSQL refuses root). fsync and full_page_writes
are off (an OS crash may corrupt it: tests only); synchronous_commit stays on, which costs a
write() per commit without fsync, so a `kill()` loses no committed transaction.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from whatsapp_testkit import daemon, procs

APP_ROLE, APP_PASSWORD = "whatsapp_app", "app-password-for-tests"  # scram-authenticated role
_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{data}'
fsync = off
synchronous_commit = on  # off would lose the last commits on kill(): no crash tests then
full_page_writes = off
max_connections = 200
"""
_HBA = """local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


class PostgresError(RuntimeError):
    """PostgreSQL could not be found, started, queried or stopped."""


def find_bin_dir() -> Path:
    """The folder holding `postgres` and `initdb`."""
    if os.environ.get("PG_BIN"):
        folder = Path(os.environ["PG_BIN"])
        if os.access(folder / "postgres", os.X_OK):
            return folder
        raise PostgresError(f"PG_BIN={folder} has no executable 'postgres'")
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    found.sort(key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresError("PostgreSQL not found: set PG_BIN or install postgresql (>= 13)")


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root to the `postgres` user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(os.environ.get("PG_USER", "postgres"))
    except KeyError:
        raise PostgresError("running as root needs a 'postgres' user (or set PG_USER)") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class _Wire:
    """Just enough of the PostgreSQL protocol (trust auth, simple queries) for set-up."""

    def __init__(self, port: int, database: str = "postgres", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.params: dict[str, str] = {}
        body = b"user\0postgres\0database\0" + database.encode() + b"\0\0"
        try:
            self.sock.sendall(struct.pack("!ii", len(body) + 8, 196608) + body)
            self._until_ready()
        except BaseException:
            self.sock.close()
            raise

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise PostgresError("server closed the connection")
            data += chunk
        return data

    def _until_ready(self) -> list[tuple[str | None, ...]]:
        rows: list[tuple[str | None, ...]] = []
        error = ""
        while True:
            kind, size = struct.unpack("!ci", self._read(5))
            body = self._read(size - 4)
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise PostgresError("server asks for a password; the testkit needs trust auth")
            if kind == b"S":
                name, value, _ = body.split(b"\0", 2)
                self.params[name.decode()] = value.decode()
            elif kind == b"E":
                fields = {f[:1]: f[1:].decode() for f in body.split(b"\0") if f}
                error = f"{fields.get(b'M', '?')} (SQLSTATE {fields.get(b'C', '?')})"
            elif kind == b"D":
                rows.append(self._row(body))
            elif kind == b"Z":
                if error:
                    raise PostgresError(error)
                return rows

    @staticmethod
    def _row(body: bytes) -> tuple[str | None, ...]:
        (count,), pos, out = struct.unpack("!h", body[:2]), 2, []
        for _ in range(count):
            (size,) = struct.unpack("!i", body[pos : pos + 4])
            pos += 4
            out.append(None if size < 0 else body[pos : pos + size].decode())
            pos += max(size, 0)
        return tuple(out)

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        payload = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(payload) + 4) + payload)
        return self._until_ready()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"X\0\0\0\4")
        self.sock.close()


class Postgres(daemon.Restartable):
    """A PostgreSQL server on 127.0.0.1:<free port> with a `whatsapp` database.

    ``work_dir`` (default: a temp dir, removed by :meth:`close` unless ``keep``) holds the
    data dir (also the unix socket dir) and ``postgres.log``. :meth:`stop`, :meth:`kill`,
    :meth:`restart`, :meth:`outage` and :meth:`stop_for` keep the data and the port.
    """

    title, source, temp_prefix = "PostgreSQL", "postgres", "whatsapp-operator-pg-"
    error = PostgresError
    stop_signal = signal.SIGINT  # fast shutdown: clients disconnected, clean checkpoint

    def __init__(
        self,
        work_dir: Path | str | None = None,
        *,
        bin_dir: Path | None = None,
        database: str = "whatsapp",
        timeout: float = 60.0,
        keep: bool = False,
        detach: bool = False,
    ) -> None:
        super().__init__(work_dir, timeout=timeout, keep=keep, detach=detach)
        self._bin_dir, self.database = bin_dir, database

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "postgres.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def app_dsn(self) -> str:
        """The same database as a password-authenticated role (to test auth failures)."""
        return f"postgresql://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{self.port}/{self.database}"

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    # -- lifecycle (start, stop, kill, restart, outage, close: daemon.Restartable) --------------
    def _prepare(self) -> None:
        """initdb, then our settings on a free port."""
        work, user = self.work_dir, _as_user()
        if user:
            os.chown(work, user["user"], user["group"])
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres"]
        initdb += ["-E", "UTF8", "--locale=C", "--no-sync", "--auth=trust", "--no-instructions"]
        with self.log_path.open("ab") as log:
            code = subprocess.run(initdb, stdout=log, stderr=subprocess.STDOUT, cwd=work, **user)
        if code.returncode != 0:
            raise PostgresError(f"initdb failed ({code.returncode}):\n{procs.tail(self.log_path)}")
        self.port = self.port or procs.free_ports(1)[0]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_CONF.format(port=self.port, data=self.data_dir))
        (self.data_dir / "pg_hba.conf").write_text(_HBA)

    def _launch(self) -> None:
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        self._proc = self.popen(argv, self.log_path, **_as_user())
        wire = daemon.wait_ready(
            self._proc,
            lambda: _Wire(self.port, timeout=2.0),
            timeout=self.timeout,
            interval=0.05,
            retry=(OSError, PostgresError),
            exited=lambda code: PostgresError(
                f"postgres exited with code {code}; last lines of {self.log_path}:\n"
                f"{procs.tail(self.log_path)}"
            ),
            late=lambda err: PostgresError(
                f"postgres not accepting connections after {self.timeout:.0f}s ({err}); "
                f"last lines of {self.log_path}:\n{procs.tail(self.log_path)}"
            ),
        )
        self.version = wire.params.get("server_version", "?").split()[0]
        wire.close()

    def _first_started(self) -> None:
        self.execute(f"CREATE DATABASE {self.database}")
        self.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'")
        self.execute(f"GRANT ALL ON SCHEMA public TO {APP_ROLE}", self.database)

    def _announce(self, what: str) -> None:
        self.log(
            f"PostgreSQL {self.version} {what} at 127.0.0.1:{self.port} in "
            f"{self.startup_seconds:.1f}s (log {self.log_path})"
        )

    def stop_for(self, seconds: float) -> threading.Thread:
        """Stop now and start again after ``seconds`` in a thread (join it to wait)."""
        self.stop()

        def later() -> None:
            time.sleep(seconds)
            self.start()

        thread = threading.Thread(target=later, name="postgres-stop-for", daemon=True)
        thread.start()
        return thread

    def state(self) -> daemon.State:
        assert self._proc is not None
        return {
            "pid": self._proc.pid,
            "port": self.port,
            "dsn": self.dsn,
            "version": self.version,
            "work_dir": str(self.work_dir),
        }

    # -- SQL --------------------------------------------------------------------------------------
    def execute(self, sql: str, database: str = "postgres") -> list[tuple[str | None, ...]]:
        """Run SQL as the superuser (simple protocol: rows come back as text)."""
        wire = _Wire(self.port, database)
        try:
            return wire.query(sql)
        finally:
            wire.close()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- CLI: python -m whatsapp_testkit.postgres up|down|status -----------------------------------
class PostgresDaemon(daemon.Daemon):
    name, dir_variable = "postgres", "WHATSAPP_POSTGRES_DIR"
    command, source, error = "python -m whatsapp_testkit.postgres", "postgres", PostgresError
    work_items = ("data", "postgres.log")

    def start(self, directory: Path) -> daemon.State:
        return Postgres(directory, detach=True).start().release()

    def pids(self, state: daemon.State) -> list[tuple[str, int]]:
        return [("postgres", int(state["pid"]))]

    def stop_pid(self, binary: str, pid: int) -> None:
        if procs.pid_running(pid, binary):
            os.kill(pid, signal.SIGINT)  # fast shutdown, then SIGTERM and SIGKILL if need be
            deadline = time.monotonic() + 30
            while procs.pid_running(pid, binary) and time.monotonic() < deadline:
                time.sleep(0.1)
        procs.stop_pid(pid, binary)

    def healthy(self, state: daemon.State) -> bool:
        if not procs.pid_running(int(state["pid"]), "postgres"):
            return False
        try:
            _Wire(int(state["port"]), timeout=2.0).close()
        except (OSError, PostgresError):
            return False
        return True

    def describe(self, state: daemon.State) -> str:
        return f"PostgreSQL {state['version']} at {state['dsn']}"

    def export(self, state: daemon.State) -> str:
        return f"export WHATSAPP_OPERATOR_DATABASE_URL={state['dsn']}"


def main(argv: list[str] | None = None) -> int:
    return PostgresDaemon().main(argv)


if __name__ == "__main__":
    sys.exit(main())
