"""`make audit` (hack/audit.py): which pins are audited from which PyPI data, and the verdicts."""

from __future__ import annotations

import importlib.util
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
    assert len(audit.pins((audit.LOCK).read_text())) > 40  # the real lock parses
