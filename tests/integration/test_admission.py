"""Admission of WhatsAppTenant objects by a real kube-apiserver: schema, CEL rules, defaults.

Every bad manifest must be rejected before the operator sees it, with a message that names
the field and says what is wrong. The messages asserted here are the ones `kubectl` prints.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

Manifest = dict[str, Any]
Edit = Callable[[Manifest], None]

GOOD_SPEC: dict[str, Any] = {
    "tenantId": "t_a3eecb94bb822a92",
    "wabaId": "102290129340398",
    "phoneNumberId": "106540352242922",
    "tokenSecretRef": {"name": "demo-tenant-meta-token"},
}


def tenant(name: str = "demo-tenant", **spec: Any) -> Manifest:
    return {
        "apiVersion": "whatsapp.operator.dev/v1alpha1",
        "kind": "WhatsAppTenant",
        "metadata": {"name": name},
        "spec": {**copy.deepcopy(GOOD_SPEC), **spec},
    }


def dump(manifest: Manifest) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


def set_(path: str, value: Any) -> Edit:
    """Set a dotted path (under the manifest root) to a value."""

    def edit(m: Manifest) -> None:
        *parents, leaf = path.split(".")
        node = m
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    return edit


def drop(path: str) -> Edit:
    def edit(m: Manifest) -> None:
        *parents, leaf = path.split(".")
        node = m
        for p in parents:
            node = node[p]
        del node[leaf]

    return edit


def case(edit: Edit, message: str, *, id: str, ssa: str | None = None) -> Any:
    """A bad manifest and the message kubectl prints; `ssa` when server-side apply differs.

    Server-side apply builds a typed patch before validation, so type errors and unknown
    fields come from structured-merge-diff ("failed to create typed patch object") with
    their own wording; everything else is the same validation error as for create.
    """
    return pytest.param(edit, message, ssa or message, id=id)


LONG_ID = "t" * 51

# (edit, the exact human-readable part of the error kubectl prints, the same under SSA)
REJECTED = [
    case(drop("spec"), "spec: Required value", id="missing-spec"),
    case(drop("spec.tenantId"), "spec.tenantId: Required value", id="missing-tenantId"),
    case(drop("spec.wabaId"), "spec.wabaId: Required value", id="missing-wabaId"),
    case(
        drop("spec.phoneNumberId"), "spec.phoneNumberId: Required value", id="missing-phoneNumberId"
    ),
    case(
        drop("spec.tokenSecretRef"),
        "spec.tokenSecretRef: Required value",
        id="missing-tokenSecretRef",
    ),
    case(
        set_("spec.tenantId", LONG_ID),
        "spec.tenantId: Too long: may not be more than 50 bytes",
        id="tenantId-too-long",
    ),
    case(
        set_("spec.tenantId", "t a3"),
        """spec.tenantId: Invalid value: "t a3": spec.tenantId in body should match """
        """'^[A-Za-z0-9][A-Za-z0-9_.-]*$'""",
        id="tenantId-space",
    ),
    case(
        set_("spec.tenantId", "_t1"),
        """spec.tenantId: Invalid value: "_t1": spec.tenantId in body should match """
        """'^[A-Za-z0-9][A-Za-z0-9_.-]*$'""",
        id="tenantId-leading-underscore",
    ),
    case(
        set_("spec.tenantId", ""),
        """spec.tenantId: Invalid value: "": spec.tenantId in body should be at least 1 """
        """chars long""",
        id="tenantId-empty",
    ),
    case(
        set_("spec.wabaId", "12ab"),
        """spec.wabaId: Invalid value: "12ab": spec.wabaId in body should match '^[0-9]+$'""",
        id="wabaId-letters",
    ),
    case(
        set_("spec.wabaId", 102290129340398),
        """spec.wabaId: Invalid value: "integer": spec.wabaId in body must be of type string""",
        id="wabaId-yaml-number",
        ssa=".spec.wabaId: expected string, got &value.valueUnstructured{Value:102290129340398}",
    ),
    case(
        set_("spec.phoneNumberId", "+15550001234"),
        """spec.phoneNumberId: Invalid value: "+15550001234": spec.phoneNumberId in body """
        """should match '^[0-9]+$'""",
        id="phoneNumberId-phone-number",
    ),
    case(
        set_("spec.phoneNumberId", "1" * 31),
        "spec.phoneNumberId: Too long: may not be more than 30 bytes",
        id="phoneNumberId-too-long",
    ),
    case(
        set_("spec.businessId", "biz-1"),
        """spec.businessId: Invalid value: "biz-1": spec.businessId in body should match """
        """'^[0-9]+$'""",
        id="businessId-letters",
    ),
    case(
        set_("spec.tokenSecretRef", {"key": "accessToken"}),
        "spec.tokenSecretRef.name: Required value",
        id="tokenSecretRef-without-name",
    ),
    case(
        set_("spec.tokenSecretRef.name", "Meta_Token"),
        """spec.tokenSecretRef.name: Invalid value: "Meta_Token": spec.tokenSecretRef.name in """
        """body should match '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'""",
        id="secret-name-not-dns",
    ),
    case(
        set_("spec.tokenSecretRef.key", "access token"),
        """spec.tokenSecretRef.key: Invalid value: "access token": spec.tokenSecretRef.key in """
        """body should match '^[-._a-zA-Z0-9]+$'""",
        id="secret-key-space",
    ),
    case(
        set_("spec.tokenSecretRef.namespace", "other-team"),
        'unknown field "spec.tokenSecretRef.namespace"',
        id="tokenSecretRef-cross-namespace",
        ssa=".spec.tokenSecretRef.namespace: field not declared in schema",
    ),
    case(
        set_("spec.accessToken", "EAAinline"),
        'unknown field "spec.accessToken"',
        id="unknown-spec-field",
        ssa=".spec.accessToken: field not declared in schema",
    ),
    case(
        set_("spec.validation.retries", 3),
        'unknown field "spec.validation.retries"',
        id="unknown-validation-field",
        ssa=".spec.validation.retries: field not declared in schema",
    ),
    case(
        set_("spec.graphApiVersion", "25.0"),
        """spec.graphApiVersion: Invalid value: "25.0": spec.graphApiVersion in body should """
        r"""match '^v[0-9]{2}\.[0-9]$'""",
        id="graphApiVersion-no-v",
    ),
    case(
        set_("spec.senderPool", "Pool-A"),
        """spec.senderPool: Invalid value: "Pool-A": spec.senderPool in body should match """
        """'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'""",
        id="senderPool-uppercase",
    ),
    case(
        set_("spec.validation.interval", "30s"),
        """spec.validation.interval: Invalid value: "30s": validation.interval must be """
        """at least 1m (Meta's rate limits)""",
        id="interval-too-short",
    ),
    case(
        set_("spec.validation.interval", "169h"),
        """spec.validation.interval: Invalid value: "169h": validation.interval must be """
        """at most 168h""",
        id="interval-too-long",
    ),
    case(
        set_("spec.validation.interval", "1d"),
        """spec.validation.interval: Invalid value: "1d": spec.validation.interval in body """
        """should match '^([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?$'""",
        id="interval-days",
    ),
    case(
        set_("spec.validation.interval", "99999999999h"),
        """spec.validation.interval: Invalid value: "99999999999h": spec.validation.interval in """
        """body should match '^([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?$'""",
        id="interval-overflow",
    ),
    case(
        set_("spec.validation.interval", "0s"),
        """spec.validation.interval: Invalid value: "0s": validation.interval must be """
        """at least 1m (Meta's rate limits)""",
        id="interval-zero",
    ),
    case(
        set_("spec.validation.interval", ""),
        """spec.validation.interval: Invalid value: "": spec.validation.interval in body """
        """should be at least 1 chars long""",
        id="interval-empty",
    ),
    case(
        set_("spec.active", "yes"),
        """spec.active: Invalid value: "string": spec.active in body must be of type boolean""",
        id="active-string",
        ssa=".spec.active: expected boolean, got &{yes}",
    ),
    case(
        set_("spec.suspend", 1),
        """spec.suspend: Invalid value: "integer": spec.suspend in body must be of type boolean""",
        id="suspend-integer",
        ssa=".spec.suspend: expected boolean, got &{1}",
    ),
    case(
        set_("spec.deletionPolicy", "Purge"),
        'spec.deletionPolicy: Unsupported value: "Purge": supported values: '
        '"Deactivate", "Delete", "Retain"',
        id="deletionPolicy-unknown",
    ),
    case(
        set_("spec.adoptExistingRow", "yes"),
        'spec.adoptExistingRow: Invalid value: "string": spec.adoptExistingRow in body must '
        "be of type boolean",
        id="adoptExistingRow-string",
        ssa=".spec.adoptExistingRow: expected boolean, got &{yes}",
    ),
]


def rejected(kubectl: Any, ns: str, manifest: str, *verb: str) -> str:
    proc = kubectl(*verb, "--validate=strict", "-n", ns, "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0, f"accepted:\n{manifest}\n{proc.stdout}"
    stderr: str = proc.stderr
    return stderr


SSA = ("apply", "--server-side", "--field-manager=tests")

APPLY_MODES = [
    pytest.param(("apply",), id="apply"),
    pytest.param(("create",), id="create"),
    pytest.param(SSA, id="ssa"),
]


@pytest.mark.parametrize("verb", APPLY_MODES)
@pytest.mark.parametrize(("edit", "message", "ssa_message"), REJECTED)
def test_bad_manifest_rejected(
    kubectl: Any, ns: str, verb: tuple[str, ...], edit: Edit, message: str, ssa_message: str
) -> None:
    manifest = tenant(f"bad-{uuid.uuid4().hex[:8]}")
    edit(manifest)
    stderr = rejected(kubectl, ns, dump(manifest), *verb)
    expected = ssa_message if "--server-side" in verb else message
    assert expected in stderr, stderr
    assert "evaluating rule" not in stderr, "a CEL rule failed at runtime instead of validating"


GOOD = [
    pytest.param({}, id="minimal"),
    pytest.param({"tenantId": "t" * 50}, id="tenantId-50-chars"),
    pytest.param({"tenantId": "A.b-c_9"}, id="tenantId-punctuation"),
    pytest.param({"businessId": "882555404932892"}, id="businessId"),
    pytest.param({"graphApiVersion": "v25.0"}, id="graphApiVersion"),
    pytest.param({"senderPool": "bulk-2"}, id="senderPool"),
    pytest.param({"validation": {"interval": "1m"}}, id="interval-1m"),
    pytest.param({"validation": {"interval": "168h"}}, id="interval-168h"),
    pytest.param({"validation": {"interval": "1h30m15s"}}, id="interval-composite"),
    pytest.param({"validation": {"interval": "90s"}}, id="interval-90s"),
    pytest.param(
        {"tokenSecretRef": {"name": "meta.token-1", "key": "token.v2_A"}}, id="secret-ref"
    ),
    pytest.param({"active": False, "suspend": True}, id="inactive-suspended"),
]


@pytest.mark.parametrize("spec", GOOD)
def test_good_manifest_accepted(kubectl: Any, ns: str, spec: dict[str, Any]) -> None:
    manifest = dump(tenant(f"good-{uuid.uuid4().hex[:8]}", **spec))
    kubectl(*SSA, "--validate=strict", "--dry-run=server", "-n", ns, "-f", "-", input=manifest)


def patch(kubectl: Any, ns: str, name: str, body: Any, *extra: str, check: bool = True) -> Any:
    """`kubectl patch --type=merge` of a WhatsAppTenant; `extra` e.g. --subresource=status."""
    return kubectl(
        "patch", "wat", name, "-n", ns, "--type=merge", *extra, "-p", json.dumps(body), check=check
    )


def test_defaults_applied(kubectl: Any, ns: str) -> None:
    kubectl.apply(dump(tenant("defaults")), ns)
    spec = kubectl.json("get", "wat", "defaults", "-n", ns)["spec"]
    assert spec["tokenSecretRef"] == {"name": "demo-tenant-meta-token", "key": "accessToken"}
    assert spec["active"] is True
    assert spec["suspend"] is False
    assert spec["deletionPolicy"] == "Deactivate"
    assert spec["adoptExistingRow"] is False
    assert spec["senderPool"] == "default"
    assert spec["validation"] == {"interval": "1h"}


def test_defaults_fill_partial_objects(kubectl: Any, ns: str) -> None:
    manifest = dump(tenant("partial", validation={}, tokenSecretRef={"name": "s", "key": "k"}))
    proc = kubectl("create", "--dry-run=server", "-o", "json", "-n", ns, "-f", "-", input=manifest)
    spec = json.loads(proc.stdout)["spec"]
    assert spec["validation"] == {"interval": "1h"}
    assert spec["tokenSecretRef"] == {"name": "s", "key": "k"}


def test_tenant_id_is_immutable(kubectl: Any, ns: str) -> None:
    message = "tenantId is immutable; create a new WhatsAppTenant to change it"
    kubectl.apply(dump(tenant("immutable")), ns)

    proc = patch(kubectl, ns, "immutable", {"spec": {"tenantId": "t_other"}}, check=False)
    assert proc.returncode != 0
    assert f'spec.tenantId: Invalid value: "t_other": {message}' in proc.stderr, proc.stderr

    changed = dump(tenant("immutable", tenantId="t_other"))
    proc = kubectl(*SSA, "-n", ns, "-f", "-", input=changed, check=False)
    assert proc.returncode != 0
    assert f'spec.tenantId: Invalid value: "t_other": {message}' in proc.stderr, proc.stderr

    # the other ids may change
    patch(kubectl, ns, "immutable", {"spec": {"wabaId": "999999999", "phoneNumberId": "888888"}})
    spec = kubectl.json("get", "wat", "immutable", "-n", ns)["spec"]
    assert (spec["tenantId"], spec["wabaId"], spec["phoneNumberId"]) == (
        "t_a3eecb94bb822a92",
        "999999999",
        "888888",
    )


def test_status_is_a_subresource(kubectl: Any, ns: str) -> None:
    """A spec update cannot write status; status is written through /status only."""
    kubectl.apply(dump(tenant("sub")), ns)
    patch(kubectl, ns, "sub", {"status": {"observedGeneration": 7}})
    assert "status" not in kubectl.json("get", "wat", "sub", "-n", ns)
    patch(kubectl, ns, "sub", {"status": {"observedGeneration": 7}}, "--subresource=status")
    assert kubectl.json("get", "wat", "sub", "-n", ns)["status"] == {"observedGeneration": 7}


def test_printer_columns_and_category(kubectl: Any, namespace: str) -> None:
    ns = namespace  # a namespace of its own: the listings below show only this tenant
    kubectl.apply(dump(tenant("cols", senderPool="bulk")), ns)
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Validated",
        "message": "ok",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    status = {
        "conditions": [ready],
        "phone": {"displayPhoneNumber": "+15550100001", "qualityRating": "GREEN"},
        "token": {"expiresAt": "2030-01-01T00:00:00Z"},
    }
    patch(kubectl, ns, "cols", {"status": status}, "--subresource=status")

    header, row = kubectl("get", "wat", "-n", ns).stdout.splitlines()
    columns = ["NAME", "TENANT", "DISPLAY", "POOL", "READY", "REASON", "TOKEN-EXPIRES", "AGE"]
    assert header.split() == columns
    assert row.split()[:7] == [
        "cols",
        "t_a3eecb94bb822a92",
        "+15550100001",
        "bulk",
        "True",
        "Validated",
        "2030-01-01T00:00:00Z",
    ]

    header, row = kubectl("get", "wat", "-n", ns, "-o", "wide").stdout.splitlines()
    wide = ["WABA", "PHONE-ID", "QUALITY", "VALIDATED", "SYNCED", "BLOCKED"]
    assert header.split()[-6:] == wide  # BLOCKED: Meta's blocking code (issue 16)
    assert row.split()[-3:] == ["102290129340398", "106540352242922", "GREEN"]

    # The category spans WhatsAppTenant and WhatsAppSignup: kubectl names the kind.
    # Cluster-scoped kinds of the category (WhatsAppTenantPolicy, WhatsAppApp) are listed too,
    # each as a table of its own: the tenants' table is the one headed NAME TENANT.
    tables = kubectl("get", "whatsapp", "-n", ns).stdout.split("\n\n")
    tenants = [t.splitlines() for t in tables if t.split()[:2] == ["NAME", "TENANT"]]
    assert len(tenants) == 1, tables
    assert [line.split()[0] for line in tenants[0][1:]] == [
        "whatsapptenant.whatsapp.operator.dev/cols"
    ]

    kubectl("wait", "--for=condition=Ready", "--timeout=10s", "-n", ns, "wat/cols")


def test_explain(kubectl: Any) -> None:
    out = kubectl("explain", "whatsapptenant.spec.tokenSecretRef").stdout
    assert "The Secret must be in the same namespace as the WhatsAppTenant" in " ".join(out.split())
    assert "key\t<string>" in out
    assert "name\t<string> -required-" in out
    spec = kubectl("explain", "wat.spec").stdout
    assert "Quote it in YAML" in " ".join(spec.split())


def test_example_applies_cleanly(kubectl: Any, ns: str) -> None:
    example = str(ROOT / "examples" / "tenant.yaml")
    proc = kubectl(*SSA, "--validate=strict", "--dry-run=server", "-n", ns, "-f", example)
    assert proc.stdout.splitlines() == [
        "secret/demo-tenant-meta-token serverside-applied (server dry run)",
        "whatsapptenant.whatsapp.operator.dev/demo-tenant serverside-applied (server dry run)",
    ]
    assert not proc.stderr.strip(), proc.stderr
