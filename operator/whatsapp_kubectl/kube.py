"""The Kubernetes API calls of `kubectl whatsapp`, with one-line errors (PluginError)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION

from whatsapp_operator.model.spec import GROUP, PLURAL, VERSION

OPERATOR_SELECTOR = "app.kubernetes.io/name=whatsapp-operator,app.kubernetes.io/component=operator"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class PluginError(Exception):
    """A failure to show as one line (exit 1), never with a traceback."""


def api_error(exc: ApiException, what: str) -> PluginError:
    if exc.status == 404:
        return PluginError(f"{what}: not found")
    if exc.status in (401, 403):
        return PluginError(f"{what}: forbidden ({exc.status} {exc.reason}); check your RBAC")
    return PluginError(f"{what}: the API server answered {exc.status} {exc.reason}")


@dataclass
class Session:
    api: client.ApiClient
    namespace: str  # -n, else the kubeconfig context's namespace, else "default"

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    async def call(self, what: str, request: Any) -> Any:
        try:
            return await request
        except ApiException as exc:
            raise api_error(exc, what) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            host = self.api.configuration.host
            raise PluginError(f"cannot reach the API server at {host}: {exc}") from None

    async def list_tenants(self, all_namespaces: bool) -> list[dict[str, Any]]:
        if all_namespaces:
            request = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            request = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        found: dict[str, Any] = await self.call("listing whatsapptenants", request)
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    async def get_tenant(self, name: str) -> dict[str, Any]:
        what = f'whatsapptenant "{name}" in namespace "{self.namespace}"'
        request = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        found: dict[str, Any] = await self.call(what, request)
        return found

    async def annotate(self, name: str, annotation: str, value: str) -> None:
        patch = {"metadata": {"annotations": {annotation: value}}}
        request = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch,
            _content_type="application/merge-patch+json",  # type: ignore[call-arg]
        )  # fmt: skip
        await self.call(f'annotating whatsapptenant "{name}"', request)

    async def wait_handled(
        self, name: str, annotation: str, value: str, seconds: float
    ) -> dict[str, Any]:
        """The tenant once the operator has acted on the request (it removes the
        annotation); PluginError after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            obj = await self.get_tenant(name)
            if (obj["metadata"].get("annotations") or {}).get(annotation) != value:
                return obj
            if time.monotonic() >= deadline:
                raise PluginError(
                    f"timed out after {seconds:g}s: the operator has not acted on {annotation} "
                    "(is it running and watching this namespace?)"
                )
            await asyncio.sleep(0.5)

    async def operator_health(self, namespace: str, selector: str, port: int) -> Mapping[str, Any]:
        """The operator's /healthz, through the API server's pod proxy."""
        core = client.CoreV1Api(self.api)
        pods = await self.call(
            f'listing operator pods in namespace "{namespace}"',
            core.list_namespaced_pod(namespace, label_selector=selector),
        )
        running = [p for p in pods.items if p.status and p.status.phase == "Running"]
        if not running:
            raise PluginError(
                f'no running operator pod ({selector}) in namespace "{namespace}"; '
                "give --operator-namespace, or --operator-url"
            )
        pod = running[0].metadata.name
        response = await self.call(
            f"reading the health endpoint of pod {namespace}/{pod}",
            core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}", namespace, "healthz", _preload_content=False
            ),
        )
        body = await response.read()
        return parse_health(body, f"pod {namespace}/{pod}")


def parse_health(body: bytes, source: str) -> Mapping[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        raise PluginError(f"the health endpoint of {source} did not answer JSON") from None
    if not isinstance(found, dict):
        raise PluginError(f"the health endpoint of {source} did not answer a JSON object")
    return found


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, active = config.list_kube_config_contexts(kubeconfig)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    if chosen is None:
        raise PluginError(f'context "{context}" not found in the kubeconfig')
    return str((chosen.get("context") or {}).get("namespace") or "default")


@asynccontextmanager
async def session(
    kubeconfig: str | None, context: str | None, namespace: str | None
) -> AsyncIterator[Session]:
    """An API client as kubectl would build it: --kubeconfig, else $KUBECONFIG, else
    ~/.kube/config, else the in-cluster service account."""
    configuration = client.Configuration()
    path, use_kubeconfig = config_source(kubeconfig, context)
    try:
        if use_kubeconfig:
            ns = namespace or context_namespace(path, context)
            await config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        else:
            try:
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except ConfigException:
                raise PluginError(
                    "no kubeconfig (give --kubeconfig or set KUBECONFIG) and not in a cluster"
                ) from None
            ns = namespace or _service_account_namespace()
    except ConfigException as exc:
        raise PluginError(f"no usable cluster configuration: {exc}") from None
    except OSError as exc:
        raise PluginError(f"cannot read the kubeconfig: {exc}") from None
    api = client.ApiClient(configuration)
    try:
        yield Session(api, ns)
    finally:
        await api.close()


def config_source(kubeconfig: str | None, context: str | None) -> tuple[str | None, bool]:
    """The kubeconfig file to read (None: the client's default), and whether to read one at
    all (False: the in-cluster service account)."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    if path is not None and not os.path.exists(path):
        raise PluginError(f"kubeconfig {path} not found")
    default = os.path.expanduser(KUBE_CONFIG_DEFAULT_LOCATION)
    return path, bool(path or context or os.path.exists(default))


def _service_account_namespace() -> str:
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
