"""`make audit` (hack/audit.py): which pins are audited from which PyPI data, and the verdicts."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "dependency_audit", Path(__file__).resolve().parents[2] / "hack" / "audit.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
audit = sys.modules["dependency_audit"] = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(audit)

VULN = {"id": "PYSEC-2017-94", "aliases": ["CVE-2013-7459"], "fixed_in": []}
FIXED = {"id": "GHSA-xxxx", "aliases": [], "fixed_in": ["2.1"], "withdrawn": None}
WITHDRAWN = {"id": "PYSEC-1", "aliases": [], "fixed_in": ["9"], "withdrawn": "2024-01-01"}


def project(newest: str, *vulns: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": newest}, "vulnerabilities": list(vulns)}


@pytest.mark.parametrize(
    ("release", "proj", "vulnerable", "unaudited"),
    [
        pytest.param({"vulnerabilities": []}, None, 0, "", id="per-release data, clean"),
        pytest.param({"vulnerabilities": [VULN]}, None, 1, "", id="per-release data, vulnerable"),
        pytest.param(None, project("2.0"), 0, "", id="newest release, clean"),
        pytest.param(None, project("2.0", VULN, FIXED), 2, "", id="newest release, vulnerable"),
        pytest.param(None, project("2.0", WITHDRAWN), 0, "", id="withdrawn advisory ignored"),
        pytest.param(None, project("3.0", VULN), 0, "not the newest", id="older pin: unaudited"),
        pytest.param(None, None, 0, "no JSON", id="nothing served"),
    ],
)
def test_judge(
    release: dict[str, Any] | None, proj: dict[str, Any] | None, vulnerable: int, unaudited: str
) -> None:
    verdict = audit.judge("pkg", "2.0", release, proj)
    assert len(verdict.vulnerabilities) == vulnerable
    assert (unaudited in verdict.unaudited) if unaudited else not verdict.unaudited


def test_a_vulnerability_names_its_aliases_and_fix() -> None:
    (text,) = audit.judge("pkg", "2.0", None, project("2.0", FIXED)).vulnerabilities
    assert text == "GHSA-xxxx (fixed in 2.1)"
    (text,) = audit.judge("pkg", "2.0", {"vulnerabilities": [VULN]}, None).vulnerabilities
    assert text == "PYSEC-2017-94 (CVE-2013-7459; fixed in no fix yet)"


def test_pins_reads_the_lock_format() -> None:
    text = "# comment\naio-pika==10.2.1\nuvloop==0.21.0 ; sys_platform != 'win32'\n\nfoo>=1\n"
    assert audit.pins(text) == [("aio-pika", "10.2.1"), ("uvloop", "0.21.0")]
    hashed = (
        "aio-pika==10.2.1 \\\n    --hash=sha256:ab \\\n    --hash=sha256:cd\nsix==1.17.0 --hash=x\n"
    )
    assert audit.pins(hashed) == [("aio-pika", "10.2.1"), ("six", "1.17.0")]
    locked = audit.pins((audit.LOCK).read_text())  # the real lock parses
    assert len(locked) > 40
    assert all(re.fullmatch(r"[0-9][0-9a-z.+!]*", version) for _, version in locked), locked


LOCK = "old==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\nnew==2.0 --hash=sha256:" + "b" * 64 + "\n"
NEWEST = {"old": "1.5", "new": "2.0"}  # `old` is not its project's newest release


def _run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    required: bool,
    accepted: str = "",
    unreachable: bool = False,
) -> tuple[int, str]:
    """audit.main on a two-pin lock, with PyPI serving only its per-project JSON (as here)."""

    def get(url: str) -> dict[str, Any] | None:
        if unreachable:
            raise OSError("Network is unreachable")
        parts = url.removeprefix(audit.PYPI + "/").split("/")
        return project(NEWEST[parts[0]]) if parts[1] == "json" else None  # per-release: 404

    monkeypatch.setattr(audit, "_get", get)
    monkeypatch.setenv("AUDIT_REQUIRED", "1" if required else "0")
    (tmp_path / "requirements.lock").write_text(LOCK)
    (tmp_path / "accepted.txt").write_text(accepted)
    code = audit.main(tmp_path / "requirements.lock", tmp_path / "accepted.txt")
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("required", "accepted", "code"),
    [
        pytest.param(True, "", 3, id="required: an unchecked pin fails"),
        pytest.param(False, "", 0, id="not required: named, passes"),
        pytest.param(True, "old==1.0  # pinned by a dependency", 0, id="required, accepted"),
        pytest.param(True, "old==0.9  # another release", 3, id="acceptance is per version"),
    ],
)
def test_a_pin_that_could_not_be_checked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    required: bool,
    accepted: str,
    code: int,
) -> None:
    got, output = _run(tmp_path, monkeypatch, capsys, required=required, accepted=accepted)
    assert got == code
    assert "NOT CHECKED old==1.0: not the newest release (1.5)" in output  # always said plainly
    assert "NOT CHECKED new==2.0" not in output
    assert "1 checked" in output
    assert ("FAILED" in output) is (code == 3)
    assert ("pinned by a dependency" in output) is ("pinned by" in accepted)


def test_every_pin_checked_passes_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(NEWEST, "old", "1.0")
    code, output = _run(tmp_path, monkeypatch, capsys, required=True)
    assert code == 0
    assert "2 checked" in output
    assert "NOT CHECKED" not in output.replace("0 NOT CHECKED", "")


@pytest.mark.parametrize(("required", "code"), [(True, 3), (False, 0)])
def test_no_advisory_source_reachable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    required: bool,
    code: int,
) -> None:
    got, output = _run(tmp_path, monkeypatch, capsys, required=required, unreachable=True)
    assert got == code
    assert "NOT CHECKED: all 2 pins" in output


def test_the_accepted_pins_are_in_the_lock_and_give_a_reason() -> None:
    accepted = audit.accepted_pins(audit.ACCEPTED.read_text())
    locked = {(audit._key(n), v) for n, v in audit.pins(audit.LOCK.read_text())}
    assert accepted
    for pin, reason in accepted.items():
        assert pin in locked, f"{pin} is accepted but not locked: remove it"
        assert reason
