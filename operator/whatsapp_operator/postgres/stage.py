"""The row stage of a tenant's pass: keep its `tenant_whatsapp_config` row true to the
cluster (the plan is `rows.desired_row`, pure) and report it (`outcome.sync_fragment`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whatsapp_operator.model.fragment import Fragment
from whatsapp_operator.postgres.outcome import SyncResult, sync_fragment
from whatsapp_operator.postgres.rows import DesiredRow
from whatsapp_operator.postgres.sync import RowSync


@dataclass(frozen=True)
class RowStage:
    result: SyncResult
    fragment: Fragment


async def sync_row(
    rows: RowSync,
    desired: DesiredRow | str,
    *,
    adopt: bool,
    stored: Mapping[str, Any],
    approved: bool = False,
    bound: bool = True,
) -> RowStage:
    """Write `desired` where needed; a string instead of a row says why it is not synced.
    `adopt`, `approved`, `bound`: see rows.plan_write."""
    if isinstance(desired, str):
        result = SyncResult.skipped(desired)
    else:
        result = await rows.sync(desired, adopt=adopt, approved=approved, bound=bound)
    return RowStage(result, sync_fragment(result, stored, rows.cipher.mode))
