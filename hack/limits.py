"""The size limits of issue 17, checked by `make check`: no module over 400 lines in the
operator, the worker, the Graph client, the webhook receiver, the contract, the simulator and
the testkit, no function over 60 lines outside the tests."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE_LINES = 400
MODULE_DIRS = ("operator", "worker", "graph", "webhook", "contract", "simulator", "testkit")
FUNCTION_LINES = 60
FUNCTION_DIRS = (
    "operator", "worker", "graph", "webhook", "contract", "simulator", "testkit", "benchmarks",
    "hack",
)  # fmt: skip


def problems(root: Path = ROOT) -> list[str]:
    found = []
    for top in MODULE_DIRS:
        for path in sorted((root / top).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MODULE_LINES:
                found.append(f"{path.relative_to(root)}: {lines} lines (limit {MODULE_LINES})")
    for top in FUNCTION_DIRS:
        for path in sorted((root / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > FUNCTION_LINES:
                        where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
                        found.append(f"{where}: {length} lines (limit {FUNCTION_LINES})")
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
