"""The kopf floor of the scale benchmark: what kopf itself costs to hold N tenants.

A child process running kopf with the operator's watch settings (`configure_settings`:
chunked listings), on uvloop, with the malloc tuning and periodic malloc_trim the operator
uses, and handlers that do no work: the same two indexes of tenants and an event handler on
tenants (the operator's shape since its scheduler replaced the daemons; kopf watches no Secret
since the operator's own metadata-only watch, secret_watch.py), and, with `--daemons`, a
daemon per tenant that only sleeps (what the operator used to run). Like the operator, the
first index drops the bodies' managedFields. It prints `listed N` once it has seen every
tenant, then idles until SIGTERM. `benchmarks/scale.py` measures it beside the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

import kopf
import uvloop

from whatsapp_operator.runtime import listing, memory, toggles
from whatsapp_operator.runtime.handlers import TENANTS, _drop_managed_fields, configure_settings
from whatsapp_operator.settings import OperatorConfig

FLOOR_TRIM_INTERVAL = 5.0  # seconds


def build(expected: int, daemons: bool) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    seen: set[tuple[str, str]] = set()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def trim(memo: kopf.Memo, **_: Any) -> None:
        # freed heap given back as the operator does (its trim interval, shortened: a floor
        # lives only minutes); untrimmed, the floors measured freed memory, not kopf's.
        memo.trimming = asyncio.create_task(memory.trimming(FLOOR_TRIM_INTERVAL))

    @kopf.index(*TENANTS, id="by_tenant_id", registry=registry)
    async def by_tenant_id(body: kopf.Body, name: str, **_: Any) -> Any:
        _drop_managed_fields(body)  # as the operator's first index does
        return {body.get("spec", {}).get("tenantId", ""): name}

    @kopf.index(*TENANTS, id="by_phone", registry=registry)
    async def by_phone(body: kopf.Body, name: str, **_: Any) -> Any:
        return {body.get("spec", {}).get("phoneNumberId", ""): name}

    @kopf.on.event(*TENANTS, registry=registry)
    async def tenant_event(namespace: str | None, name: str, **_: Any) -> None:
        if len(seen) < expected:
            seen.add((namespace or "", name))
            if len(seen) == expected:
                print(f"listed {expected}", flush=True)

    if daemons:

        @kopf.daemon(*TENANTS, cancellation_timeout=5.0, registry=registry)
        async def idle(stopped: kopf.DaemonStopped, **_: Any) -> None:
            await stopped.wait()

    return registry


def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(prog="benchmarks.kopf_floor")
    args.add_argument("--tenants", type=int, required=True, help="print `listed` after these")
    args.add_argument("--daemons", action="store_true", help="a sleeping daemon per tenant")
    opts = args.parse_args(argv)
    memory.tune()
    listing.install()  # as the operator does: a listing spanning an etcd compaction restarts
    toggles.install()  # as the operator does: kopf's index gate, linear in the objects
    kopf.configure(verbose=False, quiet=True)
    settings = kopf.OperatorSettings()
    configure_settings(settings, OperatorConfig(all_namespaces=True))
    # Its own finalizer and annotations: kopf removes a finalizer of its name that no handler
    # needs, so a floor without daemons sharing the name of the operator's (or of the other
    # floor's) would fight it for every tenant (seen: 150 PATCHes/s on 200 tenants). The floor
    # with daemons adds its own finalizer to each tenant once.
    prefix = f"{'daemons' if opts.daemons else 'events'}.floor.bench.whatsapp.operator.dev"
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix)
    operator = kopf.operator(
        registry=build(opts.tenants, opts.daemons),
        settings=settings,
        standalone=True,
        clusterwide=True,
    )
    with (
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        contextlib.suppress(asyncio.CancelledError),
    ):
        runner.run(operator)


if __name__ == "__main__":
    main(sys.argv[1:])
