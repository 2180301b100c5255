"""A tenant's appsecret_proof: read from its app credentials Secret, attached to its token,
published for the workers, and never shown (tokens.py, app_proof.py, publish.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from whatsapp_graph.client import appsecret_proof
from whatsapp_operator.meta.app_proof import attach_proof
from whatsapp_operator.model.secret_data import (
    SecretOutcome,
    read_app_credentials,
    resolve_token,
    with_proof,
)
from whatsapp_operator.model.spec import AppCredentialsRef, TenantSpec
from whatsapp_operator.pools.publication import resolved_config
from whatsapp_operator.runtime.kube import KubeForbidden, SecretSnapshot

TOKEN = "EAAGproofTOKEN0123456789abcdefXYZ"
APP_SECRET = "0123456789abcdef0123456789abcdef"
PROOF = appsecret_proof(TOKEN, APP_SECRET)
REF = AppCredentialsRef(name="meta-app")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_outcome() -> SecretOutcome:
    return resolve_token({"accessToken": b64(TOKEN)}, "acme-token", "accessToken")


@pytest.mark.parametrize(
    ("data", "ok", "needle"),
    [
        pytest.param({"appId": b64("42"), "appSecret": b64(APP_SECRET)}, True, "", id="both"),
        pytest.param(None, False, "not found", id="no Secret"),
        pytest.param({"appId": b64("42")}, False, "lacks", id="no secret key"),
        pytest.param({"appId": b64("42"), "appSecret": "%%%"}, False, "lacks", id="not base64"),
        pytest.param({"appId": b64("42"), "appSecret": b64("  ")}, False, "lacks", id="blank"),
    ],
)
def test_read_app_credentials(data: dict[str, str] | None, ok: bool, needle: str) -> None:
    got = read_app_credentials(data, "meta-app", "appId", "appSecret")
    assert got.ok is ok
    assert needle in got.problem
    assert (got.app_secret == APP_SECRET) is ok
    assert APP_SECRET not in repr(got) + got.problem


def test_with_proof_keeps_the_token_and_hides_the_proof() -> None:
    outcome = with_proof(token_outcome(), PROOF, "appsecret_proof from Secret 'meta-app'")
    assert outcome.token is not None
    assert outcome.token.proof == PROOF
    assert outcome.token.value == TOKEN
    assert outcome.message.endswith("; appsecret_proof from Secret 'meta-app'")
    assert PROOF not in repr(outcome) + str(outcome.token)
    missing = resolve_token(None, "acme-token", "accessToken")
    assert with_proof(missing, PROOF, "note") is missing  # no token: nothing to attach


class FakeKube:
    def __init__(self, data: dict[str, str] | None = None, error: Exception | None = None):
        self.data, self.error = data, error
        self.reads: list[str] = []

    async def read_secret(self, namespace: str, name: str) -> SecretSnapshot | None:
        self.reads.append(name)
        if self.error is not None:
            raise self.error
        return None if self.data is None else SecretSnapshot(dict(self.data), "1", {})


GOOD = {"appId": b64("42"), "appSecret": b64(APP_SECRET)}


@pytest.mark.parametrize(
    ("kube", "ref", "proof", "needle"),
    [
        pytest.param(FakeKube(GOOD), REF, PROOF, "appsecret_proof from Secret 'meta-app'",
                     id="known: the proof of this token"),
        pytest.param(FakeKube(GOOD), None, None, "", id="no app credentials named: no read"),
        pytest.param(FakeKube(None), REF, None, "not found: Graph calls go without",
                     id="Secret missing: said, not fatal"),
        pytest.param(FakeKube({"appId": b64("42")}), REF, None, "lacks",
                     id="Secret without the secret"),
        pytest.param(FakeKube(error=KubeForbidden("reading Secret shop/meta-app: HTTP 403")),
                     REF, None, "unreadable (reading Secret shop/meta-app: HTTP 403)",
                     id="forbidden: said, not fatal"),
    ],
)  # fmt: skip
async def test_attach_proof(
    kube: FakeKube, ref: AppCredentialsRef | None, proof: str | None, needle: str
) -> None:
    before = token_outcome()
    after = await attach_proof(kube, "shop", ref, before)  # type: ignore[arg-type]
    assert after.ok  # a token is never lost over its app credentials
    assert after.token is not None
    assert after.token.proof == proof
    assert after.reason == before.reason
    assert needle in after.message
    assert kube.reads == ([] if ref is None else ["meta-app"])
    assert APP_SECRET not in after.message


def spec(**extra: Any) -> TenantSpec:
    return TenantSpec.model_validate(
        {"tenantId": "t_1", "wabaId": "1", "phoneNumberId": "2", "tokenSecretRef": {"name": "s"}}
        | extra
    )


def test_the_published_config_carries_the_proof_never_the_app_secret() -> None:
    outcome = with_proof(token_outcome(), PROOF, "")
    assert outcome.token is not None
    config = resolved_config(spec(), outcome.token, "v25.0", None)
    assert config.appsecret_proof is not None
    assert config.appsecret_proof.get_secret_value() == PROOF
    assert PROOF not in repr(config)
    assert APP_SECRET not in config.model_dump_json()
    plain = token_outcome().token
    assert plain is not None
    assert resolved_config(spec(), plain, "v25.0", None).appsecret_proof is None
