"""Step 1, CodeExchanged, and the context every step shares.

The code is single-use: before it is spent, everything that could stop the signup is checked
(Secrets, the tenant and token Secret names); the number of exchanges is recorded in the
status before each one; the exchange and the write of its token run to completion even when
the operator is stopping; and a token obtained but not yet stored is kept for the next pass.
The exchange never queues behind the shared request budget (the code lives about 30 s): it is
charged to the budget and goes at once. The later steps send the token's appsecret_proof,
from the signup's app credentials. With `spec.appRef` the app's id and secret come from the
WhatsAppApp in the operator's apps index (no Secret is read), judged as for a tenant in the
signup's namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from whatsapp_graph.client import appsecret_proof
from whatsapp_graph.errors import ErrorClass, GraphApiError, GraphUnavailable, ThrottleScope
from whatsapp_operator.apps.tenant_ref import ResolvedApp
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
    SecretValue,
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


class AppBlocked(Exception):
    """The signup's WhatsAppApp may not be used now (a wait or a stop: `result`)."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.conditions[0].message)
        self.result = result


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
        """A stop when another tenant holds the id (one of a namespace the tenant policy does
        not allow it in holds nothing)."""
        tenant_id = self.spec.tenant.tenant_id
        mine = f"{self.namespace}/{self.tenant_name}"
        holders = [
            ref
            for ref in self.claimed_by(tenant_id)
            if self.rt.policy_verdict(tenant_id, ref.partition("/")[0]).allowed
        ]
        return judge.tenant_id_taken(tenant_id, holders, mine)

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

    def _app(self, step: str) -> ResolvedApp | StepResult:
        """The WhatsAppApp of spec.appRef from the apps index, if the signup may use it."""
        ref = self.spec.app_ref
        assert ref is not None
        apps = self.rt.apps
        labels = next(iter(self.rt.namespace_labels.get(self.namespace, ())), None)
        return judge.app_ref(
            step, ref.name, apps.get(ref.name), self.namespace, labels,
            pending=apps.pending(ref.name),
        )  # fmt: skip

    async def _credentials(self, step: str) -> tuple[SecretValue, SecretValue] | StepResult:
        """The app's id and secret: the WhatsAppApp's (spec.appRef), else read from the app
        credentials Secret."""
        if self.spec.app_ref is not None:
            app = self._app(step)
            if isinstance(app, StepResult):
                return app
            return SecretValue(app.app_id), SecretValue(app.app_secret)
        ref = self.spec.app_credentials_secret_ref
        assert ref is not None
        data = await self.kube.secret_data(self.namespace, ref.name)
        app_id = secret_value(data, ref.name, ref.app_id_key)
        return app_id, secret_value(data, ref.name, ref.app_secret_key)

    async def _proof(self, token: str, step: str) -> str | None:
        """The token's appsecret_proof, keyed by the app secret (None when the app credentials
        Secret cannot be read: the call then goes without one). A WhatsAppApp the signup may
        not use (yet) raises AppBlocked: `step` waits or stops, as its reason says."""
        if self._app_secret is None:
            credentials = await self._credentials(step)
            if isinstance(credentials, StepResult):
                raise AppBlocked(credentials)
            found = credentials[1].value
            if found is None:
                return None
            REDACTOR.add(found)
            self._app_secret = found
        proof = appsecret_proof(token, self._app_secret)
        REDACTOR.add(proof)
        return proof

    # --- 1. CodeExchanged ------------------------------------------------------------------

    def _policy(self) -> StepResult | None:
        """A stop (or a wait) when the tenant id is not allowed in the signup's namespace."""
        verdict = self.rt.policy_verdict(self.spec.tenant.tenant_id, self.namespace)
        return judge.tenant_id_policy(verdict, self.rt.labels_of(self.namespace) is not None)

    async def exchange(self, status: Mapping[str, Any]) -> StepResult:
        ref = self.spec.code_secret_ref
        code_data = await self.kube.secret_data(self.namespace, ref.name)
        code = secret_value(code_data, ref.name, ref.code_key)
        pin = secret_value(code_data, ref.name, ref.pin_key) if self.spec.register_number else None
        credentials = await self._credentials(CODE_EXCHANGED)
        if isinstance(credentials, StepResult):  # the WhatsAppApp: waited for, or not allowed
            return judge.code_preflight(code, pin) or credentials
        app_id, app_secret = credentials
        blocked = judge.preflight(code, pin, app_id, app_secret)
        if blocked is not None:
            return blocked
        assert code.value is not None
        assert app_id.value is not None
        assert app_secret.value is not None
        for value in (code.value, app_secret.value):
            REDACTOR.add(value)
        self._app_secret = app_secret.value
        if (not_allowed := self._policy()) is not None:  # the platform's: before the code
            return not_allowed
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
