"""The tally of the bad-input and fault suite, as a table (issue 21).

Runs every case of :mod:`tests.robustness.cases`, each in a fresh temporary folder, and prints per
category and in total: cases, named errors, correct results, tracebacks, silent wrong results and
files damaged; then each case that did not end as expected. The goal is 0 tracebacks, 0 silent
wrong results and 0 files damaged.

Usage (from the repository root; one thread is plenty)::

    OMP_NUM_THREADS=1 python -m tests.robustness.tally            # the table
    OMP_NUM_THREADS=1 python -m tests.robustness.tally --verbose  # and every case's outcome
    OMP_NUM_THREADS=1 python -m tests.robustness.tally -k sdf     # only cases whose name holds "sdf"

The exit status is 1 when some case did not end as expected.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make ``tests.robustness`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.robustness"

from tests.robustness.cases import CASES  # noqa: E402
from tests.robustness.harness import CORRECT, DAMAGED, NAMED, OUTCOMES, SILENT, TRACEBACK  # noqa: E402

COLUMNS = ("cases", NAMED, CORRECT, TRACEBACK, SILENT, DAMAGED)
HEADERS = ("cases", "named errors", "correct results", "tracebacks", "silent wrong results", "files damaged")


def run_cases(selected) -> list[tuple]:
    """``[(case, outcome, seconds)]`` for each case, each run in its own temporary folder."""
    import torch

    torch.set_num_threads(1)
    results = []
    for case in selected:
        with tempfile.TemporaryDirectory(prefix=f"moldiff-{case.name[:40]}-") as tmp:
            start = time.perf_counter()
            outcome = case.run(Path(tmp))
            results.append((case, outcome, time.perf_counter() - start))
    return results


def table(results) -> str:
    """The tally: one row per category, then the total."""
    rows: dict[str, Counter] = defaultdict(Counter)
    for case, outcome, _ in results:
        for key in (case.category, "total"):
            rows[key]["cases"] += 1
            rows[key][outcome.kind] += 1
    names = sorted(k for k in rows if k != "total") + ["total"]
    width = max(len(n) for n in names + ["category"])
    lines = [f"{'category':<{width}}  " + "  ".join(f"{h:>{len(h)}}" for h in HEADERS)]
    lines.append("-" * len(lines[0]))
    for name in names:
        if name == "total":
            lines.append("-" * len(lines[0]))
        cells = "  ".join(f"{rows[name][c]:>{len(h)}}" for c, h in zip(COLUMNS, HEADERS))
        lines.append(f"{name:<{width}}  {cells}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default=None, help="only the cases whose name contains this text")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every case's outcome")
    args = parser.parse_args(argv)
    selected = [c for c in CASES if args.k is None or args.k in c.name]
    start = time.perf_counter()
    results = run_cases(selected)
    print(table(results))
    print(f"\n{len(results)} cases in {time.perf_counter() - start:.1f} s")
    unexpected = [(c, o) for c, o, _ in results if o.kind != c.expected]
    for case, outcome, seconds in results if args.verbose else []:
        print(
            f"  {case.name:<60} {outcome.kind:<20} {seconds:5.2f} s  {outcome.detail.splitlines()[0][:100] if outcome.detail else ''}"
        )
    if unexpected:
        print(f"\n{len(unexpected)} case(s) did not end as expected:")
        for case, outcome in unexpected:
            print(
                f"  [{case.category}] {case.name}: expected {case.expected}, got {outcome.kind}: {outcome.detail[:600]}"
            )
    assert set(OUTCOMES) >= {o.kind for _, o, _ in results}
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
