"""A real Kubernetes control plane: etcd + kube-apiserver as loopback processes, like envtest.

Standard library only, so it runs with the system python3 before any virtualenv exists::

    with ControlPlane() as cp:          # certificates, etcd, kube-apiserver, admin kubeconfig
        subprocess.run([cp.kubectl, "--kubeconfig", cp.kubeconfig_path, "get", "ns"])

or from a shell (``hack/control-plane up|down|status|env``; see :func:`main`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from whatsapp_testkit import certs, procs
from whatsapp_testkit.procs import ControlPlaneError, log

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
CRDS = REPO_ROOT / "crds"
STATE_FILE = "state.json"
_WORK_ITEMS = ("certs", "users", "etcd-data", "etcd.log", "kube-apiserver.log", "kubeconfig")


def _build() -> Path:
    """Run hack/build-control-plane.sh (a no-op once built) and return the folder it prints."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    return Path(lines[-1])


def find_binaries() -> Path:
    """The folder holding ``kube-apiserver`` and ``etcd``: $KUBEBUILDER_ASSETS, else our build."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        folder = Path(assets)
        if all(os.access(folder / name, os.X_OK) for name in ("kube-apiserver", "etcd")):
            return folder
        log(f"KUBEBUILDER_ASSETS={assets} lacks kube-apiserver or etcd; using our build")
    return _build()


def find_kubectl(bin_dir: Path | None = None) -> Path:
    """``kubectl`` next to the other binaries if present, else the one our build makes."""
    folder = bin_dir or find_binaries()
    return folder / "kubectl" if os.access(folder / "kubectl", os.X_OK) else _build() / "kubectl"


CRD_NAMES = ("whatsapptenants.whatsapp.operator.dev", "whatsappsignups.whatsapp.operator.dev")


def install_crds(
    kubeconfig: Path,
    *namespaces: str,
    field_manager: str = "whatsapp-testkit",
    kubectl: Path | None = None,
) -> None:
    """Apply the project's CRDs (crds/, server-side), wait until both are Established, then
    create `namespaces` (with `kubectl`, else `find_kubectl()`). Raises ControlPlaneError
    with kubectl's words when a step fails."""
    binary = str(kubectl or find_kubectl())
    steps: list[list[str]] = [
        ["apply", "--server-side", f"--field-manager={field_manager}", "-f", str(CRDS)],
        ["wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES)],
        *(["create", "namespace", ns] for ns in namespaces),
    ]
    for args in steps:
        proc = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args[:2])}: {proc.stderr.strip()}")


class ControlPlane:
    """etcd + kube-apiserver on free loopback ports, with an admin kubeconfig.

    ``work_dir``: where certificates, etcd data, logs and kubeconfigs go (default: a temp dir,
    removed by :meth:`stop` unless ``keep``). ``detach``: start the processes in their own
    session, so they outlive this Python process (used by the CLI).
    """

    def __init__(
        self,
        work_dir: Path | str | None = None,
        *,
        bin_dir: Path | None = None,
        keep: bool = False,
        timeout: float = 120.0,
        detach: bool = False,
    ) -> None:
        self._given_dir = Path(work_dir).resolve() if work_dir is not None else None
        self._bin_dir = bin_dir
        self.keep, self.timeout, self.detach = keep, timeout, detach
        self._work: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._apiserver_argv: list[str] = []
        self._ports: dict[str, int] = {}
        self._version = ""
        self._startup = 0.0

    # -- public read-only state ------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        if self._work is None:
            raise ControlPlaneError("control plane not started")
        return self._work

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
    def start(self) -> ControlPlane:
        if self._work is not None:
            raise ControlPlaneError("control plane already started")
        bin_dir = self.bin_dir
        started = time.monotonic()
        if self._given_dir is None:
            self._work = Path(tempfile.mkdtemp(prefix="whatsapp-operator-envtest-"))
        else:
            self._work = self._given_dir
            self._work.mkdir(parents=True, exist_ok=True)
        try:
            self._start(bin_dir)
        except BaseException:
            self.stop()
            raise
        self._startup = time.monotonic() - started
        log(f"Kubernetes {self._version} ready at {self.server_url} in {self._startup:.1f}s")
        log(f"work dir {self.work_dir} (logs: kube-apiserver.log, etcd.log)")
        return self

    def _start(self, bin_dir: Path) -> None:
        work = self.work_dir
        cert_dir = work / "certs"
        cert_dir.mkdir(exist_ok=True)
        ca = certs.make_ca(cert_dir, "ca", "whatsapp-operator-envtest-ca")
        serving = certs.make_serving_cert(cert_dir, "apiserver", ca, ["localhost", "127.0.0.1"])
        client_ca = certs.make_ca(cert_dir, "client-ca", "whatsapp-operator-envtest-client-ca")
        admin = certs.make_client_cert(cert_dir, "admin", client_ca, "admin", ["system:masters"])
        sa = certs.make_service_account_keys(cert_dir)
        etcd_port, peer_port, api_port = procs.free_ports(3)
        self._ports = {"etcd": etcd_port, "etcd-peer": peer_port, "apiserver": api_port}
        peer = f"http://127.0.0.1:{peer_port}"
        etcd_argv = [
            str(bin_dir / "etcd"),
            "--name=envtest",
            f"--data-dir={work / 'etcd-data'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=envtest={peer}",
            "--unsafe-no-fsync=true",
        ]
        self._etcd = procs.spawn(etcd_argv, self.etcd_log, self.detach)
        self._wait(self._etcd, "etcd", self.etcd_log, f"{self.etcd_url}/health", None)
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
        deadline = time.monotonic() + self.timeout
        status, body = 0, ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = procs.tail(log_path)
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode}; last lines of {log_path}:\n{tail}"
                )
            status, body = procs.reachable(url, context)
            if status == 200:
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} not ready after {self.timeout:.0f}s ({url}: {status} {body[-500:]!r}); "
            f"last lines of {log_path}:\n{procs.tail(log_path)}"
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
        log(f"kube-apiserver restarted in {time.monotonic() - began:.1f}s")

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
        if self._work is not None and self._given_dir is None and not self.keep:
            shutil.rmtree(self._work, ignore_errors=True)
        self._work = None

    def release(self) -> dict[str, Any]:
        """Let the processes outlive this object; returns the state :func:`main` persists."""
        if self._etcd is None or self._apiserver is None:
            raise ControlPlaneError("control plane not running")
        state: dict[str, Any] = {
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
        with warnings.catch_warnings():  # Popen.__del__ warns that the child still runs: intended
            warnings.simplefilter("ignore", ResourceWarning)
            self._etcd = self._apiserver = None
        self._work = None
        return state

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- CLI: hack/control-plane up|down|status|env -----------------------------------------------
def state_dir() -> Path:
    override = os.environ.get("WHATSAPP_CONTROL_PLANE_DIR")
    return Path(override).resolve() if override else REPO_ROOT / ".run" / "control-plane"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f".{directory.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _load(directory: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state


def _healthy(state: dict[str, Any]) -> bool:
    if not all(procs.pid_running(int(pid), name) for name, pid in state["pids"].items()):
        return False
    admin = certs.KeyPair(Path(state["admin_cert"]), Path(state["admin_key"]))
    try:
        context = procs.tls(Path(state["ca_cert"]), admin)
    except OSError:
        return False
    return procs.reachable(f"{state['server_url']}/readyz", context)[0] == 200


def _teardown(directory: Path, state: dict[str, Any] | None) -> None:
    """Stop the recorded processes (apiserver first) and remove what the control plane wrote."""
    if state is not None:
        for name in ("kube-apiserver", "etcd"):
            procs.stop_pid(int(state["pids"][name]), name)
    for item in (*_WORK_ITEMS, STATE_FILE):
        path = directory / item
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()  # only if empty: never delete files we did not write


def _up(directory: Path) -> int:
    state = _load(directory)
    if state is not None and _healthy(state):
        log(f"already up: Kubernetes {state['version']} at {state['server_url']}")
    else:
        if directory.exists():
            log(f"cleaning stale state in {directory}")
            _teardown(directory, state)
        plane = ControlPlane(directory, detach=True)
        try:
            plane.start()
        except BaseException:
            _teardown(directory, None)
            raise
        state = plane.release()
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        log(f"state in {directory}; stop with: hack/control-plane down")
    print(f"export KUBECONFIG={state['kubeconfig']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("up", "down", "status", "env"):
        print("usage: control-plane up|down|status|env", file=sys.stderr)
        return 2
    directory = state_dir()
    try:
        with _locked(directory):
            if args[0] == "up":
                return _up(directory)
            state = _load(directory)
            if args[0] == "down":
                if state is None and not directory.exists():
                    log("not up; nothing to stop")
                else:
                    _teardown(directory, state)
                    log("stopped")
                return 0
            if state is None or not _healthy(state):
                if args[0] == "status":
                    print("down" if state is None else f"down (stale state in {directory})")
                else:
                    log("not up; run: hack/control-plane up")
                return 1
            if args[0] == "status":
                print(f"up: Kubernetes {state['version']} at {state['server_url']}")
            print(f"export KUBECONFIG={state['kubeconfig']}")
            return 0
    except ControlPlaneError as err:
        log(f"error: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
