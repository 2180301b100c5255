"""A real Kubernetes control plane: etcd + kube-apiserver as loopback processes, like envtest.

Standard library only, so it runs with the system python3 before any virtualenv exists::

    with ControlPlane() as cp:          # certificates, etcd, kube-apiserver, admin kubeconfig
        subprocess.run([cp.kubectl, "--kubeconfig", cp.kubeconfig_path, "get", "ns"])

or from a shell (``hack/control-plane up|down|status|env``; state in <repo>/.run/control-plane,
or $WHATSAPP_CONTROL_PLANE_DIR; see daemon.Daemon).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from whatsapp_testkit import certs, daemon, procs

# the names callers import from here, as before the binaries and the cluster setup moved out
from whatsapp_testkit.binaries import find_binaries as find_binaries
from whatsapp_testkit.binaries import find_kubectl as find_kubectl
from whatsapp_testkit.cluster_setup import apply_object
from whatsapp_testkit.cluster_setup import install_crds as install_crds
from whatsapp_testkit.cluster_setup import tenant_policy as tenant_policy
from whatsapp_testkit.procs import ControlPlaneError

if TYPE_CHECKING:  # typing.Self: Python 3.11; hack/control-plane runs the system python3
    from typing import Self

REPO_ROOT = daemon.REPO_ROOT


class ControlPlane(daemon.Harness):
    """etcd + kube-apiserver on free loopback ports, with an admin kubeconfig.

    ``work_dir``: where certificates, etcd data, logs and kubeconfigs go (default: a temp dir,
    removed by :meth:`stop` unless ``keep``). ``detach``: start the processes in their own
    session, so they outlive this Python process (used by the CLI).
    """

    title, source, temp_prefix = "control plane", "control-plane", "whatsapp-operator-envtest-"
    error = ControlPlaneError
    processes = ("_etcd", "_apiserver")

    def __init__(
        self,
        work_dir: Path | str | None = None,
        *,
        bin_dir: Path | None = None,
        keep: bool = False,
        timeout: float = 120.0,
        detach: bool = False,
    ) -> None:
        super().__init__(work_dir, timeout=timeout, keep=keep, detach=detach)
        self._bin_dir = bin_dir
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._apiserver_argv: list[str] = []
        self._ports: dict[str, int] = {}
        self._version = ""
        self._startup = 0.0

    # -- public read-only state ------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_binaries()
        return self._bin_dir

    @property
    def kubectl(self) -> Path:
        return find_kubectl(self.bin_dir)

    @property
    def kubeconfig_path(self) -> Path:
        return self.work_dir / "kubeconfig"

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self._ports['apiserver']}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['etcd']}"

    @property
    def version(self) -> str:
        """GitVersion from /version, e.g. ``v1.36.3``."""
        return self._version

    @property
    def startup_seconds(self) -> float:
        """Seconds from the first certificate to /readyz answering 200."""
        return self._startup

    @property
    def ca_cert(self) -> Path:
        return self.work_dir / "certs" / "ca.crt"

    @property
    def admin(self) -> certs.KeyPair:
        return certs.KeyPair(
            self.work_dir / "certs" / "admin.crt", self.work_dir / "certs" / "admin.key"
        )

    @property
    def apiserver_log(self) -> Path:
        return self.work_dir / "kube-apiserver.log"

    @property
    def etcd_log(self) -> Path:
        return self.work_dir / "etcd.log"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        if self._work is not None:
            raise ControlPlaneError("control plane already started")
        bin_dir = self.bin_dir
        started = time.monotonic()
        self._open_work_dir()
        try:
            self._start(bin_dir)
        except BaseException:
            self.stop()
            raise
        self._startup = time.monotonic() - started
        self.log(f"Kubernetes {self._version} ready at {self.server_url} in {self._startup:.1f}s")
        self.log(f"work dir {self.work_dir} (logs: kube-apiserver.log, etcd.log)")
        return self

    def _start(self, bin_dir: Path) -> None:
        cert_dir = self.work_dir / "certs"
        cert_dir.mkdir(exist_ok=True)
        ca = certs.make_ca(cert_dir, "ca", "whatsapp-operator-envtest-ca")
        serving = certs.make_serving_cert(cert_dir, "apiserver", ca, ["localhost", "127.0.0.1"])
        client_ca = certs.make_ca(cert_dir, "client-ca", "whatsapp-operator-envtest-client-ca")
        admin = certs.make_client_cert(cert_dir, "admin", client_ca, "admin", ["system:masters"])
        sa = certs.make_service_account_keys(cert_dir)
        etcd_port, peer_port, api_port = procs.free_ports(3)
        self._ports = {"etcd": etcd_port, "etcd-peer": peer_port, "apiserver": api_port}
        self._start_etcd(bin_dir)
        self._apiserver_argv = [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={cert_dir}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--secure-port={api_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer={self.server_url}/",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            f"--client-ca-file={client_ca.cert}",
        ]
        self._start_apiserver()
        certs.write_kubeconfig(self.kubeconfig_path, self.server_url, ca.cert, "admin", admin)

    def _start_etcd(self, bin_dir: Path) -> None:
        peer = f"http://127.0.0.1:{self._ports['etcd-peer']}"
        etcd_argv = [
            str(bin_dir / "etcd"),
            "--name=envtest",
            f"--data-dir={self.work_dir / 'etcd-data'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=envtest={peer}",
            "--unsafe-no-fsync=true",
        ]
        self._etcd = procs.spawn(etcd_argv, self.etcd_log, self.detach)
        self._wait(self._etcd, "etcd", self.etcd_log, f"{self.etcd_url}/health", None)

    def _start_apiserver(self) -> None:
        self._apiserver = procs.spawn(self._apiserver_argv, self.apiserver_log, self.detach)
        context = procs.tls(self.ca_cert, self.admin)
        self._wait(self._apiserver, "kube-apiserver", self.apiserver_log, "/readyz", context)
        self._version = str(json.loads(self.get("/version"))["gitVersion"])

    def _wait(
        self,
        proc: subprocess.Popen[bytes],
        name: str,
        log_path: Path,
        url: str,
        context: ssl.SSLContext | None,
    ) -> None:
        url = self.server_url + url if url.startswith("/") else url

        def ready() -> None:
            status, body = procs.reachable(url, context)
            if status != 200:
                raise daemon.NotReady(f"{url}: {status} {body[-500:]!r}")

        daemon.wait_ready(
            proc,
            ready,
            timeout=self.timeout,
            interval=0.2,
            exited=lambda code: ControlPlaneError(
                f"{name} exited with code {code}; last lines of {log_path}:\n{procs.tail(log_path)}"
            ),
            late=lambda err: ControlPlaneError(
                f"{name} not ready after {self.timeout:.0f}s ({err}); "
                f"last lines of {log_path}:\n{procs.tail(log_path)}"
            ),
        )

    def get(self, path: str) -> bytes:
        """GET ``path`` on the API server as the admin user; raises on a non-200 answer."""
        status, body = procs.get(self.server_url + path, procs.tls(self.ca_cert, self.admin))
        if status != 200:
            raise ControlPlaneError(f"GET {path}: HTTP {status}: {body[:500]!r}")
        return body

    def install_crds(self, *namespaces: str, field_manager: str = "whatsapp-testkit") -> None:
        """The project's CRDs, Established, and `namespaces` (see `install_crds`)."""
        install_crds(
            self.kubeconfig_path, *namespaces, field_manager=field_manager, kubectl=self.kubectl
        )

    def allow_all_tenant_ids(self, name: str = "allow-all") -> None:
        """A WhatsAppTenantPolicy letting every namespace use every tenant id (for a private
        cluster with one team: benchmarks, single-tenant tests)."""
        apply_object(self.kubeconfig_path, tenant_policy(name, {}), kubectl=self.kubectl)

    def restart_apiserver(self, while_down: Callable[[], object] | None = None) -> None:
        """Stop kube-apiserver and start it again on the same port, against the same etcd;
        `while_down` runs in between (changes made elsewhere during the outage)."""
        if self._apiserver is None:
            raise ControlPlaneError("kube-apiserver not running under this ControlPlane")
        began = time.monotonic()
        procs.stop_process(self._apiserver, "kube-apiserver")
        if while_down is not None:
            while_down()
        self._start_apiserver()
        self.log(f"kube-apiserver restarted in {time.monotonic() - began:.1f}s")

    def user_kubeconfig(self, user: str, groups: list[str]) -> Path:
        """A kubeconfig for ``user`` in ``groups`` (a client cert signed by the client CA)."""
        users = self.work_dir / "users"
        users.mkdir(exist_ok=True)
        name = certs.safe_name(user)
        client_ca = certs.KeyPair(
            self.work_dir / "certs" / "client-ca.crt", self.work_dir / "certs" / "client-ca.key"
        )
        pair = certs.make_client_cert(users, name, client_ca, user, groups)
        return certs.write_kubeconfig(
            users / f"{name}.kubeconfig", self.server_url, self.ca_cert, user, pair
        )

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd; remove a temp work dir unless ``keep``. Idempotent."""
        for attr, name in (("_apiserver", "kube-apiserver"), ("_etcd", "etcd")):
            proc: subprocess.Popen[bytes] | None = getattr(self, attr)
            if proc is not None:
                procs.stop_process(proc, name)
                setattr(self, attr, None)
        self._drop_work_dir()

    def close(self) -> None:
        """The same as :meth:`stop` (the name the other harnesses use)."""
        self.stop()

    def state(self) -> daemon.State:
        assert self._etcd is not None
        assert self._apiserver is not None
        return {
            "pids": {"etcd": self._etcd.pid, "kube-apiserver": self._apiserver.pid},
            "ports": self._ports,
            "server_url": self.server_url,
            "version": self.version,
            "kubeconfig": str(self.kubeconfig_path),
            "work_dir": str(self.work_dir),
            "bin_dir": str(self.bin_dir),
            "ca_cert": str(self.ca_cert),
            "admin_cert": str(self.admin.cert),
            "admin_key": str(self.admin.key),
        }


# -- CLI: hack/control-plane up|down|status|env -----------------------------------------------
class ControlPlaneDaemon(daemon.Daemon):
    name, dir_variable = "control-plane", "WHATSAPP_CONTROL_PLANE_DIR"
    command, source, error = "hack/control-plane", "control-plane", ControlPlaneError
    commands = ("up", "down", "status", "env")
    work_items = ("certs", "users", "etcd-data", "etcd.log", "kube-apiserver.log", "kubeconfig")
    remove_failed_start = True

    def start(self, directory: Path) -> daemon.State:
        return ControlPlane(directory, detach=True).start().release()

    def pids(self, state: daemon.State) -> list[tuple[str, int]]:
        return [(name, int(state["pids"][name])) for name in ("kube-apiserver", "etcd")]

    def healthy(self, state: daemon.State) -> bool:
        if not all(procs.pid_running(int(pid), name) for name, pid in state["pids"].items()):
            return False
        admin = certs.KeyPair(Path(state["admin_cert"]), Path(state["admin_key"]))
        try:
            context = procs.tls(Path(state["ca_cert"]), admin)
        except OSError:
            return False
        return procs.reachable(f"{state['server_url']}/readyz", context)[0] == 200

    def describe(self, state: daemon.State) -> str:
        return f"Kubernetes {state['version']} at {state['server_url']}"

    def export(self, state: daemon.State) -> str:
        return f"export KUBECONFIG={state['kubeconfig']}"


def state_dir() -> Path:
    return ControlPlaneDaemon().state_dir()


def main(argv: list[str] | None = None) -> int:
    return ControlPlaneDaemon().main(argv)


if __name__ == "__main__":
    sys.exit(main())
