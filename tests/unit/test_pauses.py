"""Numbers Meta blocked, as one worker process sees them (worker/whatsapp_worker/pauses.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from whatsapp_worker.pauses import Debounce, Gate, NumberPauses, Pause, Verdict

PHONE = "1065"
NOW = 1000.0
PROBE = 300.0


@dataclass(frozen=True)
class Case:
    id: str
    pause: Pause | None  # this process's pause before the message
    blocked_code: int | None  # the tenant's in the loaded config
    now: float
    gate: Gate
    after: Pause | None  # the pause after the message


def paused(code: int = 131048, *, probe_at: float = NOW + PROBE, confirmed: bool = False) -> Pause:
    return Pause(code, NOW, probe_at, confirmed)


CASES = [
    Case("no pause, no block: send", None, None, NOW, Gate(Verdict.SEND), None),
    Case("the config says blocked: hold (every replica)", None, 368, NOW,
         Gate(Verdict.HOLD, 368), None),
    Case("paused here, config not yet reloaded: hold", paused(), None, NOW + 1,
         Gate(Verdict.HOLD, 131048), paused()),
    Case("paused here, the config confirms: hold, pause confirmed", paused(), 131048, NOW + 5,
         Gate(Verdict.HOLD, 131048), paused(confirmed=True)),
    Case("the config's code wins", paused(), 368, NOW + 5, Gate(Verdict.HOLD, 368),
         paused(confirmed=True)),
    Case("confirmed, still in the config: hold, no probe even when due",
         paused(confirmed=True), 131048, NOW + 10 * PROBE, Gate(Verdict.HOLD, 131048),
         paused(confirmed=True)),
    Case("confirmed, then cleared by the operator: send, pause dropped",
         paused(confirmed=True), None, NOW + 60, Gate(Verdict.SEND), None),
    Case("never confirmed, probe not due: hold", paused(), None, NOW + PROBE - 0.1,
         Gate(Verdict.HOLD, 131048), paused()),
    Case("never confirmed, probe due: one message probes, the next probe later", paused(),
         None, NOW + PROBE, Gate(Verdict.PROBE, 131048),
         paused(probe_at=NOW + 2 * PROBE)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gate(case: Case) -> None:
    pauses = NumberPauses(PROBE)
    if case.pause is not None:
        pauses._pauses[PHONE] = case.pause
    assert pauses.gate(PHONE, case.blocked_code, case.now) == case.gate
    assert pauses.get(PHONE) == case.after
    assert len(pauses) == (case.after is not None)
    assert pauses.gate("other", None, case.now) == Gate(Verdict.SEND)  # numbers are apart


def test_a_probe_goes_once_per_interval() -> None:
    pauses = NumberPauses(PROBE)
    pauses.pause(PHONE, 131048, NOW)
    verdicts = [pauses.gate(PHONE, None, NOW + t).verdict for t in (0, 299, 300, 300, 450, 600)]
    assert verdicts == [Verdict.HOLD] * 2 + [Verdict.PROBE] + [Verdict.HOLD] * 2 + [Verdict.PROBE]


def test_pause_renews_and_keeps_its_start_and_confirmation() -> None:
    pauses = NumberPauses(PROBE)
    assert pauses.pause(PHONE, 131048, NOW) is True
    pauses.gate(PHONE, 131048, NOW + 1)  # the operator confirms
    assert pauses.pause(PHONE, 368, NOW + 400) is False  # a probe failed again
    assert pauses.get(PHONE) == Pause(368, NOW, NOW + 400 + PROBE, confirmed=True)
    assert pauses.holding(PHONE) == 368


def test_lift_ends_the_pause() -> None:
    pauses = NumberPauses(PROBE)
    pauses.pause(PHONE, 131048, NOW)
    assert pauses.lift(PHONE) is True
    assert pauses.lift(PHONE) is False
    assert pauses.holding(PHONE) is None
    assert pauses.gate(PHONE, None, NOW) == Gate(Verdict.SEND)


def test_probe_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="probe_interval"):
        NumberPauses(0)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([0.0, 29.9, 30.0, 45.0, 60.0], [True, False, True, False, True], id="30s"),
        pytest.param([0.0, 0.0], [True, False], id="same-instant"),
    ],
)
def test_debounce(events: list[float], expected: list[bool]) -> None:
    debounce = Debounce(30.0)
    seen = []
    for t in events:
        due = debounce.due(("t1", 131048), t)
        seen.append(due)
        if due:
            debounce.mark(("t1", 131048), t)
    assert seen == expected
    assert debounce.due(("t1", 368), 1.0)  # another code: its own key
    assert debounce.due(("t2", 131048), 1.0)  # another tenant


def test_debounce_forgets_old_keys_when_full() -> None:
    debounce = Debounce(10.0, limit=3)
    for i in range(3):
        debounce.mark(i, 0.0)
    debounce.mark("new", 20.0)  # over the limit: the old ones (past the interval) go
    assert set(debounce._last) == {"new"}
