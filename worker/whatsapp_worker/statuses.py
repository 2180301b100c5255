"""Meta's status webhooks, as the receiver publishes them, for sends whose answer never came.
Pure: reading a status event, the bounded memory of recent statuses (with waiters), and the
decisions.

A send can end without an answer after its request may have reached Meta: the request timed
out or its connection broke after it was written (`GraphUnavailable.maybe_sent`), or the
worker sending it was killed (the send journal's verdict UNCERTAIN, `journal.py`). Meta has
no idempotency key, so until now the worker resent it (a possible duplicate) or dead-lettered
it (`outcome_unknown`). When the receiver (`whatsapp-webhook`) runs for the tenant (its
resolved config has `webhook_app_id`), every message Meta accepted gets a status webhook
(`sent`, `delivered`, `read` or `failed`) carrying the worker's message id in
`biz_opaque_callback_data` (`callback.py`); the receiver publishes it to `whatsapp.results`
as `<pool>.<status>` with `"source": "webhook"` (`whatsapp_contract.webhook.status_event`).
So the worker first waits up to `status_wait` seconds for one:

- a status came: Meta has the message. It is settled as accepted with the status's wamid,
  and not sent again (`resolvedBy: "webhook"` in its result event);
- statuses of the same business number that Meta stamped after the wait began came, but not
  this message's: Meta is past it and never had it. It is sent (again), marked
  `possibleDuplicate` as before. The same when `status_wait` ends with nothing on its way
  (no status of the pool read for `QUIET` seconds, and none due for a send of this process);
- the number's statuses still come, all from before the wait: the webhooks lag behind.
  The message is parked in the shard's delay queue (header `x-whatsapp-unanswered`) and
  looked at again when it comes back, until `status_lookback` after the wait began; then,
  and whenever the statuses cannot tell at all (not read up to now), as before.

The receiver processes a number's statuses in order (one shard per number), so a later
status of the number having come means an earlier one would have come first.

Meta sends `sent` for an accepted message, or `failed` when it cannot be sent; `delivered`
and `read` may come first or alone (https://developers.facebook.com/documentation/
business-messaging/whatsapp/webhooks/reference/messages/status/): any of them proves the
request reached Meta.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from whatsapp_contract.webhook import STATUSES

from .journal import Redelivery, UncertainSends, Verdict
from .journal import decide as journal_decide

MEMORY: Final = 100_000  # message ids remembered (about 25 MB at most)
RESOLVED_BY_WEBHOOK: Final = "webhook"
# Meta's timestamps are whole seconds, and its clock and the worker's differ a little
MARGIN: Final = 2.0
# a pool none of whose statuses came for this long has nothing on its way
QUIET: Final = 5.0


@dataclass(frozen=True)
class Seen:
    """A message's last status from Meta's webhooks, and its wamid."""

    status: str
    wamid: str


@dataclass(frozen=True)
class StatusRecord:
    """One status event of the receiver: whose message (None: not sent with an id by a
    worker), which business number, and Meta's time of it (unix seconds)."""

    message_id: str | None
    phone_number_id: str
    seen: Seen
    timestamp: int | None


def parse_status_event(body: bytes, pool: str) -> StatusRecord | None:
    """A `<pool>.<status>` event of the receiver; None for anything else (the worker's own
    result events share the exchange and keys)."""
    if b"webhook" not in body:  # cheap: most bodies that are not a receiver's event go here
        return None
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or event.get("source") != "webhook":
        return None
    message_id, status, wamid = event.get("messageId"), event.get("status"), event.get("wamid")
    phone, timestamp = event.get("phoneNumberId"), event.get("timestamp")
    if event.get("pool") not in (None, pool) or status not in STATUSES:
        return None
    if not (isinstance(wamid, str) and wamid and isinstance(phone, str) and phone):
        return None
    if not (message_id is None or (isinstance(message_id, str) and message_id)):
        return None
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        timestamp = None
    return StatusRecord(message_id, phone, Seen(status, wamid), timestamp)


class StatusBook:
    """The statuses of the last `limit` messages seen, the sends waiting for one, and per
    business number how far Meta's statuses have come (the latest timestamp read, and when)."""

    def __init__(self, limit: int = MEMORY, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._seen: OrderedDict[str, Seen] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[Seen]]] = {}
        self._latest: dict[str, int] = {}
        self._last_read: float | None = None
        self._unheard_since: float | None = None  # a send accepted after the last status

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, record: StatusRecord) -> None:
        phone = record.phone_number_id
        self._last_read = self.clock()
        self._unheard_since = None
        if record.timestamp is not None and record.timestamp > self._latest.get(phone, 0):
            self._latest[phone] = record.timestamp
        if record.message_id is not None:
            self._remember(_key(phone, record.message_id), record.seen)

    def _remember(self, key: str, seen: Seen) -> None:
        known = self._seen.pop(key, None)
        # the first wamid Meta gave stays (a later status names the same message)
        self._seen[key] = Seen(seen.status, known.wamid) if known else seen
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(self._seen[key])

    def get(self, phone_number_id: str, message_id: str) -> Seen | None:
        """The last status of the message `message_id` sent from `phone_number_id`: a message
        id is the producer's, so only the number's own statuses can settle its sends (another
        tenant's message with the same id never does)."""
        return self._seen.get(_key(phone_number_id, message_id))

    def latest(self, phone_number_id: str) -> int | None:
        """Meta's timestamp of the latest status of this number read."""
        return self._latest.get(phone_number_id)

    def idle(self) -> float | None:
        """Seconds since a status of the pool was last read (None: never)."""
        return None if self._last_read is None else self.clock() - self._last_read

    def sent(self) -> None:
        """Meta accepted a send of this process (its statuses are to come)."""
        if self._unheard_since is None:
            self._unheard_since = self.clock()

    def unheard(self) -> float | None:
        """Seconds since the first send Meta accepted after the last status read (None:
        none): statuses that should have come by now did not when this grows."""
        return None if self._unheard_since is None else self.clock() - self._unheard_since

    async def wait(self, phone_number_id: str, message_id: str, within: float) -> Seen | None:
        """The message's status: at once if known, else the first to come `within` seconds."""
        key = _key(phone_number_id, message_id)
        known = self._seen.get(key)
        if known is not None or within <= 0:
            return known
        waiter: asyncio.Future[Seen] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), within)
        except TimeoutError:
            return self._seen.get(key)
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[key]


def _key(phone_number_id: str, message_id: str) -> str:
    return f"{phone_number_id}/{message_id}"  # number ids are digits: no ambiguity


# --- decisions ------------------------------------------------------------------------------


def watched(*, webhook_app_id: str | None, message_id: str | None, status_wait: float) -> bool:
    """Whether an uncertain send of this message is resolved from the status webhooks: its
    tenant's webhooks reach the receiver, it has an id to join by, and waiting is on."""
    return bool(webhook_app_id) and bool(message_id) and status_wait > 0


class Resolution(enum.Enum):
    ACCEPTED = "accepted"  # a status came: Meta has it; settle as accepted, no resend
    RESEND = "resend"  # later statuses of its number came: Meta is past it; (re)send it
    QUIET = "quiet"  # no status of the pool is on its way: nothing is late; (re)send it
    LAGGING = "lagging"  # the number's statuses come, all from before: look again later
    AS_BEFORE = "as_before"  # the statuses cannot tell: what the worker did before


def resolve(
    seen: Seen | None, *, caught_up: bool, latest: int | None, since: float
) -> Resolution | None:
    """While waiting (since `since`, unix seconds): a status of the message means Meta has
    it; statuses of its number that Meta stamped after the wait began mean Meta is past it
    (its own would have come first); else None: wait on."""
    if seen is not None:
        return Resolution.ACCEPTED
    if caught_up and latest is not None and latest >= since + MARGIN:
        return Resolution.RESEND
    return None


def at_deadline(
    *,
    caught_up: bool,
    latest: int | None,
    idle: float | None,
    unheard: float | None,
    since: float,
) -> Resolution:
    """`status_wait` is over without the message's status. Its number past it: RESEND. No
    status of the pool came for `QUIET` seconds (`idle`, None: never), and none was due
    either (no send this process made since the last status is `QUIET` seconds old:
    `unheard`): nothing is on its way, QUIET. Else the webhooks lag (statuses still come, or
    stopped coming while due): LAGGING, they cannot tell yet."""
    if not caught_up:
        return Resolution.AS_BEFORE
    if latest is not None and latest >= since + MARGIN:
        return Resolution.RESEND
    silent = idle is None or idle >= QUIET
    if silent and (unheard is None or unheard < QUIET):
        return Resolution.QUIET
    return Resolution.LAGGING


def on_return(
    seen: Seen | None,
    *,
    caught_up: bool,
    latest: int | None,
    idle: float | None,
    unheard: float | None,
    since: float,
    now: float,
    patience: float,
) -> Resolution:
    """A copy parked while the webhooks lagged is back: decided now if it can be; parked
    again while within `patience` of the wait's beginning; else as at a deadline, where a
    lag left is AS_BEFORE."""
    decided = resolve(seen, caught_up=caught_up, latest=latest, since=since)
    if decided is not None:
        return decided
    if now - since < patience:
        return Resolution.LAGGING
    late = at_deadline(caught_up=caught_up, latest=latest, idle=idle, unheard=unheard, since=since)
    return Resolution.AS_BEFORE if late is Resolution.LAGGING else late


def redelivery(
    verdict: Verdict, uncertain_sends: UncertainSends, *, watched: bool
) -> Redelivery | None:
    """What to do with a redelivered, journalled delivery before any wait: the journal's
    decision, or None when it is uncertain and the status webhooks are to be waited for."""
    if verdict is Verdict.UNCERTAIN and watched:
        return None
    return journal_decide(verdict, uncertain_sends)


class Next(enum.Enum):
    """What becomes of an unanswered send once the statuses were looked at."""

    SETTLE = "settle"  # accepted, with the status's wamid; not sent again
    SEND = "send"  # sent (again): a possible duplicate
    PARK = "park"  # into the delay queue (H_UNANSWERED), to look again later
    DEAD_LETTER = "dead_letter"  # outcome_unknown


Case = Literal["timeout", "redelivery"]


def after_wait(resolution: Resolution, case: Case, uncertain_sends: UncertainSends) -> Next:
    """`timeout`: a request that timed out (before the receiver: retried); `redelivery`: a
    killed worker's send (before: `uncertain_sends`, outcome_unknown by default)."""
    if resolution is Resolution.ACCEPTED:
        return Next.SETTLE
    if resolution in (Resolution.RESEND, Resolution.QUIET):
        return Next.SEND
    if resolution is Resolution.LAGGING:
        return Next.PARK
    if case == "timeout":
        return Next.SEND
    decided = journal_decide(Verdict.UNCERTAIN, uncertain_sends)
    return Next.DEAD_LETTER if decided is Redelivery.DEAD_LETTER else Next.SEND


# --- a copy parked while the webhooks lag -----------------------------------------------------
H_UNANSWERED: Final = "x-whatsapp-unanswered"  # "<case>:<since>" (unix seconds)


def unanswered(case: Case, since: float) -> str:
    return f"{case}:{since!r}"


def read_unanswered(headers: Mapping[str, Any]) -> tuple[Case, float] | None:
    """(case, when the wait began) of a parked copy; None for anything else."""
    value = headers.get(H_UNANSWERED)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, str):
        return None
    case, _, since = value.partition(":")
    try:
        began = float(since)
    except ValueError:
        return None
    if case not in ("timeout", "redelivery") or not math.isfinite(began):
        return None
    return ("timeout" if case == "timeout" else "redelivery"), began
