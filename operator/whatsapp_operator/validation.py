"""The live check of a tenant's token and phone number against the Graph API.

A thin adapter: it makes the calls (through the shared request budget) and hands the payloads
to the pure judges in `facts`. Every Graph failure ends as a verdict, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import ErrorClass, GraphApiError, GraphUnavailable, ThrottleScope

from .budget import RequestBudget
from .decide import CheckResult
from .facts import (
    PhoneFacts,
    TokenFacts,
    Verdict,
    judge_error,
    judge_phone,
    judge_token,
    not_checked,
    unavailable,
)
from .spec import TenantSpec


class Validator:
    def __init__(
        self, graph: GraphClient, budget: RequestBudget, clock: Callable[[], datetime]
    ) -> None:
        self.graph = graph
        self.budget = budget
        self.clock = clock

    def _throttled(self, exc: GraphApiError, waba_id: str) -> None:
        cls = exc.classification
        if cls.error_class is not ErrorClass.THROTTLE:
            return
        waba = waba_id if cls.throttle_scope is ThrottleScope.WABA else None
        self.budget.pause(max(cls.min_delay, 1.0), waba=waba)

    async def check(self, token: str, spec: TenantSpec) -> CheckResult:
        version = spec.graph_api_version
        try:
            await self.budget.acquire()
            data = await self.graph.debug_token(token, version=version)
        except GraphApiError as exc:
            self._throttled(exc, spec.waba_id)
            verdict = judge_error(exc.info, exc.classification.error_class, "token check")
            return CheckResult(verdict, not_checked("token not valid"), checked_at=self.clock())
        except GraphUnavailable as exc:
            return CheckResult(unavailable(str(exc)), not_checked("token not checked"))
        now = self.clock()
        facts = TokenFacts.from_debug_token(data)
        token_verdict = judge_token(facts, spec.waba_id, now)
        if not token_verdict.ok:
            return CheckResult(token_verdict, not_checked("token not valid"), facts, checked_at=now)
        phone, phone_verdict = await self._check_phone(token, spec)
        return CheckResult(token_verdict, phone_verdict, facts, phone, checked_at=now)

    async def _check_phone(self, token: str, spec: TenantSpec) -> tuple[PhoneFacts | None, Verdict]:
        version = spec.graph_api_version
        try:
            await self.budget.acquire(spec.waba_id)
            data = await self.graph.phone_number(token, spec.phone_number_id, version=version)
            facts = PhoneFacts.from_graph(data)
            numbers: tuple[str, ...] | None = None
            if facts.waba_id is None:
                await self.budget.acquire(spec.waba_id)
                listed = await self.graph.waba_phone_numbers(token, spec.waba_id, version=version)
                numbers = tuple(str(n.get("id")) for n in listed)
        except GraphApiError as exc:
            self._throttled(exc, spec.waba_id)
            return None, judge_error(exc.info, exc.classification.error_class, "phone number")
        except GraphUnavailable as exc:
            return None, unavailable(str(exc))
        return facts, judge_phone(facts, spec.phone_number_id, numbers, spec.waba_id)
