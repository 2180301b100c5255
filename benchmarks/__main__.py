"""`make bench`: run every benchmark and write its table to benchmarks/results/.

`python -m benchmarks sending --messages 2000` runs one, with its own options."""

from __future__ import annotations

import asyncio
import sys

from benchmarks import limiter, meta_calls, reconcile, scale, sending, validation, webhook

BENCHMARKS = {
    "validation": validation.main,
    "reconcile": reconcile.main,
    "sending": sending.main,
    "limiter": limiter.main,
    "meta_calls": meta_calls.main,
    "scale": scale.main,
    "webhook": webhook.main,
}


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] in BENCHMARKS:
        asyncio.run(BENCHMARKS[args[0]](args[1:]))
        return 0
    if args:
        print(f"usage: python -m benchmarks [{'|'.join(BENCHMARKS)}] [options]", file=sys.stderr)
        return 2
    for run in BENCHMARKS.values():
        asyncio.run(run([]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
