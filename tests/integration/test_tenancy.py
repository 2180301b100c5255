"""One namespace can never take another team's tenant (issue 19, docs/tenancy.md), on the real
API server (RBAC on), the real PostgreSQL and the session operator (`--tenant-policy enforce`,
the default).

Two tenant teams work as two users by impersonation (`kubectl --as alice`, `--as bob`), each
bound in its own, unlabelled namespace to the chart's tenant-editor ClusterRole (rendered with
`helm template` from charts/whatsapp-operator/templates/user-roles.yaml). The platform (the
admin user) allows namespace A the tenant ids `acme-<run>-*` and B `bolt-<run>-*` with
WhatsAppTenantPolicies. B never gets A's tenant id (created before or after A's, or after A's
tenant is deleted and recreated), A's number (claimed first with B's own token) or A's row
(asked for with adoptExistingRow), and cannot approve itself. A row moves between namespaces
only the documented way: the platform approves, the tenant asks.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from test_chart import tools_dir
from test_operator import cond, get, wait_reason
from test_postgres_sync import row_of

from conftest import ROOT, Kubectl, make_world
from whatsapp_testkit.world import World, dump, secret, tenant, wait_for

pytestmark = pytest.mark.integration

HELM = tools_dir() / "helm"
RELEASE = "tenancy"
EDITOR_ROLE = f"{RELEASE}-whatsapp-operator-tenant-editor"
API = "whatsapp.operator.dev/v1alpha1"


def policy(name: str, namespace: str, patterns: list[str], adopt: bool = False) -> dict[str, Any]:
    """A WhatsAppTenantPolicy allowing one namespace (by its name label, which only the API
    server sets) the tenant ids `patterns`."""
    return {
        "apiVersion": API,
        "kind": "WhatsAppTenantPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "tenantIds": patterns,
            "adoptExistingRows": adopt,
        },
    }


@pytest.fixture(scope="module")
def editor_role(kubectl: Kubectl) -> str:
    """The chart's tenant-editor ClusterRole, rendered by helm and applied as the platform."""
    if not HELM.exists():
        pytest.fail(f"helm is missing at {HELM}: run `make tools`")
    rendered = subprocess.run(
        [str(HELM), "template", RELEASE, str(ROOT / "charts" / "whatsapp-operator"),
         "--show-only", "templates/user-roles.yaml", "--set", "watchNamespaces={tenancy}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert f"name: {EDITOR_ROLE}\n" in rendered
    kubectl.apply(rendered)
    return EDITOR_ROLE


@dataclass
class Team:
    """A tenant team: a user who may edit tenants in one namespace (RoleBinding) and nowhere
    else, acting through kubectl's impersonation."""

    kubectl: Kubectl
    user: str
    ns: str
    policy: str

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> Any:
        return self.kubectl("--as", self.user, *args, check=check, input=input)

    def apply(self, *objects: dict[str, Any], check: bool = True) -> Any:
        return self(
            "apply", "--server-side", "--field-manager=tests", "-n", self.ns, "-f", "-",
            input=dump(*objects), check=check,
        )  # fmt: skip

    def tenant(self, name: str, tenant_id: str, world: World, **spec: Any) -> None:
        self.apply(
            secret(f"{name}-token", {"accessToken": world.token}),
            tenant(name, tenant_id, world, f"{name}-token", **spec),
        )

    def delete(self, *names: str) -> None:
        self("delete", "wat", "-n", self.ns, "--timeout=30s", *names)


@dataclass
class Platform:
    kubectl: Kubectl
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    namespaces: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)

    def team(self, user: str, prefix: str, patterns: list[str], adopt: bool = False) -> Team:
        """A fresh namespace no session policy selects, `user` bound there to the chart's
        tenant-editor role, and a policy allowing the namespace `patterns`."""
        ns = f"{prefix}-{self.run}-{uuid.uuid4().hex[:4]}"
        self.kubectl("create", "namespace", ns)
        self.namespaces.append(ns)
        self.kubectl(
            "create", "rolebinding", f"{user}-tenant-editor", "-n", ns,
            f"--clusterrole={EDITOR_ROLE}", f"--user={user}",
        )  # fmt: skip
        name = f"tenancy-{ns}"
        self.allow(name, ns, patterns, adopt)
        return Team(self.kubectl, user, ns, name)

    def allow(self, name: str, ns: str, patterns: list[str], adopt: bool = False) -> None:
        self.kubectl.apply(dump(policy(name, ns, patterns, adopt)))
        if name not in self.policies:
            self.policies.append(name)

    def approve_adoption(self, name: str, approve: bool = True) -> None:
        body = json.dumps({"spec": {"adoptExistingRows": approve}})
        self.kubectl("patch", "whatsapptenantpolicy", name, "--type=merge", "-p", body)


@pytest.fixture
def platform(kubectl: Kubectl, editor_role: str, operator: Any) -> Iterator[Platform]:
    p = Platform(kubectl)
    yield p
    if p.policies:
        kubectl("delete", "whatsapptenantpolicy", *p.policies, "--wait=false", check=False)
    for ns in p.namespaces:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def teams(platform: Platform) -> tuple[Team, Team]:
    """Alice's namespace A (tenant ids acme-<run>-*) and Bob's namespace B (bolt-<run>-*)."""
    a = platform.team("alice", "ta", [f"acme-{platform.run}-*"])
    b = platform.team("bob", "tb", [f"bolt-{platform.run}-*"])
    return a, b


def row_is(sql: Any, tenant_id: str, world: World, ns: str) -> dict[str, Any]:
    """The row of `tenant_id` holds `world`'s WABA and number, written for namespace `ns`."""
    row = row_of(sql, tenant_id)
    assert row is not None, f"no row for {tenant_id}"
    got = (row["waba_id"], row["phone_number_id"], row["k8s_namespace"])
    assert got == (world.waba_id, world.phone_number_id, ns)
    return row


def settled(kubectl: Kubectl, team: Team, name: str, reason: str, type_: str = "Ready") -> Any:
    """Change the tenant's spec (as its team) and wait until the operator has judged the new
    generation: proof that what follows was decided after everything that came before."""
    spec = get(kubectl, team.ns, name)["spec"]
    interval = "3h" if spec.get("validation", {}).get("interval") == "2h" else "2h"
    team("patch", "wat", name, "-n", team.ns, "--type=merge", "-p",
         json.dumps({"spec": {"validation": {"interval": interval}}}))  # fmt: skip

    def judged() -> Any:
        obj = get(kubectl, team.ns, name)
        c = cond(obj, type_)
        return obj if c.get("observedGeneration") == obj["metadata"]["generation"] else None

    obj = wait_for(judged, 20, 0.2, f"{team.ns}/{name} judged after its spec changed")
    assert cond(obj, type_).get("reason") == reason, json.dumps(obj.get("status"))
    return obj


def not_ready(kubectl: Kubectl, ns: str, name: str) -> Callable[[], Any]:
    def probe() -> Any:
        obj = get(kubectl, ns, name)
        return obj if cond(obj, "Ready").get("status") == "False" else None

    return probe


def test_b_never_gets_as_tenant_id_before_after_or_once_a_is_gone(
    kubectl: Kubectl, platform: Platform, teams: tuple[Team, Team], sim: Any, sql: Any
) -> None:
    a, b = teams
    tenant_id = f"acme-{platform.run}-shop"
    # B first, with A's id and its own WABA, number and token
    early = make_world(sim)
    b.tenant("early", tenant_id, early, deletionPolicy="Delete")
    obj = wait_reason(kubectl, b.ns, "early", "TenantIdNotAllowed")
    ready = cond(obj, "Ready")
    assert ready["status"] == "False"
    assert "WhatsAppTenantPolicy" in ready["message"]
    assert a.ns not in ready["message"]  # nothing about who may hold it
    time.sleep(1.1)  # creation timestamps have second precision: B's claim is the older
    mine = make_world(sim, "+34 91 111")
    a.tenant("acme", tenant_id, mine)
    wait_reason(kubectl, a.ns, "acme", "Ready", timeout=30)
    row_is(sql, tenant_id, mine, a.ns)
    # B again, after A, asking for the row as well
    late = make_world(sim)
    b.tenant("late", tenant_id, late, adoptExistingRow=True, deletionPolicy="Delete")
    wait_reason(kubectl, b.ns, "late", "TenantIdNotAllowed")
    assert cond(get(kubectl, b.ns, "early"), "Ready")["reason"] == "TenantIdNotAllowed"
    # A deleted: B's older claim does not take over (once, it did by itself)
    a.delete("acme")
    for name in ("early", "late"):
        settled(kubectl, b, name, "TenantIdNotAllowed")
    row = row_is(sql, tenant_id, mine, a.ns)
    assert row["is_active"] is False  # deletionPolicy Deactivate, A's values kept
    # A recreated: A's again, whatever B holds
    a.tenant("acme", tenant_id, mine)
    wait_reason(kubectl, a.ns, "acme", "Ready", timeout=30)
    assert row_is(sql, tenant_id, mine, a.ns)["is_active"] is True
    # B's tenants deleted with deletionPolicy Delete: A's row stays
    b.delete("early", "late")
    row = row_is(sql, tenant_id, mine, a.ns)
    assert row["is_active"] is True
    assert row["managed_by"] == "whatsapp-operator"


def configured_holders(sql: Any, world: World) -> list[str]:
    """The tenant ids whose row holds `world`'s number and is marked configured (the tenant
    has been Ready with it). B's own row, written while B's token was being checked, may name
    the number, never configured: Meta never confirmed B's token for it."""
    found = sql(
        "SELECT tenant_id FROM tenant_whatsapp_config WHERE phone_number_id = %s AND configured",
        world.phone_number_id,
    )
    return [r["tenant_id"] for r in found]


def test_b_never_keeps_a_from_its_number(
    kubectl: Kubectl, platform: Platform, teams: tuple[Team, Team], sim: Any, sql: Any
) -> None:
    a, b = teams
    run = platform.run
    mine = make_world(sim, "+34 91 222")
    bobs = make_world(sim)
    # B first: its own allowed id and its own token, naming A's WABA and number
    squat = World(mine.waba_id, mine.phone_number_id, bobs.token, mine.display)
    b.tenant("squat", f"bolt-{run}-shop", squat)
    wait_for(not_ready(kubectl, b.ns, "squat"), 20, 0.2, "B's tenant judged")
    time.sleep(1.1)  # B's claim on the number is the older
    a.tenant("acme", f"acme-{run}-shop", mine)
    obj = wait_reason(kubectl, a.ns, "acme", "Ready", timeout=30)
    row = row_is(sql, f"acme-{run}-shop", mine, a.ns)
    assert row["token_fingerprint"] == obj["status"]["token"]["fingerprint"]  # A's own token
    assert configured_holders(sql, mine) == [f"acme-{run}-shop"]
    assert cond(get(kubectl, b.ns, "squat"), "Ready")["status"] == "False"
    # A deleted and recreated (newer than B's claim again): the number is A's again
    a.delete("acme")
    a.tenant("acme", f"acme-{run}-shop", mine)
    wait_reason(kubectl, a.ns, "acme", "Ready", timeout=30)
    row_is(sql, f"acme-{run}-shop", mine, a.ns)
    assert configured_holders(sql, mine) == [f"acme-{run}-shop"]
    assert cond(get(kubectl, b.ns, "squat"), "Ready")["status"] == "False"


def forbidden(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode != 0 and "forbidden" in proc.stderr.lower()


def test_b_never_gets_as_row_and_cannot_approve_itself(
    kubectl: Kubectl, platform: Platform, teams: tuple[Team, Team], sim: Any, sql: Any
) -> None:
    a, b = teams
    run = platform.run
    tenant_id = f"acme-{run}-shop"
    mine = make_world(sim, "+34 91 333")
    a.tenant("acme", tenant_id, mine)
    wait_reason(kubectl, a.ns, "acme", "Ready", timeout=30)
    before = row_is(sql, tenant_id, mine, a.ns)
    # B asks for A's row
    grab = make_world(sim)
    b.tenant("grab", tenant_id, grab, adoptExistingRow=True)
    wait_reason(kubectl, b.ns, "grab", "TenantIdNotAllowed")
    settled(kubectl, b, "grab", "TenantIdNotAllowed")
    after = row_is(sql, tenant_id, mine, a.ns)
    assert (after["access_token"], after["row_hash"]) == (
        before["access_token"],
        before["row_hash"],
    )
    # B cannot approve itself, widen its ids, relabel its namespace or work in A's
    own = policy(f"tenancy-bob-{run}", b.ns, ["*"], adopt=True)
    assert forbidden(b("apply", "--server-side", "-f", "-", input=dump(own), check=False))
    assert forbidden(b("create", "-f", "-", input=dump(own), check=False))
    widen = json.dumps({"spec": {"tenantIds": ["*"], "adoptExistingRows": True}})
    assert forbidden(
        b("patch", "whatsapptenantpolicy", b.policy, "--type=merge", "-p", widen, check=False)
    )
    assert forbidden(b("label", "namespace", b.ns, "team=acme", check=False))
    assert forbidden(b("delete", "wat", "acme", "-n", a.ns, check=False))
    assert forbidden(b("get", "wat", "-n", a.ns, check=False))
    intruder = dump(tenant("intruder", f"bolt-{run}-x", grab, "grab-token"))
    assert forbidden(
        b("apply", "--server-side", "-n", a.ns, "-f", "-", input=intruder, check=False)
    )
    assert forbidden(
        b("patch", "wat", "grab", "-n", b.ns, "--subresource=status", "--type=merge",
          "-p", '{"status": {"conditions": []}}', check=False)
    )  # fmt: skip
    # a legacy row (the legacy service's) in B's own range: adopted only once approved
    legacy_id = f"bolt-{run}-legacy"
    old = make_world(sim)
    sql(
        "INSERT INTO tenant_whatsapp_config (tenant_id, waba_id, phone_number_id, access_token) "
        "VALUES (%s, %s, %s, %s)",
        legacy_id, old.waba_id, old.phone_number_id, "legacy-token",
    )  # fmt: skip
    b.tenant("legacy", legacy_id, old, adoptExistingRow=True)
    obj = wait_reason(kubectl, b.ns, "legacy", "AdoptionNotApproved", "Synced")
    assert cond(obj, "Synced")["status"] == "False"
    assert cond(obj, "Ready")["status"] == "False"
    row = row_of(sql, legacy_id)
    assert row is not None
    assert row["access_token"] == "legacy-token"
    assert row["managed_by"] != "whatsapp-operator"
    platform.approve_adoption(b.policy)
    wait_reason(kubectl, b.ns, "legacy", "Synced", "Synced", timeout=30)
    row = row_is(sql, legacy_id, old, b.ns)
    assert row["managed_by"] == "whatsapp-operator"
    assert row["access_token"].startswith("enc:v1:")
    # and A's row is still A's
    row_is(sql, tenant_id, mine, a.ns)
    assert cond(get(kubectl, a.ns, "acme"), "Ready")["status"] == "True"


def test_a_tenant_moves_to_another_namespace_only_the_documented_way(
    kubectl: Kubectl, platform: Platform, sim: Any, sql: Any
) -> None:
    run = platform.run
    tenant_id = f"acme-{run}-moving"
    old = platform.team("alice", "ta", [f"acme-{run}-*"])
    mine = make_world(sim, "+34 91 444")
    old.tenant("acme", tenant_id, mine, deletionPolicy="Retain")
    wait_reason(kubectl, old.ns, "acme", "Ready", timeout=30)
    row_is(sql, tenant_id, mine, old.ns)
    # the platform allows the new namespace the id, without approving adoption yet
    new = platform.team("alice", "tn", [tenant_id])
    new.tenant("stay", tenant_id, mine, deletionPolicy="Delete")
    wait_reason(kubectl, new.ns, "stay", "DuplicateTenantId")  # the old one is older
    old.delete("acme")  # Retain: the row stays, still written for the old namespace
    obj = wait_reason(kubectl, new.ns, "stay", "RowOwnedByAnotherNamespace", "Synced")
    assert cond(obj, "Synced")["status"] == "False"
    assert old.ns not in cond(obj, "Synced")["message"]  # the other namespace is not named
    row_is(sql, tenant_id, mine, old.ns)
    # deleting a tenant that does not own the row leaves the row alone (deletionPolicy Delete)
    new.delete("stay")
    assert row_is(sql, tenant_id, mine, old.ns)["is_active"] is True
    # approval alone moves nothing: the tenant must ask (adoptExistingRow)
    platform.approve_adoption(new.policy)
    new.tenant("acme", tenant_id, mine)
    wait_reason(kubectl, new.ns, "acme", "RowOwnedByAnotherNamespace", "Synced")
    row_is(sql, tenant_id, mine, old.ns)
    new("patch", "wat", "acme", "-n", new.ns, "--type=merge",
        "-p", '{"spec": {"adoptExistingRow": true}}')  # fmt: skip
    wait_reason(kubectl, new.ns, "acme", "Synced", "Synced", timeout=30)
    wait_reason(kubectl, new.ns, "acme", "Ready", timeout=30)
    row = row_is(sql, tenant_id, mine, new.ns)
    assert row["k8s_name"] == "acme"
    # the platform withdraws the approval: the moved tenant keeps its (now its own) row
    platform.approve_adoption(new.policy, approve=False)
    settled(kubectl, new, "acme", "Synced", "Synced")
    row_is(sql, tenant_id, mine, new.ns)


def test_the_example_policy_is_admitted(kubectl: Kubectl) -> None:
    """examples/tenant-policy.yaml (what `make demo` and the README apply) is valid as is."""
    example = str(ROOT / "examples" / "tenant-policy.yaml")
    proc = kubectl("apply", "--server-side", "--field-manager=tests", "--validate=strict",
                   "--dry-run=server", "-f", example)  # fmt: skip
    assert proc.stdout.splitlines() == [
        "whatsapptenantpolicy.whatsapp.operator.dev/demo serverside-applied (server dry run)"
    ]
    assert not proc.stderr.strip(), proc.stderr
