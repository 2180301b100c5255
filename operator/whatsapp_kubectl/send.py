"""`kubectl whatsapp send`: one test message, through the real path.

The message is the seed's plain JSON, checked as a worker would check it, published as
`whatsapp-send` publishes (`whatsapp_worker.producer`): to the pool's exchange, with the
phone number id as routing key, persistent, with publisher confirms and `mandatory`. Unlike
`whatsapp-send`, it declares no queue: the pool's workers own its topology, so a message to
a pool whose workers never ran is refused (unroutable) rather than parked in a new queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from whatsapp_kubectl.kube import PluginError


def test_message(
    obj: Mapping[str, Any], to: str, text: str, message_id: str | None
) -> dict[str, Any]:
    """The seed's message for the tenant object: a text to `to`, with a fresh messageId
    (the worker treats a repeated id as the same message)."""
    spec = obj.get("spec") or {}
    return {
        "metadata": {
            "tenantId": spec.get("tenantId", ""),
            "phoneNumberId": spec.get("phoneNumberId", ""),
            "messageId": message_id or f"kubectl-{uuid.uuid4().hex[:16]}",
        },
        "wabaPayload": {"to": to, "type": "text", "text": {"body": text}},
    }


def sender_pool(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("senderPool") or "default")


def publish(amqp_url: str, pool: str, message: Mapping[str, Any]) -> str:
    """Publish `message` to `pool`; its id. PluginError when the worker would refuse it,
    the broker is unreachable, or no queue of the pool takes it."""
    from kombu import Connection
    from kombu.exceptions import OperationalError

    from whatsapp_worker.celery_app import pool_exchange
    from whatsapp_worker.messages import InvalidMessage
    from whatsapp_worker.producer import checked_key

    try:
        key = checked_key(message)
    except InvalidMessage as exc:
        raise PluginError(
            f"the worker would refuse this message ({exc.reason}): {exc.detail}"
        ) from None
    returned: list[str] = []
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    connection = Connection(
        amqp_url, transport_options={"confirm_publish": True}, connect_timeout=10
    )
    try:
        producer = connection.Producer(
            exchange=pool_exchange(pool), on_return=lambda *a: returned.append(str(a[2]))
        )
        producer.publish(
            body,
            routing_key=str(message["metadata"]["phoneNumberId"]),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            message_id=key,
            timestamp=int(time.time()),
            mandatory=True,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except (OperationalError, OSError) as exc:
        password = urlsplit(amqp_url).password
        reason = str(exc).replace(password, "***") if password else str(exc)
        raise PluginError(f"cannot publish to RabbitMQ: {type(exc).__name__}: {reason}") from None
    finally:
        connection.release()
    if returned:
        raise PluginError(f'no queue of pool "{pool}" took the message: are its workers running?')
    return key
