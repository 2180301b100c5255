"""The one door to the Kubernetes API for what kopf does not do for us.

kopf watches and posts Events; this module reads Secrets and writes tenant status through
kubernetes_asyncio, and maps every API error into a small set of our own exceptions:
404 is an answer (None), 401/403 is a permission problem the user must see, 409 is retried,
429/5xx/network are transient.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from whatsapp_operator.model.spec import GROUP, PLURAL, VERSION


class KubeError(Exception):
    """Base of Kubernetes API failures, with a message fit for a condition."""


class KubeUnavailable(KubeError):
    """The API server could not answer now (network, 429, 5xx): try again later."""


class KubeForbidden(KubeError):
    """The operator's identity may not do this: RBAC must change."""


class KubeConflict(KubeError):
    """Someone else changed the object first: re-read and retry."""


class KubeInvalid(KubeError):
    """The API server rejected what we sent: a bug or an incompatible CRD."""


def policy_denial(body: object) -> str:
    """A ValidatingAdmissionPolicy's message from a 403's body (the API server's Status:
    "... ValidatingAdmissionPolicy 'p' with binding 'b' denied request: <message>"), else "".
    Only a policy's own words (the chart's Secrets policy names labels, never data)."""
    try:
        message = json.loads(body or "{}").get("message")  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        return ""
    if not isinstance(message, str) or "ValidatingAdmissionPolicy '" not in message:
        return ""
    _, found, reason = message.partition("denied request: ")
    return reason.strip()[:300] if found else ""


def translate(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        status = exc.status or 0
        text = f"{what}: HTTP {status} {exc.reason or ''}".strip()
        if status in (401, 403):
            if denial := policy_denial(exc.body):
                text = f"{text}: {denial}"
            return KubeForbidden(text)
        if status == 409:
            return KubeConflict(text)
        if status == 429 or status >= 500 or status == 0:
            return KubeUnavailable(text)
        return KubeInvalid(text)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return KubeUnavailable(f"{what}: {type(exc).__name__}")
    raise exc


_RAISE = object()


@dataclass(frozen=True)
class SecretSnapshot:
    """A Secret as read: data (base64 values; never logged), version, annotations."""

    data: dict[str, str] = field(repr=False)
    resource_version: str
    annotations: dict[str, str]
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


REQUEST_TIMEOUT = 30.0  # seconds: no API call may hold a tenant's loop longer than this
# Objects' metadata only (names, versions, labels, annotations): the API server's
# PartialObjectMetadata, as controller-runtime's metadata-only watches ask for it.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_EVENTS = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


PROXY_ENV = ("https_proxy", "http_proxy", "all_proxy")


def _proxy_from_env() -> bool:
    return any(os.environ.get(n) or os.environ.get(n.upper()) for n in PROXY_ENV)


class Kube:
    def __init__(self, api: client.ApiClient, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self._api = api
        self.request_timeout = request_timeout
        session = api.rest_client.pool_manager
        if not _proxy_from_env() and hasattr(session, "_trust_env"):
            # kubernetes_asyncio asks aiohttp to trust the environment, which then reads
            # ~/.netrc on a worker thread for every request (a thread hop per API call, 11 %
            # of the operator's samples at a 1,000-tenant start). Kept when a proxy is set.
            session._trust_env = False
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            path = kubeconfig or os.environ.get("KUBECONFIG") or None
            await config.load_kube_config(config_file=path, client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg))

    async def close(self) -> None:
        await self._api.close()

    def connection_stats(self) -> str:
        """The HTTP connection pool's state, for diagnostics (aiohttp internals: best effort)."""
        connector = self._api.rest_client.pool_manager.connector
        if connector is None:
            return "closed"
        acquired = len(getattr(connector, "_acquired", ()))
        waiting = sum(len(q) for q in getattr(connector, "_waiters", {}).values())
        return f"{acquired} connections in use of {connector.limit}, {waiting} requests waiting"

    async def _call(self, what: str, call: Awaitable[Any], *, missing: Any = _RAISE) -> Any:
        """Await one API call; 404 gives `missing` when one is given, else every failure
        becomes a KubeError. kubernetes_asyncio sets no timeout of its own: a connection the
        API server never answers on would otherwise hold the caller forever."""
        try:
            async with asyncio.timeout(self.request_timeout):
                return await call
        except TimeoutError:
            raise KubeUnavailable(f"{what}: no answer within {self.request_timeout:g}s") from None
        except ApiException as exc:
            if exc.status == 404 and missing is not _RAISE:
                return missing
            raise translate(exc, what) from None
        except Exception as exc:
            raise translate(exc, what) from None

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's `data` map (base64 values), or None when there is no such Secret."""
        secret = await self.read_secret(namespace, name)
        return secret.data if secret is not None else None

    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot | None:
        secret = await self._call(
            f"reading Secret {namespace}/{name}",
            self._core.read_namespaced_secret(name, namespace),
            missing=None,
        )
        if secret is None:
            return None
        meta = secret.metadata
        return SecretSnapshot(
            dict(secret.data or {}),
            str(meta.resource_version or ""),
            dict(meta.annotations or {}),
        )

    async def list_secrets(self, namespace: str, label: str) -> list[SecretSnapshot]:
        """The Secrets of a namespace that carry `label` (any value)."""
        listing = await self._call(
            f"listing Secrets in {namespace}",
            self._core.list_namespaced_secret(namespace, label_selector=label),
        )
        return [
            SecretSnapshot(
                dict(item.data or {}),
                str(item.metadata.resource_version or ""),
                dict(item.metadata.annotations or {}),
                str(item.metadata.name),
                dict(item.metadata.labels or {}),
            )
            for item in listing.items
        ]

    async def _get_raw(
        self, what: str, path: str, query: list[tuple[str, str]], accept: str, seconds: float
    ) -> Any:
        """A GET whose answer is read here (a stream, or JSON kubernetes_asyncio would turn
        into models): the aiohttp response, after its status was checked."""
        response = await self._call(
            what,
            self._api.call_api(
                path, "GET", query_params=query, header_params={"Accept": accept},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=seconds,
            ),
        )  # fmt: skip
        if not 200 <= response.status <= 299:
            reason = response.reason
            response.release()
            raise translate(ApiException(status=response.status, reason=reason), what)
        return response

    @staticmethod
    def _secrets_path(namespace: str | None) -> str:
        return f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"

    async def secrets_version(self, namespace: str | None, label_selector: str) -> str:
        """The resourceVersion of the Secrets collection now (of one namespace, or all): where
        a watch of what changes from now on starts. Lists one item's metadata, not the data."""
        where = namespace or "all namespaces"
        response = await self._get_raw(
            f"listing Secrets in {where}", self._secrets_path(namespace),
            [("labelSelector", label_selector), ("limit", "1")], METADATA_ONLY,
            self.request_timeout,
        )  # fmt: skip
        try:
            async with asyncio.timeout(self.request_timeout):
                listing = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            kind = type(exc).__name__
            raise KubeUnavailable(
                f"listing Secrets in {where}: no readable answer ({kind})"
            ) from None
        finally:
            response.release()
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    async def watch_secrets_metadata(
        self, namespace: str | None, label_selector: str, resource_version: str, seconds: int
    ) -> AsyncGenerator[dict[str, Any]]:
        """Watch events of Secrets (metadata only, no data) after `resource_version`, for at
        most `seconds` (the API server then ends the stream), bookmarks included."""
        query = [
            ("watch", "true"),
            ("labelSelector", label_selector),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        where = namespace or "all namespaces"
        response = await self._get_raw(
            f"watching Secrets in {where}", self._secrets_path(namespace), query,
            METADATA_EVENTS, seconds + self.request_timeout,
        )  # fmt: skip
        try:
            pending = b""
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            kind = type(exc).__name__
            raise KubeUnavailable(f"watching Secrets in {where}: stream broken ({kind})") from None
        finally:
            response.release()

    async def patch_secret(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None
    ) -> None:
        """Merge-patch a Secret; with `resource_version`, only if nobody changed it since
        (KubeConflict otherwise)."""
        if resource_version:
            patch = {
                **patch,
                "metadata": {**patch.get("metadata", {}), "resourceVersion": resource_version},
            }
        await self._call(
            f"updating Secret {namespace}/{name}",
            self._core.patch_namespaced_secret(
                name,
                namespace,
                patch,
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            ),
        )

    async def delete_secret(self, namespace: str, name: str) -> None:
        """Delete a Secret; one that is gone already is fine."""
        await self._call(
            f"deleting Secret {namespace}/{name}",
            self._core.delete_namespaced_secret(name, namespace),
            missing=None,
        )

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create a Secret; False if one of that name exists already."""
        try:
            await self._call(
                f"creating Secret {namespace}/{body['metadata']['name']}",
                self._core.create_namespaced_secret(namespace, body),  # type: ignore[arg-type]
            )
        except KubeConflict:
            return False
        return True

    async def get_custom(
        self, namespace: str, name: str, plural: str = PLURAL
    ) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._call(
            f"reading {plural} {namespace}/{name}",
            self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name),
            missing=None,
        )
        return result

    async def create_custom(
        self, namespace: str, body: dict[str, Any], plural: str = PLURAL
    ) -> bool:
        """Create a custom object of this operator's group; False if it exists already."""
        try:
            await self._call(
                f"creating {plural} {namespace}/{body['metadata']['name']}",
                self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, body
                ),
            )
        except KubeConflict:
            return False
        return True

    async def patch_custom(
        self,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        plural: str = PLURAL,
        status: bool = False,
    ) -> str | None:
        """Merge-patch a custom object (or its status); its new resourceVersion, or None if
        it is gone."""
        api = self._custom
        method = (
            api.patch_namespaced_custom_object_status
            if status
            else api.patch_namespaced_custom_object
        )
        result = await self._call(
            f"patching {plural} {namespace}/{name}" + (" status" if status else ""),
            method(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                patch,
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            ),
            missing=None,
        )
        if not isinstance(result, dict):
            return None
        return str((result.get("metadata") or {}).get("resourceVersion") or "")

    async def patch_cluster_status(
        self, plural: str, name: str, patch: dict[str, Any]
    ) -> str | None:
        """Merge-patch the status of a cluster-scoped object of this operator's group (a
        WhatsAppApp); its new resourceVersion, or None if it is gone."""
        result = await self._call(
            f"patching {plural} {name} status",
            self._custom.patch_cluster_custom_object_status(
                GROUP, VERSION, plural, name, {"status": patch},
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            ),
            missing=None,
        )  # fmt: skip
        if not isinstance(result, dict):
            return None
        return str((result.get("metadata") or {}).get("resourceVersion") or "")

    async def remove_tenant_annotation(self, namespace: str, name: str, key: str) -> None:
        """Drop one annotation from a tenant (gone tenants are fine)."""
        await self.patch_custom(namespace, name, {"metadata": {"annotations": {key: None}}})

    async def patch_tenant_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> str | None:
        """Merge-patch a tenant's status; the new resourceVersion, or None if it is gone."""
        return await self.patch_custom(namespace, name, {"status": patch}, status=True)
