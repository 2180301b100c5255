"""The kubectl plugin's pure parts (whatsapp_kubectl.view): rows from tenant objects, the
status table, request outcomes, the dependency report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from whatsapp_kubectl import view

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def tenant(
    name: str = "acme",
    namespace: str = "shop",
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"tenantId": f"t_{name}"},
        "status": {"conditions": conditions or [], **status},
    }


def cond(type_: str, status: str, reason: str, message: str = "", at: str = "") -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at or "2026-12-07T11:00:00Z",
    }


READY = cond("Ready", "True", "Ready", "the tenant can send")
EXPIRED = cond("Ready", "False", "TokenExpired", "the token expired at ...")
VALIDATED = "2026-12-07T11:55:00Z"
TOKEN = {"expiresAt": "2026-12-10T12:00:00Z", "lastValidatedAt": VALIDATED}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            tenant(conditions=[READY], token=TOKEN, published={"workers": "2/2 current"}),
            view.TenantRow(
                "shop",
                "acme",
                "t_acme",
                "True",
                "",
                "",
                "2026-12-10T12:00:00Z",
                "2026-12-07T11:55:00Z",
                "2/2 current",
            ),
            id="ready: no reason shown, expiry, validation and workers",
        ),
        pytest.param(
            tenant(conditions=[EXPIRED], token={"lastValidatedAt": "2026-12-07T11:55:00Z"}),
            view.TenantRow(
                "shop",
                "acme",
                "t_acme",
                "False",
                "TokenExpired",
                "the token expired at ...",
                "never",
                "2026-12-07T11:55:00Z",
                "",
            ),
            id="not ready: the failing reason; validated token without expiry never expires",
        ),
        pytest.param(
            {"metadata": {"name": "new", "namespace": "shop"}, "spec": {"tenantId": "t_new"}},
            view.TenantRow("shop", "new", "t_new", "", "", "", "", "", ""),
            id="before the operator's first pass: no status at all",
        ),
    ],
)
def test_tenant_row(obj: Mapping[str, Any], expected: view.TenantRow) -> None:
    assert view.tenant_row(obj) == expected


def test_rows_put_tenants_that_need_a_look_first() -> None:
    objs = [
        tenant("b", conditions=[READY]),
        tenant("a", conditions=[READY]),
        tenant("c", conditions=[EXPIRED]),
        tenant("d"),
    ]
    assert [r.name for r in view.tenant_rows(objs)] == ["c", "d", "a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-10T12:00:00Z", "in 3d"),
        ("2026-12-07T11:55:00Z", "5m ago"),
        ("2026-12-07T12:00:30Z", "in 30s"),
        ("2026-12-07T14:30:00Z", "in 2h"),
        ("2026-12-07T13:00:00Z", "in 60m"),  # under two hours: minutes, as kubectl's ages
        ("never", "never"),
        ("", ""),
    ],
)
def test_relative(text: str, expected: str) -> None:
    assert view.relative(text, NOW) == expected


def test_status_table_in_one_namespace() -> None:
    rows = view.tenant_rows(
        [
            tenant("acme", conditions=[READY], token=TOKEN, published={"workers": "2/2 current"}),
            tenant("globex", conditions=[EXPIRED], token={"lastValidatedAt": VALIDATED}),
        ]
    )
    assert view.status_table(rows, NOW, all_namespaces=False).splitlines() == [
        "NAME     TENANT     READY   REASON         TOKEN-EXPIRES   LAST-VALIDATED   WORKERS",
        "globex   t_globex   False   TokenExpired   never           5m ago           <none>",
        "acme     t_acme     True    <none>         in 3d           5m ago           2/2 current",
    ]


def test_status_table_across_namespaces_shows_the_namespace() -> None:
    rows = view.tenant_rows([tenant("acme", "shop"), tenant("acme", "bank")])
    lines = view.status_table(rows, NOW, all_namespaces=True).splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "TENANT"]
    assert [line.split()[0] for line in lines[1:]] == ["bank", "shop"]


def test_json_rows_carry_the_same_data_as_the_table() -> None:
    row = view.tenant_row(tenant(conditions=[EXPIRED], token=TOKEN))
    assert row.as_json() == {
        "namespace": "shop",
        "name": "acme",
        "tenantId": "t_acme",
        "ready": "False",
        "reason": "TokenExpired",
        "message": "the token expired at ...",
        "tokenExpires": "2026-12-10T12:00:00Z",
        "lastValidated": "2026-12-07T11:55:00Z",
        "workers": "",
    }


VALID = cond("TokenValid", "True", "TokenValid", "valid")
INVALID = cond("TokenValid", "False", "TokenExpired", "expired", at="2026-12-07T11:59:00Z")


@pytest.mark.parametrize(
    ("before", "after", "watched", "expected"),
    [
        pytest.param(
            [VALID, READY],
            [INVALID, EXPIRED],
            ("TokenValid", "Ready"),
            [
                "TokenValid=False (TokenExpired, changed): expired",
                "Ready=False (TokenExpired, changed): the token expired at ...",
            ],
            id="the check found the token expired",
        ),
        pytest.param(
            [VALID, READY],
            [VALID, READY],
            ("TokenValid", "Ready"),
            [
                "TokenValid=True (TokenValid, unchanged): valid",
                "Ready=True (Ready, unchanged): the tenant can send",
            ],
            id="nothing changed: the watched conditions as confirmed",
        ),
        pytest.param(
            [VALID, READY],
            [VALID, {**READY, "message": "the tenant can send again"}],
            ("TokenValid", "Ready"),
            ["Ready=True (Ready, changed): the tenant can send again"],
            id="a message change counts",
        ),
        pytest.param(
            [],
            [READY],
            ("TokenRotation", "Ready"),
            ["Ready=True (Ready, changed): the tenant can send"],
            id="a new condition counts",
        ),
    ],
)
def test_outcome_lines(
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    watched: tuple[str, ...],
    expected: list[str],
) -> None:
    lines = view.outcome_lines(tenant(conditions=before), tenant(conditions=after), watched)
    assert lines == expected


@pytest.mark.parametrize(
    ("healthz", "expected", "failing"),
    [
        pytest.param(
            {
                "postgresql": {"state": "up", "detail": "connected (3 row writes)"},
                "rabbitmq": {"state": "off", "detail": "no AMQP URL"},
                "graph": {"state": "up", "detail": "last call answered at T"},
            },
            [
                view.Dependency("postgresql", "up", "connected (3 row writes)"),
                view.Dependency("rabbitmq", "off", "no AMQP URL"),
                view.Dependency("graph", "up", "last call answered at T"),
            ],
            False,
            id="all seen up or off",
        ),
        pytest.param(
            {"postgresql": {"state": "down", "detail": "x"}, "graph": "weird"},
            [
                view.Dependency("postgresql", "down", "x"),
                view.Dependency("rabbitmq", "unreported", "the operator has no such probe"),
                view.Dependency("graph", "unreported", "the operator has no such probe"),
            ],
            True,
            id="down, missing and malformed probes",
        ),
    ],
)
def test_dependencies(
    healthz: dict[str, Any], expected: list[view.Dependency], failing: bool
) -> None:
    found = view.dependencies(healthz, ("postgresql", "rabbitmq", "graph"))
    assert found == expected
    assert any(d.state in view.FAILING for d in found) is failing


def test_dependency_table() -> None:
    deps = [view.Dependency("postgresql", "up", "connected"), view.Dependency("graph", "down", "")]
    assert view.dependency_table(deps).splitlines() == [
        "COMPONENT    STATE   DETAIL",
        "postgresql   up      connected",
        "graph        down    <none>",
    ]
