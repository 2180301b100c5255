"""Bad WhatsAppTenant and WhatsAppSignup manifests, rejected by a real kube-apiserver.

Issue 8, "Bad input": every manifest here must be refused at admission (the operator never
sees it), and what `kubectl` prints must name the offending field and say what is wrong in
words, not as a stack trace. These cases add to tests/integration/test_admission.py (which
has the first 32 tenant cases) without repeating them: together they cover every spec
field of both CRDs with at least one wrong type, wrong shape, out-of-range or unknown value.

Each case is applied with client-side `kubectl apply` and with server-side apply, whose
type errors and unknown fields come from structured-merge-diff with their own wording.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
import yaml
from test_admission import Edit, Manifest, drop, set_

pytestmark = pytest.mark.integration


GROUP_VERSION = "whatsapp.operator.dev/v1alpha1"
GOOD_TENANT: dict[str, Any] = {
    "tenantId": "t_a3eecb94bb822a92",
    "wabaId": "102290129340398",
    "phoneNumberId": "106540352242922",
    "tokenSecretRef": {"name": "demo-tenant-meta-token"},
}
GOOD_SIGNUP: dict[str, Any] = {
    "codeSecretRef": {"name": "acme-code"},
    "appCredentialsSecretRef": {"name": "meta-app"},
    "tenant": {"tenantId": "t_acme"},
}
# The same signup with a WhatsAppApp instead of the app credentials Secret (issue 18)
GOOD_SIGNUP_APP: dict[str, Any] = {
    "codeSecretRef": {"name": "acme-code"},
    "appRef": {"name": "shared-app"},
    "tenant": {"tenantId": "t_acme"},
}
# What a user must never be shown instead of a message (the API server's or kubectl's).
NOT_READABLE = (
    "Traceback (most recent call last)",
    "panic:",
    "goroutine ",
    "evaluating rule",  # a CEL rule that failed at runtime instead of validating
    "Internal error",
    "InternalError",
)
# The API server's note after a schema error ("some validation rules were not checked");
# the message stays readable with it, it is only left out of the length budget.
NOTE = "some validation rules were not checked"


def manifest(kind: str, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": kind,
        "metadata": {"name": f"bad-{uuid.uuid4().hex[:8]}"},
        "spec": copy.deepcopy(spec),
    }


def case(edit: Edit, field: str, message: str, *, id: str, ssa: str | None = None) -> Any:
    """A bad manifest, the field the error must name, and the message kubectl prints
    (`ssa` when server-side apply words it differently)."""
    return pytest.param(edit, field, message, ssa or message, id=id)


def pattern(field: str, value: str, regex: str) -> str:
    return f"{field}: Invalid value: \"{value}\": {field} in body should match '{regex}'"


def too_short(field: str) -> str:
    return f'{field}: Invalid value: "": {field} in body should be at least 1 chars long'


def too_long(field: str, limit: int) -> str:
    return f"{field}: Too long: may not be more than {limit} bytes"


def wrong_type(field: str, got: str, want: str) -> str:
    return f'{field}: Invalid value: "{got}": {field} in body must be of type {want}'


def unknown(field: str) -> tuple[str, str]:
    """(client-side message, server-side apply message) of an undeclared field."""
    return f'unknown field "{field}"', f".{field}: field not declared in schema"


TENANT_ID = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DIGITS = "^[0-9]+$"
DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY = "^[-._a-zA-Z0-9]+$"
GRAPH_VERSION = r"^v[0-9]{2}\.[0-9]$"
INTERVAL = "^([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?$"
ROTATION_DURATION = "^([0-9]{1,5}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?$"
POLICIES = 'supported values: "Deactivate", "Delete", "Retain"'


def refresh(credentials: dict[str, str]) -> dict[str, Any]:
    return {"strategy": "Refresh", "appCredentialsSecretRef": credentials}


# --- WhatsAppTenant: none of these is in test_admission.py --------------------------------

TENANT_REJECTED = [
    case(
        set_("spec", "t_a3eecb94bb822a92"),
        "spec",
        wrong_type("spec", "string", "object"),
        ssa=".spec: expected map, got &{t_a3eecb94bb822a92}",
        id="spec-is-a-string",
    ),
    case(
        set_("spec.tenantId", None),
        "spec.tenantId",
        "spec.tenantId: Required value",
        ssa=wrong_type("spec.tenantId", "null", "string"),
        id="tenantId-null",
    ),
    case(
        set_("spec.tenantId", 42),
        "spec.tenantId",
        wrong_type("spec.tenantId", "integer", "string"),
        ssa=".spec.tenantId: expected string, got &value.valueUnstructured{Value:42}",
        id="tenantId-yaml-number",
    ),
    case(
        set_("spec.tenantId", "t1\n"),
        "spec.tenantId",
        pattern("spec.tenantId", "t1\\n", TENANT_ID),
        id="tenantId-trailing-newline",
    ),
    case(
        set_("spec.tenantId", "tenänt"),
        "spec.tenantId",
        pattern("spec.tenantId", "tenänt", TENANT_ID),
        id="tenantId-non-ascii",
    ),
    case(
        set_("spec.tenantId", "t/1"),
        "spec.tenantId",
        pattern("spec.tenantId", "t/1", TENANT_ID),
        id="tenantId-slash",
    ),
    case(
        set_("spec.tenantId", "-t1"),
        "spec.tenantId",
        pattern("spec.tenantId", "-t1", TENANT_ID),
        id="tenantId-leading-dash",
    ),
    case(set_("spec.wabaId", ""), "spec.wabaId", too_short("spec.wabaId"), id="wabaId-empty"),
    case(
        set_("spec.wabaId", "1" * 31),
        "spec.wabaId",
        too_long("spec.wabaId", 30),
        id="wabaId-too-long",
    ),
    case(
        set_("spec.wabaId", "-1"),
        "spec.wabaId",
        pattern("spec.wabaId", "-1", DIGITS),
        id="wabaId-negative",
    ),
    case(
        set_("spec.wabaId", "1.5"),
        "spec.wabaId",
        pattern("spec.wabaId", "1.5", DIGITS),
        id="wabaId-decimal",
    ),
    case(
        set_("spec.phoneNumberId", ""),
        "spec.phoneNumberId",
        too_short("spec.phoneNumberId"),
        id="phoneNumberId-empty",
    ),
    case(
        set_("spec.phoneNumberId", 106540352242922),
        "spec.phoneNumberId",
        wrong_type("spec.phoneNumberId", "integer", "string"),
        ssa=".spec.phoneNumberId: expected string, got "
        "&value.valueUnstructured{Value:106540352242922}",
        id="phoneNumberId-yaml-number",
    ),
    case(
        set_("spec.phoneNumberId", "106 540"),
        "spec.phoneNumberId",
        pattern("spec.phoneNumberId", "106 540", DIGITS),
        id="phoneNumberId-space",
    ),
    case(
        set_("spec.businessId", ""),
        "spec.businessId",
        too_short("spec.businessId"),
        id="businessId-empty",
    ),
    case(
        set_("spec.businessId", "1" * 31),
        "spec.businessId",
        too_long("spec.businessId", 30),
        id="businessId-too-long",
    ),
    case(
        set_("spec.tokenSecretRef", "meta-token"),
        "spec.tokenSecretRef",
        wrong_type("spec.tokenSecretRef", "string", "object"),
        ssa=".spec.tokenSecretRef: expected map, got &{meta-token}",
        id="tokenSecretRef-is-a-string",
    ),
    case(
        set_("spec.tokenSecretRef.name", ""),
        "spec.tokenSecretRef.name",
        too_short("spec.tokenSecretRef.name"),
        id="secret-name-empty",
    ),
    case(
        set_("spec.tokenSecretRef.name", "a" * 254),
        "spec.tokenSecretRef.name",
        too_long("spec.tokenSecretRef.name", 253),
        id="secret-name-too-long",
    ),
    case(
        set_("spec.tokenSecretRef.name", "meta-"),
        "spec.tokenSecretRef.name",
        pattern("spec.tokenSecretRef.name", "meta-", DNS_SUBDOMAIN),
        id="secret-name-trailing-dash",
    ),
    case(
        set_("spec.tokenSecretRef.key", ""),
        "spec.tokenSecretRef.key",
        too_short("spec.tokenSecretRef.key"),
        id="secret-key-empty",
    ),
    case(
        set_("spec.tokenSecretRef.key", "a/b"),
        "spec.tokenSecretRef.key",
        pattern("spec.tokenSecretRef.key", "a/b", SECRET_KEY),
        id="secret-key-slash",
    ),
    case(
        set_("spec.tokenSecretRef.key", "k" * 254),
        "spec.tokenSecretRef.key",
        too_long("spec.tokenSecretRef.key", 253),
        id="secret-key-too-long",
    ),
    case(
        set_("spec.graphApiVersion", ""),
        "spec.graphApiVersion",
        pattern("spec.graphApiVersion", "", GRAPH_VERSION),
        id="graphApiVersion-empty",
    ),
    case(
        set_("spec.graphApiVersion", "v25.0.1"),
        "spec.graphApiVersion",
        pattern("spec.graphApiVersion", "v25.0.1", GRAPH_VERSION),
        id="graphApiVersion-patch",
    ),
    case(
        set_("spec.graphApiVersion", "v9.0"),
        "spec.graphApiVersion",
        pattern("spec.graphApiVersion", "v9.0", GRAPH_VERSION),
        id="graphApiVersion-one-digit",
    ),
    case(
        set_("spec.senderPool", ""),
        "spec.senderPool",
        too_short("spec.senderPool"),
        id="senderPool-empty",
    ),
    case(
        set_("spec.senderPool", "p" * 64),
        "spec.senderPool",
        too_long("spec.senderPool", 63),
        id="senderPool-too-long",
    ),
    case(
        set_("spec.senderPool", "bulk-"),
        "spec.senderPool",
        pattern("spec.senderPool", "bulk-", DNS_LABEL),
        id="senderPool-trailing-dash",
    ),
    case(
        set_("spec.senderPool", "a.b"),
        "spec.senderPool",
        pattern("spec.senderPool", "a.b", DNS_LABEL),
        id="senderPool-dot",
    ),
    case(
        set_("spec.validation", "1h"),
        "spec.validation",
        wrong_type("spec.validation", "string", "object"),
        ssa=".spec.validation: expected map, got &{1h}",
        id="validation-is-a-string",
    ),
    case(
        set_("spec.validation.interval", "300ms"),
        "spec.validation.interval",
        pattern("spec.validation.interval", "300ms", INTERVAL),
        id="interval-milliseconds",
    ),
    case(
        set_("spec.validation.interval", "-1h"),
        "spec.validation.interval",
        pattern("spec.validation.interval", "-1h", INTERVAL),
        id="interval-negative",
    ),
    case(
        set_("spec.validation.interval", "1m1h"),
        "spec.validation.interval",
        pattern("spec.validation.interval", "1m1h", INTERVAL),
        id="interval-wrong-order",
    ),
    case(
        set_("spec.validation.interval", 60),
        "spec.validation.interval",
        wrong_type("spec.validation.interval", "integer", "string"),
        ssa=".spec.validation.interval: expected string, got &value.valueUnstructured{Value:60}",
        id="interval-yaml-number",
    ),
    case(
        set_("spec.deletionPolicy", "delete"),
        "spec.deletionPolicy",
        f'spec.deletionPolicy: Unsupported value: "delete": {POLICIES}',
        id="deletionPolicy-lower-case",
    ),
    case(
        set_("spec.deletionPolicy", ""),
        "spec.deletionPolicy",
        f'spec.deletionPolicy: Unsupported value: "": {POLICIES}',
        id="deletionPolicy-empty",
    ),
    case(
        set_("spec.rotation", ["Refresh"]),
        "spec.rotation",
        wrong_type("spec.rotation", "array", "object"),
        ssa=".spec.rotation: expected map, got &{[Refresh]}",
        id="rotation-is-a-list",
    ),
    case(
        set_("spec.rotation.strategy", "Auto"),
        "spec.rotation.strategy",
        'spec.rotation.strategy: Unsupported value: "Auto": supported values: '
        '"External", "Refresh"',
        id="rotation-strategy-unknown",
    ),
    case(
        set_("spec.rotation.strategy", "Refresh"),
        "spec.rotation",
        "spec.rotation: Invalid value: rotation.strategy Refresh needs "
        "rotation.appCredentialsSecretRef",
        id="refresh-without-app-credentials",
    ),
    case(
        set_("spec.rotation.renewBefore", "20d"),
        "spec.rotation.renewBefore",
        pattern("spec.rotation.renewBefore", "20d", ROTATION_DURATION),
        id="renewBefore-days",
    ),
    case(
        set_("spec.rotation.renewBefore", "999999h"),
        "spec.rotation.renewBefore",
        pattern("spec.rotation.renewBefore", "999999h", ROTATION_DURATION),
        id="renewBefore-overflow",
    ),
    # Accepted before minLength was added: the operator then reported "spec is invalid".
    case(
        set_("spec.rotation.renewBefore", ""),
        "spec.rotation.renewBefore",
        too_short("spec.rotation.renewBefore"),
        id="renewBefore-empty",
    ),
    case(
        set_("spec.rotation.gracePeriod", ""),
        "spec.rotation.gracePeriod",
        too_short("spec.rotation.gracePeriod"),
        id="gracePeriod-empty",
    ),
    case(
        set_("spec.rotation.gracePeriod", "1 h"),
        "spec.rotation.gracePeriod",
        pattern("spec.rotation.gracePeriod", "1 h", ROTATION_DURATION),
        id="gracePeriod-space",
    ),
    case(
        set_("spec.rotation.revokePrevious", "true"),
        "spec.rotation.revokePrevious",
        wrong_type("spec.rotation.revokePrevious", "string", "boolean"),
        ssa=".spec.rotation.revokePrevious: expected boolean, got &{true}",
        id="revokePrevious-string",
    ),
    case(
        set_("spec.rotation.schedule", "daily"),
        "spec.rotation.schedule",
        unknown("spec.rotation.schedule")[0],
        ssa=unknown("spec.rotation.schedule")[1],
        id="rotation-unknown-field",
    ),
    case(
        set_("spec.rotation", refresh({"appIdKey": "id"})),
        "spec.rotation.appCredentialsSecretRef.name",
        "spec.rotation.appCredentialsSecretRef.name: Required value",
        id="app-credentials-without-name",
    ),
    case(
        set_("spec.rotation", refresh({"name": "Meta-App"})),
        "spec.rotation.appCredentialsSecretRef.name",
        pattern("spec.rotation.appCredentialsSecretRef.name", "Meta-App", DNS_SUBDOMAIN),
        id="app-credentials-name-not-dns",
    ),
    case(
        set_("spec.rotation.appCredentialsSecretRef", {"name": "app", "appSecretKey": "a/s"}),
        "spec.rotation.appCredentialsSecretRef.appSecretKey",
        pattern("spec.rotation.appCredentialsSecretRef.appSecretKey", "a/s", SECRET_KEY),
        id="app-secret-key-slash",
    ),
    case(
        set_("spec.rotation.appCredentialsSecretRef", {"name": "app", "namespace": "other"}),
        "spec.rotation.appCredentialsSecretRef.namespace",
        unknown("spec.rotation.appCredentialsSecretRef.namespace")[0],
        ssa=unknown("spec.rotation.appCredentialsSecretRef.namespace")[1],
        id="app-credentials-cross-namespace",
    ),
    case(
        set_("replicas", 2),
        "replicas",
        'unknown field "replicas"',
        ssa=".replicas: field not declared in schema",
        id="unknown-top-level-field",
    ),
    case(
        set_("metadata.name", "Acme"),
        "metadata.name",
        'metadata.name: Invalid value: "Acme": a lowercase RFC 1123 subdomain must consist of '
        "lower case alphanumeric characters",
        id="name-upper-case",
    ),
]

# --- WhatsAppSignup -----------------------------------------------------------------------

SIGNUP_REJECTED = [
    case(drop("spec"), "spec", "spec: Required value", id="missing-spec"),
    case(
        drop("spec.codeSecretRef"),
        "spec.codeSecretRef",
        "spec.codeSecretRef: Required value",
        id="missing-codeSecretRef",
    ),
    case(
        drop("spec.appCredentialsSecretRef"),
        "spec.appCredentialsSecretRef",
        "spec.appCredentialsSecretRef: Required value",
        id="missing-appCredentialsSecretRef",  # and no appRef either
    ),
    case(
        set_("spec.appRef", {"name": "shared-app"}),
        "spec.appRef",
        "spec.appRef: Invalid value: spec.appRef and spec.appCredentialsSecretRef are "
        "mutually exclusive",
        id="appRef-and-appCredentialsSecretRef",
    ),
    case(
        set_("spec.appRef", {}),
        "spec.appRef.name",
        "spec.appRef.name: Required value",
        id="appRef-without-name",
    ),
    case(
        set_("spec.appRef", {"name": "Shared_App"}),
        "spec.appRef.name",
        pattern("spec.appRef.name", "Shared_App", DNS_SUBDOMAIN),
        id="appRef-name-not-dns",
    ),
    case(drop("spec.tenant"), "spec.tenant", "spec.tenant: Required value", id="missing-tenant"),
    case(
        set_("spec.tenant", {"name": "acme"}),
        "spec.tenant.tenantId",
        "spec.tenant.tenantId: Required value",
        id="tenant-without-tenantId",
    ),
    case(
        set_("spec.tenant.tenantId", "t acme"),
        "spec.tenant.tenantId",
        pattern("spec.tenant.tenantId", "t acme", TENANT_ID),
        id="tenantId-space",
    ),
    case(
        set_("spec.tenant.tenantId", "t" * 51),
        "spec.tenant.tenantId",
        too_long("spec.tenant.tenantId", 50),
        id="tenantId-too-long",
    ),
    case(
        set_("spec.tenant.name", "Acme"),
        "spec.tenant.name",
        pattern("spec.tenant.name", "Acme", DNS_SUBDOMAIN),
        id="tenant-name-upper-case",
    ),
    case(
        set_("spec.tenant.name", "a" * 243),
        "spec.tenant.name",
        too_long("spec.tenant.name", 242),
        id="tenant-name-leaves-no-room-for-secret",
    ),
    case(
        set_("spec.tenant.senderPool", "Bulk"),
        "spec.tenant.senderPool",
        pattern("spec.tenant.senderPool", "Bulk", DNS_LABEL),
        id="tenant-senderPool-upper-case",
    ),
    case(
        set_("spec.tenant.deletionPolicy", "Purge"),
        "spec.tenant.deletionPolicy",
        f'spec.tenant.deletionPolicy: Unsupported value: "Purge": {POLICIES}',
        id="tenant-deletionPolicy-unknown",
    ),
    case(
        set_("spec.tenant.namespace", "other"),
        "spec.tenant.namespace",
        unknown("spec.tenant.namespace")[0],
        ssa=unknown("spec.tenant.namespace")[1],
        id="tenant-in-another-namespace",
    ),
    case(
        set_("spec.tenant.active", False),
        "spec.tenant.active",
        unknown("spec.tenant.active")[0],
        ssa=unknown("spec.tenant.active")[1],
        id="tenant-field-not-offered",
    ),
    case(
        set_("spec.codeSecretRef", "acme-code"),
        "spec.codeSecretRef",
        wrong_type("spec.codeSecretRef", "string", "object"),
        ssa=".spec.codeSecretRef: expected map, got &{acme-code}",
        id="codeSecretRef-is-a-string",
    ),
    case(
        set_("spec.codeSecretRef.name", "Acme_Code"),
        "spec.codeSecretRef.name",
        pattern("spec.codeSecretRef.name", "Acme_Code", DNS_SUBDOMAIN),
        id="code-secret-not-dns",
    ),
    case(
        set_("spec.codeSecretRef.codeKey", "oauth code"),
        "spec.codeSecretRef.codeKey",
        pattern("spec.codeSecretRef.codeKey", "oauth code", SECRET_KEY),
        id="codeKey-space",
    ),
    case(
        set_("spec.codeSecretRef.pinKey", ""),
        "spec.codeSecretRef.pinKey",
        too_short("spec.codeSecretRef.pinKey"),
        id="pinKey-empty",
    ),
    case(
        set_("spec.codeSecretRef.namespace", "other"),
        "spec.codeSecretRef.namespace",
        unknown("spec.codeSecretRef.namespace")[0],
        ssa=unknown("spec.codeSecretRef.namespace")[1],
        id="code-secret-in-another-namespace",
    ),
    case(
        set_("spec.appCredentialsSecretRef", {"appIdKey": "id"}),
        "spec.appCredentialsSecretRef.name",
        "spec.appCredentialsSecretRef.name: Required value",
        id="app-credentials-without-name",
    ),
    case(
        set_("spec.appCredentialsSecretRef.appSecretKey", "app/secret"),
        "spec.appCredentialsSecretRef.appSecretKey",
        pattern("spec.appCredentialsSecretRef.appSecretKey", "app/secret", SECRET_KEY),
        id="appSecretKey-slash",
    ),
    case(
        set_("spec.phoneNumberSelector.phoneNumberId", "+15550100"),
        "spec.phoneNumberSelector.phoneNumberId",
        pattern("spec.phoneNumberSelector.phoneNumberId", "+15550100", DIGITS),
        id="selector-phone-number-not-id",
    ),
    case(
        set_("spec.phoneNumberSelector.phoneNumberId", 106540352242922),
        "spec.phoneNumberSelector.phoneNumberId",
        wrong_type("spec.phoneNumberSelector.phoneNumberId", "integer", "string"),
        ssa=".spec.phoneNumberSelector.phoneNumberId: expected string, got "
        "&value.valueUnstructured{Value:106540352242922}",
        id="selector-phoneNumberId-yaml-number",
    ),
    case(
        set_("spec.phoneNumberSelector.displayPhoneNumber", "call me"),
        "spec.phoneNumberSelector.displayPhoneNumber",
        pattern("spec.phoneNumberSelector.displayPhoneNumber", "call me", "^[+0-9 ()-]+$"),
        id="selector-display-letters",
    ),
    case(
        set_("spec.phoneNumberSelector.wabaId", "123"),
        "spec.phoneNumberSelector.wabaId",
        unknown("spec.phoneNumberSelector.wabaId")[0],
        ssa=unknown("spec.phoneNumberSelector.wabaId")[1],
        id="selector-unknown-field",
    ),
    case(
        set_("spec.subscribeApp", "yes"),
        "spec.subscribeApp",
        wrong_type("spec.subscribeApp", "string", "boolean"),
        ssa=".spec.subscribeApp: expected boolean, got &{yes}",
        id="subscribeApp-string",
    ),
    case(
        set_("spec.register", 1),
        "spec.register",
        wrong_type("spec.register", "integer", "boolean"),
        ssa=".spec.register: expected boolean, got &{1}",
        id="register-integer",
    ),
    # The OAuth code belongs in a Secret, never in the spec.
    case(
        set_("spec.code", "AQBx-code"),
        "spec.code",
        unknown("spec.code")[0],
        ssa=unknown("spec.code")[1],
        id="inline-oauth-code",
    ),
    case(
        set_("metadata.name", "s" * 64),
        "metadata.name",
        "metadata.name: Too long: may not be more than 63 bytes",
        id="name-over-a-label",
    ),
]

SSA = ("apply", "--server-side", "--field-manager=tests")
MODES = [pytest.param(("apply",), id="apply"), pytest.param(SSA, id="ssa")]


def rejected(kubectl: Any, ns: str, body: Manifest, verb: tuple[str, ...]) -> str:
    text = yaml.safe_dump(body, sort_keys=False)
    proc = kubectl(*verb, "--validate=strict", "-n", ns, "-f", "-", input=text, check=False)
    assert proc.returncode != 0, f"accepted:\n{text}\n{proc.stdout}"
    stderr: str = proc.stderr
    return stderr


def assert_readable(stderr: str, field: str) -> None:
    """Names the field, says something, and is not a stack trace or an evaluation failure."""
    assert field in stderr, f"the error does not name {field}:\n{stderr}"
    for marker in NOT_READABLE:
        assert marker not in stderr, f"{marker!r} in:\n{stderr}"
    essential = "\n".join(line for line in stderr.splitlines() if NOTE not in line)
    assert len(essential) < 1000, f"{len(essential)} characters is not a message:\n{stderr}"


def check(
    kubectl: Any,
    ns: str,
    body: Manifest,
    verb: tuple[str, ...],
    field: str,
    messages: tuple[str, str],
) -> None:
    stderr = rejected(kubectl, ns, body, verb)
    expected = messages[1] if "--server-side" in verb else messages[0]
    assert expected in stderr, stderr
    assert_readable(stderr, field)


@pytest.mark.parametrize("verb", MODES)
@pytest.mark.parametrize(("edit", "field", "message", "ssa_message"), TENANT_REJECTED)
def test_bad_tenant_rejected(
    kubectl: Any, ns: str, verb: tuple[str, ...], edit: Edit, field: str, message: str,
    ssa_message: str,
) -> None:  # fmt: skip
    body = manifest("WhatsAppTenant", GOOD_TENANT)
    edit(body)
    check(kubectl, ns, body, verb, field, (message, ssa_message))


@pytest.mark.parametrize("verb", MODES)
@pytest.mark.parametrize(("edit", "field", "message", "ssa_message"), SIGNUP_REJECTED)
def test_bad_signup_rejected(
    kubectl: Any, ns: str, verb: tuple[str, ...], edit: Edit, field: str, message: str,
    ssa_message: str,
) -> None:  # fmt: skip
    body = manifest("WhatsAppSignup", GOOD_SIGNUP)
    edit(body)
    check(kubectl, ns, body, verb, field, (message, ssa_message))


def test_the_good_manifests_are_accepted(kubectl: Any, ns: str) -> None:
    """The base of every case is valid: each rejection above is the edit's doing."""
    good = (
        ("WhatsAppTenant", GOOD_TENANT),
        ("WhatsAppSignup", GOOD_SIGNUP),
        ("WhatsAppSignup", GOOD_SIGNUP_APP),
    )
    for kind, spec in good:
        text = yaml.safe_dump(manifest(kind, spec))
        kubectl(*SSA, "--validate=strict", "--dry-run=server", "-n", ns, "-f", "-", input=text)


def test_every_problem_is_listed_at_once(kubectl: Any, ns: str) -> None:
    """A manifest with several mistakes gets them all in one answer, not one per attempt."""
    body = manifest("WhatsAppTenant", GOOD_TENANT)
    body["spec"].update(wabaId="12ab", senderPool="Pool-A", deletionPolicy="Purge")
    body["spec"]["tokenSecretRef"]["key"] = "access token"
    stderr = rejected(kubectl, ns, body, ("apply",))
    for field in (
        "spec.wabaId",
        "spec.senderPool",
        "spec.deletionPolicy",
        "spec.tokenSecretRef.key",
    ):
        assert_readable(stderr, field)


def test_an_update_to_a_bad_value_is_rejected_and_changes_nothing(kubectl: Any, ns: str) -> None:
    """Admission guards updates as well as creations: the stored object stays as it was."""
    body = manifest("WhatsAppTenant", GOOD_TENANT)
    name = body["metadata"]["name"]
    kubectl.apply(yaml.safe_dump(body), ns)
    bad = {"spec": {"phoneNumberId": "+15550001234", "rotation": {"gracePeriod": ""}}}
    proc = kubectl(
        "patch", "wat", name, "-n", ns, "--type=merge", "-p", json.dumps(bad), check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert pattern("spec.phoneNumberId", "+15550001234", DIGITS) in proc.stderr, proc.stderr
    assert too_short("spec.rotation.gracePeriod") in proc.stderr, proc.stderr
    assert_readable(proc.stderr, "spec.phoneNumberId")
    spec = kubectl.json("get", "wat", name, "-n", ns)["spec"]
    assert spec["phoneNumberId"] == GOOD_TENANT["phoneNumberId"]
    assert spec["rotation"]["gracePeriod"] == "24h"
    kubectl("delete", "wat", name, "-n", ns, "--wait=false")
