"""Benchmarks: each prints a table and compares against a floor measured in the same run."""

from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, table: str) -> None:
    """Print a benchmark's table and write it to benchmarks/results/<name>.md."""
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(table + "\n")
