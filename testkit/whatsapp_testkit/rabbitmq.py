"""A throwaway RabbitMQ node for tests, benchmarks and the demo (standard library only).

    with RabbitMQ() as mq:            # a private node in a temp dir, 127.0.0.1:<free port>
        connect(mq.amqp_url)          # amqp://<generated user>:<password>@127.0.0.1:PORT/%2F
        mq.list_queues()              # {"queue": ready + unacked} (rabbitmqctl)
        mq.restart()                  # same node, data and ports

or from a shell: ``python -m whatsapp_testkit.rabbitmq up|down|status|env`` (state in
<repo>/.run/rabbitmq; `up` and `env` print ``export WHATSAPP_WORKER_AMQP_URL=...``).

Scripts: $RABBITMQ_SCRIPTS_DIR, else /usr/lib/rabbitmq/bin (Debian's rabbitmq-server package),
else the folder of `rabbitmq-server` on PATH. Nothing is shared with a system RabbitMQ (the
Debian package starts one on install): the node has its own name (``wa-<hex>@localhost``),
free loopback ports for AMQP, Erlang distribution and its own epmd, its own config, plugins
file, data, logs and Erlang cookie (in ``$HOME`` = <work>/home, mode 0400), and
/etc/rabbitmq/rabbitmq-env.conf is not read. Run as root, the node runs as the `rabbitmq`
user ($RABBITMQ_USER) when there is one. The `guest` user is never created: the config's
``default_user`` is a generated one. Enabled plugin: rabbitmq_consistent_hash_exchange (the
worker's pool exchange), plus rabbitmq_management with ``management=True`` (about 2 s
more to start).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from whatsapp_testkit import procs

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("rabbitmq_consistent_hash_exchange",)
ENV_VAR = "WHATSAPP_WORKER_AMQP_URL"  # what the worker reads (whatsapp_worker/settings.py)
# A test machine with little free disk or RAM must not raise the alarms that block publishers.
_CONF = """\
loopback_users = none
default_vhost = /
default_user = {user}
default_pass = {password}
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.8
log.file.level = info
log.console = false
"""
_MANAGEMENT_CONF = """\
management.tcp.ip = 127.0.0.1
management.tcp.port = {port}
"""
# Erlang distribution (the node's and the CLI tools') on loopback only; the CLI tools take any
# free port, not their default 35672-35682 range (shared by every CLI on the machine).
_LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"


def _log(message: str) -> None:
    print(f"rabbitmq: {message}", file=sys.stderr, flush=True)


class RabbitMQError(RuntimeError):
    """RabbitMQ could not be found, started, queried or stopped."""


def find_scripts_dir() -> Path:
    """The folder holding `rabbitmq-server`, `rabbitmqctl` and `rabbitmq-env`."""
    candidates = [os.environ.get("RABBITMQ_SCRIPTS_DIR", ""), "/usr/lib/rabbitmq/bin"]
    on_path = shutil.which("rabbitmq-server")
    if on_path:  # Debian's /usr/sbin/rabbitmq-server is an `su` wrapper: rabbitmq-env marks it
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in filter(None, candidates):
        if (
            os.access(Path(folder) / "rabbitmq-server", os.X_OK)
            and (Path(folder) / "rabbitmq-env").is_file()
        ):
            return Path(folder)
    raise RabbitMQError(
        "RabbitMQ not found: install rabbitmq-server (Debian) or set RABBITMQ_SCRIPTS_DIR"
    )


def find_epmd() -> Path:
    found = shutil.which("epmd")
    if not found:
        raise RabbitMQError("epmd (Erlang) not found on PATH: install erlang-base")
    return Path(found).resolve()


def _run_user() -> pwd.struct_passwd | None:
    """Whom the node runs as when we are root (None: the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(os.environ.get("RABBITMQ_USER", "rabbitmq"))
    except KeyError:
        return None  # no such user: root it is (RabbitMQ does not refuse root)


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root to the run user (nothing when not root)."""
    user = _run_user()
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


# -- just enough AMQP 0-9-1 to prove the node takes connections ------------------------------
def _shortstr(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def _longstr(value: bytes) -> bytes:
    return struct.pack("!I", len(value)) + value


def _method(class_id: int, method_id: int, args: bytes) -> bytes:
    payload = struct.pack("!HH", class_id, method_id) + args
    return struct.pack("!BHI", 1, 0, len(payload)) + payload + b"\xce"


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise RabbitMQError("the node closed the connection (starting up? wrong password?)")
        data += chunk
    return data


def _expect(sock: socket.socket, class_id: int, method_id: int) -> bytes:
    """The arguments of the next method frame, which must be (class_id, method_id)."""
    while True:
        kind, _channel, size = struct.unpack("!BHI", _read_exact(sock, 7))
        payload = _read_exact(sock, size + 1)[:-1]
        if kind != 1:  # heartbeat
            continue
        got = struct.unpack("!HH", payload[:4])
        if got == (10, 50):  # connection.close: code, text
            (code,) = struct.unpack("!H", payload[4:6])
            text = payload[7 : 7 + payload[6]].decode(errors="replace")
            raise RabbitMQError(f"the node refused the connection: {code} {text}")
        if got != (class_id, method_id):
            raise RabbitMQError(f"unexpected AMQP method {got}, wanted {(class_id, method_id)}")
        return payload[4:]


def amqp_probe(port: int, user: str, password: str, vhost: str = "/", timeout: float = 5.0) -> str:
    """Open (PLAIN auth, the vhost) and close an AMQP connection; returns the server version."""
    caps = _shortstr(b"authentication_failure_close") + b"t\x01"  # a 403 rather than EOF
    props = _shortstr(b"capabilities") + b"F" + _longstr(caps)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        start = _expect(sock, 10, 10)  # connection.start
        version = "?"
        at = start.find(b"\x07versionS")
        if at >= 0:
            (size,) = struct.unpack("!I", start[at + 9 : at + 13])
            version = start[at + 13 : at + 13 + size].decode(errors="replace")
        response = b"\0" + user.encode() + b"\0" + password.encode()
        args = _longstr(props) + _shortstr(b"PLAIN") + _longstr(response) + _shortstr(b"en_US")
        sock.sendall(_method(10, 11, args))  # start-ok
        channel_max, frame_max, _heartbeat = struct.unpack("!HIH", _expect(sock, 10, 30)[:8])
        sock.sendall(_method(10, 31, struct.pack("!HIH", channel_max, frame_max, 0)))  # tune-ok
        sock.sendall(_method(10, 40, _shortstr(vhost.encode()) + b"\0\0"))  # open
        _expect(sock, 10, 41)  # open-ok
        sock.sendall(_method(10, 50, struct.pack("!H", 200) + b"\0" + struct.pack("!HH", 0, 0)))
        _expect(sock, 10, 51)  # close-ok
    return version


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class RabbitMQ:
    """A private RabbitMQ node on 127.0.0.1:<free port> (vhost ``/``, a generated admin user).

    ``work_dir`` (default: a temp dir, removed by :meth:`close` unless ``keep``) holds the
    config, the Erlang cookie (home/), the data (mnesia/) and the logs (log/: the node's log,
    its console and epmd's). ``artifacts_dir``, if given, receives a copy of the logs on
    :meth:`close`. :meth:`stop`, :meth:`kill`, :meth:`restart` and :meth:`outage` keep the
    data, the node name and the ports.
    """

    def __init__(
        self,
        work_dir: Path | str | None = None,
        *,
        management: bool = False,
        artifacts_dir: Path | str | None = None,
        scripts_dir: Path | None = None,
        timeout: float = 60.0,
        keep: bool = False,
        detach: bool = False,
    ) -> None:
        self._given = Path(work_dir).resolve() if work_dir is not None else None
        self.management, self.timeout, self.keep, self.detach = management, timeout, keep, detach
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self._scripts_dir = scripts_dir
        self._work: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self.nodename = f"wa-{secrets.token_hex(4)}@localhost"
        self.user = f"wa-{secrets.token_hex(3)}"
        self.password = secrets.token_urlsafe(18)
        self.port = self.dist_port = self.epmd_port = 0
        self._management_port = 0
        self.version = ""
        self.startup_seconds = 0.0

    # -- where things are ----------------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        if self._work is None:
            raise RabbitMQError("RabbitMQ not started")
        return self._work

    @property
    def log_dir(self) -> Path:
        """The node's own log (<nodename>.log), its console output and epmd's."""
        return self.work_dir / "log"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.nodename}.log"

    @property
    def console_path(self) -> Path:
        return self.log_dir / "console.log"

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/%2F"

    @property
    def management_port(self) -> int | None:
        """The management plugin's HTTP port (None unless ``management=True``)."""
        return self._management_port or None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def scripts_dir(self) -> Path:
        if self._scripts_dir is None:
            self._scripts_dir = find_scripts_dir()
        return self._scripts_dir

    def env(self) -> dict[str, str]:
        """The environment of the node and of its CLI tools (rabbitmqctl & co)."""
        work = self.work_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(work / "home"),  # .erlang.cookie
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(work / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            RABBITMQ_CONFIG_FILE=str(work / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(work / "advanced.config"),  # never written
            RABBITMQ_ENABLED_PLUGINS_FILE=str(work / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(work / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=_LOOPBACK_DIST,
            RABBITMQ_CTL_ERL_ARGS=_LOOPBACK_DIST,
            RABBITMQ_CTL_DIST_PORT_MIN="0",
            RABBITMQ_CTL_DIST_PORT_MAX="0",
        )
        return env

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> RabbitMQ:
        """First call: lay out the work dir and start the node. Later calls (after :meth:`stop`
        or :meth:`kill`): start the same node again on its data and ports."""
        if self.running:
            raise RabbitMQError("RabbitMQ already running")
        began = time.monotonic()
        fresh = self._work is None
        if fresh:
            self._work = self._given or Path(tempfile.mkdtemp(prefix="whatsapp-operator-mq-"))
            self._work.mkdir(parents=True, exist_ok=True)
        try:
            if fresh:
                self._lay_out()
            self._start_epmd()
            self._spawn()
            self.wait_ready(self.timeout)
        except BaseException:
            if fresh:
                self.close()
            else:
                self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        what = "ready" if fresh else "restarted"
        extra = f", management :{self._management_port}" if self._management_port else ""
        _log(
            f"RabbitMQ {self.version} {what} at 127.0.0.1:{self.port} ({self.nodename}{extra}) "
            f"in {self.startup_seconds:.1f}s (logs {self.log_dir})"
        )
        return self

    def _lay_out(self) -> None:
        work, user = self.work_dir, _run_user()
        count = 4 if self.management else 3
        self.port, self.dist_port, self.epmd_port, *mgmt = procs.free_ports(count)
        self._management_port = mgmt[0] if mgmt else 0
        for sub in ("home", "mnesia", "log"):
            (work / sub).mkdir(exist_ok=True)
        conf = _CONF.format(user=self.user, password=self.password)
        if self.management:
            conf += _MANAGEMENT_CONF.format(port=self._management_port)
        (work / "rabbitmq.conf").write_text(conf)
        plugins = [*PLUGINS, *(["rabbitmq_management"] if self.management else [])]
        (work / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        (work / "rabbitmq-env.conf").write_text("# empty: the environment says it all\n")
        cookie = work / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        if user is not None:
            for path in (work, *work.rglob("*")):
                os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(work / "home", 0o700)
        os.chmod(cookie, 0o400)  # Erlang refuses a cookie others can read

    def _popen(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        group = {"start_new_session": True} if self.detach else {"process_group": 0}
        with (self.log_dir / log_name).open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=self.env(),
                **group,
                **_as_user(),
            )

    def _start_epmd(self) -> None:
        """Our own epmd, in the foreground (so it is ours to stop), before the node: the node
        would otherwise start an `epmd -daemon` that outlives it."""
        if self._epmd is not None and self._epmd.poll() is None:
            return
        self._epmd = None
        if _port_open(self.epmd_port):
            raise RabbitMQError(f"port {self.epmd_port} (epmd) already taken")
        argv = [str(find_epmd()), "-port", str(self.epmd_port), "-address", "127.0.0.1"]
        self._epmd = self._popen(argv, "epmd.log")
        deadline = time.monotonic() + 10
        while not _port_open(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                self._stop_epmd()
                raise RabbitMQError(f"epmd did not start:\n{procs.tail(self.log_dir / 'epmd.log')}")
            time.sleep(0.02)

    def _spawn(self) -> None:
        # The script traps SIGTERM and stops the node properly (the VM ignores SIGINT).
        self._proc = self._popen([str(self.scripts_dir / "rabbitmq-server")], "console.log")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the node takes an AMQP connection as its user (the plugins are started
        by then: listeners open last); raise with the log's tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                self._proc = None
                raise RabbitMQError(f"RabbitMQ exited with code {code}; {self._tails()}")
            try:
                self.version = amqp_probe(self.port, self.user, self.password, timeout=2.0)
            except (OSError, RabbitMQError) as err:
                if time.monotonic() > deadline:
                    raise RabbitMQError(
                        f"RabbitMQ not accepting AMQP connections after {timeout:.0f}s ({err}); "
                        f"{self._tails()}"
                    ) from None
                time.sleep(0.1)
                continue
            return

    def _tails(self) -> str:
        return (
            f"last lines of {self.console_path}:\n{procs.tail(self.console_path, 15)}\n"
            f"last lines of {self.log_path}:\n{procs.tail(self.log_path)}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node properly (connections closed, queues flushed), then its epmd; data,
        node name and ports are kept."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log(f"{self.nodename} ignored SIGTERM for {timeout:.0f}s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._stop_epmd()

    def kill(self) -> None:
        """SIGKILL the node, like a crash (epmd survives, as it would); the next start
        recovers. Unconfirmed messages may be lost, confirmed persistent ones not."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _stop_epmd(self) -> None:
        epmd, self._epmd = self._epmd, None
        if epmd is not None:
            procs.stop_process(epmd, "epmd", timeout=5.0)
        if self.epmd_port and self._work is not None and _port_open(self.epmd_port):
            # Not ours, yet on our private port: an `epmd -daemon` some Erlang tool started
            # when ours was down. It serves no node now: ask it to exit.
            subprocess.run(
                [str(find_epmd()), "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                timeout=10,
                env=self.env(),
                check=False,
            )

    def restart(self) -> None:
        """Stop and start the same node (data, queues, persistent messages and ports kept)."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def outage(self, crash: bool = False) -> Iterator[None]:
        """Down inside the block (stopped, or killed if ``crash``), up again after it."""
        self.kill() if crash else self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        """Stop, copy the logs to ``artifacts_dir`` and remove a temp work dir (unless
        ``keep``). Idempotent."""
        self.stop()
        if self._work is not None and self.artifacts_dir is not None:
            with contextlib.suppress(OSError):
                shutil.copytree(self.log_dir, self.artifacts_dir, dirs_exist_ok=True)
        if self._work is not None and self._given is None and not self.keep:
            shutil.rmtree(self._work, ignore_errors=True)
        self._work = None

    def release(self) -> dict[str, Any]:
        """Let the node (and its epmd) outlive this object; returns the state the CLI keeps."""
        if self._proc is None or self._epmd is None:
            raise RabbitMQError("RabbitMQ not running")
        state = {
            "pid": self._proc.pid,
            "epmd_pid": self._epmd.pid,
            "nodename": self.nodename,
            "port": self.port,
            "dist_port": self.dist_port,
            "epmd_port": self.epmd_port,
            "management_port": self._management_port,
            "user": self.user,
            "password": self.password,
            "amqp_url": self.amqp_url,
            "version": self.version,
            "work_dir": str(self.work_dir),
            "log_dir": str(self.log_dir),
        }
        with warnings.catch_warnings():  # Popen.__del__ warns that the child still runs: intended
            warnings.simplefilter("ignore", ResourceWarning)
            self._proc = self._epmd = None
        self._work = None
        return state

    # -- the CLI tools ---------------------------------------------------------------------------
    def cli(self, tool: str, *args: str, timeout: float = 60.0) -> str:
        """Run a CLI tool (rabbitmqctl, rabbitmq-diagnostics, ...) against the node; returns
        its stdout. Refused while the node is down: the tools would start an epmd daemon."""
        if not self.running or self._epmd is None or self._epmd.poll() is not None:
            raise RabbitMQError(f"{tool}: RabbitMQ not running")
        argv = [str(self.scripts_dir / tool), "-n", self.nodename, *args]
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=timeout,
            cwd=self.work_dir,
            env=self.env(),
            check=False,
            **_as_user(),
        )
        stdout: bytes = done.stdout
        if done.returncode != 0:
            output = (stdout + done.stderr).decode(errors="replace").strip()
            raise RabbitMQError(f"{tool} {' '.join(args)} failed ({done.returncode}): {output}")
        return stdout.decode()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        return self.cli("rabbitmqctl", *args, timeout=timeout)

    def list_queues(self, vhost: str = "/") -> dict[str, int]:
        """Queue name -> messages ready + unacknowledged."""
        columns = ("name", "messages_ready", "messages_unacknowledged")
        out = self.ctl("list_queues", "-q", "-p", vhost, "--formatter", "json", *columns)
        return {
            row["name"]: int(row["messages_ready"] or 0) + int(row["messages_unacknowledged"] or 0)
            for row in json.loads(out or "[]")
        }

    def __enter__(self) -> RabbitMQ:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- CLI: python -m whatsapp_testkit.rabbitmq up|down|status|env -----------------------------
def _state_dir() -> Path:
    override = os.environ.get("WHATSAPP_RABBITMQ_DIR")
    return Path(override).resolve() if override else REPO_ROOT / ".run" / "rabbitmq"


def _healthy(state: dict[str, Any]) -> bool:
    if not procs.pid_running(int(state["pid"]), "rabbitmq-server"):
        return False
    try:
        amqp_probe(int(state["port"]), state["user"], state["password"], timeout=2.0)
    except (OSError, RabbitMQError):
        return False
    return True


def _down(directory: Path, state: dict[str, Any] | None) -> None:
    if state is not None:
        # SIGTERM: the script stops the node properly (procs.stop_pid SIGKILLs after 30 s)
        procs.stop_pid(int(state["pid"]), "rabbitmq-server", timeout=30.0)
        procs.stop_pid(int(state["epmd_pid"]), "epmd", timeout=5.0)
    for item in ("mnesia", "log", "home", "state.json", "rabbitmq.conf", "enabled_plugins"):
        path = directory / item
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    (directory / "rabbitmq-env.conf").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["up"], ["down"], ["status"], ["env"]):
        print("usage: python -m whatsapp_testkit.rabbitmq up|down|status|env", file=sys.stderr)
        return 2
    directory = _state_dir()
    try:
        state: dict[str, Any] | None = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        state = None
    try:
        if args[0] == "down":
            _down(directory, state)
            _log("RabbitMQ stopped")
            return 0
        if state is None or not _healthy(state):
            if args[0] in ("status", "env"):
                print("down", file=sys.stderr if args[0] == "env" else sys.stdout)
                return 1
            _down(directory, state)
            state = RabbitMQ(directory, detach=True).start().release()
            (directory / "state.json").write_text(json.dumps(state, indent=2) + "\n")
            os.chmod(directory / "state.json", 0o600)  # holds the password
        elif args[0] == "up":
            _log(f"already up: RabbitMQ {state['version']} at port {state['port']}")
        if args[0] == "status":
            print(
                f"up: RabbitMQ {state['version']} node {state['nodename']} at "
                f"127.0.0.1:{state['port']} (logs {state['log_dir']})"
            )
        print(f"export {ENV_VAR}={state['amqp_url']}")
        return 0
    except RabbitMQError as err:
        _log(f"error: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
