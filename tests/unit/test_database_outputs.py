"""What the PostgreSQL layer lets out (issue 19): no database user or host in a tenant's
status or Events, no database URL in the settings' repr, a Warning when a plaintext token
is found in a row while encrypting, and no database without the audit key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from whatsapp_operator.model.conditions import Reason
from whatsapp_operator.postgres import rows
from whatsapp_operator.postgres.crypto import Keyring, TokenCipher
from whatsapp_operator.postgres.database import Database
from whatsapp_operator.postgres.errors import (
    DatabaseError,
    DatabaseUnavailable,
    location_of,
    without_location,
)
from whatsapp_operator.postgres.outcome import SyncResult, sync_fragment
from whatsapp_operator.postgres.sync import RowSync
from whatsapp_operator.settings import OperatorConfig

DSN = "postgresql://alice:hunter2secret@db-7.internal.example:5433/whatsapp"
REFUSED = (
    'connection failed: connection to server at "db-7.internal.example" (10.1.2.3), port 5433 '
    "failed: Connection refused"
)


@pytest.mark.parametrize(
    ("dsn", "text", "shown"),
    [
        pytest.param(
            DSN,
            f"cannot connect to postgresql://alice@db-7.internal.example:5433/whatsapp: {REFUSED}",
            'cannot connect to the database: connection failed: connection to server at '
            '"<hidden>" (10.1.2.3), port 5433 failed: Connection refused',
            id="unreachable",
        ),
        pytest.param(
            DSN,
            'postgresql://alice@db-7.internal.example:5433/whatsapp: password authentication '
            'failed for user "alice"',
            'the database: password authentication failed for user "<hidden>"',
            id="credentials",
        ),
        pytest.param(
            "host=10.0.0.5,10.0.0.6 user=postgres dbname=app",
            "connection to server at \"10.0.0.6\", port 5432 failed; role postgres; PostgreSQL",
            'connection to server at "<hidden>", port 5432 failed; role <hidden>; PostgreSQL',
            id="several hosts, key=value form",
        ),
        pytest.param(
            "postgresql://bob@h/x", "host 'h', bobby, ssh", "host '<hidden>', bobby, ssh",
            id="whole words only",
        ),
    ],
)  # fmt: skip
def test_messages_for_the_status_leave_out_user_and_host(dsn: str, text: str, shown: str) -> None:
    assert without_location(text, location_of(dsn)) == shown


def desired() -> rows.DesiredRow:
    return rows.DesiredRow(
        tenant_id="t_out", waba_id="1", phone_number_id="2", business_id=None,
        display_phone_number=None, quality_rating=None, is_active=True, configured=True,
        token="EAAoutputsTOKEN0123456789abcdef", token_fingerprint="sha256:0", k8s_uid="u",
        managed_by=rows.DEFAULT_OWNER, k8s_namespace="ns", k8s_name="acme", synced_generation=1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("error", "reason"),
    [(DatabaseUnavailable, Reason.DATABASE_UNAVAILABLE), (DatabaseError, "DatabaseError")],
)
async def test_sync_results_name_neither_user_nor_host(
    monkeypatch: pytest.MonkeyPatch, error: type[DatabaseError], reason: str
) -> None:
    """Issue 19: the Synced condition said `cannot connect to postgresql://user@host/...`."""
    db = Database(DSN)  # never connects here
    sync = RowSync(db, TokenCipher("plaintext"), lambda: datetime.now(UTC))

    async def fetch(tenant_id: str) -> Any:
        raise error(f"cannot connect to {db.target}: {REFUSED}")

    monkeypatch.setattr(db, "fetch", fetch)
    try:
        results = [await sync.sync(desired(), adopt=False) for _ in range(2)]  # then: health
    finally:
        await sync.health.close()
    for result in results[: 2 if error is DatabaseUnavailable else 1]:
        assert result.reason == reason
        fragment = sync_fragment(result, {}, "plaintext")
        shown = f"{result.message} {fragment.condition} {fragment.status}"
        for hidden in ("alice", "db-7.internal.example", "hunter2secret", "postgresql://"):
            assert hidden not in shown
        assert "Connection refused" in shown  # what is useful stays
    assert "user" not in str(sync_fragment(results[0], {}, "plaintext").status["database"])


def test_a_plaintext_token_found_while_encrypting_is_a_warning_event() -> None:
    result = SyncResult.synced(7, wrote=True, at=None, plaintext_columns=("access_token",))
    (event,) = sync_fragment(result, {}, "encrypted").events
    assert (event.type, event.reason) == ("Warning", Reason.PLAINTEXT_TOKEN_REPLACED)
    assert "row 7 held a plaintext token in access_token" in event.message
    assert sync_fragment(SyncResult.synced(7, wrote=True, at=None), {}, "encrypted").events == ()


def test_the_settings_never_show_the_database_url() -> None:
    """Issue 19: `database_url` was in the settings' repr, password included."""
    cfg = OperatorConfig(database_url=DSN, audit_key_file="/etc/audit/key")
    for shown in (repr(cfg), str(cfg)):
        assert "hunter2secret" not in shown
        assert "database_url" not in shown
    assert cfg.database_url == DSN


def test_a_database_needs_the_audit_key() -> None:
    with pytest.raises(ValidationError, match="database_url needs audit_key_file") as err:
        OperatorConfig(database_url=DSN)
    assert "hunter2secret" not in str(err.value)
    assert OperatorConfig().audit_key_file is None  # no database, no key needed


def test_encrypting_with_several_keys_and_no_primary_is_refused_at_start() -> None:
    """wiring.connect turns this into kopf.PermanentError: one line, exit 1."""
    with pytest.raises(ValueError, match="none named primary: add an entry `primary`"):
        TokenCipher("encrypted", Keyring({"dev-key-1": b"a" * 32, "2026-11": b"b" * 32}))
