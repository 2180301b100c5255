"""The staged token refresh (strategy Refresh) and the retirement of the previous token.

obtain (fb_exchange_token) -> verify (debug_token + a read of the tenant's number) -> write
the new token into the tenant's Secret, the old one kept as `previousAccessToken`. Each
stage either succeeds or leaves everything as it was: the old, still valid token stays in
the Secret until the write, and the write is conditional on the Secret's resourceVersion, so
a concurrent edit is never overwritten. The PostgreSQL row (and later the published config)
follow through the ordinary reconcile that the Secret change triggers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime

from whatsapp_graph.client import GraphClient, appsecret_proof
from whatsapp_graph.errors import GraphError
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.model.facts import TokenFacts, judge_token
from whatsapp_operator.model.secret_data import (
    ResolvedToken,
    decode_value,
    fingerprint,
    read_app_credentials,
)
from whatsapp_operator.model.spec import AppCredentialsRef, TenantSpec
from whatsapp_operator.runtime.kube import Kube, KubeConflict, KubeError, SecretSnapshot
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.tokens.rotation import RefreshOutcome

PREVIOUS_KEY = "previousAccessToken"


class RefreshError(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Refresher:
    def __init__(
        self, kube: Kube, graph: GraphClient, budget: RequestBudget,
        clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        self.kube = kube
        self.graph = graph
        self.budget = budget
        self.clock = clock

    async def _app(
        self, namespace: str, ref: AppCredentialsRef | None, app: tuple[str, str] | None = None
    ) -> tuple[str, str]:
        """The app's id and secret: the tenant's WhatsAppApp's (`app`), else its app
        credentials Secret's."""
        if app is not None:
            return app
        if ref is None:
            raise RefreshError(
                "app credentials",
                "neither spec.appRef nor spec.rotation.appCredentialsSecretRef names the app",
            )
        try:
            secret = await self.kube.read_secret(namespace, ref.name)
        except KubeError as exc:  # else the whole reconcile of the tenant fails with it
            raise RefreshError("app credentials", str(exc)) from None
        credentials = read_app_credentials(
            secret.data if secret is not None else None,
            ref.name,
            ref.app_id_key,
            ref.app_secret_key,
        )
        if credentials.app_id is None or credentials.app_secret is None:
            raise RefreshError("app credentials", credentials.problem)
        REDACTOR.add(credentials.app_secret)
        return credentials.app_id, credentials.app_secret

    async def refresh(
        self, namespace: str, spec: TenantSpec, secret: SecretSnapshot, token: ResolvedToken,
        *, app: tuple[str, str] | None = None,
    ) -> RefreshOutcome:  # fmt: skip
        try:
            app_id, app_secret = await self._app(
                namespace, spec.rotation.app_credentials_secret_ref, app
            )
            new = await self._obtain(app_id, app_secret, spec, token)
            proof = appsecret_proof(new, app_secret)
            REDACTOR.add(proof)
            await self._verify(new, spec, proof)
            await self._write(namespace, spec, secret, new, token)
        except RefreshError as exc:
            return RefreshOutcome(False, exc.step, str(exc), self.clock())
        return RefreshOutcome(
            True, "done", f"token refreshed ({fingerprint(new)})", self.clock(),
            previous_fingerprint=token.fingerprint,
        )  # fmt: skip

    async def _obtain(
        self, app_id: str, app_secret: str, spec: TenantSpec, token: ResolvedToken
    ) -> str:
        try:
            await self.budget.acquire()
            body = await self.graph.exchange_token(
                app_id, app_secret, token.value, version=spec.graph_api_version
            )
        except GraphError as exc:
            raise RefreshError("exchange", str(exc)) from None
        new = str(body["access_token"])
        REDACTOR.add(new)
        if new == token.value:
            raise RefreshError("exchange", "Meta returned the same token")
        return new

    async def _verify(self, new: str, spec: TenantSpec, proof: str) -> None:
        """debug_token and a read of the tenant's number with the new token (and its proof:
        the app's secret is at hand here, whatever the app requires)."""
        version = spec.graph_api_version
        try:
            await self.budget.acquire()
            data = await self.graph.debug_token(new, version=version, proof=proof)
            verdict = judge_token(TokenFacts.from_debug_token(data), spec.waba_id, self.clock())
            if not verdict.ok:
                raise RefreshError("verify", f"the new token is not usable: {verdict.message}")
            await self.budget.acquire(spec.waba_id)
            await self.graph.phone_number(
                new, spec.phone_number_id, fields=("id",), version=version, proof=proof
            )
        except GraphError as exc:
            raise RefreshError("verify", str(exc)) from None

    async def _write(
        self, namespace: str, spec: TenantSpec, secret: SecretSnapshot, new: str,
        old: ResolvedToken,
    ) -> None:  # fmt: skip
        key = spec.token_secret_ref.key
        patch = {"data": {key: _b64(new), PREVIOUS_KEY: _b64(old.value)}}
        try:
            await self.kube.patch_secret(
                namespace, spec.token_secret_ref.name, patch, secret.resource_version
            )
        except KubeConflict:
            raise RefreshError("write", "the Secret changed meanwhile; retrying") from None
        except KubeError as exc:
            raise RefreshError("write", str(exc)) from None

    async def retire_previous(
        self, namespace: str, spec: TenantSpec, secret: SecretSnapshot, current: ResolvedToken,
        *, app: tuple[str, str] | None = None,
    ) -> str:  # fmt: skip
        """Drop previousAccessToken from the Secret, revoking it first if asked. Returns
        what was done, for the Event; raises RefreshError (retried later) on failure."""
        previous = decode_value(secret.data, PREVIOUS_KEY)
        revoked = ""
        if previous and spec.rotation.revoke_previous and previous != current.value:
            app_id, app_secret = await self._app(
                namespace, spec.rotation.app_credentials_secret_ref, app
            )
            try:
                await self.budget.acquire()
                await self.graph.revoke_token(
                    app_id, app_secret, previous, current.value, version=spec.graph_api_version
                )
            except GraphError as exc:
                raise RefreshError("revoke", str(exc)) from None
            revoked = " and revoked at Meta"
        if PREVIOUS_KEY in secret.data:
            try:
                await self.kube.patch_secret(
                    namespace, spec.token_secret_ref.name, {"data": {PREVIOUS_KEY: None}},
                    secret.resource_version,
                )  # fmt: skip
            except KubeError as exc:
                raise RefreshError("retire", str(exc)) from None
        fp = fingerprint(previous) if previous else "none"
        return f"previous token {fp} removed from the Secret{revoked}"
