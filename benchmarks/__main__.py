"""`python -m benchmarks [NAME ...] [--size tiny|full]`: benchmarks, each on a fresh embedded
stack (all of them when none is named).

Each prints a table and, last, one JSON line with its figures, the ratio to the baseline
measured in the same run, and the target. Exits 0 when they ran (a missed target is a finding,
not an error), 1 when a benchmark itself failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmarks.runner import BENCHMARKS, run_benchmark
from benchmarks.stack import embedded_stack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="full",
        help="full: the sizes in benchmarks/RESULTS.md; tiny: a smoke run (what tests use)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the stack keeps its files (default: a temporary directory, removed after)",
    )
    args = parser.parse_args(argv)
    if unknown := [name for name in args.names if name not in BENCHMARKS]:
        parser.error(
            f"no benchmark named {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in args.names or list(BENCHMARKS):
        with tempfile.TemporaryDirectory(prefix="account-deletion-bench-") as scratch:
            directory = (args.data_dir or Path(scratch)) / name
            if asyncio.run(_run(name, args.size, directory)):
                return 1
    return 0


async def _run(name: str, size: str, directory: Path) -> int:
    sys.stderr.write(f"{name} ({size}): starting the embedded stack in {directory}\n")
    try:
        async with embedded_stack(directory) as stack:
            report = await run_benchmark(name, stack, size)
    except Exception:
        traceback.print_exc()
        sys.stderr.write(f"benchmark {name} failed (see above)\n")
        return 1
    sys.stdout.write(report.render() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
