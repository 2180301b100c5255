"""The size limits `make check` enforces (hack/limits.py): the tree keeps them, and the check
finds a module or a function over its limit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def limits() -> ModuleType:
    spec = importlib.util.spec_from_file_location("limits", ROOT / "hack" / "limits.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("limits", module)
    spec.loader.exec_module(module)
    return module


def test_the_tree_keeps_its_limits() -> None:
    assert limits().problems() == []


def test_a_long_module_and_a_long_function_are_found(tmp_path: Path) -> None:
    (tmp_path / "operator").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "operator" / "big.py").write_text("x = 1\n" * 401)
    body = "".join("    y = 1\n" for _ in range(60))
    (tmp_path / "benchmarks" / "long.py").write_text(
        f"def long():\n{body}\n\ndef short():\n    pass\n"
    )
    found = limits().problems(tmp_path)
    assert found == [
        "operator/big.py: 401 lines (limit 400)",
        "benchmarks/long.py:1 long: 61 lines (limit 60)",
    ]


@pytest.mark.parametrize("top", ["graph", "webhook", "contract", "simulator", "testkit"])
def test_a_long_module_is_found_in_every_package_folder(tmp_path: Path, top: str) -> None:
    (tmp_path / top / "pkg").mkdir(parents=True)
    (tmp_path / top / "pkg" / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / top / "pkg" / "fits.py").write_text("x = 1\n" * 400)
    assert limits().problems(tmp_path) == [f"{top}/pkg/big.py: 401 lines (limit 400)"]
