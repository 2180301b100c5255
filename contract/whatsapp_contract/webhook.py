"""Webhooks: what the receiver (`whatsapp_webhook`), the operator and the workers agree on.

Meta posts webhooks to the receiver; the receiver checks them and hands them on over RabbitMQ.
Names and shapes live here, once, so that each side codes against the same contract
(docs/webhook.md tells the whole story, docs/workers.md the result events):

- *ingress*: the receiver's HTTP side publishes each checked change, persistent and confirmed,
  to the direct exchange `whatsapp.webhooks`, routing key the shard (`ingress_shard`), bound
  to one quorum queue per shard (`ingress_queue`, single active consumer);
- *processing*: the one active consumer of a shard publishes each status once, moving forward
  only (`advances`), as a result event to `whatsapp.results` (`<pool>.<status>`), each inbound
  message to `whatsapp.inbound` (routing key: the tenant id), each inbound message's service
  window to `whatsapp.windows` (routing key: the pool) and account and number notices to
  `whatsapp.notices` (routing key: the tenant's namespace), all persistent and confirmed;
- the receiver remembers what it published in the stream `whatsapp.webhooks.statuses` (bound
  to the results exchange), so a process that takes a shard over publishes nothing twice;
- a worker reads its pool's statuses in the stream `whatsapp.<pool>.statuses` (to resolve a
  send whose answer it never got) and its pool's windows in `whatsapp.<pool>.windows`.

The receiver's config (`ReceiverConfig`) is what the operator publishes for it: the apps
(their secrets) and the numbers it may route. Like the sender pools' configs it is a Secret's
JSON payload, and secrets are `SecretStr`: only `dump_receiver_config` reveals them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SCHEMA_VERSION: Literal[1] = 1

# --- RabbitMQ names --------------------------------------------------------------------------
INGRESS_EXCHANGE = "whatsapp.webhooks"  # direct; routing key: str(shard)
DEFAULT_INGRESS_SHARDS = 4
RESULTS_EXCHANGE = "whatsapp.results"  # topic; the workers' results go there too
INBOUND_EXCHANGE = "whatsapp.inbound"  # topic; routing key: the tenant id
WINDOWS_EXCHANGE = "whatsapp.windows"  # topic; routing key: the pool
NOTICES_EXCHANGE = "whatsapp.notices"  # topic; routing key: the tenant's namespace
NOTICES_QUEUE = "whatsapp.operator.notices"  # quorum; the operator's leader consumes it
STATUS_LOG = "whatsapp.webhooks.statuses"  # stream: what the receiver published, for dedupe
STATUS_LOG_AGE = "7D"  # Meta retries a webhook for up to 7 days
POOL_STREAM_AGE = "1D"  # a pool's statuses and windows (the window is 24 h)

# --- the receiver's config (a Secret the operator writes, mounted by the receiver) ------------
CONFIG_SECRET = "whatsapp-webhook-config"
CONFIG_KEY = "config.json"

_META_ID = r"^[0-9]{1,40}$"
_POOL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_TENANT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def ingress_queue(shard: int) -> str:
    return f"whatsapp.webhooks.{shard}"


def ingress_shard(key: str, shards: int) -> int:
    """The shard of a change: `key` is its `metadata.phone_number_id`, else the WABA id
    (`entry[].id`), so that every status of one message goes through one shard, in order."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


def status_stream(pool: str) -> str:
    return f"whatsapp.{pool}.statuses"


def window_stream(pool: str) -> str:
    return f"whatsapp.{pool}.windows"


class AppEntry(BaseModel):
    """A `WhatsAppApp` as the receiver needs it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    app_id: str = Field(pattern=_META_ID)
    name: str = Field(min_length=1, max_length=253)  # the WhatsAppApp's name
    app_secret: SecretStr = Field(min_length=1)
    verify_token: SecretStr = Field(min_length=1)


class NumberEntry(BaseModel):
    """A tenant's number the receiver may route to (its tenant uses `app_id`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    phone_number_id: str = Field(pattern=_META_ID)
    waba_id: str = Field(pattern=_META_ID)
    display_phone_number: str | None = None  # as Meta shows it: quality updates name it so
    tenant_id: str = Field(min_length=1, max_length=50, pattern=_TENANT_ID)
    namespace: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)  # the WhatsAppTenant's name
    pool: str = Field(min_length=1, max_length=63, pattern=_POOL)
    app_id: str = Field(pattern=_META_ID)


class ReceiverConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_version: Literal[1]
    apps: tuple[AppEntry, ...] = ()
    numbers: tuple[NumberEntry, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ReceiverConfig:
        for items, field in ((self.apps, "app_id"), (self.numbers, "phone_number_id")):
            values = [getattr(i, field) for i in items]
            if len(values) != len(set(values)):
                raise ValueError(f"{field} must be unique")
        known = {a.app_id for a in self.apps}
        strays = sorted({n.app_id for n in self.numbers} - known)
        if strays:
            raise ValueError(f"numbers name unknown apps: {', '.join(strays[:5])}")
        return self


def dump_receiver_config(config: ReceiverConfig) -> bytes:
    """The config's bytes, secrets revealed (for the Secret only): sorted, compact JSON."""
    body = config.model_dump(mode="python")
    body["apps"] = [
        {
            **app.model_dump(mode="python"),
            "app_secret": app.app_secret.get_secret_value(),
            "verify_token": app.verify_token.get_secret_value(),
        }
        for app in sorted(config.apps, key=lambda a: a.app_id)
    ]
    body["numbers"] = [
        n.model_dump(mode="python") for n in sorted(config.numbers, key=lambda n: n.phone_number_id)
    ]
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_receiver_config(data: bytes) -> ReceiverConfig:
    """Raises pydantic.ValidationError when `data` is not a receiver config."""
    return ReceiverConfig.model_validate_json(data)


# --- joining Meta's statuses to the producer's messages ---------------------------------------
# The worker puts its message id in `biz_opaque_callback_data` (Meta: at most 512 characters,
# echoed in the message's status webhooks). A producer's own callback data is kept after it.
CALLBACK_PREFIX = "wo1:"
CALLBACK_LIMIT = 512
MAX_MESSAGE_ID = 200


def encode_callback(message_id: str, producer_data: str = "") -> str:
    """`biz_opaque_callback_data` for a send: raises ValueError when it cannot hold both."""
    if not message_id or len(message_id) > MAX_MESSAGE_ID or "|" in message_id:
        raise ValueError("message id must be 1..200 characters without '|'")
    value = f"{CALLBACK_PREFIX}{message_id}|{producer_data}"
    if len(value) > CALLBACK_LIMIT:
        raise ValueError(
            f"biz_opaque_callback_data with the message id would be {len(value)} characters; "
            f"Meta allows {CALLBACK_LIMIT}"
        )
    return value


def decode_callback(value: object) -> tuple[str | None, str | None]:
    """(message id, the producer's own callback data) from a status's echoed value."""
    if not isinstance(value, str) or not value:
        return None, None
    if not value.startswith(CALLBACK_PREFIX):
        return None, value
    message_id, sep, producer = value[len(CALLBACK_PREFIX) :].partition("|")
    if not sep or not message_id:
        return None, value
    return message_id, producer or None


# --- statuses only move forward ---------------------------------------------------------------
Status = Literal["sent", "delivered", "read", "failed"]
STATUSES: frozenset[str] = frozenset(get_args(Status))
_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


def advances(previous: str | None, new: str) -> bool:
    """Whether a status for a message whose last published status is `previous` is published:
    sent -> delivered -> read, `failed` final; anything not forward is a duplicate or late."""
    if new not in _RANK:
        return False
    if previous is None:
        return True
    if previous == "failed":
        return False
    return _RANK[new] > _RANK.get(previous, 0)


# --- events ------------------------------------------------------------------------------------
def status_event(
    *,
    pool: str,
    tenant_id: str,
    phone_number_id: str,
    status: Status,
    wamid: str,
    recipient: str | None,
    timestamp: int | None,
    message_id: str | None,
    callback_data: str | None = None,
    conversation: dict[str, Any] | None = None,
    pricing: dict[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    at: float,
) -> dict[str, Any]:
    """A result event for `<pool>.<status>` (docs/workers.md, "Delivery statuses")."""
    event: dict[str, Any] = {
        "schemaVersion": 1,
        "source": "webhook",
        "pool": pool,
        "tenantId": tenant_id,
        "phoneNumberId": phone_number_id,
        "messageId": message_id,
        "status": status,
        "wamid": wamid,
        "recipient": recipient,
        "timestamp": timestamp,
        "at": at,
    }
    for key, value in (
        ("callbackData", callback_data),
        ("conversation", conversation),
        ("pricing", pricing),
    ):
        if value is not None:
            event[key] = value
    if errors:
        first = errors[0]
        data = first.get("error_data")
        event["error"] = {
            "code": first.get("code"),
            "title": first.get("title"),
            "message": first.get("message"),
            "details": data.get("details") if isinstance(data, dict) else None,
        }
        event["errors"] = errors
    return event


def window_record(*, pool: str, phone_number_id: str, wa_id: str, timestamp: int) -> bytes:
    """A customer's message opens (or extends) the 24-hour customer-service window."""
    return json.dumps(
        {"pool": pool, "phoneNumberId": phone_number_id, "waId": wa_id, "timestamp": timestamp},
        separators=(",", ":"),
    ).encode()


def parse_window_record(data: bytes) -> tuple[str, str, int] | None:
    """(phone number id, the customer's wa_id, Meta's timestamp), or None."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    phone, wa_id, ts = body.get("phoneNumberId"), body.get("waId"), body.get("timestamp")
    if not (isinstance(phone, str) and isinstance(wa_id, str) and isinstance(ts, int)):
        return None
    return phone, digits(wa_id), ts


def digits(number: str) -> str:
    """A WhatsApp id or an E.164 number as digits only (`+1 555-0100` -> `15550100`)."""
    return "".join(c for c in number if c.isdigit())


SERVICE_WINDOW_SECONDS = 24 * 3600
NoticeKind = Literal[
    "phone_number_quality_update",
    "account_update",
    "phone_number_name_update",
    "business_capability_update",
    "message_template_status_update",
]
NOTICE_KINDS: frozenset[str] = frozenset(get_args(NoticeKind))


def notice(
    *,
    kind: NoticeKind,
    namespace: str,
    name: str,
    tenant_id: str,
    waba_id: str,
    value: dict[str, Any],
    at: float,
) -> bytes:
    """An account or number notice for the operator (one per tenant it concerns)."""
    return json.dumps(
        {
            "schemaVersion": 1,
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "tenantId": tenant_id,
            "wabaId": waba_id,
            "value": value,
            "at": at,
        },
        separators=(",", ":"),
    ).encode()
