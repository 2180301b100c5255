"""Every test module under tests/integration carries the `integration` marker (module-level
`pytestmark`): `-m "not integration"` must never run a test that needs real servers, and
`-m integration` must never miss one. tests/integration/test_secret_metadata_watch.py once
lacked it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def _is_integration_mark(node: ast.expr) -> bool:
    """`pytest.mark.integration`, or that mark called with arguments."""
    if isinstance(node, ast.Call):
        node = node.func
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "integration"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "pytest"
    )


def marks_module_integration(source: str) -> bool:
    """True when a module-level `pytestmark` is, or lists, `pytest.mark.integration`."""
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            continue
        values = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
        if any(_is_integration_mark(v) for v in values):
            return True
    return False


@pytest.mark.parametrize(
    ("source", "marked"),
    [
        pytest.param("import pytest\npytestmark = pytest.mark.integration\n", True, id="single"),
        pytest.param(
            "pytestmark = [pytest.mark.integration, pytest.mark.reliability]\n", True, id="list"
        ),
        pytest.param("pytestmark: object = (pytest.mark.integration,)\n", True, id="annotated"),
        pytest.param("import pytest\n\ndef test_x() -> None: ...\n", False, id="no pytestmark"),
        pytest.param("pytestmark = pytest.mark.reliability\n", False, id="another mark"),
        pytest.param(
            "def f() -> None:\n    pytestmark = pytest.mark.integration\n", False, id="not module"
        ),
        pytest.param("# pytestmark = pytest.mark.integration\n", False, id="a comment"),
    ],
)
def test_the_check_reads_module_level_pytestmark(source: str, marked: bool) -> None:
    assert marks_module_integration(source) is marked


def test_every_integration_test_module_is_marked_integration() -> None:
    modules = sorted(INTEGRATION.glob("test_*.py"))
    assert len(modules) > 30  # the directory was found
    unmarked = [m.name for m in modules if not marks_module_integration(m.read_text())]
    assert unmarked == [], f"add `pytestmark = pytest.mark.integration` to {unmarked}"
