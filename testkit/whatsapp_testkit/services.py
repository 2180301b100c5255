"""The project's own processes for tests, benchmarks and the demo: the Graph API simulator and
the operator, each a real subprocess started through its console entry point, logging to a
file that the leak scanner reads afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from whatsapp_testkit.procs import free_ports, reachable

VENV_BIN = Path(sys.executable).parent


class ServiceError(RuntimeError):
    """A service did not start or stop as expected."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Service:
    """A subprocess with a log file and an HTTP health URL."""

    name = "service"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.bin_dir = VENV_BIN  # where the program is installed (a wheel's venv, in a test)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def health_url(self) -> str:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self.proc.returncode}:\n{_tail(self.log_path)}"
                )
            status, _ = reachable(self.health_url())
            if status == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"{self.name} not healthy after {timeout} s:\n{_tail(self.log_path)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class GraphSimulator(Service):
    name = "whatsapp-graph-sim"

    def __init__(
        self, log_path: Path, *, port: int = 0, seed: Path | None = None, latency_ms: int = 0
    ) -> None:
        super().__init__(log_path)
        self.port = port or free_ports(1)[0]
        self.seed = seed
        self.latency_ms = latency_ms

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            str(self.bin_dir / "whatsapp-graph-sim"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--latency-ms",
            str(self.latency_ms),
        ]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        return argv

    def health_url(self) -> str:
        return f"{self.url}/_sim/healthz"


class Operator(Service):
    name = "whatsapp-operator"

    def __init__(
        self,
        log_path: Path,
        *,
        kubeconfig: Path,
        graph_api_url: str,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        namespaces: list[str] | None = None,
    ) -> None:
        super().__init__(log_path)
        self.namespaces = namespaces  # None: all namespaces
        self.kubeconfig = kubeconfig
        self.graph_api_url = graph_api_url
        self.port, self.metrics_port = free_ports(2)
        self.extra_args = extra_args or []
        self.extra_env = extra_env or {}

    def argv(self) -> list[str]:
        return [
            str(self.bin_dir / "whatsapp-operator"),
            *(
                [f"--namespace={n}" for n in self.namespaces]
                if self.namespaces
                else ["--all-namespaces"]
            ),
            "--kubeconfig",
            str(self.kubeconfig),
            "--graph-api-url",
            self.graph_api_url,
            "--liveness-port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--log-format",
            "full",
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        return env

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"


class Worker(Service):
    """A sender worker process (`whatsapp-worker`: Celery hosting the sender service)."""

    name = "whatsapp-worker"

    def __init__(
        self,
        log_path: Path,
        *,
        amqp_url: str,
        graph_api_url: str,
        config_dir: Path,
        pool: str = "default",
        worker_id: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(log_path)
        self.amqp_url = amqp_url
        self.graph_api_url = graph_api_url
        self.config_dir = config_dir
        self.pool = pool
        self.worker_id = worker_id or log_path.stem
        self.metrics_port = free_ports(1)[0]
        self.settings = settings or {}

    def argv(self) -> list[str]:
        return [str(self.bin_dir / "whatsapp-worker"), "--log-level", "INFO"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "WHATSAPP_WORKER_AMQP_URL": self.amqp_url,
                "WHATSAPP_WORKER_GRAPH_BASE_URL": self.graph_api_url,
                "WHATSAPP_WORKER_CONFIG_DIR": str(self.config_dir),
                "WHATSAPP_WORKER_POOL": self.pool,
                "WHATSAPP_WORKER_WORKER_ID": self.worker_id,
                "WHATSAPP_WORKER_METRICS_PORT": str(self.metrics_port),
                "WHATSAPP_WORKER_HEARTBEAT_INTERVAL": "1",
                "WHATSAPP_WORKER_RELOAD_INTERVAL": "0.5",
            }
        )
        env.update({f"WHATSAPP_WORKER_{k.upper()}": v for k, v in self.settings.items()})
        return env

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def metrics(self) -> dict[str, float]:
        """Samples of the worker's metrics page: 'name{labels}' -> value."""
        status, body = reachable(self.health_url())
        if status != 200:
            raise ServiceError(f"{self.name}: metrics unavailable ({status})")
        samples: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def metric(self, name: str) -> float:
        """The sum of a metric's samples over all label sets."""
        return sum(v for k, v in self.metrics().items() if k.partition("{")[0] == name)
