"""`kubectl whatsapp send`: one test message, through the real path, and its outcome.

The message is the seed's plain JSON, checked as a worker would check it, published by the
worker's own `whatsapp_worker.producer.publish` (as `whatsapp-send` publishes: to the pool's
exchange, the phone number id as routing key, persistent, confirmed, `mandatory`, with the
W3C `traceparent` when the OTEL_* environment turns tracing on). Unlike `whatsapp-send`, it
declares no queue: the pool's workers own its topology, so a message to a pool whose workers
never ran is refused (unroutable) rather than parked in a new queue.

Then it waits (`--wait`, bounded) for the message's result events (`outcome.py`): before
publishing it binds a private queue (exclusive, deleted with the connection) to the results
exchange with `<pool>.#`, so no event can pass before it listens. That binding receives every
result of the pool while it waits: a short wait, and for a test message, is the intended use.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from whatsapp_kubectl import outcome
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


def statuses_expected(obj: Mapping[str, Any]) -> bool:
    """Whether Meta's delivery statuses can come: the tenant names a WhatsAppApp, whose
    webhooks the receiver takes when the operator runs it."""
    return bool((obj.get("spec") or {}).get("appRef"))


def publish(
    amqp_url: str,
    pool: str,
    message: Mapping[str, Any],
    *,
    wait: float | None = None,
    statuses: bool = False,
    echo: Callable[[str], None] = print,
) -> tuple[str, bool]:
    """Publish `message` to `pool`, then (`wait` seconds, None: not at all) echo each outcome
    of it: (its id, whether it succeeded; True when not waited for). PluginError when the
    worker would refuse it, the broker is unreachable, no queue of the pool takes it, or no
    final outcome came in time."""
    from kombu import Connection
    from kombu.exceptions import OperationalError

    key = _checked(message)
    connection = Connection(
        amqp_url, transport_options={"confirm_publish": True}, connect_timeout=10
    )
    try:
        results = _listen(connection, pool) if wait is not None else None
        _publish(connection, pool, message, key)
        echo(f"{key} (tenant {message['metadata']['tenantId']}, pool {pool})")
        if results is None or wait is None:
            return key, True
        return key, _wait(connection, results, key, wait, statuses, echo)
    except (OperationalError, OSError) as exc:
        password = urlsplit(amqp_url).password
        reason = str(exc).replace(password, "***") if password else str(exc)
        raise PluginError(f"cannot reach RabbitMQ: {type(exc).__name__}: {reason}") from None
    finally:
        connection.release()


def _checked(message: Mapping[str, Any]) -> str:
    from whatsapp_worker.messages import InvalidMessage
    from whatsapp_worker.producer import checked_key

    try:
        return checked_key(message)
    except InvalidMessage as exc:
        raise PluginError(
            f"the worker would refuse this message ({exc.reason}): {exc.detail}"
        ) from None


def _listen(connection: Any, pool: str) -> Any:
    """A private queue bound to the pool's result events (declared before the publish)."""
    from kombu import Exchange, Queue

    from whatsapp_contract.webhook import RESULTS_EXCHANGE

    results = Exchange(RESULTS_EXCHANGE, type="topic", durable=True)
    queue = Queue(
        f"kubectl-whatsapp-{uuid.uuid4().hex[:12]}", exchange=results,
        routing_key=f"{pool}.#", exclusive=True, auto_delete=True, durable=False,
    )  # fmt: skip
    bound = queue(connection.default_channel)
    bound.declare()
    return bound


def _publish(connection: Any, pool: str, message: Mapping[str, Any], key: str) -> None:
    from whatsapp_worker import producer, tracing
    from whatsapp_worker.celery_app import pool_exchange

    returned: list[str] = []
    tracing.configure("kubectl-whatsapp")  # the OTEL_* environment decides
    try:
        kombu_producer = connection.Producer(
            exchange=pool_exchange(pool), on_return=lambda *a: returned.append(str(a[2]))
        )
        producer.publish(kombu_producer, message, key, retries=2)
    finally:
        tracing.shutdown()
    if returned:
        raise PluginError(f'no queue of pool "{pool}" took the message: are its workers running?')


def _wait(
    connection: Any, queue: Any, key: str, seconds: float, statuses: bool,
    echo: Callable[[str], None],
) -> bool:  # fmt: skip
    from kombu import Consumer

    events: list[Any] = []
    seen: list[str] = []
    deadline = time.monotonic() + seconds

    def received(message: Any) -> None:
        with contextlib.suppress(ValueError):  # not JSON: not a result event
            events.append(json.loads(message.body))

    with Consumer(connection.default_channel, [queue], on_message=received, no_ack=True):
        while True:
            while events:
                event = events.pop(0)
                found = (
                    outcome.step(event, key, statuses=statuses) if isinstance(event, dict) else None
                )
                if found is not None:
                    echo(found.line)
                    seen.append(found.line)
                    if found.final:
                        return found.ok
            left = deadline - time.monotonic()
            if left <= 0:
                raise PluginError(outcome.timed_out(seconds, seen, statuses=statuses))
            try:
                connection.drain_events(timeout=min(left, 1.0))
            except TimeoutError:
                continue
