"""Every per-object kopf handler is a coroutine function: kopf runs plain functions in a thread
pool (a thread hop per watch event, and asyncio Events set from a foreign thread)."""

from __future__ import annotations

import inspect

import kopf
import pytest

import whatsapp_operator.runtime.handlers
import whatsapp_operator.signup.handlers  # registers the signup handlers

REGISTRY = kopf.get_default_registry()
HANDLERS = [
    handler
    for part in ("_indexing", "_watching", "_spawning", "_changing")
    for handler in getattr(REGISTRY, part).get_all_handlers()
]


def test_the_handlers_are_registered() -> None:
    ids = {str(h.id) for h in HANDLERS}
    assert {"tenant_changed", "tenant_deleted", "tenants_by_tenant_id"} <= ids
    assert "secret_changed" not in ids  # Secrets: a metadata-only watch (secret_watch.py)
    assert "tenants_by_secret" not in ids  # the registry follows the references
    watched = {h.selector for h in REGISTRY._watching.get_all_handlers()}  # type: ignore[attr-defined]
    assert not any(s is not None and s.plural == "secrets" for s in watched)
    assert "tenant_loop" not in ids  # no daemon per tenant: scheduler.py runs the passes
    assert whatsapp_operator.runtime.handlers.TENANTS


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda h: str(h.id))
def test_handler_is_async(handler: object) -> None:
    assert inspect.iscoroutinefunction(handler.fn)  # type: ignore[attr-defined]
