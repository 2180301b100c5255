"""The 24-hour customer service window: refuse a free-form message Meta would refuse anyway,
before calling Meta. Pure: the book of customers' last messages and the decision.

Meta: "When a WhatsApp user messages you or calls you, a 24-hour timer called a customer
service window starts. If the user messages or calls you again before the timer expires, the
timer resets to 24 hours. While the window is open, you can send any of the following service
message types to the user. When the window closes, you can only send pre-approved template
messages." (https://developers.facebook.com/documentation/business-messaging/whatsapp/
messages/send-messages#customer-service-windows). Outside it Meta refuses the send with 131047
("Re-engagement message"). So every type but `template` needs an open window: text, media,
location, contacts, interactive and reactions alike.

The receiver publishes one `window_record` per customer message (`whatsapp.windows`, routing
key the pool); each worker reads its pool's records of the last 24 hours
(`whatsapp.<pool>.windows`) into a `WindowBook`: (business number, customer's digits) -> the
customer's last message (Meta's timestamp). For tenants whose webhooks reach the receiver
(`webhook_app_id` in the resolved config) and with `service_window_check: auto`, a free-form
message to a customer without a message in the last 24 hours is dead-lettered with reason
`outside_service_window` (code 131047, Meta's own for it) without a call to Meta.

What the book cannot see, it does not refuse: until the worker has read the records up to now
(`caught_up`) nothing is checked (Meta answers 131047 itself: `permanent_error`). A customer's
call also opens the window, and calls are not in the records: a tenant that answers calls
with free-form messages sets `service_window_check: off`. Meta may know a customer by a
WhatsApp id other than the number written (`contacts[].wa_id` of a send's answer): the book
learns these from accepted sends and checks both.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Literal

from whatsapp_contract.webhook import SERVICE_WINDOW_SECONDS, digits

from .delivery import Failure

OUTSIDE_SERVICE_WINDOW: Final = "outside_service_window"
META_CODE: Final = 131047  # Meta's "Re-engagement message": outside the window
ALWAYS_ALLOWED: Final = frozenset({"template"})
ALIASES: Final = 100_000  # number -> wa_id pairs remembered
PRUNE_EVERY: Final = 50_000  # records between two sweeps of expired windows
WindowCheck = Literal["auto", "off"]


def _key(phone_number_id: str, customer: str) -> int:
    """A compact key (8 bytes) for a (business number, customer digits) pair: a big pool's
    book holds every customer who wrote in the last 24 hours."""
    raw = f"{phone_number_id}:{customer}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


class WindowBook:
    """(business number, customer digits) -> the customer's last message, unix seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._last: dict[int, int] = {}
        self._aliases: OrderedDict[str, str] = OrderedDict()
        self._since_prune = 0

    def __len__(self) -> int:
        return len(self._last)

    def record(self, phone_number_id: str, wa_id: str, timestamp: int) -> None:
        key = _key(phone_number_id, digits(wa_id))
        if timestamp > self._last.get(key, 0):
            self._last[key] = timestamp
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune()

    def prune(self) -> None:
        """Forget windows closed for good."""
        self._since_prune = 0
        oldest = int(self.clock()) - SERVICE_WINDOW_SECONDS
        self._last = {k: ts for k, ts in self._last.items() if ts > oldest}

    def alias(self, to: str, wa_id: str | None) -> None:
        """Meta answered a send to `to` with another WhatsApp id: customers write from it."""
        number, meta = digits(to), digits(wa_id or "")
        if not meta or meta == number:
            return
        self._aliases.pop(number, None)
        self._aliases[number] = meta
        while len(self._aliases) > ALIASES:
            self._aliases.popitem(last=False)

    def last(self, phone_number_id: str, to: str) -> int | None:
        """The customer's last message to this number (by the number, or its known wa_id)."""
        number = digits(to)
        found = self._last.get(_key(phone_number_id, number))
        alias = self._aliases.get(number)
        if alias is not None:
            other = self._last.get(_key(phone_number_id, alias))
            if other is not None and (found is None or other > found):
                found = other
        return found


class Window(enum.Enum):
    SEND = "send"  # a template, or the window is open
    UNCHECKED = "unchecked"  # not checked: off, no receiver for the tenant, book not ready
    OUTSIDE = "outside"  # free-form, and no customer message in the last 24 hours


def window_verdict(
    *,
    check: WindowCheck,
    webhook_app_id: str | None,
    message_type: str,
    caught_up: bool,
    last_message: int | None,
    now: float,
) -> Window:
    if check == "off" or not webhook_app_id or not caught_up:
        return Window.UNCHECKED
    if message_type in ALWAYS_ALLOWED:
        return Window.SEND
    if last_message is not None and now - last_message < SERVICE_WINDOW_SECONDS:
        return Window.SEND
    return Window.OUTSIDE


def outside(message_type: str, last_message: int | None, now: float) -> Failure:
    """The dead letter of a free-form message outside the window (never the number)."""
    if last_message is None:
        since = "no message from this customer to this number in the last 24 hours"
    else:
        hours = (now - last_message) / 3600
        since = f"the customer's last message to this number was {hours:.1f} h ago"
    return Failure(
        reason=OUTSIDE_SERVICE_WINDOW,
        detail=f"a {message_type} message is free-form and the 24-hour customer service window "
        f"is closed ({since}): outside it Meta accepts only templates (it would refuse with "
        f"{META_CODE}). Not sent: send a template, or wait for the customer to write.",
        code=META_CODE,
        error_class="permanent",
    )
