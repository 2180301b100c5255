"""Shared test fixtures: one real Kubernetes API server per session, fresh namespaces per test.

Integration tests run against the project's own control plane (kube-apiserver + etcd built
from their Go modules, see hack/control-plane). They run against an existing cluster only
when asked explicitly: WHATSAPP_E2E_KUBECONFIG=<path> and WHATSAPP_E2E_CONTEXT=<context>
must both be set, and the context must exist in that file, so that a current kubeconfig is
never used by accident.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from whatsapp_operator.postgres.database import Database
from whatsapp_testkit.procs import reachable
from whatsapp_testkit.reliability import (
    Scenario,
    description,
    gone_tests,
    read_descriptions,
    render,
    scenario_drift,
)
from whatsapp_testkit.rowwrites import RowWrites
from whatsapp_testkit.world import SCOPES, World, new_id, new_token

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cluster:
    """Where the integration tests talk to Kubernetes."""

    kubeconfig: Path
    context: str | None
    kubectl_bin: str
    version: str

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env


class Kubectl:
    """`kubectl` bound to the test cluster; raises on failure unless check=False."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.cluster.kubectl_bin, "--kubeconfig", str(self.cluster.kubeconfig)]
        if self.cluster.context:
            cmd += ["--context", self.cluster.context]
        proc = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def secrets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The Secrets of `namespace` matching the label `selector`, as JSON objects (the
        `list_secrets` of whatsapp_testkit.kubelet.mirror_pool_secrets)."""
        items: list[dict[str, Any]] = self.json("get", "secrets", "-n", namespace, "-l", selector)[
            "items"
        ]
        return items

    def apply(
        self, manifest: str, namespace: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = ["-n", namespace] if namespace else []
        return self(
            "apply", "--server-side", "--field-manager=tests", *extra, "-f", "-", input=manifest
        )


def _existing_cluster() -> Cluster | None:
    path = os.environ.get("WHATSAPP_E2E_KUBECONFIG")
    if not path:
        return None
    context = os.environ.get("WHATSAPP_E2E_CONTEXT")
    if not context:
        raise pytest.UsageError(
            "WHATSAPP_E2E_KUBECONFIG is set but WHATSAPP_E2E_CONTEXT is not: name the context "
            "explicitly so tests never run against a cluster by accident"
        )
    kubectl_bin = os.environ.get("KUBECTL", "kubectl")
    contexts = subprocess.run(
        [kubectl_bin, "--kubeconfig", path, "config", "get-contexts", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if context not in contexts:
        raise pytest.UsageError(f"context {context!r} not found in {path}")
    version = subprocess.run(
        [kubectl_bin, "--kubeconfig", path, "--context", context, "version", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Everything the tests start (operators, helm, kopf) gets a kubeconfig that holds only the
    # named context, as its current one: none can fall back to another cluster.
    minified = subprocess.run(
        [kubectl_bin, "--kubeconfig", path, "config", "view", "--minify", "--flatten",
         "--context", context],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    only = Path(tempfile.mkdtemp(prefix="whatsapp-e2e-")) / "kubeconfig"
    only.touch(mode=0o600)
    only.write_text(minified)
    return Cluster(only, context, kubectl_bin, json.loads(version)["serverVersion"]["gitVersion"])


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    existing = _existing_cluster()
    if existing is not None:
        print(f"\n[cluster] using existing cluster, context {existing.context}, {existing.version}")
        yield existing
        return
    from whatsapp_testkit.controlplane import ControlPlane, find_binaries

    bin_dir = find_binaries()
    cp = ControlPlane()
    cp.start()
    print(
        f"\n[cluster] kube-apiserver {cp.version} ready in {cp.startup_seconds:.1f} s "
        f"(kubeconfig {cp.kubeconfig_path})",
        file=sys.stderr,
    )
    try:
        kubectl_bin = str(bin_dir / "kubectl")
        cl = Cluster(Path(cp.kubeconfig_path), None, kubectl_bin, cp.version)
        cp.install_crds(field_manager="tests")
        yield cl
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    return Kubectl(cluster)


# The operator enforces WhatsAppTenantPolicies (docs/tenancy.md): one session policy lets the
# namespaces labelled OPEN_LABEL (those of the `namespace` and `ns` fixtures) hold any tenant id
# and adopt rows. tests/integration/test_tenancy.py uses unlabelled namespaces and its own.
OPEN_POLICY = "tests-open"
OPEN_LABEL = "whatsapp.operator.dev/tests-open"


@pytest.fixture(scope="session")
def open_policy(kubectl: Kubectl) -> str:
    """The session's WhatsAppTenantPolicy `tests-open`; returns the label that opts in."""
    from whatsapp_testkit.controlplane import tenant_policy

    selector = {"matchLabels": {OPEN_LABEL: "true"}}
    kubectl.apply(json.dumps(tenant_policy(OPEN_POLICY, selector, ("*",), adopt=True)))
    return OPEN_LABEL


def open_namespace(kubectl: Kubectl, name: str) -> None:
    """Create `name` (unless it exists) with the label the session policy selects."""
    kubectl("create", "namespace", name, check=False)
    kubectl("label", "--overwrite", "namespace", name, f"{OPEN_LABEL}=true")


@pytest.fixture
def namespace(kubectl: Kubectl, open_policy: str) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards, without waiting), labelled for the
    session's WhatsAppTenantPolicy."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, f"{open_policy}=true")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- the project's own servers: Graph API simulator and operator --------------------------

WORKERS_NAMESPACE = "whatsapp-workers"  # where the resolved config of the pools is published
ISSUED_TOKENS: list[str] = []  # every token a test handed out; the leak scan looks for them
APP_ID = "424242424242"
APP_SECRET = "sim-app-secret-for-tests"
# Embedded Signup's OAuth callback endpoint, on in the session operator (tests/integration/
# test_signup.py): callback-created signups go to this namespace.
SIGNUP_NAMESPACE = "signup-callback"
SIGNUP_CALLBACK_SECRET = "callback-hmac-key-for-tests-0123456789"


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl, open_policy: str) -> Iterator[str]:
    """One namespace for a whole module whose tests leave nothing behind (rejected
    manifests), labelled for the session's WhatsAppTenantPolicy."""
    name = f"mod-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, f"{open_policy}=true")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def make_world(sim: Any, display: str = "+34 91 000", **token: Any) -> World:
    """A WABA, its number and a token valid for both in the simulator (the token is recorded
    for the leak scan); `token` goes to `add_token` (expiry, scopes...)."""
    waba, phone, value = new_id("2"), new_id("3"), new_token()
    ISSUED_TOKENS.append(value)
    sim.add_waba(waba)
    sim.add_phone(phone, waba_id=waba, display_phone_number=display)
    sim.add_token(value, app_id=APP_ID, scopes=SCOPES,
                  targets={s: [waba] for s in SCOPES[1:]}, **token)  # fmt: skip
    return World(waba, phone, value, display)


@pytest.fixture
def make_pool(sim: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`make_pool(prefix="p", app_id=APP_ID)`: a worker pool's world in the simulator
    (whatsapp_testkit.pools.PoolWorld, its resolved config under tmp_path/resolved); the
    tokens its tenants were issued join ISSUED_TOKENS (the leak scan) after the test."""
    from whatsapp_testkit.pools import PoolWorld, new_pool_name

    made: list[PoolWorld] = []

    def make(prefix: str = "p", app_id: str = APP_ID) -> PoolWorld:
        made.append(PoolWorld(sim, new_pool_name(prefix), tmp_path / "resolved", app_id))
        return made[-1]

    yield make
    for world in made:
        ISSUED_TOKENS.extend(world.issued)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where processes started by the tests write their logs (scanned for leaks)."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def graph_sim(artifacts: Path) -> Iterator[Any]:
    from whatsapp_testkit.services import GraphSimulator

    sim = GraphSimulator(artifacts / "graph-sim.log")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def sim(graph_sim: Any) -> Iterator[Any]:
    from whatsapp_simulator.client import SimulatorAdmin

    with SimulatorAdmin(graph_sim.url) as admin:
        admin.add_app(APP_ID, APP_SECRET)
        yield admin


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The token encryption keys, laid out like a mounted Secret: one file per key id."""
    folder = tmp_path_factory.mktemp("keys")
    (folder / "2026-01").write_bytes(os.urandom(32))
    return folder


@pytest.fixture(scope="session")
def audit_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit trail's HMAC key, as a mounted Secret's file (postgres/audit_key.py)."""
    path = tmp_path_factory.mktemp("audit-key") / "key"
    path.write_text(base64.b64encode(os.urandom(48)).decode() + "\n")
    return path


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster,
    graph_sim: Any,
    artifacts: Path,
    postgres: Any,
    keys_dir: Path,
    audit_key_file: Path,
    rabbitmq: Any,
) -> Iterator[Any]:
    """The operator as a real process (its console entry point) watching all namespaces,
    syncing tenant_whatsapp_config with encrypted tokens, with the signup callback endpoint
    on `op.signup_port`."""
    from whatsapp_testkit.procs import free_ports
    from whatsapp_testkit.services import Operator

    signup_port = free_ports(1)[0]
    op = Operator(
        artifacts / "operator.log",
        kubeconfig=cluster.kubeconfig,
        graph_api_url=graph_sim.url,
        extra_args=[
            "--graph-rate",
            "500",
            "--graph-burst",
            "200",
            "--log-level",
            "DEBUG",
            "--encryption-keys-dir",
            str(keys_dir),
            "--audit-key-file",
            str(audit_key_file),
            "--drift-interval",
            "2s",
            "--rekey-interval",
            "2s",
            "--workers-namespace",
            WORKERS_NAMESPACE,
            # the receiver's config Secret (and WhatsAppApps' Secrets: the operator's own
            # namespace defaults to the workers' outside a pod), tests/integration/test_apps.py
            "--webhook-receiver",
            "--signup-callback-host",
            "127.0.0.1",
            "--signup-callback-port",
            str(signup_port),
            "--signup-namespace",
            SIGNUP_NAMESPACE,
            "--signup-app-credentials-secret",
            "meta-app",
        ],
        extra_env={
            "WHATSAPP_OPERATOR_DATABASE_URL": postgres.dsn,
            "WHATSAPP_OPERATOR_SIGNUP_CALLBACK_SECRET": SIGNUP_CALLBACK_SECRET,
            "WHATSAPP_OPERATOR_AMQP_URL": rabbitmq.amqp_url,
        },
    )
    op.signup_port = signup_port  # type: ignore[attr-defined]
    Kubectl(cluster)("create", "namespace", WORKERS_NAMESPACE, check=False)
    op.start()
    yield op
    op.stop()


# --- RabbitMQ: one server per session; each sender test uses a pool (queues) of its own -----


@pytest.fixture(scope="session")
def rabbitmq(artifacts: Path) -> Iterator[Any]:
    """A throwaway RabbitMQ node (testkit/whatsapp_testkit/rabbitmq.py)."""
    from whatsapp_testkit.rabbitmq import RabbitMQ

    node = RabbitMQ(artifacts_dir=artifacts / "rabbitmq")
    node.start()
    print(
        f"\n[rabbitmq] RabbitMQ {node.version} ready in {node.startup_seconds:.1f} s",
        file=sys.stderr,
    )
    yield node
    node.close()


@pytest.fixture
def start_worker(rabbitmq: Any, graph_sim: Any, artifacts: Path) -> Iterator[Callable[..., Any]]:
    """Start `whatsapp-worker` processes (Celery + the sender service); all stopped after."""
    from whatsapp_testkit.services import Worker

    started: list[Any] = []

    def start(config_dir: Path, pool: str, **settings: Any) -> Any:
        name = f"worker-{pool}-{len(started)}"
        worker = Worker(
            artifacts / f"{name}.log",
            amqp_url=rabbitmq.amqp_url,
            graph_api_url=graph_sim.url,
            config_dir=config_dir,
            pool=pool,
            worker_id=name,
            settings={k: str(v) for k, v in settings.items()},
        )
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.running:  # its metrics page, for the leak scan that ends the run
            with contextlib.suppress(Exception):
                METRIC_PAGES.append(reachable(worker.health_url())[1])
        worker.stop()


# --- the metric families the live processes export (docs/metrics.md, alerts, dashboard) ----


@pytest.fixture(scope="session")
def exported_metrics(
    operator: Any, rabbitmq: Any, graph_sim: Any, sim: Any, artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, set[str]]:  # fmt: skip
    """{"operator" | "worker" | "webhook": the family names of its /metrics page (as `# TYPE`
    lines name them: a counter with `_total`)}, scraped once from the session's operator, a
    worker with one tenant and a webhook receiver (whatsapp_testkit/scrape.py)."""
    from whatsapp_testkit.pools import PoolWorld, new_pool_name
    from whatsapp_testkit.scrape import scrape
    from whatsapp_testkit.services import Worker
    from whatsapp_testkit.webhook import App, Receiver, number, receiver_config

    base = tmp_path_factory.mktemp("exported-metrics")
    pool = PoolWorld(sim, new_pool_name("scrape"), base / "resolved", APP_ID)
    pool.add_tenant()
    worker = Worker(
        artifacts / "worker-exported-metrics.log", amqp_url=rabbitmq.amqp_url,
        graph_api_url=graph_sim.url, config_dir=pool.directory, pool=pool.name,
        worker_id="worker-exported-metrics",
    )  # fmt: skip
    app = App(new_id("9"), f"secret-{uuid.uuid4().hex}", f"verify-{uuid.uuid4().hex}")
    config = receiver_config([app], [number(new_id("3"), new_id("2"), app.app_id)])
    receiver = Receiver(
        artifacts / "webhook-exported-metrics.log", amqp_url=rabbitmq.amqp_url, config=config,
        config_dir=base / "webhook-config",
    )  # fmt: skip
    worker.start()
    try:
        receiver.start()
        try:
            pages = {
                "operator": f"http://127.0.0.1:{operator.metrics_port}/metrics",
                "worker": worker.health_url(),
                "webhook": f"http://127.0.0.1:{receiver.metrics_port}/metrics",
            }
            return {process: set(scrape(url)) for process, url in pages.items()}
        finally:
            receiver.stop()
    finally:
        worker.stop()


# --- PostgreSQL: one server per session, a fresh database per test -------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL server (testkit/whatsapp_testkit/postgres.py)."""
    from whatsapp_testkit.postgres import Postgres

    pg = Postgres()
    pg.start()
    print(
        f"\n[postgres] PostgreSQL {pg.version} ready in {pg.startup_seconds:.1f} s ({pg.dsn})",
        file=sys.stderr,
    )
    yield pg
    pg.close()


@pytest.fixture
def db_dsn(postgres: Any) -> Iterator[str]:
    """The DSN of a new, empty database on the session's server (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn: str = postgres.create_database(name)
    yield dsn
    if postgres.running:
        postgres.drop_database(name)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[Database]:
    """The operator's `Database` on a new, empty, migrated database."""
    database = await Database.connect(db_dsn)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def sql(postgres: Any) -> Any:
    """Run one query on a fresh connection (the server restarts in some tests)."""

    def run(query: str, *args: Any) -> list[dict[str, Any]]:
        with (
            psycopg.connect(postgres.dsn, autocommit=True, row_factory=dict_row) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(query, args or None)
            return list(cur.fetchall()) if cur.description else []

    return run


@pytest.fixture
def row_writes(postgres: Any) -> Iterator[Callable[[str], RowWrites]]:
    """Count the row writes PostgreSQL commits for tenants whose id is LIKE a pattern
    (testkit/whatsapp_testkit/rowwrites.py); the counting trigger is dropped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda pattern: stack.enter_context(RowWrites(postgres.dsn, pattern))


# --- the reliability report (testkit/whatsapp_testkit/reliability.py) -------------------

SCENARIOS = pytest.StashKey[Scenario]()
METRIC_PAGES: list[str] = []  # workers' /metrics pages, read before they stop (leak scan)
REPORTED: list[Scenario] = []
DESELECTED: list[str] = []  # node ids -k/-m left out (a scenario left out is not gone)
COMMITTED_REPORT = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        metavar="PATH",
        help="write the table of the fault scenarios that ran (tests marked reliability) here",
    )


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Scenario:
    """A row of the reliability report: describe the load and faults, record the figures."""
    row = Scenario(test=request.node.nodeid)
    request.node.stash[SCENARIOS] = row
    REPORTED.append(row)
    return row


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--reliability-report")
    if not path or not REPORTED:
        return
    command = (
        "make reliability"
        if "reliability" in (session.config.option.markexpr or "")
        else ("pytest " + " ".join(session.config.invocation_params.args))
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render(REPORTED, command=command))
    print(f"\nreliability report: {len(REPORTED)} scenarios written to {path}")
    if Path(path).resolve() != COMMITTED_REPORT and COMMITTED_REPORT.exists():
        drift = committed_report_drift(session)
        if drift:
            print(
                "\ndocs/reliability.md describes its scenarios otherwise than the tests that "
                "just ran (figures are not compared): run `make reliability` and commit it\n"
                + "\n".join(drift)
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_deselected(items: list[pytest.Item]) -> None:
    DESELECTED.extend(item.nodeid for item in items)


def committed_report_drift(session: pytest.Session) -> list[str]:
    """The committed report's scenario descriptions against those of the tests that ran (CI:
    `make test` runs them all): a unified diff, empty when they agree."""
    committed = read_descriptions(COMMITTED_REPORT.read_text())
    collected = {item.nodeid for item in session.items} | set(DESELECTED)
    root = session.config.rootpath
    gone = gone_tests(committed, collected, lambda file: (root / file).exists())
    ran = {row.test: description(row) for row in REPORTED if row.name}  # described
    return scenario_drift(committed, ran, gone=gone)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Record each scenario's outcome; and when a test that uses the session operator fails,
    ask the operator (SIGUSR1) to log where each of its asyncio tasks waits: a stall is then
    diagnosable from operator.log."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    row = item.stash.get(SCENARIOS, None)
    if row is not None and (report.when == "call" or report.failed):
        if report.failed:
            row.outcome = "failed" if report.when == "call" else f"error in {report.when}"
        elif report.skipped:
            row.outcome = "skipped"
        elif report.when == "call":
            row.outcome = "passed"
            row.seconds = report.duration
    op = getattr(item, "funcargs", {}).get("operator")
    if report.failed and call.when == "call" and op is not None and op.running:
        import signal
        import time

        op.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        report.sections.append(("operator", f"task dump requested (SIGUSR1): {op.log_path}"))
