"""The raw floor of the scale benchmark: what holding N tenants and their Secrets costs with no
framework. A child process (`python -m benchmarks.informer_floor KUBECONFIG`) that lists, then
watches, tenants and Secrets in all namespaces with kubernetes_asyncio and holds every object as
a dict, like an informer; with the malloc tuning and periodic trim the operator uses. It prints
`listed T S` once it holds every object, then runs until killed. `benchmarks/scale.py` measures
it beside the operator.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as kclient
from kubernetes_asyncio import watch as kwatch

from benchmarks.kopf_floor import FLOOR_TRIM_INTERVAL
from benchmarks.meta_calls import GROUP, PLURAL, VERSION, api_client
from whatsapp_operator.runtime import memory


async def informer(kubeconfig: Path) -> None:
    """List, then watch, tenants and Secrets in all namespaces; hold each object as a dict."""
    store: dict[str, dict[tuple[str, str], Any]] = {"tenants": {}, "secrets": {}}
    trimming = asyncio.create_task(memory.trimming(FLOOR_TRIM_INTERVAL))  # as the operator
    async with await api_client(kubeconfig) as api:
        custom, core = kclient.CustomObjectsApi(api), kclient.CoreV1Api(api)
        lists: dict[str, Callable[..., Awaitable[Any]]] = {
            "tenants": lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw),
            "secrets": lambda **kw: core.list_secret_for_all_namespaces(**kw),
        }

        async def fetch(kind: str, **kw: Any) -> dict[str, Any]:
            response = await lists[kind](_preload_content=False, **kw)
            return dict(json.loads(await response.read()))

        async def hold(kind: str) -> str:
            page: dict[str, Any] = {"metadata": {"continue": ""}}
            while True:
                page = await fetch(kind, limit=500, _continue=page["metadata"]["continue"] or None)
                for item in page["items"]:
                    meta = item["metadata"]
                    store[kind][(meta["namespace"], meta["name"])] = item
                if not page["metadata"].get("continue"):
                    return str(page["metadata"]["resourceVersion"])

        versions = {kind: await hold(kind) for kind in lists}
        print(f"listed {len(store['tenants'])} {len(store['secrets'])}", flush=True)

        async def follow(kind: str) -> None:
            fn = (
                custom.list_cluster_custom_object
                if kind == "tenants"
                else core.list_secret_for_all_namespaces
            )
            args = (GROUP, VERSION, PLURAL) if kind == "tenants" else ()
            async with kwatch.Watch() as w:
                stream = w.stream(fn, *args, resource_version=versions[kind], timeout_seconds=3600)
                async for event in stream:
                    obj = event["raw_object"]
                    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                    if event["type"] == "DELETED":
                        store[kind].pop(key, None)
                    else:
                        store[kind][key] = obj

        await asyncio.gather(*(follow(kind) for kind in lists), trimming)


if __name__ == "__main__":
    memory.tune()  # as the operator (and the kopf floors) do
    asyncio.run(informer(Path(sys.argv[1])))
