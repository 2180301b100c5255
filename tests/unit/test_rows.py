"""The desired row and the write plan: what reaches tenant_whatsapp_config, and when."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from whatsapp_operator.model.facts import PhoneFacts
from whatsapp_operator.model.spec import parse_spec
from whatsapp_operator.postgres.rows import (
    HASHED_COLUMNS,
    DesiredRow,
    StoredRow,
    WriteKind,
    deactivated,
    desired_row,
    plan_write,
    row_hash,
    sql_row_hash,
)

TOKEN = "EAAtoken-for-rows-0123456789"
SPEC = {
    "tenantId": "t_1",
    "wabaId": "111",
    "phoneNumberId": "222",
    "tokenSecretRef": {"name": "s"},
}


def desired(**changes: Any) -> DesiredRow:
    spec, _ = parse_spec({**SPEC, **changes.pop("spec", {})})
    assert spec is not None
    base = desired_row(
        spec=spec,
        uid="uid-1",
        namespace="ns",
        name="acme",
        generation=3,
        token=changes.pop("token", TOKEN),
        token_fingerprint="sha256:abc",
        phone=PhoneFacts.from_status(
            changes.pop("phone", {"displayPhoneNumber": "+1 555", "qualityRating": "GREEN"})
        ),
        ready=changes.pop("ready", True),
        was_configured=changes.pop("was_configured", False),
    )
    return replace(base, **changes)


def stored_from(row: DesiredRow, access_token: str = "sealed", **changes: Any) -> StoredRow:
    values = {c: getattr(row, c) for c in HASHED_COLUMNS if c != "access_token"}
    values["access_token"] = access_token
    stored = StoredRow(
        id=7, tenant_id=row.tenant_id, k8s_uid=row.k8s_uid, k8s_namespace=row.k8s_namespace,
        **values,
    )  # fmt: skip
    stored = replace(stored, row_hash=row_hash(stored.values()))
    return replace(stored, **changes)  # changes after hashing: drift


def plan(
    stored: StoredRow | None,
    row: DesiredRow,
    *,
    stored_token: str | None = TOKEN,
    store_token: bool = True,
    adopt: bool = False,
    approved: bool = False,
    bound: bool = True,
) -> Any:
    return plan_write(
        stored, row, stored_token=stored_token, store_token=store_token, adopt=adopt,
        approved=approved, bound=bound,
    )  # fmt: skip


def test_desired_row_from_spec_token_and_meta_facts() -> None:
    row = desired()
    assert (row.tenant_id, row.waba_id, row.phone_number_id) == ("t_1", "111", "222")
    assert (row.display_phone_number, row.quality_rating) == ("+1 555", "GREEN")
    assert row.is_active is True
    assert row.configured is True
    assert row.managed_by == "whatsapp-operator"
    assert TOKEN not in repr(row)


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        pytest.param(
            {"spec": {"active": False}}, "is_active", False, id="is_active follows spec.active"
        ),
        pytest.param({"ready": False}, "configured", False, id="not configured before Ready"),
        pytest.param(
            {"ready": False, "was_configured": True},
            "configured",
            True,
            id="configured stays once Ready",
        ),
        pytest.param({"token": None}, "token_fingerprint", None, id="no token: no fingerprint"),
        pytest.param({"phone": {}}, "display_phone_number", None, id="no Meta facts yet"),
        pytest.param(
            {"phone": {"displayPhoneNumber": "9" * 80}},
            "display_phone_number",
            "9" * 50,
            id="fits VARCHAR(50)",
        ),
    ],
)
def test_desired_row_fields(kwargs: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(desired(**kwargs), field) == expected


def test_deactivated_wipes_the_token() -> None:
    row = deactivated(desired())
    assert (row.is_active, row.token, row.token_fingerprint) == (False, None, None)


@pytest.mark.parametrize(
    ("case", "stored", "kwargs", "kind", "columns", "drift"),
    [
        pytest.param("none", None, {}, WriteKind.INSERT, ("*",), False, id="no row: insert"),
        pytest.param("same", {}, {}, WriteKind.NOOP, (), False, id="nothing changed: no write"),
        pytest.param(
            "quality",
            {"quality_rating": "YELLOW"},
            {},
            WriteKind.UPDATE,
            ("quality_rating",),
            True,
            id="column edited behind our back: drift",
        ),
        pytest.param(
            "token",
            {},
            {"stored_token": "EAAold"},
            WriteKind.UPDATE,
            ("access_token",),
            False,
            id="token replaced in the Secret",
        ),
        pytest.param(
            "tampered",
            {},
            {"stored_token": None},
            WriteKind.UPDATE,
            ("access_token",),
            False,
            id="undecryptable ciphertext is rewritten",
        ),
        pytest.param(
            "foreign",
            {"managed_by": "tenant-service"},
            {},
            WriteKind.NOT_MANAGED,
            (),
            False,
            id="row of someone else: not managed",
        ),
        pytest.param(
            "adopt",
            {"managed_by": None},
            {"adopt": True, "approved": True},
            WriteKind.UPDATE,
            ("managed_by",),
            True,
            id="adopt, approved by a policy, takes it over",
        ),
        pytest.param(
            "adopt unapproved",
            {"managed_by": None},
            {"adopt": True},
            WriteKind.ADOPTION_NOT_APPROVED,
            (),
            False,
            id="adopt without the policy's approval: refused",
        ),
        pytest.param(
            "approval alone",
            {"managed_by": "tenant-service"},
            {"approved": True},
            WriteKind.NOT_MANAGED,
            (),
            False,
            id="the policy's approval without the tenant asking: not managed",
        ),
        pytest.param(
            "adopt, policy off",
            {"managed_by": None},
            {"adopt": True, "bound": False},
            WriteKind.UPDATE,
            ("managed_by",),
            True,
            id="--tenant-policy off: adopt needs no approval",
        ),
    ],
)
def test_plan_write(
    case: str,
    stored: dict[str, Any] | None,
    kwargs: dict[str, Any],
    kind: WriteKind,
    columns: tuple[str, ...],
    drift: bool,
) -> None:
    row = desired()
    current = None if stored is None else stored_from(row, **stored)
    result = plan(current, row, **kwargs)
    assert result.kind is kind
    assert result.columns == columns
    assert result.drift is drift


def test_spec_change_is_an_update_without_drift() -> None:
    row = desired()
    current = stored_from(row)
    changed = desired(spec={"active": False})
    result = plan(current, changed)
    assert (result.kind, result.columns, result.drift) == (WriteKind.UPDATE, ("is_active",), False)


def test_none_mode_keeps_the_column_empty() -> None:
    row = desired()
    assert (
        plan(stored_from(row, access_token=""), row, stored_token=None, store_token=False).kind
        is WriteKind.NOOP
    )
    leftover = stored_from(row, access_token="EAAplain")
    assert plan(leftover, row, stored_token="EAAplain", store_token=False).columns == (
        "access_token",
    )


def test_row_hash_is_stable_and_covers_every_managed_column() -> None:
    base = stored_from(desired())
    assert base.drifted is False
    for column in HASHED_COLUMNS:
        value = getattr(base, column)
        other = (not value) if isinstance(value, bool) else f"{value}x"
        assert replace(base, **{column: other}).drifted, column


def test_row_hash_treats_null_as_empty_like_sql() -> None:
    assert row_hash({"business_id": None}) == row_hash({"business_id": ""})
    assert "coalesce(t.business_id::text, '')" in sql_row_hash("t")


# --- rows stay with the namespace they were written for (issue 19) ----------------------------
@pytest.mark.parametrize(
    ("stored", "kwargs", "kind", "columns"),
    [
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a"},
            {},
            WriteKind.OTHER_NAMESPACE,
            (),
            id="written for another namespace: never handed over",
        ),
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a"},
            {"adopt": True},
            WriteKind.OTHER_NAMESPACE,
            (),
            id="asked, not approved: refused",
        ),
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a"},
            {"approved": True},
            WriteKind.OTHER_NAMESPACE,
            (),
            id="approved, not asked: refused",
        ),
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a"},
            {"adopt": True, "approved": True},
            WriteKind.UPDATE,
            ("k8s_uid", "k8s_namespace"),
            id="an approved move takes it",
        ),
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a", "waba_id": "999"},
            {"adopt": True, "approved": True},
            WriteKind.UPDATE,
            ("waba_id", "k8s_uid", "k8s_namespace"),
            id="a move rewrites what differs",
        ),
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a", "waba_id": "999"},
            {},
            WriteKind.OTHER_NAMESPACE,
            (),
            id="another namespace's WABA is never replaced",
        ),
        pytest.param(
            {"k8s_namespace": "other", "k8s_uid": "uid-a"},
            {"bound": False},
            WriteKind.UPDATE,
            ("k8s_uid", "k8s_namespace"),
            id="--tenant-policy off: as before, any namespace",
        ),
        pytest.param(
            {"k8s_uid": "uid-old"},
            {},
            WriteKind.UPDATE,
            ("k8s_uid",),
            id="recreated in the same namespace: the row follows the new object",
        ),
        pytest.param(
            {"k8s_namespace": None},
            {},
            WriteKind.NOOP,
            (),
            id="no namespace recorded: not another namespace's",
        ),
    ],
)
def test_rows_stay_with_their_namespace(
    stored: dict[str, Any], kwargs: dict[str, Any], kind: WriteKind, columns: tuple[str, ...]
) -> None:
    row = desired()  # namespace "ns", uid "uid-1"
    current = stored_from(row, **stored)
    result = plan(current, row, **kwargs)
    assert (result.kind, result.columns) == (kind, columns)
    if kind is WriteKind.UPDATE and "k8s_namespace" in columns:
        assert result.adopting  # a RowAdopted Event says it was taken over
