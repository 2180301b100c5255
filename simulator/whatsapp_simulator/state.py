"""The simulator's in-memory world: apps, tokens, WABAs, numbers, sent messages, limits.

Pure data and bookkeeping, no I/O. Time comes from an injected clock so tests can expire
tokens and refill rate-limit windows without sleeping.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from whatsapp_simulator.faults import FaultBook
from whatsapp_simulator.model import (
    GC_FREEZE_EVERY,
    MANAGEMENT_WINDOW_SECONDS,
    NEVER,
    REGISTER_LIMIT,
    REGISTER_WINDOW_SECONDS,
    REVOKED_SUBCODE,
    App,
    AuthCode,
    Config,
    Enforcement,
    Message,
    Phone,
    Token,
    Waba,
    fingerprint,
)
from whatsapp_simulator.webhook_model import WebhookBook

__all__ = [
    "NEVER",
    "REVOKED_SUBCODE",
    "App",
    "AuthCode",
    "Config",
    "Enforcement",
    "ManualClock",
    "Message",
    "Phone",
    "SimState",
    "Token",
    "Waba",
    "fingerprint",
]

Clock = Callable[[], float]


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SimState:
    """Everything the simulator knows; mutated by the Graph routes and the admin API."""

    def __init__(self, clock: Clock = time.time, rng_seed: int | None = None) -> None:
        self.clock = clock
        self.faults = FaultBook(rng_seed)
        self.reset()

    def reset(self) -> None:
        previous: WebhookBook | None = getattr(self, "webhooks", None)
        if previous is not None:
            previous.cancel_all()  # queued deliveries of the old world are never sent
        self.clock_offset = 0.0  # moved by the admin API, for servers in another process
        self.config = Config()
        self.webhooks = WebhookBook(self.config.webhooks)  # the webhook delivery log
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, Token] = {}
        self.wabas: dict[str, Waba] = {}
        self.phones: dict[str, Phone] = {}
        self.codes: dict[str, AuthCode] = {}
        self.messages: list[Message] = []
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.throttled: Counter[tuple[str, int]] = Counter()
        self.versions: Counter[tuple[str, str]] = Counter()  # (requested, served) per call
        self.faults.clear()
        self.accepted = 0  # messages accepted since reset; also the next message index
        self._phone_window: dict[str, deque[float]] = {}
        # per number: the most send attempts (accepted or not) seen in any 1-s window
        self.peak_window: dict[str, int] = {}
        self._pair_bucket: dict[tuple[str, str], tuple[float, float]] = {}
        self._register_calls: dict[str, deque[float]] = {}
        self._register_blocked_until: dict[str, float] = {}
        self._management: dict[tuple[str, str], tuple[float, int]] = {}

    def now(self) -> float:
        return self.clock() + self.clock_offset

    # --- the world -------------------------------------------------------------------

    def add_app(self, app: App) -> App:
        self.apps[app.id] = app
        return app

    def add_token(self, token: Token) -> Token:
        if not token.issued_at:
            token.issued_at = int(self.now())
        self.tokens[token.token] = token
        return token

    def find_token(self, key: str) -> Token | None:
        """A token by its string or by its fingerprint."""
        found = self.tokens.get(key)
        if found is not None:
            return found
        return next((t for t in self.tokens.values() if t.fingerprint == key), None)

    def revoke_token(self, token: Token, subcode: int = REVOKED_SUBCODE) -> None:
        token.invalid_subcode = subcode

    def expire_token(self, token: Token) -> None:
        token.expires_at = int(self.now())

    def mint_token(
        self, template: Token, app_id: str, lifetime: int | None, value: str = ""
    ) -> Token:
        """A new token with the template's grants; `lifetime` None means never expiring."""
        now = int(self.now())
        minted = Token(
            token=value or "EAAG" + secrets.token_hex(48),
            app_id=app_id,
            type=template.type,
            scopes=list(template.scopes),
            targets={k: list(v) for k, v in template.targets.items()},
            expires_at=NEVER if lifetime is None else now + lifetime,
            data_access_expires_at=template.data_access_expires_at,
            issued_at=now,
            user_id=template.user_id,
        )
        return self.add_token(minted)

    def add_waba(self, waba: Waba) -> Waba:
        self.wabas[waba.id] = waba
        return waba

    def add_phone(self, phone: Phone) -> Phone:
        self.wabas.setdefault(phone.waba_id, Waba(phone.waba_id))
        if not phone.last_onboarded_time:
            phone.last_onboarded_time = time.strftime(
                "%Y-%m-%dT%H:%M:%S+0000", time.gmtime(self.now())
            )
        self.phones[phone.id] = phone
        return phone

    def add_code(self, code: AuthCode) -> AuthCode:
        self.codes[code.code] = code
        return code

    # --- sending ---------------------------------------------------------------------

    def admit_message(self, phone: Phone, wa_id: str) -> int | None:
        """Apply the per-number and pair limits; the throttle code when over, else None."""
        now = self.now()
        limit = phone.limit_mps()
        window = self._phone_window.get(phone.id)
        if window is None:
            window = self._phone_window[phone.id] = deque()
        if limit:
            while window and window[0] <= now - 1.0:
                window.popleft()
            self.peak_window[phone.id] = max(self.peak_window.get(phone.id, 0), len(window) + 1)
            if len(window) >= limit:
                return self._throttle(phone.id, 130429)
        if phone.pair_limit_enabled:
            key = (phone.id, wa_id)
            level, last = self._pair_bucket.get(key, (float(phone.pair_burst), now))
            level = min(float(phone.pair_burst), level + (now - last) / phone.pair_refill_seconds)
            if level < 1.0:
                self._pair_bucket[key] = (level, now)
                return self._throttle(phone.id, 131056)
            self._pair_bucket[key] = (level - 1.0, now)
        if limit:
            window.append(now)
        return None

    def _throttle(self, phone_id: str, code: int) -> int:
        self.throttled[(phone_id, code)] += 1
        return code

    def record_message(
        self, phone_id: str, to: str, body: dict[str, Any], token_fingerprint: str, wa_id: str = ""
    ) -> Message:
        index = self.accepted
        self.accepted += 1
        message = Message(
            index=index,
            phone_number_id=phone_id,
            to=to,
            wa_id=wa_id or "".join(c for c in to if c.isdigit()),
            type=str(body.get("type", "")),
            body=body,
            wamid=f"wamid.HBgL{index:012d}{secrets.token_hex(8).upper()}",
            token_fingerprint=token_fingerprint,
            time=self.now(),
        )
        self.messages.append(message)
        if self.accepted % GC_FREEZE_EVERY == 0:
            # The message log holds hundreds of thousands of objects in long runs: a full
            # garbage collection over them stalls the event loop for tens of milliseconds, and
            # requests queued meanwhile get timestamps bunched closer than they arrived (a
            # throughput limit then refuses a sender that kept to it). Frozen objects are
            # still freed by reference counting; the collector just stops scanning them.
            gc.freeze()
        limit = self.config.message_log_limit
        if limit and len(self.messages) > limit:  # keep memory flat in long benchmarks
            del self.messages[: max(1, limit // 10)]
        return message

    def messages_since(self, index: int) -> list[Message]:
        """Logged messages from absolute `index` on (the log may have dropped the oldest)."""
        first = self.accepted - len(self.messages)
        return self.messages[max(0, index - first) :]

    # --- registration and management limits ------------------------------------------

    def admit_register(self, phone_id: str) -> bool:
        """At most REGISTER_LIMIT calls per number per 72 h; the next one blocks for 72 h."""
        now = self.now()
        if self._register_blocked_until.get(phone_id, 0.0) > now:
            return False
        calls = self._register_calls.setdefault(phone_id, deque())
        while calls and calls[0] <= now - REGISTER_WINDOW_SECONDS:
            calls.popleft()
        if len(calls) >= REGISTER_LIMIT:
            self._register_blocked_until[phone_id] = now + REGISTER_WINDOW_SECONDS
            calls.clear()
            return False
        calls.append(now)
        return True

    def admit_management(self, app_id: str, waba_id: str) -> bool:
        """Hourly budget per (app, WABA): a fixed window opened by its first call."""
        limit = self.config.management_limit_per_hour
        if not limit:
            return True
        now = self.now()
        key = (app_id, waba_id)
        start, used = self._management.get(key, (now, 0))
        if now - start >= MANAGEMENT_WINDOW_SECONDS:
            start, used = now, 0
        if used >= limit:
            return False
        self._management[key] = (start, used + 1)
        return True

    # --- observation -----------------------------------------------------------------

    def count(self, kind: str, token_fingerprint: str, outcome: str) -> None:
        self.calls[(kind, token_fingerprint, outcome)] += 1
