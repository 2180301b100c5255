"""`kubectl-whatsapp`: the commands. Each is thin: the API calls are `kube`'s, the
formatting `view`'s."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from whatsapp_kubectl import view
from whatsapp_kubectl.kube import OPERATOR_SELECTOR, PluginError, Session, parse_health, session
from whatsapp_operator.model.conditions import READY, TOKEN_ROTATION, TOKEN_VALID
from whatsapp_operator.model.spec import REFRESH_ANNOTATION, REVALIDATE_ANNOTATION

PROG = "kubectl whatsapp"
AMQP_ENV = "WHATSAPP_WORKER_AMQP_URL"  # as whatsapp-send (whatsapp_worker.celery_app)
OPERATOR_URL_ENV = "WHATSAPP_OPERATOR_URL"
PROBES = ("postgresql", "rabbitmq", "graph")  # runtime/probes.py
SEND_WAIT = 60.0  # seconds `send` waits for its message's outcome by default
REQUESTS = {
    "revalidate": (REVALIDATE_ANNOTATION, (TOKEN_VALID, READY)),
    "refresh": (REFRESH_ANNOTATION, (TOKEN_ROTATION, TOKEN_VALID, READY)),
}


def _kube_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--kubeconfig", default=default, help="the kubeconfig file")
    parser.add_argument("--context", default=default, help="the kubeconfig context")
    parser.add_argument("-n", "--namespace", default=default, help="the namespace")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="WhatsApp tenants, from kubectl.")
    _kube_flags(p, None)
    common = argparse.ArgumentParser(add_help=False)  # the same flags after the command
    _kube_flags(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", parents=[common], help="a table of tenants")
    status.add_argument("-A", "--all-namespaces", action="store_true")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    for name, (annotation, _) in REQUESTS.items():
        cmd = sub.add_parser(name, parents=[common], help=f"set {annotation} and wait")
        cmd.add_argument("tenant", help="the WhatsAppTenant's name")
        cmd.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    audit = sub.add_parser("audit", help="the token lifecycle audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain (whatsapp-audit verify)")
    verify.add_argument("--database-url", help="PostgreSQL URL (default: its environment variable)")
    verify.add_argument(
        "--audit-key-file", help="the audit key (default: its environment variable)"
    )
    check = sub.add_parser(
        "check", parents=[common], help="the operator's view of its dependencies"
    )
    check.add_argument(
        "--operator-url", default=os.environ.get(OPERATOR_URL_ENV),
        help=f"the operator's health endpoint (${OPERATOR_URL_ENV}); else the pod proxy",
    )  # fmt: skip
    check.add_argument("--operator-namespace", default="whatsapp-system")
    check.add_argument("--operator-selector", default=OPERATOR_SELECTOR)
    check.add_argument("--operator-port", type=int, default=8080)
    check.add_argument("-o", "--output", choices=("table", "json"), default="table")
    send = sub.add_parser("send", parents=[common], help="send a test message")
    send.add_argument("tenant", help="the WhatsAppTenant's name")
    send.add_argument("--to", required=True, help="the recipient, E.164 (+34...)")
    send.add_argument("--text", required=True)
    send.add_argument("--message-id", help="default: a fresh kubectl-... id")
    send.add_argument("--amqp-url", default=os.environ.get(AMQP_ENV), help=f"${AMQP_ENV}")
    waiting = send.add_mutually_exclusive_group()
    waiting.add_argument(
        "--wait", type=float, default=SEND_WAIT, metavar="SECONDS",
        help=f"wait for the outcome: accepted, then delivered or failed (default {SEND_WAIT:g})",
    )  # fmt: skip
    waiting.add_argument(
        "--no-wait", dest="wait", action="store_const", const=None, help="publish only"
    )
    return p


async def _status(s: Session, args: argparse.Namespace) -> int:
    rows = view.tenant_rows(await s.list_tenants(args.all_namespaces))
    if args.output == "json":
        print(json.dumps([r.as_json() for r in rows], indent=2))
    elif not rows:
        where = "" if args.all_namespaces else f' in namespace "{s.namespace}"'
        print(f"No WhatsAppTenants found{where}.", file=sys.stderr)
    else:
        now = datetime.now(UTC)
        print(view.status_table(rows, now, all_namespaces=args.all_namespaces))
    return 0


async def _request(s: Session, args: argparse.Namespace) -> int:
    annotation, watched = REQUESTS[args.command]
    before = await s.get_tenant(args.tenant)
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await s.annotate(args.tenant, annotation, value)
    print(f"whatsapptenant/{args.tenant}: {args.command} requested; waiting for the operator")
    after = await s.wait_handled(args.tenant, annotation, value, args.timeout)
    for line in view.outcome_lines(before, after, watched):
        print(line)
    return 0 if view.condition(after, READY).get("status") == "True" else 1


async def _check(s: Session | None, args: argparse.Namespace) -> int:
    if s is None:
        health = await _health_from_url(args.operator_url)
    else:
        health = await s.operator_health(
            args.operator_namespace, args.operator_selector, args.operator_port
        )
    deps = view.dependencies(health, PROBES)
    if args.output == "json":
        print(json.dumps([vars(d) for d in deps], indent=2))
    else:
        print(view.dependency_table(deps))
    return 1 if any(d.state in view.FAILING for d in deps) else 0


async def _health_from_url(url: str) -> Any:
    import httpx

    target = url if url.rstrip("/").endswith("/healthz") else url.rstrip("/") + "/healthz"
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(target)
    except httpx.HTTPError as exc:
        raise PluginError(f"cannot reach the operator at {target}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise PluginError(f"the operator at {target} answered {response.status_code}")
    return parse_health(response.content, target)


async def _send(s: Session, args: argparse.Namespace) -> int:
    from whatsapp_kubectl import send

    if not args.amqp_url:
        raise PluginError(f"give --amqp-url or set ${AMQP_ENV}")
    obj = await s.get_tenant(args.tenant)
    message = send.test_message(obj, args.to, args.text, args.message_id)
    if args.wait is not None and args.wait <= 0:
        raise PluginError("--wait takes a number of seconds above 0 (or give --no-wait)")

    def echo(line: str) -> None:
        print(line, flush=True)  # each outcome as it comes

    _, ok = await asyncio.to_thread(
        send.publish, args.amqp_url, send.sender_pool(obj), message,
        wait=args.wait, statuses=send.statuses_expected(obj), echo=echo,
    )  # fmt: skip
    return 0 if ok else 1


COMMANDS: dict[str, Callable[[Session, argparse.Namespace], Awaitable[int]]] = {
    "status": _status,
    "revalidate": _request,
    "refresh": _request,
    "send": _send,
}


async def _run(args: argparse.Namespace) -> int:
    if args.command == "check" and args.operator_url:
        return await _check(None, args)
    async with session(args.kubeconfig, args.context, args.namespace) as s:
        if args.command == "check":
            return await _check(s, args)
        return await COMMANDS[args.command](s, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 done; 1 a failure (one line on stderr) or not Ready / a dependency down;
    2 usage."""
    args = parser().parse_args(argv)
    if args.command == "audit":
        from whatsapp_operator.postgres import audit

        forwarded = ["verify"]
        for flag in ("database_url", "audit_key_file"):
            if getattr(args, flag):
                forwarded += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
        return audit.main(forwarded)
    try:
        return asyncio.run(_run(args))
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
