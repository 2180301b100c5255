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
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from whatsapp_testkit import daemon, procs
from whatsapp_testkit.rabbitmq_tools import (
    RabbitMQError,
    amqp_probe,
    as_user,
    find_epmd,
    find_scripts_dir,
    port_open,
    run_user,
)

__all__ = [
    "ENV_VAR",
    "PLUGINS",
    "RabbitMQ",
    "RabbitMQDaemon",
    "RabbitMQError",
    "amqp_probe",
    "find_epmd",
    "find_scripts_dir",
    "main",
]
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


class RabbitMQ(daemon.Restartable):
    """A private RabbitMQ node on 127.0.0.1:<free port> (vhost ``/``, a generated admin user).

    ``work_dir`` (default: a temp dir, removed by :meth:`close` unless ``keep``) holds the
    config, the Erlang cookie (home/), the data (mnesia/) and the logs (log/: the node's log,
    its console and epmd's). ``artifacts_dir``, if given, receives a copy of the logs on
    :meth:`close`. :meth:`stop`, :meth:`kill`, :meth:`restart` and :meth:`outage` keep the
    data, the node name and the ports.
    """

    title, source, temp_prefix = "RabbitMQ", "rabbitmq", "whatsapp-operator-mq-"
    error = RabbitMQError
    processes = ("_proc", "_epmd")

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
        super().__init__(work_dir, timeout=timeout, keep=keep, detach=detach)
        self.management = management
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self._scripts_dir = scripts_dir
        self._epmd: subprocess.Popen[bytes] | None = None
        self.nodename = f"wa-{secrets.token_hex(4)}@localhost"
        self.user = f"wa-{secrets.token_hex(3)}"
        self.password = secrets.token_urlsafe(18)
        self.dist_port = self.epmd_port = 0
        self._management_port = 0

    # -- where things are ----------------------------------------------------------------------
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

    # -- lifecycle (start, kill, restart, outage: daemon.Restartable) ----------------------------
    def _prepare(self) -> None:
        """Ports, config, plugins file and Erlang cookie in a fresh work dir."""
        work, user = self.work_dir, run_user()
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

    def _launch(self) -> None:
        self._start_epmd()
        self._proc = self._popen([str(self.scripts_dir / "rabbitmq-server")], "console.log")
        self.wait_ready(self.timeout)

    def _announce(self, what: str) -> None:
        extra = f", management :{self._management_port}" if self._management_port else ""
        self.log(
            f"RabbitMQ {self.version} {what} at 127.0.0.1:{self.port} ({self.nodename}{extra}) "
            f"in {self.startup_seconds:.1f}s (logs {self.log_dir})"
        )

    def _popen(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        return self.popen(argv, self.log_dir / log_name, env=self.env(), **as_user())

    def _start_epmd(self) -> None:
        """Our own epmd, in the foreground (so it is ours to stop), before the node: the node
        would otherwise start an `epmd -daemon` that outlives it."""
        if self._epmd is not None and self._epmd.poll() is None:
            return
        self._epmd = None
        if port_open(self.epmd_port):
            raise RabbitMQError(f"port {self.epmd_port} (epmd) already taken")
        argv = [str(find_epmd()), "-port", str(self.epmd_port), "-address", "127.0.0.1"]
        self._epmd = self._popen(argv, "epmd.log")

        def listening() -> None:
            if not port_open(self.epmd_port):
                raise daemon.NotReady

        def failed(_: object) -> RabbitMQError:
            return RabbitMQError(f"epmd did not start:\n{procs.tail(self.log_dir / 'epmd.log')}")

        try:
            daemon.wait_ready(
                self._epmd, listening, timeout=10, interval=0.02, exited=failed, late=failed
            )
        except RabbitMQError:
            self._stop_epmd()
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the node takes an AMQP connection as its user (the plugins are started
        by then: listeners open last); raise with the log's tail if it exits or times out."""
        if self._proc is None:
            raise RabbitMQError(f"RabbitMQ exited with code None; {self._tails()}")
        self.version = daemon.wait_ready(
            self._proc,
            lambda: amqp_probe(self.port, self.user, self.password, timeout=2.0),
            timeout=timeout,
            interval=0.1,
            retry=(OSError, RabbitMQError),
            exited=lambda code: RabbitMQError(f"RabbitMQ exited with code {code}; {self._tails()}"),
            late=lambda err: RabbitMQError(
                f"RabbitMQ not accepting AMQP connections after {timeout:.0f}s ({err}); "
                f"{self._tails()}"
            ),
        )

    def _tails(self) -> str:
        return (
            f"last lines of {self.console_path}:\n{procs.tail(self.console_path, 15)}\n"
            f"last lines of {self.log_path}:\n{procs.tail(self.log_path)}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node properly (SIGTERM: the script traps it; connections closed, queues
        flushed), then its epmd; data, node name and ports are kept. :meth:`kill` leaves epmd
        running, as a crash would; the next start recovers (unconfirmed messages may be lost,
        confirmed persistent ones not)."""
        super().stop(timeout)
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        epmd, self._epmd = self._epmd, None
        if epmd is not None:
            procs.stop_process(epmd, "epmd", timeout=5.0)
        if self.epmd_port and self._work is not None and port_open(self.epmd_port):
            # Not ours, yet on our private port: an `epmd -daemon` some Erlang tool started
            # when ours was down. It serves no node now: ask it to exit.
            subprocess.run(
                [str(find_epmd()), "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                timeout=10,
                env=self.env(),
                check=False,
            )

    def close(self) -> None:
        """Stop, copy the logs to ``artifacts_dir`` and remove a temp work dir (unless
        ``keep``). Idempotent."""
        self.stop()
        if self._work is not None and self.artifacts_dir is not None:
            with contextlib.suppress(OSError):
                shutil.copytree(self.log_dir, self.artifacts_dir, dirs_exist_ok=True)
        self._drop_work_dir()

    def state(self) -> daemon.State:
        assert self._proc is not None
        assert self._epmd is not None
        return {
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
            **as_user(),
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


# -- CLI: python -m whatsapp_testkit.rabbitmq up|down|status|env -----------------------------
class RabbitMQDaemon(daemon.Daemon):
    name, dir_variable = "rabbitmq", "WHATSAPP_RABBITMQ_DIR"
    command, source, error = "python -m whatsapp_testkit.rabbitmq", "rabbitmq", RabbitMQError
    commands = ("up", "down", "status", "env")
    work_items = ("mnesia", "log", "home", "rabbitmq.conf", "enabled_plugins", "rabbitmq-env.conf")
    private_state = True  # state.json holds the password

    def start(self, directory: Path) -> daemon.State:
        return RabbitMQ(directory, detach=True).start().release()

    def pids(self, state: daemon.State) -> list[tuple[str, int]]:
        return [("rabbitmq-server", int(state["pid"])), ("epmd", int(state["epmd_pid"]))]

    def stop_pid(self, binary: str, pid: int) -> None:
        # SIGTERM: the script stops the node properly (SIGKILL after 30 s)
        procs.stop_pid(pid, binary, timeout=30.0 if binary == "rabbitmq-server" else 5.0)

    def healthy(self, state: daemon.State) -> bool:
        if not procs.pid_running(int(state["pid"]), "rabbitmq-server"):
            return False
        try:
            amqp_probe(int(state["port"]), state["user"], state["password"], timeout=2.0)
        except (OSError, RabbitMQError):
            return False
        return True

    def describe(self, state: daemon.State) -> str:
        return (
            f"RabbitMQ {state['version']} node {state['nodename']} at "
            f"127.0.0.1:{state['port']} (logs {state['log_dir']})"
        )

    def export(self, state: daemon.State) -> str:
        return f"export {ENV_VAR}={state['amqp_url']}"


def main(argv: list[str] | None = None) -> int:
    return RabbitMQDaemon().main(argv)


if __name__ == "__main__":
    sys.exit(main())
