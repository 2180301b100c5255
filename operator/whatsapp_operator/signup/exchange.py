"""Step 1, CodeExchanged, and the context every step shares.

The code is single-use: before it is spent, everything that could stop the signup is checked
(Secrets, the tenant and token Secret names); the number of exchanges is recorded in the
status before each one; the exchange and the write of its token run to completion even when
the operator is stopping; and a token obtained but not yet stored is kept for the next pass.
The exchange never queues behind the shared request budget (the code lives about 30 s): it is
charged to the budget and goes at once. The later steps send the token's appsecret_proof,
from the signup's app credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from whatsapp_graph.client import appsecret_proof
from whatsapp_graph.errors import ErrorClass, GraphApiError, GraphUnavailable, ThrottleScope
from whatsapp_operator.model.secret_data import fingerprint, resolve_token
from whatsapp_operator.runtime.kube import KubeConflict
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.signup import judge
from whatsapp_operator.signup.flow import (
    CODE_EXCHANGED,
    Reason,
    StepResult,
    done,
    retry,
    signup_active,
    stop,
)
from whatsapp_operator.signup.model import (
    SIGNUP_ANNOTATION,
    SIGNUP_PLURAL,
    TOKEN_KEY,
    SignupSpec,
    code_fingerprint,
    secret_value,
    token_secret_body,
    token_secret_name,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Record = Callable[[Mapping[str, Any]], Awaitable[None]]
# The WhatsAppTenants ("namespace/name") claiming a tenantId, from the operator's index.
ClaimedBy = Callable[[str], Sequence[str]]


async def uninterrupted(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end even if the caller is cancelled (then re-raise the cancel)."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


class CodeExchange:
    """What every step shares (clients, names, the token once known), and step 1."""

    def __init__(
        self,
        rt: Runtime,
        namespace: str,
        name: str,
        spec: SignupSpec,
        record: Record,
        claimed_by: ClaimedBy = lambda tenant_id: (),
    ) -> None:
        self.rt, self.kube, self.spec = rt, rt.kube, spec
        self.claimed_by = claimed_by
        self.graph, self.budget = rt.validator.graph, rt.validator.budget
        self.namespace, self.name, self.record = namespace, name, record
        self.tenant_name = spec.tenant_name(name)
        self.secret_name = token_secret_name(self.tenant_name)
        self._token: str | None = None
        self._pending: tuple[str, str] | None = None  # (token, code fingerprint) not stored yet
        self._app_secret: str | None = None  # read once; only ever used for proofs

    def _id_taken(self) -> StepResult | None:
        tenant_id = self.spec.tenant.tenant_id
        mine = f"{self.namespace}/{self.tenant_name}"
        return judge.tenant_id_taken(tenant_id, self.claimed_by(tenant_id), mine)

    def _throttled(self, exc: GraphApiError, waba: str | None = None) -> None:
        cls = exc.classification
        if cls.error_class is ErrorClass.THROTTLE:
            scoped = waba if cls.throttle_scope is ThrottleScope.WABA else None
            self.budget.pause(max(cls.min_delay, 1.0), waba=scoped)

    def _audit(self, detail: str, token_fp: str | None) -> None:
        """The lead's audit trail, when the runtime has one; never fatal to the signup."""
        audit = getattr(self.rt, "audit", None)
        if audit is None:
            return
        actor = f"signup/{self.namespace}/{self.name}"
        try:  # queued: the audit writer appends it in the background (audit_writer.py)
            audit.submit(self.spec.tenant.tenant_id, "signup", actor, token_fp, detail)
        except ValueError as exc:  # refused fields; the Events still say what happened
            log.warning("signup %s/%s: audit entry refused: %s", self.namespace, self.name, exc)

    async def _proof(self, token: str) -> str | None:
        """The token's appsecret_proof (the app secret from the signup's app credentials
        Secret; None when it cannot be read: the call then goes without one)."""
        if self._app_secret is None:
            ref = self.spec.app_credentials_secret_ref
            data = await self.kube.secret_data(self.namespace, ref.name)
            found = secret_value(data, ref.name, ref.app_secret_key).value
            if found is None:
                return None
            REDACTOR.add(found)
            self._app_secret = found
        proof = appsecret_proof(token, self._app_secret)
        REDACTOR.add(proof)
        return proof

    # --- 1. CodeExchanged ------------------------------------------------------------------

    async def exchange(self, status: Mapping[str, Any]) -> StepResult:
        ref, app = self.spec.code_secret_ref, self.spec.app_credentials_secret_ref
        code_data = await self.kube.secret_data(self.namespace, ref.name)
        app_data = await self.kube.secret_data(self.namespace, app.name)
        code = secret_value(code_data, ref.name, ref.code_key)
        pin = secret_value(code_data, ref.name, ref.pin_key) if self.spec.register_number else None
        app_id = secret_value(app_data, app.name, app.app_id_key)
        app_secret = secret_value(app_data, app.name, app.app_secret_key)
        blocked = judge.preflight(code, pin, app_id, app_secret)
        if blocked is not None:
            return blocked
        assert code.value is not None
        assert app_id.value is not None
        assert app_secret.value is not None
        for value in (code.value, app_secret.value):
            REDACTOR.add(value)
        self._app_secret = app_secret.value
        tenant = await self.kube.get_custom(self.namespace, self.tenant_name)
        conflict = judge.tenant_conflict(tenant, self.name, self.tenant_name) or self._id_taken()
        if conflict is not None:
            return conflict
        code_fp = code_fingerprint(code.value)
        secret = await self.kube.read_secret(self.namespace, self.secret_name)
        owner = secret.annotations.get(SIGNUP_ANNOTATION) if secret is not None else None
        other_active = False
        if owner and owner != self.name:
            other = await self.kube.get_custom(self.namespace, owner, plural=SIGNUP_PLURAL)
            other_active = signup_active(other)
        claim = judge.token_secret_claim(
            secret.annotations if secret is not None else None,
            self.name,
            code_fp,
            tenant_exists=tenant is not None,
            other_active=other_active,
        )
        where = f"Secret {self.secret_name!r}"
        if claim == "foreign":
            why = (
                f"{where} exists and was not created by a signup (or belongs to another "
                "signup's tenant): it is never overwritten; create a new signup with another "
                "spec.tenant.name"
            )
            return stop(CODE_EXCHANGED, Reason.TOKEN_SECRET_EXISTS, why)
        if claim == "busy":
            why = f"{where} belongs to signup {owner!r}, which is still running; waiting"
            return retry(CODE_EXCHANGED, Reason.SIGNUP_IN_PROGRESS, why)
        if claim == "reuse" and secret is not None:
            found = resolve_token(secret.data, self.secret_name, TOKEN_KEY).token
            if found is not None:
                REDACTOR.add(found.value)
                self._token = found.value
                return self._exchanged(found.fingerprint, "reused from an earlier attempt")
        resource_version = secret.resource_version if secret is not None else None
        return await uninterrupted(
            self._exchange_and_store(status, app_id.value, app_secret.value, code.value, code_fp,
                                     resource_version)
        )  # fmt: skip

    async def _exchange_and_store(
        self,
        status: Mapping[str, Any],
        app_id: str,
        app_secret: str,
        code: str,
        code_fp: str,
        resource_version: str | None,
    ) -> StepResult:
        if self._pending is not None and self._pending[1] == code_fp:
            token = self._pending[0]  # obtained on an earlier pass, not stored yet
        else:
            attempts = int(status.get("exchangeAttempts") or 0) + 1
            await self.record({"exchangeAttempts": attempts})
            # Meta's code lives about 30 s: the exchange never queues behind the budget's
            # waiting callers (or a pause); it is counted, and they are paced after it.
            self.budget.charge()
            try:
                answer = await self.graph.exchange_code(app_id, app_secret, code)
            except GraphApiError as exc:
                self._throttled(exc)
                return judge.exchange_error(exc.info, exc.classification.error_class, attempts)
            except GraphUnavailable as exc:
                return judge.exchange_unavailable(str(exc), attempts)
            token = str(answer["access_token"])
            REDACTOR.add(token)
            self._pending = (token, code_fp)
        body = token_secret_body(self.secret_name, self.name, token, code_fp)
        if resource_version is None:
            stored = await self.kube.create_secret(self.namespace, body)
        else:
            patch = {"metadata": body["metadata"], "data": body["data"]}
            try:
                await self.kube.patch_secret(
                    self.namespace, self.secret_name, patch, resource_version
                )
                stored = True
            except KubeConflict:
                stored = False
        if not stored:
            why = f"Secret {self.secret_name!r} changed while the token was stored; looking again"
            return retry(CODE_EXCHANGED, Reason.SIGNUP_IN_PROGRESS, why)
        self._pending, self._token = None, token
        token_fp = fingerprint(token)
        self._audit(f"code exchanged; token stored in Secret {self.secret_name}", token_fp)
        return self._exchanged(token_fp, "obtained")

    def _exchanged(self, token_fp: str, how: str) -> StepResult:
        return done(
            CODE_EXCHANGED,
            Reason.EXCHANGED,
            f"token {token_fp} {how}, in Secret {self.secret_name!r} (key {TOKEN_KEY})",
            tokenSecretName=self.secret_name,
            tokenFingerprint=token_fp,
            tenantName=self.tenant_name,
        )
