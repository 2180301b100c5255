"""`make bench`: run every benchmark and write its table to benchmarks/results/."""

from __future__ import annotations

import asyncio
import sys

from benchmarks import validation


def main() -> int:
    asyncio.run(validation.main(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
