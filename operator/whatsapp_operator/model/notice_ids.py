"""Which notices a tenant's health already took: redeliveries are recognised. Pure.

A notice comes again when the broker hands it out again (a replica was lost after the
delivery and before its acknowledgement: the same message, the same receiver time `at`) and
when Meta posts a webhook again (Meta retries a delivery it saw no 200 for; the receiver then
hands on a copy with a later `at`). Applied again after a newer notice, a copy would undo it
(FLAGGED, UNFLAGGED, then FLAGGED again) and post a second Event; so each tenant's
`status.health.recentNotices` remembers the notices applied lately by their content id (the
kind, tenant, WABA and Meta's `value`, as the receiver's change id is made) and when the
receiver handled them. A notice whose content was applied within `REDELIVERY_WINDOW` of its
own `at` is a repeat: nothing is applied, no Event is posted, nothing is counted.

Meta's entry carries no id, and its `time` does not reach the notice (the receiver keeps
`value` only), so the content stands for the id. The cost: the very same change reported
twice by Meta within the window (a template APPROVED, PAUSED and APPROVED again within an
hour) is taken once; outside the window it is taken again, as new.
"""

from __future__ import annotations

import hashlib
import json

from whatsapp_operator.model.notices import Notice

REDELIVERY_WINDOW = 3600.0  # seconds between two copies of one notice's receiver times
MAX_REMEMBERED = 200  # notices remembered per tenant (the oldest forgotten first)

Seen = tuple[tuple[str, float], ...]  # (content id, receiver time), oldest first


def notice_id(notice: Notice) -> str:
    """The notice's content id: equal for every copy of it, whoever delivered it again."""
    content = [notice.kind, notice.tenant_id, notice.waba_id, notice.value]
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def is_repeat(seen: Seen, notice: Notice, window: float = REDELIVERY_WINDOW) -> bool:
    """True when a copy of `notice` was applied within `window` seconds of it."""
    found = notice_id(notice)
    return any(i == found and abs(notice.at - at) <= window for i, at in seen)


def remember(seen: Seen, notice: Notice, window: float = REDELIVERY_WINDOW) -> Seen:
    """`seen` with `notice` applied: the newest last, those older than the window (to the
    newest time remembered) forgotten, at most MAX_REMEMBERED."""
    found = notice_id(notice)
    newest = max([notice.at, *(at for _, at in seen)])
    kept = [(i, at) for i, at in seen if i != found and newest - at <= window]
    kept.append((found, notice.at))
    kept.sort(key=lambda entry: entry[1])
    return tuple(kept[-MAX_REMEMBERED:])
