"""`whatsapp-operator`: the operator's command line.

`main` installs the lazy kubernetes_asyncio (runtime/lazy_client.py) before anything imports
kopf, which imports that package, then hands over to `runtime.run`. Nothing here imports kopf
at module level: importing the CLI (or the package) has no side effect.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from whatsapp_operator.runtime import lazy_client
from whatsapp_operator.settings import OperatorConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whatsapp-operator",
        description="Kubernetes operator for Meta WhatsApp Business (Cloud API) tenants. "
        "Every flag also reads WHATSAPP_OPERATOR_<NAME> from the environment.",
    )
    for group in (_kubernetes_flags, _graph_flags, _pool_flags, _database_flags, _signup_flags):
        group(p)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", choices=["plain", "text", "full", "json"], help="text: plain")
    return p


def _kubernetes_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="namespace to watch (repeatable; names, not patterns)",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", default=None)
    p.add_argument("--kubeconfig")
    p.add_argument(
        "--liveness-host",
        help="address of the liveness endpoint (default 127.0.0.1; a pod: 0.0.0.0)",
    )
    p.add_argument("--liveness-port", type=int, help="0 disables the liveness endpoint")
    p.add_argument(
        "--metrics-host",
        help="address of the /metrics endpoint (default 127.0.0.1; a pod: 0.0.0.0)",
    )
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port; 0 disables")
    p.add_argument(
        "--max-concurrent-reconciles",
        type=int,
        help="tenant reconcile passes at once (default 500); the rest wait, earliest due first",
    )
    p.add_argument(
        "--tenant-policy",
        choices=["enforce", "off"],
        help="enforce (default): a tenant id is held only in the namespaces a "
        "WhatsAppTenantPolicy allows, rows stay with their namespace and adoption needs the "
        "policy's approval; off: none of that (unsafe on a shared cluster)",
    )
    p.add_argument("--peering", help="kopf peering name (HA); standalone when not given")
    p.add_argument("--priority", type=int, help="peering priority of this replica")


def _graph_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graph-api-url", help="Graph API base URL (the simulator in tests)")
    p.add_argument("--graph-api-version", help="default Graph API version, e.g. v25.0")
    p.add_argument("--graph-rate", type=float, help="Graph API requests per second, all tenants")
    p.add_argument("--graph-burst", type=int)
    p.add_argument(
        "--unavailable-grace",
        help="how long a Ready tenant stays Ready while the Graph API is unreachable (e.g. 15m)",
    )


def _pool_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers-namespace",
        help="publish each sender pool's resolved config "
        "as Secrets in this namespace (unset: not published)",
    )
    p.add_argument(
        "--initial-shards",
        type=int,
        help="a new pool's shard layout (a power of two, at most the workers' mounts; default 4)",
    )
    p.add_argument(
        "--operator-namespace",
        help="the operator's own namespace: WhatsAppApps' Secrets are read there (default: the "
        "pod's namespace, else --workers-namespace)",
    )
    p.add_argument(
        "--webhook-receiver",
        action="store_true",
        default=None,
        help="publish the webhook receiver's config (Secret whatsapp-webhook-config in the "
        "operator's namespace) and mark its tenants' resolved config",
    )
    p.add_argument(
        "--amqp-url",
        help="RabbitMQ URL, to report which workers run the published config and to act on the "
        "workers' tenant signals (prefer the env var: it holds a password)",
    )


def _database_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        help="PostgreSQL DSN for tenant_whatsapp_config "
        "(unset: no database sync); prefer the env var, it keeps the password "
        "out of the process list",
    )
    p.add_argument("--database-owner", help="managed_by marker of this operator's rows")
    p.add_argument(
        "--token-storage",
        choices=["encrypted", "plaintext", "none"],
        help="how access_token is stored (default encrypted)",
    )
    p.add_argument(
        "--encryption-keys-dir",
        help="folder of AES-256 keys (a mounted Secret); with several, a `primary` entry names "
        "the one that encrypts new writes",
    )
    p.add_argument(
        "--audit-key-file",
        help="the audit trail's HMAC key (a mounted Secret's file); needed with a database",
    )
    p.add_argument("--drift-interval", help="how often rows are checked for drift (e.g. 60s)")
    p.add_argument(
        "--rekey-interval",
        "--rotation-interval",  # the former name, deprecated ("rotation" is token renewal)
        dest="rekey_interval",
        help="how often rows under an old key are re-encrypted (rekey; e.g. 30s); "
        "--rotation-interval is its deprecated alias",
    )


def _signup_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--signup-callback-port",
        type=int,
        help="serve Embedded Signup's OAuth callback (POST /signup) on this port; 0 (default) "
        "turns it off. Its HMAC key comes from WHATSAPP_OPERATOR_SIGNUP_CALLBACK_SECRET only",
    )
    p.add_argument("--signup-callback-host", help="address of the callback endpoint")
    p.add_argument("--signup-namespace", help="namespace of callback-created WhatsAppSignups")
    p.add_argument(
        "--signup-app-credentials-secret",
        help="Meta app credentials Secret (in --signup-namespace) for callback-created signups",
    )


def load_config(argv: Sequence[str] | None = None) -> OperatorConfig:
    args = vars(_parser().parse_args(argv))
    overrides = {k: v for k, v in args.items() if v is not None}
    if "namespaces" in overrides:
        overrides["namespaces"] = ",".join(overrides["namespaces"])
    return OperatorConfig(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    lazy_client.install()  # before kopf (imported by runtime.run) imports kubernetes_asyncio
    from whatsapp_operator.runtime import memory, run

    memory.tune()  # before kopf starts any thread
    try:
        cfg = load_config(argv)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        sys.exit(f"whatsapp-operator: invalid configuration: {errors}")
    run.main(cfg)


if __name__ == "__main__":
    main()
