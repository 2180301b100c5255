"""One signup's loop (the body of its kopf daemon): run the next step, write the status, repeat.

Level-based: the next step comes from the stored conditions only, so a restarted operator
resumes where the last one stopped, and a finished or stopped signup costs one read. The
loop keeps its own copy of the status (it is the only writer), writes a merge patch only
when something changed, and posts an Event when a condition changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from whatsapp_operator.model.conditions import Condition, merge
from whatsapp_operator.model.fragment import Event
from whatsapp_operator.model.patches import merge_patch
from whatsapp_operator.model.recheck import backoff
from whatsapp_operator.runtime.kube import KubeError
from whatsapp_operator.runtime.services import Runtime
from whatsapp_operator.signup.exchange import ClaimedBy
from whatsapp_operator.signup.flow import (
    READY,
    Reason,
    StepResult,
    apply_result,
    next_step,
    notices,
)
from whatsapp_operator.signup.model import SIGNUP_PLURAL, SignupSpec, parse_signup_spec
from whatsapp_operator.signup.steps import SignupSteps

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]


class SignupGone(Exception):
    """The signup was deleted while it ran."""


class SignupRunner:
    def __init__(
        self,
        rt: Runtime,
        body: Mapping[str, Any],
        *,
        claimed_by: ClaimedBy = lambda tenant_id: (),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        meta = body["metadata"]
        self.rt, self.body, self.sleep, self.claimed_by = rt, body, sleep, claimed_by
        self.namespace, self.name = str(meta["namespace"]), str(meta["name"])
        self.generation = int(meta.get("generation") or 0)
        self.status: dict[str, Any] = dict(body.get("status") or {})

    async def run(self) -> None:
        spec, error = parse_signup_spec(self.body.get("spec"))
        try:
            if spec is None:
                await self._invalid(error)
                return
            await self._loop(spec)
        except SignupGone:
            log.info("signup %s/%s was deleted", self.namespace, self.name)

    async def _loop(self, spec: SignupSpec) -> None:
        steps = SignupSteps(self.rt, self.namespace, self.name, spec, self._record, self.claimed_by)
        failures = 0
        while True:
            step = next_step(spec, self.status)
            result = StepResult("next", ()) if step is None else await steps.run(step, self.status)
            try:
                await self._apply(spec, result)
            except KubeError as exc:
                log.warning("signup %s/%s: status not written: %s", self.namespace, self.name, exc)
                result = StepResult("retry", ())
            else:
                if step is None or result.outcome == "stop":
                    return
            if result.outcome == "retry":
                failures += 1
                await self.sleep(backoff(failures))
            else:
                failures = 0

    async def _write(self, new: dict[str, Any]) -> None:
        patch = merge_patch(self.status, new)
        if patch:
            rv = await self.rt.kube.patch_custom(
                self.namespace, self.name, {"status": patch}, plural=SIGNUP_PLURAL, status=True
            )
            if rv is None:
                raise SignupGone
        self.status = new

    async def _record(self, fields: Mapping[str, Any]) -> None:
        """Write some status fields now (the attempt counters, before each call to Meta)."""
        await self._write({**self.status, **fields})

    async def _apply(self, spec: SignupSpec, result: StepResult) -> None:
        before = self.status
        new = apply_result(
            before,
            result,
            spec,
            tenant=f"{self.namespace}/{spec.tenant_name(self.name)}",
            generation=self.generation,
            now=self.rt.clock(),
        )
        await self._write(new)
        for notice in notices(before, new):
            self.rt.post_event(self.body, Event(notice.type, notice.reason, notice.message))

    async def _invalid(self, error: str) -> None:
        cond = Condition(READY, "False", Reason.INVALID_SPEC, error)
        conditions = merge(
            self.status.get("conditions") or [],
            [cond],
            generation=self.generation,
            now=self.rt.clock(),
        )
        await self._write(
            {**self.status, "conditions": conditions, "observedGeneration": self.generation}
        )
