"""The machinery of the bad-input and fault suite: run the ``moldiff`` command in this process, judge
what came out, and make sure no earlier file was touched.

Every case ends in one of five outcomes (:data:`OUTCOMES`), the columns of the tally
(``python -m tests.robustness.tally``):

* ``named error``: exit status 2 and one line on stderr (``moldiff <command>: ...``) naming the file,
  record, option or key the case expects (argparse's usage lines before it are allowed);
* ``correct result``: the command or call did what it should, checked by the case;
* ``traceback``: an exception escaped, or stderr shows a traceback;
* ``silent wrong result``: anything else: exit status 0 for bad input, an error that names nothing,
  a wrong output;
* ``file damaged``: a file that existed before the case changed or vanished (checked first).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

NAMED = "named error"
CORRECT = "correct result"
TRACEBACK = "traceback"
SILENT = "silent wrong result"
DAMAGED = "file damaged"
OUTCOMES = (NAMED, CORRECT, TRACEBACK, SILENT, DAMAGED)


@dataclass
class Outcome:
    """How a case ended, and why (the detail is shown when a case fails)."""

    kind: str
    detail: str = ""


class Verdict(Exception):
    """Raised inside a case to end it with an outcome (for checks deep in a case's code)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


@dataclass(frozen=True)
class Case:
    """One hostile input or fault: ``fn(tmp_folder) -> Outcome``; ``expected`` is what it must give."""

    name: str
    category: str
    expected: str
    fn: Callable[[Path], Outcome]

    def run(self, tmp: Path) -> Outcome:
        """The case's outcome; an exception that escapes the case itself counts as a traceback."""
        try:
            return self.fn(tmp)
        except Verdict as verdict:
            return verdict.outcome
        except BaseException as err:  # noqa: BLE001 - a case must never take the suite down
            if isinstance(err, KeyboardInterrupt):
                raise
            return Outcome(TRACEBACK, "".join(traceback.format_exception(err))[-2000:])


CASES: list[Case] = []


def case(category: str, expected: str = NAMED) -> Callable:
    """Register a case function under its name (without a leading ``case_``)."""

    def register(fn: Callable[[Path], Outcome]) -> Callable[[Path], Outcome]:
        CASES.append(Case(fn.__name__.removeprefix("case_"), category, expected, fn))
        return fn

    return register


# ------------------------------------------------------------------------------------------------
# Running the command
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one ``moldiff`` call gave: exit status, stdout, stderr, and an exception that escaped."""

    rc: int | None
    out: str
    err: str
    exception: BaseException | None = None
    trace: str = ""

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@contextlib.contextmanager
def working_directory(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def cli(*argv: object, cwd: Path | None = None) -> Run:
    """``moldiff ARGV`` in this process (the package is imported once, so a call takes milliseconds)."""
    from moldiff.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc, exc, trace = None, None, ""
    with working_directory(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except Verdict:
            raise
        except SystemExit as stop:  # argparse
            rc = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, int) and stop.code is not None:
                err.write(f"{stop.code}\n")
        except Exception as caught:  # noqa: BLE001 - exactly what the suite looks for
            exc, trace = caught, traceback.format_exc()
    return Run(rc, out.getvalue(), err.getvalue(), exc, trace)


def call(fn: Callable, *args, **kwargs) -> Run:
    """A library call, judged like a command: a moldiff error is its "one line", anything else a traceback."""
    from moldiff.errors import MoldiffError

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            fn(*args, **kwargs)
        except (MoldiffError, OSError) as caught:
            return Run(2, "", err.getvalue() + f"moldiff api: {caught}\n")
        except Exception as caught:  # noqa: BLE001
            return Run(None, "", err.getvalue(), caught, traceback.format_exc())
    return Run(0, "", err.getvalue())


def _escaped(run: Run) -> Outcome | None:
    if run.exception is not None:
        return Outcome(TRACEBACK, f"{type(run.exception).__name__}: {run.exception}\n{run.trace[-1500:]}")
    if "Traceback (most recent call last)" in run.err:
        return Outcome(TRACEBACK, run.err[-1500:])
    return None


def named(run: Run, *names: object) -> Outcome:
    """A named error: exit status 2, and a last stderr line from moldiff (or argparse) naming each of ``names``."""
    escaped = _escaped(run)
    if escaped:
        return escaped
    if run.rc != 2:
        return Outcome(SILENT, f"exit status {run.rc}, expected 2; stderr: {run.err[-800:]!r}")
    errors = [
        line for line in run.lines if line.startswith("moldiff") and ": note:" not in line and ": warning:" not in line
    ]
    if not errors:
        return Outcome(SILENT, f"no error line on stderr: {run.err[-800:]!r}")
    last = errors[-1]  # other lines (progress, notes) may come first; the error is the last
    missing = [str(n) for n in names if str(n).lower() not in last.lower()]
    if missing:
        return Outcome(SILENT, f"the error does not name {missing}: {last!r}")
    return Outcome(NAMED, last)


def succeeded(run: Run, check: Callable[[], str | None] | None = None) -> Outcome:
    """A correct result: exit status 0, no traceback, and ``check()`` returning ``None`` (else what is wrong)."""
    escaped = _escaped(run)
    if escaped:
        return escaped
    if run.rc != 0:
        return Outcome(SILENT, f"exit status {run.rc}, expected 0; stderr: {run.err[-800:]!r}")
    problem = check() if check is not None else None
    if problem:
        return Outcome(SILENT, problem)
    return Outcome(CORRECT, run.err.strip().splitlines()[-1] if run.err.strip() else "")


# ------------------------------------------------------------------------------------------------
# Files that must survive a case
# ------------------------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Guard:
    """The files present before a case; :meth:`damaged` names those changed or gone since."""

    paths: list[Path]
    digests: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.digests = {str(p): _digest(p) for p in self.paths}

    @classmethod
    def over(cls, *roots: Path) -> "Guard":
        files: list[Path] = []
        for root in roots:
            files += [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        return cls(files)

    def damaged(self) -> list[str]:
        return [p for p, d in self.digests.items() if not Path(p).is_file() or _digest(Path(p)) != d]

    def judge(self, outcome: Outcome) -> Outcome:
        """``outcome``, unless an earlier file was damaged."""
        bad = self.damaged()
        return Outcome(DAMAGED, f"changed or removed: {bad}") if bad else outcome


def files_in(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern)) if folder.is_dir() else []


class Proxy:
    """A stand-in for a module (``os``) that replaces some of its functions and forwards the rest."""

    def __init__(self, module, **replaced) -> None:
        self._module, self._replaced = module, replaced

    def __getattr__(self, name):
        return self._replaced[name] if name in self._replaced else getattr(self._module, name)
