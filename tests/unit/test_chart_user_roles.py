"""The chart's roles for people (templates/user-roles.yaml, docs/tenancy.md), rendered with
`helm template`: what a tenant team and the platform team may do, and nothing more.

The tenant editor (bound per namespace by a RoleBinding) may write tenants, signups and their
Secrets, and read Events; never a status (the operator's word), a WhatsAppTenantPolicy (which
namespace may use which tenant id, and adoption approval), a WhatsAppApp or a Namespace (whose
labels policies and apps select). The platform admin owns the cluster-scoped policies and apps
and reads tenants everywhere. tests/integration/test_tenancy.py binds the tenant editor on the
real API server and shows its users Forbidden where this file says so.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_chart_render import grants, needs_helm, of_kind, one, render, render_fails, rules_of

pytestmark = needs_helm

WATCH = "watchNamespaces={shop}"  # every render names its namespaces (the chart's guard)
EDITOR = "rel-whatsapp-operator-tenant-editor"
ADMIN = "rel-whatsapp-operator-platform-admin"
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-edit"
GROUP = "whatsapp.operator.dev"
WRITE = "get list watch create update patch delete"

TENANT_EDITOR = (
    grants(WRITE, GROUP, "whatsapptenants", "whatsappsignups")
    | grants(WRITE, "", "secrets")
    | grants("get list watch", "", "events")
    | grants("get list watch", "events.k8s.io", "events")
)
PLATFORM_ADMIN = (
    grants(WRITE, GROUP, "whatsapptenantpolicies", "whatsappapps")
    | grants("get list watch", GROUP, "whatsapptenants", "whatsappsignups")
    | grants("get list watch", "", "namespaces")
)


def user_roles(*values: str) -> dict[str, dict[str, Any]]:
    docs = render(WATCH, *values)
    return {
        d["metadata"]["name"]: d
        for d in of_kind(docs, "ClusterRole")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "user-roles"
    }


def test_both_roles_are_rendered_with_exactly_their_rules() -> None:
    roles = user_roles()
    assert set(roles) == {EDITOR, ADMIN}
    assert rules_of(roles[EDITOR]) == TENANT_EDITOR
    assert rules_of(roles[ADMIN]) == PLATFORM_ADMIN
    for role in roles.values():
        assert "namespace" not in role["metadata"]  # ClusterRoles: bound where the user works
        assert "aggregationRule" not in role


def test_a_tenant_editor_cannot_approve_itself_or_forge_the_operators_word() -> None:
    editor = rules_of(user_roles()[EDITOR])
    resources = {resource for _, resource, _ in editor}
    # no policy (tenant ids, adoption approval), no app, no namespace labels, no status
    assert not resources & {"whatsapptenantpolicies", "whatsappapps", "namespaces"}
    assert not [r for r in resources if "/" in r]
    assert not {verb for *_, verb in editor} & {
        "deletecollection",
        "escalate",
        "bind",
        "impersonate",
    }
    assert not [t for t in editor if "*" in t]


def test_the_platform_admin_reads_tenants_but_does_not_write_them() -> None:
    admin = rules_of(user_roles()[ADMIN])
    tenant_verbs = {verb for _, resource, verb in admin if resource == "whatsapptenants"}
    assert tenant_verbs == {"get", "list", "watch"}
    assert not {resource for _, resource, _ in admin} & {"secrets", "events"}
    assert not [t for t in admin if "*" in t]


def test_the_chart_binds_nobody_to_them() -> None:
    docs = render(WATCH)
    bound = {
        b["roleRef"]["name"]
        for b in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding")
    }
    assert not bound & {EDITOR, ADMIN}


def test_aggregation_into_edit_is_opt_in_and_only_for_the_tenant_editor() -> None:
    roles = user_roles()
    assert AGGREGATE not in roles[EDITOR]["metadata"]["labels"]
    roles = user_roles("userRoles.tenantEditor.aggregateToEdit=true")
    assert roles[EDITOR]["metadata"]["labels"][AGGREGATE] == "true"
    assert not any(
        k.startswith("rbac.authorization.k8s.io/") for k in roles[ADMIN]["metadata"]["labels"]
    )


def test_they_can_be_left_out_and_follow_the_full_name() -> None:
    assert user_roles("userRoles.enabled=false") == {}
    docs = render(WATCH, "fullnameOverride=wa")
    one(docs, "ClusterRole", "wa-tenant-editor")
    one(docs, "ClusterRole", "wa-platform-admin")


@pytest.mark.parametrize("value", ["userRoles.tenantEditor.aggregate=true", "userRoles.bind=true"])
def test_schema_rejects_unknown_user_roles_keys(value: str) -> None:
    stderr = render_fails(WATCH, value)
    assert "additional properties" in stderr.lower() or "additionalproperties" in stderr.lower()
