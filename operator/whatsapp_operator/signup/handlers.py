"""kopf registration of Embedded Signup. No decisions are made here.

- a daemon per WhatsAppSignup runs its steps (create and resume alike) until it is complete
  or stopped for good, then returns;
- the OAuth callback endpoint starts with the operator when `--signup-callback-port` is set.

Import this module (cli.py does) to enable both.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import kopf

from whatsapp_operator.model.spec import GROUP, VERSION
from whatsapp_operator.settings import OperatorConfig
from whatsapp_operator.signup import callback
from whatsapp_operator.signup.model import SIGNUP_PLURAL
from whatsapp_operator.signup.runner import SignupRunner

log = logging.getLogger(__name__)
SIGNUPS = (GROUP, VERSION, SIGNUP_PLURAL)


@kopf.daemon(*SIGNUPS, cancellation_timeout=5.0)
async def signup_daemon(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    index = kwargs.get("tenants_by_tenant_id")  # the tenant handlers' index, when present

    def claimed_by(tenant_id: str) -> list[str]:
        return [claim.ref for claim in index.get(tenant_id, ())] if index is not None else []

    await SignupRunner(memo.runtime, body, claimed_by=claimed_by).run()


def callback_settings(cfg: OperatorConfig) -> callback.CallbackSettings | None:
    """The endpoint's settings; None when it is off (config validation ensures the rest)."""
    if not cfg.signup_callback_port or cfg.signup_callback_secret is None:
        return None
    return callback.CallbackSettings(
        secret=cfg.signup_callback_secret,
        namespace=cfg.signup_namespace or "",
        app_credentials_secret=cfg.signup_app_credentials_secret or "",
    )


@kopf.on.startup()
async def start_signup_callback(memo: Any, **_: Any) -> None:
    cfg: OperatorConfig = memo.config
    settings = callback_settings(cfg)
    if settings is None:
        return
    if "runtime" not in memo:  # the operator's own start-up handler has not run yet
        raise kopf.TemporaryError("waiting for the operator to start", delay=0.5)
    create = functools.partial(callback.create_signup, memo.runtime.kube, settings)
    app = callback.build_app(settings, create)
    memo.signup_callback = await callback.serve(
        app,
        cfg.signup_callback_host,
        cfg.signup_callback_port,
        header_timeout=settings.header_timeout,
    )
    log.info(
        "signup callback listening on %s:%d%s (signups go to namespace %s)",
        cfg.signup_callback_host,
        cfg.signup_callback_port,
        callback.PATH,
        settings.namespace,
    )


@kopf.on.cleanup()
async def stop_signup_callback(memo: Any, **_: Any) -> None:
    runner = memo.get("signup_callback")
    if runner is not None:
        await runner.cleanup()
