"""Every ``>>>`` example in moldiff's docstrings runs here, as a doctest.

Examples that cannot run in the test suite (they need a shipped model and minutes, data outside the
project, or a trained run) are written as plain ``Example::`` blocks, without ``>>>``, so nothing
reads as a checked example that is not one. A ``# doctest: +SKIP`` is therefore refused.
"""

from __future__ import annotations

import doctest
import importlib
import io
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "moldiff"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _prompts(path: Path) -> int:
    return sum(line.lstrip().startswith(">>>") for line in path.read_text().splitlines())


#: Source files that hold ``>>>`` prompts, found afresh each run (new examples are picked up).
WITH_EXAMPLES = sorted(p for p in PACKAGE.rglob("*.py") if ">>>" in p.read_text())


def test_no_doctest_is_skipped():
    skipped = [
        f"{path.relative_to(PACKAGE.parent)}:{i}"
        for path in WITH_EXAMPLES
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "doctest:" in line and "SKIP" in line
    ]
    assert skipped == [], (
        "skipped doctests (run them, or write them as an 'Example::' block without '>>>'):\n" + "\n".join(skipped)
    )


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=lambda p: _module_name(p))
def test_docstring_examples_run(path):
    module = importlib.import_module(_module_name(path))
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    # Every prompt in the file is an example doctest finds (none hides in a comment or a plain string).
    assert sum(len(t.examples) for t in tests) == _prompts(path), (
        f"{path.name}: some '>>>' lines are not in docstrings doctest reads; write them as an 'Example::' block"
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()


def test_examples_name_only_checkpoint_files_the_engine_writes():
    """The engine writes ``<run>/checkpoints/step_XXXXXXXX.ckpt`` and ``<run>/checkpoints/best.ckpt``,
    nothing else: no ``last.ckpt``, no checkpoint directly in the run folder."""
    stale = re.compile(r"\b(?:last|latest|final)\.ckpt\b|runs/[\w.<>-]+/(?!checkpoints/)[\w.-]+\.ckpt\b")
    found = [
        f"{path.relative_to(REPO)}:{i}: {match.group(0)}"
        for folder in ("moldiff", "benchmarks", "examples")
        for path in sorted((REPO / folder).rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        for match in stale.finditer(line)
    ]
    assert found == [], "checkpoint files the engine never writes:\n" + "\n".join(found)
