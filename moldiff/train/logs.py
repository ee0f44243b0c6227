"""Run logs: JSON lines for machines, a tqdm progress bar for people.

Every line of ``<out_dir>/log.jsonl`` is one JSON object with a ``"kind"`` (``"train"``, ``"eval"``
or ``"event"``) and a ``"step"``. Training lines carry ``loss``, ``grad_norm``, ``lr``,
``ema_decay``, ``items_per_s``, ``peak_mem_mb``, ``skipped_steps`` and the task's own metrics;
read them back with :func:`read_log`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

__all__ = ["JsonlLogger", "ProgressBar", "read_log", "peak_memory_mb"]


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep the line valid
    return value


class JsonlLogger:
    """Append JSON lines to a file; a logger with ``path=None`` (non-zero ranks) writes nothing.

    A line is written whole or not at all: when a write fails (a full disk) the file is cut back to
    where it was, and the error names the file. A last line torn by a crash (kill -9 in the middle of
    a write) is recovered when the log is next written or truncated: it is moved to
    ``<log>.torn`` and reported on stderr, so a later ``--resume`` never fails on it.

    Args:
        path: the ``.jsonl`` file, or ``None`` to disable.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._tail_checked = False
        #: what was recovered from the file: one message per repair (also printed on stderr)
        self.repairs: list[str] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _set_aside(self, lines: list[str], why: str) -> None:
        """Keep ``lines`` dropped from the log in ``<log>.torn`` and report them."""
        aside = self.path.with_name(self.path.name + ".torn")
        with open(aside, "a", encoding="utf-8", errors="replace") as f:
            f.write("".join(line.rstrip("\n") + "\n" for line in lines))
        message = f"{self.path}: {why}: {len(lines)} line(s) moved to {aside.name}"
        self.repairs.append(message)
        print(f"moldiff: {message}", file=sys.stderr, flush=True)

    def _end_torn_tail(self) -> None:
        """Cut an unterminated last line (a writer killed mid-line) off the file, once per logger."""
        self._tail_checked = True
        if not self.path.is_file():
            return
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            start = max(size - (1 << 16), 0)
            while True:  # find the last newline
                f.seek(start)
                chunk = f.read(size - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0 or start == 0:
                    break
                start = max(start - (1 << 16), 0)
            keep = start + cut + 1 if cut >= 0 else 0
            f.seek(keep)
            torn = f.read().decode("utf-8", errors="replace")
            f.truncate(keep)
        self._set_aside([torn], "the last line was torn (a crash or a full disk while it was written)")

    def log(self, record: dict) -> None:
        """Write one record (tensors become numbers; NaN and inf become strings)."""
        if self.path is None:
            return
        if not self._tail_checked:
            self._end_torn_tail()
        data = (json.dumps({k: _plain(v) for k, v in record.items()}) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                done = 0
                while done < len(data):
                    done += os.write(fd, data[done:])
            except OSError as err:
                os.ftruncate(fd, size)  # no partial line stays behind
                raise OSError(err.errno, f"cannot write the log {self.path}: {err.strerror or err}") from err
        finally:
            os.close(fd)

    def reset(self) -> None:
        """Start an empty log (a fresh run in a folder that held an old log): the old one is kept as
        ``log.jsonl.1`` (``.2``, ... when that exists too), never deleted."""
        if self.path is not None and self.path.exists():
            k = 1
            while self.path.with_name(f"{self.path.name}.{k}").exists():
                k += 1
            aside = self.path.with_name(f"{self.path.name}.{k}")
            os.replace(self.path, aside)
            message = f"{self.path}: the log of an earlier start is kept as {aside.name}"
            self.repairs.append(message)
            print(f"moldiff: {message}", file=sys.stderr, flush=True)
        self._tail_checked = True

    def truncate_after(self, step: int) -> None:
        """Drop lines with ``"step" > step`` (work that a resumed run is about to redo); lines that do
        not parse (torn by a crash) are moved to ``<log>.torn`` and reported."""
        if self.path is None or not self.path.exists():
            return
        kept, bad = [], []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                keep = not isinstance(record, dict) or _step_of(record) <= step
            except ValueError:
                bad.append(line)
                continue
            if keep:
                kept.append(line)
        if bad:
            self._set_aside(bad, "lines that are not JSON (torn by a crash or a full disk)")
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)
        self._tail_checked = True


def _step_of(record: dict) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) else 0


def read_log(path: str | Path, kind: str | None = "train") -> list[dict]:
    """Read the records of a ``log.jsonl`` file, optionally only those of one ``kind``.

    A line that is not JSON (the last line torn by a crash) is skipped with a warning naming it."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            warnings.warn(f"{path}, line {number}: not JSON (torn by a crash?): skipped", stacklevel=2)
    return [r for r in records if isinstance(r, dict) and (kind is None or r.get("kind") == kind)]


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: CUDA memory allocated by torch on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
    except ImportError:  # Windows
        return float("nan")


class ProgressBar:
    """A tqdm bar over training steps, shown only when enabled and stderr is a terminal.

    Args:
        total: number of steps of the run.
        initial: steps already done (resumed runs).
        enabled: the user's wish (``train.progress``) and rank 0.
    """

    def __init__(self, total: int, initial: int = 0, enabled: bool = True) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, dynamic_ncols=True, unit="step")
        self._last = time.perf_counter()

    def update(self, n: int = 1, postfix: dict | None = None) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(
                {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False
            )

    def write(self, text: str) -> None:
        """Print a line without breaking the bar (plain print without a bar)."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def step_progress(
    total: int, desc: str, enabled: bool = True, callback: Callable | None = None, unit: str = "step"
) -> Iterator[Callable | None]:
    """A progress bar over sampler steps (or any counted work), for ``with`` blocks.

    Yields the callback to hand to a sampler, ``tick(info=None, n=1)``: it advances the bar by ``n``
    and then calls ``callback`` (if any) with ``info``. The bar appears at the first tick, so a call that
    fails while checking its arguments prints no bar; it is closed when the block ends.

    Args:
        total: ticks expected.
        desc: the bar's label.
        enabled: false gives back ``callback`` itself and shows nothing.
        callback: an inner callback to chain.
        unit: the unit shown (default: ``"step"``).
    """
    if not enabled:
        yield callback
        return
    state: dict = {}

    def tick(info=None, n: int = 1):
        if "bar" not in state:
            from tqdm.auto import tqdm

            state["bar"] = tqdm(total=total, unit=unit, desc=desc)
        state["bar"].update(n)
        if callback is not None:
            callback(info)

    try:
        yield tick
    finally:
        if "bar" in state:
            state["bar"].close()
