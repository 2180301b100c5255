"""What the testkit's servers share (standard library only). PostgreSQL (postgres.py), RabbitMQ
(rabbitmq.py) and the Kubernetes control plane (controlplane.py) each come as

* a :class:`Harness`, for a test: a work dir (a temp dir unless given), server processes with
  their output in log files, waited for until a probe says they serve, stopped, and released
  to outlive the object (:meth:`Harness.release` returns what the daemon keeps of them).
  :class:`Restartable` adds one server process that stops and starts again on its data;
* a :class:`Daemon`, for a shell: ``up|down|status[|env]``, the released state in
  ``<state dir>/state.json``; the state dir is ``<repo>/.run/<name>`` unless an environment
  variable names another. ``up`` starts a server only when the recorded one is not healthy,
  ``down`` stops the recorded processes and removes only what ``up`` wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from whatsapp_testkit import procs

if TYPE_CHECKING:  # typing.Self: Python 3.11; hack/control-plane runs the system python3
    from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "state.json"
State = dict[str, Any]
T = TypeVar("T")


def log(source: str, message: str) -> None:
    print(f"{source}: {message}", file=sys.stderr, flush=True)


class NotReady(Exception):
    """A probe's answer while a server starts: not yet (the message says what it saw)."""


def wait_ready(
    proc: subprocess.Popen[bytes],
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float,
    exited: Callable[[int], BaseException],
    late: Callable[[BaseException], BaseException],
    retry: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` every ``interval`` s until it returns; raise ``exited(returncode)`` when
    ``proc`` ends first, ``late(last error)`` once ``timeout`` s have passed. ``probe`` says
    "not yet" by raising :class:`NotReady` or one of ``retry``."""
    deadline = time.monotonic() + timeout
    not_yet: tuple[type[BaseException], ...] = (NotReady, *retry)
    while True:
        code = proc.poll()
        if code is not None:
            raise exited(code)
        try:
            return probe()
        except not_yet as err:
            if time.monotonic() > deadline:
                raise late(err) from None
        time.sleep(interval)


class Harness:
    """A server for a test, in ``work_dir`` (default: a temp dir, removed when it is done
    with unless ``keep``). ``detach``: its processes run in a session of their own, so they
    outlive this Python process (what the daemon's ``up`` needs)."""

    title = "server"  # in messages: "<title> not running"
    source = "testkit"  # the prefix of its log lines
    temp_prefix = "whatsapp-operator-"
    error: type[Exception] = RuntimeError
    processes: tuple[str, ...] = ()  # the attributes holding its Popen objects

    def __init__(
        self, work_dir: Path | str | None, *, timeout: float, keep: bool, detach: bool
    ) -> None:
        self._given = Path(work_dir).resolve() if work_dir is not None else None
        self.timeout, self.keep, self.detach = timeout, keep, detach
        self._work: Path | None = None

    def log(self, message: str) -> None:
        log(self.source, message)

    @property
    def work_dir(self) -> Path:
        if self._work is None:
            raise self.error(f"{self.title} not started")
        return self._work

    def _open_work_dir(self) -> Path:
        self._work = self._given or Path(tempfile.mkdtemp(prefix=self.temp_prefix))
        self._work.mkdir(parents=True, exist_ok=True)
        return self._work

    def _drop_work_dir(self) -> None:
        if self._work is not None and self._given is None and not self.keep:
            shutil.rmtree(self._work, ignore_errors=True)
        self._work = None

    def popen(self, argv: list[str], log_path: Path, **options: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the work dir, its output appended to ``log_path``; in a process
        group of its own (a session of its own when ``detach``), so that a SIGKILL reaches
        the children it starts. ``options`` go to Popen (env, user, group...)."""
        group = {"start_new_session": True} if self.detach else {"process_group": 0}
        with log_path.open("ab") as log_file:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                **group,
                **options,
            )

    def state(self) -> State:
        """What the daemon keeps of the running server (state.json)."""
        raise NotImplementedError

    def release(self) -> State:
        """Let the processes outlive this object; returns :meth:`state`, which the daemon
        persists."""
        if any(getattr(self, name) is None for name in self.processes):
            raise self.error(f"{self.title} not running")
        state = self.state()
        with warnings.catch_warnings():  # Popen.__del__ warns the child still runs: intended
            warnings.simplefilter("ignore", ResourceWarning)
            for name in self.processes:
                setattr(self, name, None)
        self._work = None
        return state

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        """Stop everything and remove a temp work dir (unless ``keep``). Idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Restartable(Harness):
    """A harness around one server process (``_proc``) that stops and starts again on the
    same data and ports: :meth:`stop`, :meth:`kill`, :meth:`restart`, :meth:`outage`."""

    stop_signal = signal.SIGTERM  # the signal of a clean shutdown
    processes: tuple[str, ...] = ("_proc",)

    def __init__(
        self, work_dir: Path | str | None, *, timeout: float, keep: bool, detach: bool
    ) -> None:
        super().__init__(work_dir, timeout=timeout, keep=keep, detach=detach)
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.version = ""
        self.startup_seconds = 0.0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> None:
        """Lay out a fresh work dir (first start only)."""

    def _launch(self) -> None:
        """Start the server process(es) and wait until it serves."""
        raise NotImplementedError

    def _first_started(self) -> None:
        """After the first start only (create what the tests expect)."""

    def _announce(self, what: str) -> None:
        """Log that the server is ``what`` ("ready" or "restarted")."""

    def start(self) -> Self:
        """First call: lay out the work dir and start. Later calls (after :meth:`stop` or
        :meth:`kill`): start again on the same work dir and ports."""
        if self.running:
            raise self.error(f"{self.title} already running")
        began = time.monotonic()
        fresh = self._work is None
        if fresh:
            self._open_work_dir()
        try:
            if fresh:
                self._prepare()
            self._launch()
        except BaseException:
            self.close() if fresh else self.stop()
            raise
        if fresh:
            self._first_started()
        self.startup_seconds = time.monotonic() - began
        self._announce("ready" if fresh else "restarted")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (``stop_signal``; SIGKILL after ``timeout`` s); the data and the
        ports are kept."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.log(f"{self.title} ignored {self.stop_signal.name} for {timeout:.0f}s; killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the server and its children, like a crash; the next start recovers."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        """Stop and start again (data, ports and everything persistent kept)."""
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
        """Stop and remove a temp work dir (unless ``keep``). Idempotent."""
        self.stop()
        self._drop_work_dir()


class Daemon:
    """``<command> up|down|status[|env]`` for one harness.

    up      start (unless the recorded server is healthy); print the export line
    down    stop the recorded processes, remove what ``up`` wrote (a no-op when down)
    status  exit 0 and say so when up and healthy, 1 when not; print the export line
    env     print the export line again (exit 1 when down)
    """

    name = "daemon"  # the state dir: <repo>/.run/<name>
    dir_variable = ""  # ... or this environment variable's value
    command = "daemon"  # how a shell calls it (usage and hints)
    source = "testkit"  # the prefix of its log lines
    commands: tuple[str, ...] = ("up", "down", "status")
    error: type[Exception] = RuntimeError
    work_items: tuple[str, ...] = ()  # what `up` writes in the state dir
    private_state = False  # state.json holds a secret: mode 0600
    remove_failed_start = False  # a failed `up` removes what it wrote, its logs too

    # -- what each harness says ----------------------------------------------------------------
    def start(self, directory: Path) -> State:  # start it detached; its released state
        raise NotImplementedError

    def pids(self, state: State) -> list[tuple[str, int]]:  # (binary, pid) in stopping order
        raise NotImplementedError

    def healthy(self, state: State) -> bool:  # the recorded server runs and answers
        raise NotImplementedError

    def describe(self, state: State) -> str:  # for `status` and `up`: "PostgreSQL 16.4 at ..."
        raise NotImplementedError

    def export(self, state: State) -> str:  # what a shell evaluates: "export VARIABLE=value"
        raise NotImplementedError

    def stop_pid(self, binary: str, pid: int) -> None:
        procs.stop_pid(pid, binary)

    # -- the state dir -------------------------------------------------------------------------
    def log(self, message: str) -> None:
        log(self.source, message)

    def state_dir(self) -> Path:
        override = os.environ.get(self.dir_variable) if self.dir_variable else None
        return Path(override).resolve() if override else REPO_ROOT / ".run" / self.name

    @staticmethod
    def load(directory: Path) -> State | None:
        try:
            state: State = json.loads((directory / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        return state

    def save(self, directory: Path, state: State) -> None:
        path = directory / STATE_FILE
        path.write_text(json.dumps(state, indent=2) + "\n")
        if self.private_state:
            os.chmod(path, 0o600)

    def teardown(self, directory: Path, state: State | None) -> None:
        """Stop the recorded processes and remove what ``up`` wrote; the state dir too when
        that leaves it empty (never a file we did not write)."""
        if state is not None:
            for binary, pid in self.pids(state):
                self.stop_pid(binary, pid)
        for item in (*self.work_items, STATE_FILE):
            path = directory / item
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            directory.rmdir()

    # -- the commands --------------------------------------------------------------------------
    def up(self, directory: Path, state: State | None) -> State:
        if state is not None and self.healthy(state):
            self.log(f"already up: {self.describe(state)}")
            return state
        if directory.exists():
            self.log(f"cleaning stale state in {directory}")
            self.teardown(directory, state)
        try:
            state = self.start(directory)
        except BaseException:
            if self.remove_failed_start:
                self.teardown(directory, None)
            raise
        self.save(directory, state)
        self.log(f"state in {directory}; stop with: {self.command} down")
        return state

    def down(self, directory: Path, state: State | None) -> None:
        if state is None and not directory.exists():
            self.log("not up; nothing to stop")
        else:
            self.teardown(directory, state)
            self.log("stopped")

    def run(self, command: str, directory: Path) -> int:
        state = self.load(directory)
        if command == "down":
            self.down(directory, state)
            return 0
        if command == "up":
            state = self.up(directory, state)
        elif state is None or not self.healthy(state):
            if command == "status":
                print("down" if state is None else f"down (stale state in {directory})")
            else:
                self.log(f"not up; run: {self.command} up")
            return 1
        elif command == "status":
            print(f"up: {self.describe(state)}")
        print(self.export(state))
        return 0

    def main(self, argv: list[str] | None = None) -> int:
        args = sys.argv[1:] if argv is None else argv
        if len(args) != 1 or args[0] not in self.commands:
            print(f"usage: {self.command} {'|'.join(self.commands)}", file=sys.stderr)
            return 2
        directory = self.state_dir()
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            with (directory.parent / f".{directory.name}.lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one command at a time per state dir
                return self.run(args[0], directory)
        except self.error as err:
            self.log(f"error: {err}")
            return 1
