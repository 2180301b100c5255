"""What the receiver has published, per message: the forward-only, de-duplicating memory.

Meta delivers status webhooks more than once and out of order (Status messages webhook
reference, https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/
reference/messages/status/). The processor publishes a status only when it moves the message
forward (contract `advances`: sent -> delivered -> read, `failed` final); this memory holds the
last status published per wamid, and a mark per inbound message id (key `in:<id>`), so a
customer's message is handed on once.

It learns from two sources: the processor's own confirmed publishes, and the status log (the
stream `whatsapp.webhooks.statuses`, `status_log.py`) where every replica's publishes land; so
what it holds only ever moves forward (`learn`). Bounded: least recently used entries go first
(a status arriving for a message forgotten that way is published again; with the default size
that is days of traffic). Pure: no I/O.
"""

from __future__ import annotations

from collections import OrderedDict

from whatsapp_contract.webhook import STATUSES, advances

DEFAULT_MAX_ENTRIES = 500_000  # about 250 bytes each: ~125 MB at most
INBOUND_PREFIX = "in:"
SEEN = "seen"  # the value of an inbound message's entry


def inbound_key(message_id: str) -> str:
    """The memory key of an inbound message (wamids of ours and the customer's never mix)."""
    return f"{INBOUND_PREFIX}{message_id}"


def merged(previous: str | None, new: str) -> str | None:
    """What the memory holds after learning `new` over `previous`: the later status of the
    two (forward only); a mark (not a status) is kept once set. None: nothing to change."""
    if previous is None:
        return new
    if new in STATUSES and previous in STATUSES:
        return new if advances(previous, new) else None
    return None


class StatusMemory:
    """key (a wamid, or `in:<id>`) -> the last status (or mark) published; an LRU."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.evicted = 0
        self._entries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def last(self, key: str) -> str | None:
        """The last status published for `key` (None: nothing known)."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def publishes(self, key: str, status: str) -> bool:
        """Whether a status webhook for `key` is to be published now."""
        return advances(self.last(key), status)

    def learn(self, key: str, value: str) -> bool:
        """Remember that `value` was published for `key`; returns whether the entry changed."""
        previous = self._entries.get(key)
        new = merged(previous, value)
        if new is None:
            if previous is not None:
                self._entries.move_to_end(key)
            return False
        self._entries[key] = new
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evicted += 1
        return True
