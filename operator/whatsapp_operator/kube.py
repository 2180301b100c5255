"""The one door to the Kubernetes API for what kopf does not do for us.

kopf watches and posts Events; this module reads Secrets and writes tenant status through
kubernetes_asyncio, and maps every API error into a small set of our own exceptions:
404 is an answer (None), 401/403 is a permission problem the user must see, 409 is retried,
429/5xx/network are transient.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from .spec import GROUP, PLURAL, VERSION


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


def translate(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        status = exc.status or 0
        text = f"{what}: HTTP {status} {exc.reason or ''}".strip()
        if status in (401, 403):
            return KubeForbidden(text)
        if status == 409:
            return KubeConflict(text)
        if status == 429 or status >= 500 or status == 0:
            return KubeUnavailable(text)
        return KubeInvalid(text)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return KubeUnavailable(f"{what}: {type(exc).__name__}")
    raise exc


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
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

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's `data` map (base64 values), or None when there is no such Secret."""
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"reading Secret {namespace}/{name}") from None
        except Exception as exc:
            raise translate(exc, f"reading Secret {namespace}/{name}") from None
        return dict(secret.data or {})

    async def remove_tenant_annotation(self, namespace: str, name: str, key: str) -> None:
        """Drop one annotation from a tenant (gone tenants are fine)."""
        patch = {"metadata": {"annotations": {key: None}}}
        try:
            await self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            )
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc, f"annotating {namespace}/{name}") from None
        except Exception as exc:
            raise translate(exc, f"annotating {namespace}/{name}") from None

    async def patch_tenant_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> str | None:
        """Merge-patch a tenant's status; the new resourceVersion, or None if the tenant is gone."""
        try:
            result = await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": patch},
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"patching status of {namespace}/{name}") from None
        except Exception as exc:
            raise translate(exc, f"patching status of {namespace}/{name}") from None
        rv = (
            (result.get("metadata") or {}).get("resourceVersion")
            if isinstance(result, dict)
            else None
        )
        return str(rv) if rv is not None else ""
