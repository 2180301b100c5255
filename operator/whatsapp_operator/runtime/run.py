"""The operator started on kopf: logging, handler registration, the kopf patches, the loop.

`cli.main` calls `main` once the configuration is read (and kubernetes_asyncio made lazy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

import kopf
import uvloop

from whatsapp_operator.runtime import listing, toggles
from whatsapp_operator.runtime.kopf_compat import ActivityError  # kopf.operator's, not exported
from whatsapp_operator.runtime.logs import install_redaction, quiet_routine
from whatsapp_operator.settings import OperatorConfig


def main(cfg: OperatorConfig) -> None:
    if cfg.kubeconfig:
        os.environ["KUBECONFIG"] = cfg.kubeconfig
    fmt = {"plain": kopf.LogFormat.PLAIN, "text": kopf.LogFormat.PLAIN,
           "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}  # fmt: skip
    kopf.configure(
        debug=cfg.log_level == "DEBUG",
        verbose=False,
        quiet=cfg.log_level in ("WARNING", "ERROR"),
        log_format=fmt[cfg.log_format],
        log_refkey="tenant",
        log_prefix=True,
    )
    logging.getLogger().setLevel(cfg.log_level)
    install_redaction()
    if cfg.log_level != "DEBUG":
        quiet_routine()
    from whatsapp_operator.apps import handlers as _apps  # noqa: F401 - WhatsAppApps
    from whatsapp_operator.runtime import handlers  # noqa: F401 - registers the handlers with kopf
    from whatsapp_operator.runtime import policies as _policies  # noqa: F401 - tenant policies
    from whatsapp_operator.runtime import probes as _probes  # noqa: F401 - /healthz's dependencies
    from whatsapp_operator.signup import handlers as _signup  # noqa: F401 - Embedded Signup

    try:
        _run(cfg, cfg.liveness_endpoint())
    except ActivityError:
        # the failing activity already logged its one-line reason (for example a wrong
        # database URL): exit without kopf's traceback, non-zero so a pod restarts visibly
        sys.exit("whatsapp-operator: start-up failed; see the error above")


def _run(cfg: OperatorConfig, liveness: str | None) -> None:
    """kopf.run's work, on the configured loop: uvloop by default (kopf picks it only for its
    own CLI). asyncio.Runner, like kopf.run without a loop, finalises the loop on exit."""
    namespaces = [] if cfg.all_namespaces else cfg.namespace_list
    factory = uvloop.new_event_loop if cfg.event_loop == "uvloop" else None
    listing.install()
    toggles.install()  # kopf's start-up gate over indexes, linear (see toggles.py)
    operator = kopf.operator(
        standalone=cfg.peering is None,
        peering_name=cfg.peering,
        priority=cfg.priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(config=cfg),
    )
    with (
        asyncio.Runner(loop_factory=factory) as runner,
        contextlib.suppress(asyncio.CancelledError),
    ):
        runner.run(operator)
