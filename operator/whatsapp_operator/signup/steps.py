"""Steps 2 to 6 of a signup (Meta, then the tenant), and the dispatch of one step.

Each step returns a `StepResult` and never raises for an expected failure: Kubernetes and
Graph API failures become conditions here. The number of register calls is recorded in the
status *before* each call, so a crash never makes the operator spend more than it recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from whatsapp_graph.errors import GraphApiError, GraphUnavailable
from whatsapp_operator.model.secret_data import resolve_token
from whatsapp_operator.runtime.kube import KubeConflict, KubeError, KubeForbidden, KubeUnavailable
from whatsapp_operator.runtime.logs import REDACTOR
from whatsapp_operator.signup import judge
from whatsapp_operator.signup.exchange import AppBlocked, CodeExchange
from whatsapp_operator.signup.flow import (
    APP_SUBSCRIBED,
    CODE_EXCHANGED,
    MAX_REGISTER_ATTEMPTS,
    NUMBER_REGISTERED,
    PHONE_NUMBER_SELECTED,
    TENANT_CREATED,
    WABA_DISCOVERED,
    Reason,
    StepResult,
    done,
    retry,
    stop,
)
from whatsapp_operator.signup.model import (
    PIN_PATTERN,
    TOKEN_KEY,
    secret_value,
    tenant_body,
    tenant_spec,
)


class SignupSteps(CodeExchange):
    """Steps 2 to 6, and the dispatch of one step with its failures translated."""

    async def run(self, step: str, status: Mapping[str, Any]) -> StepResult:
        try:
            return await self._STEPS[step](self, status)
        except (KubeUnavailable, KubeConflict) as exc:
            return retry(step, Reason.KUBERNETES_UNAVAILABLE, str(exc))
        except KubeForbidden as exc:  # retried: fixing RBAC lets the signup go on
            return retry(step, Reason.KUBERNETES_FORBIDDEN, str(exc))
        except KubeError as exc:
            return stop(step, Reason.KUBERNETES_REJECTED, f"the API server refused: {exc}")
        except GraphUnavailable as exc:
            return retry(step, Reason.GRAPH_API_UNAVAILABLE, str(exc))
        except AppBlocked as exc:  # spec.appRef's WhatsAppApp, needed for the proof
            return exc.result

    async def _token_or_stop(self, step: str) -> str | StepResult:
        if self._token is not None:
            return self._token
        secret = await self.kube.read_secret(self.namespace, self.secret_name)
        outcome = resolve_token(secret.data if secret else None, self.secret_name, TOKEN_KEY)
        if outcome.token is None:
            why = f"{outcome.message}: the token from the code exchange is gone; {judge.NEW_SIGNUP}"
            return stop(step, Reason.TOKEN_SECRET_NOT_FOUND, why)
        REDACTOR.add(outcome.token.value)
        self._token = outcome.token.value
        return self._token

    # --- 2..5: Meta ------------------------------------------------------------------------

    async def discover(self, status: Mapping[str, Any]) -> StepResult:
        token = await self._token_or_stop(WABA_DISCOVERED)
        if isinstance(token, StepResult):
            return token
        proof = await self._proof(token, WABA_DISCOVERED)
        try:
            await self.budget.acquire()
            data = await self.graph.debug_token(token, proof=proof)
        except GraphApiError as exc:
            self._throttled(exc)
            return judge.graph_error(WABA_DISCOVERED, exc.info, exc.classification.error_class)
        return judge.discover_waba(data, self.spec.session)

    async def select(self, status: Mapping[str, Any]) -> StepResult:
        token = await self._token_or_stop(PHONE_NUMBER_SELECTED)
        if isinstance(token, StepResult):
            return token
        waba = str(status["wabaId"])
        proof = await self._proof(token, PHONE_NUMBER_SELECTED)
        try:  # every page through the budget; the read also confirms the token reaches it
            numbers = await self.graph.waba_phone_numbers(
                token, waba, pace=lambda: self.budget.acquire(waba), proof=proof
            )
        except GraphApiError as exc:
            self._throttled(exc, waba)
            cls = exc.classification.error_class
            return judge.graph_error(PHONE_NUMBER_SELECTED, exc.info, cls)
        session = self.spec.session.phone_number_id if self.spec.session else None
        return judge.select_phone(numbers, self.spec.phone_number_selector, waba, session)

    async def subscribe(self, status: Mapping[str, Any]) -> StepResult:
        token = await self._token_or_stop(APP_SUBSCRIBED)
        if isinstance(token, StepResult):
            return token
        waba = str(status["wabaId"])
        proof = await self._proof(token, APP_SUBSCRIBED)
        try:
            await self.budget.acquire(waba)
            await self.graph.subscribe_app(token, waba, proof=proof)
        except GraphApiError as exc:
            self._throttled(exc, waba)
            return judge.graph_error(APP_SUBSCRIBED, exc.info, exc.classification.error_class)
        return done(APP_SUBSCRIBED, Reason.SUBSCRIBED, f"app subscribed to WABA {waba}")

    async def register(self, status: Mapping[str, Any]) -> StepResult:
        token = await self._token_or_stop(NUMBER_REGISTERED)
        if isinstance(token, StepResult):
            return token
        ref = self.spec.code_secret_ref
        data = await self.kube.secret_data(self.namespace, ref.name)
        pin = secret_value(data, ref.name, ref.pin_key)
        if pin.value is None or PIN_PATTERN.match(pin.value) is None:
            why = f"no usable 6-digit PIN: {pin.message or 'not 6 digits'}"
            return stop(NUMBER_REGISTERED, Reason.PIN_INVALID, why)
        attempts = int(status.get("registerAttempts") or 0)
        if attempts >= MAX_REGISTER_ATTEMPTS:
            return judge.register_unavailable("no answer from Meta", attempts)
        waba, phone = str(status["wabaId"]), str(status["phoneNumberId"])
        proof = await self._proof(token, NUMBER_REGISTERED)
        await self.record({"registerAttempts": attempts + 1})
        try:
            await self.budget.acquire(waba)
            await self.graph.register_number(token, phone, pin.value, proof=proof)
        except GraphApiError as exc:
            self._throttled(exc, waba)
            cls = exc.classification.error_class
            return judge.register_error(exc.info, cls, attempts + 1)
        except GraphUnavailable as exc:
            return judge.register_unavailable(str(exc), attempts + 1)
        return done(NUMBER_REGISTERED, Reason.REGISTERED, f"number {phone} registered")

    # --- 6. TenantCreated ------------------------------------------------------------------

    async def create_tenant(self, status: Mapping[str, Any]) -> StepResult:
        waba, phone = str(status["wabaId"]), str(status["phoneNumberId"])
        body = tenant_body(self.tenant_name, self.name, self.spec, waba, phone)
        ref = f"{self.namespace}/{self.tenant_name}"
        taken = self._id_taken()
        if taken is not None:
            return taken
        if await self.kube.create_custom(self.namespace, body):
            detail = f"tenant {ref} created: WABA {waba}, phone number {phone}"
            self._audit(detail, status.get("tokenFingerprint"))
            return done(TENANT_CREATED, Reason.CREATED, f"WhatsAppTenant {ref} created")
        existing = await self.kube.get_custom(self.namespace, self.tenant_name)
        if existing is None:
            return retry(TENANT_CREATED, Reason.IN_PROGRESS, f"{ref} was deleted meanwhile")
        conflict = judge.tenant_conflict(existing, self.name, self.tenant_name)
        if conflict is not None:
            return conflict
        desired = tenant_spec(self.spec, waba, phone, self.secret_name)
        current = existing.get("spec") or {}
        if current.get("tenantId") != desired["tenantId"]:
            why = f"{ref} was created by this signup for tenantId {current.get('tenantId')!r}"
            return stop(TENANT_CREATED, Reason.TENANT_EXISTS, why)
        ids = ("wabaId", "phoneNumberId", "tokenSecretRef")
        changed = {k: desired[k] for k in ids if current.get(k) != desired[k]}
        if changed:
            await self.kube.patch_custom(self.namespace, self.tenant_name, {"spec": changed})
        return done(TENANT_CREATED, Reason.CREATED, f"WhatsAppTenant {ref} (created earlier)")

    _STEPS: Mapping[str, Callable[[SignupSteps, Mapping[str, Any]], Awaitable[StepResult]]] = {
        CODE_EXCHANGED: CodeExchange.exchange,
        WABA_DISCOVERED: discover,
        PHONE_NUMBER_SELECTED: select,
        APP_SUBSCRIBED: subscribe,
        NUMBER_REGISTERED: register,
        TENANT_CREATED: create_tenant,
    }
