"""The one wrapper for Kubernetes API errors: every failure becomes one of our exceptions."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from whatsapp_operator.runtime.kube import (
    Kube,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeUnavailable,
    translate,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, KubeForbidden),
        (403, KubeForbidden),
        (409, KubeConflict),
        (429, KubeUnavailable),
        (500, KubeUnavailable),
        (503, KubeUnavailable),
        (0, KubeUnavailable),
        (400, KubeInvalid),
        (422, KubeInvalid),
    ],
)
def test_api_statuses(status: int, kind: type[KubeError]) -> None:
    err = translate(ApiException(status=status, reason="Why"), "patching x")
    assert type(err) is kind
    assert str(err).startswith(f"patching x: HTTP {status}")


DENIED = (
    '{"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message": '
    '"secrets \\"t\\" is forbidden: ValidatingAdmissionPolicy \'ns-wa-operator-secrets\' with '
    "binding 'ns-wa-operator-secrets' denied request: the whatsapp-operator changes only the "
    'Secrets it owns"}'
)


@pytest.mark.parametrize(
    ("body", "suffix"),
    [
        pytest.param(
            DENIED,
            ": the whatsapp-operator changes only the Secrets it owns",
            id="the chart's Secrets policy: its reason",
        ),
        pytest.param('{"message": "secrets is forbidden: User x cannot patch"}', "", id="RBAC"),
        pytest.param('{"message": "webhook denied request: EAAsecret"}', "", id="not a policy"),
        pytest.param("not json", "", id="unreadable"),
        pytest.param(None, "", id="no body"),
        pytest.param("[1]", "", id="not an object"),
    ],
)
def test_a_forbidden_write_names_the_admission_policys_reason(
    body: str | bytes | None, suffix: str
) -> None:
    """A token refresh the chart's policy refuses says why in TokenRotation's message (the
    Secret lacks whatsapp.operator.dev/writable-by-operator), not only "403 Forbidden"."""
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = body.encode() if isinstance(body, str) else body  # the response's bytes
    err = translate(exc, "updating Secret ns/t")
    assert type(err) is KubeForbidden
    assert str(err) == f"updating Secret ns/t: HTTP 403 Forbidden{suffix}"


@pytest.mark.parametrize(
    "exc", [aiohttp.ClientConnectionError("reset"), TimeoutError(), ConnectionRefusedError()]
)
def test_network_failures_are_transient(exc: Exception) -> None:
    assert isinstance(translate(exc, "reading y"), KubeUnavailable)


def test_other_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        translate(KeyError("bug"), "reading z")


async def _kube(seconds: float) -> Kube:
    return Kube(client.ApiClient(configuration=client.Configuration()), request_timeout=seconds)


def test_a_call_that_never_answers_times_out_as_unavailable() -> None:
    async def main() -> str:
        kube = await _kube(0.05)
        try:
            await kube._call("reading Secret ns/s", asyncio.sleep(30))
        except KubeUnavailable as exc:
            return str(exc)
        finally:
            await kube.close()
        return "no error"

    assert asyncio.run(main()) == "reading Secret ns/s: no answer within 0.05s"


def test_404_is_an_answer_when_the_caller_says_so() -> None:
    async def missing() -> None:
        raise ApiException(status=404, reason="Not Found")

    async def main() -> object:
        kube = await _kube(1.0)
        try:
            return await kube._call("reading t", missing(), missing=None)
        finally:
            await kube.close()

    assert asyncio.run(main()) is None


@pytest.mark.parametrize(
    ("env", "trusted"), [({}, False), ({"HTTPS_PROXY": "http://p:3128"}, True)]
)
def test_the_environment_is_trusted_only_when_a_proxy_is_set(
    env: dict[str, str], trusted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def main() -> bool:
        kube = await _kube(1.0)
        try:
            return bool(kube._api.rest_client.pool_manager.trust_env)
        finally:
            await kube.close()

    assert asyncio.run(main()) is trusted
