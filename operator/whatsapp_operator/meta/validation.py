"""The live check of a tenant's token and phone number against the Graph API.

A thin adapter: it makes the calls (each through the shared request budget, every page of a
list too) and hands the payloads to the pure judges in `facts`. Every Graph failure ends as a
verdict, never an exception. The calls, in order:

1. `GET /debug_token?input_token=...`: is the token valid, with the scopes, for this WABA
   (granular scopes naming other WABAs fail fast with WabaNotInScope);
2. `GET /{phone-number-id}?fields=...`: the number's documented fields for the version;
3. `GET /{waba-id}/phone_numbers?fields=id&limit=100[&after=...]`, page by page until the
   number is found or the pages end: the proof that the number belongs to the WABA (not
   read when another check with the same token saw it there within 30 s: waba_numbers).

Each carries `appsecret_proof` when the tenant's app secret is known.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from whatsapp_contract.fingerprint import fingerprint
from whatsapp_graph.client import GraphClient
from whatsapp_graph.errors import ErrorClass, GraphApiError, GraphUnavailable, ThrottleScope
from whatsapp_operator.meta.budget import RequestBudget
from whatsapp_operator.meta.waba_numbers import WabaNumbers
from whatsapp_operator.model.facts import (
    PHONE_READ,
    TOKEN_CHECK,
    WABA_NUMBERS,
    CheckResult,
    Ownership,
    PhoneFacts,
    TokenFacts,
    Verdict,
    judge_error,
    judge_phone,
    judge_token,
    not_checked,
    unavailable,
)
from whatsapp_operator.model.spec import TenantSpec


class Validator:
    def __init__(
        self,
        graph: GraphClient,
        budget: RequestBudget,
        clock: Callable[[], datetime],
        numbers: WabaNumbers | None = None,
    ) -> None:
        self.graph = graph
        self.budget = budget
        self.clock = clock
        self.numbers = numbers if numbers is not None else WabaNumbers()
        # what the last Graph call of a check met, and when: "answered", "throttled" or
        # "unavailable" (the operator's health probe, runtime/probes.py); None: no call yet
        self.last_graph: tuple[str, datetime] | None = None

    def _saw(self, what: str) -> None:
        self.last_graph = (what, self.clock())

    def _throttled(self, exc: GraphApiError, waba_id: str) -> None:
        cls = exc.classification
        if cls.error_class is not ErrorClass.THROTTLE:
            self._saw("answered")
            return
        self._saw("throttled")
        waba = waba_id if cls.throttle_scope is ThrottleScope.WABA else None
        self.budget.pause(max(cls.min_delay, 1.0), waba=waba)

    async def check(self, token: str, spec: TenantSpec, proof: str | None = None) -> CheckResult:
        """`proof`: the token's appsecret_proof, when the tenant's app secret is known."""
        version = spec.graph_api_version
        try:
            await self.budget.acquire()
            data = await self.graph.debug_token(token, version=version, proof=proof)
        except GraphApiError as exc:
            self._throttled(exc, spec.waba_id)
            verdict = judge_error(exc.info, exc.classification.error_class, TOKEN_CHECK)
            return CheckResult(verdict, not_checked("token not valid"), checked_at=self.clock())
        except GraphUnavailable as exc:
            self._saw("unavailable")
            return CheckResult(unavailable(str(exc)), not_checked("token not checked"))
        self._saw("answered")
        now = self.clock()
        facts = TokenFacts.from_debug_token(data)
        token_verdict = judge_token(facts, spec.waba_id, now)
        if not token_verdict.ok:
            return CheckResult(token_verdict, not_checked("token not valid"), facts, checked_at=now)
        phone, phone_verdict = await self._check_phone(token, spec, proof)
        return CheckResult(token_verdict, phone_verdict, facts, phone, checked_at=now)

    async def _check_phone(
        self, token: str, spec: TenantSpec, proof: str | None
    ) -> tuple[PhoneFacts | None, Verdict]:
        what = PHONE_READ
        try:
            await self.budget.acquire(spec.waba_id)
            data = await self.graph.phone_number(
                token, spec.phone_number_id, version=spec.graph_api_version, proof=proof
            )
            facts = PhoneFacts.from_graph(data)
            what = WABA_NUMBERS
            ownership = await self._find_in_waba(token, spec, proof)
        except GraphApiError as exc:
            self._throttled(exc, spec.waba_id)
            return None, judge_error(exc.info, exc.classification.error_class, what)
        except GraphUnavailable as exc:
            self._saw("unavailable")
            return None, unavailable(str(exc))
        return facts, judge_phone(facts, spec.phone_number_id, ownership, spec.waba_id)

    async def _find_in_waba(self, token: str, spec: TenantSpec, proof: str | None) -> Ownership:
        """Is the number in the WABA's list? Seen there lately (with this token): yes, no
        request; else read the list from Meta page by page until it shows up."""
        key = (spec.waba_id, fingerprint(token))
        async with self.numbers.turn(key):
            if self.numbers.seen(key, spec.phone_number_id):
                return Ownership(found=True, more=False)
            ownership, ids = Ownership(), []
            pages = self.graph.phone_number_pages(
                token, spec.waba_id, pace=lambda: self.budget.acquire(spec.waba_id),
                version=spec.graph_api_version, proof=proof,
            )  # fmt: skip
            async with contextlib.aclosing(pages):
                async for page in pages:
                    page_ids = [str(item.get("id")) for item in page.items]
                    ids += page_ids
                    more = page.after is not None
                    ownership = ownership.after_page(page_ids, more, spec.phone_number_id)
                    if ownership.settled:
                        break
            self.numbers.remember(key, ids)
        return ownership
