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

    Args:
        path: the ``.jsonl`` file, or ``None`` to disable.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict) -> None:
        """Write one record (tensors become numbers; NaN and inf become strings)."""
        if self.path is None:
            return
        line = json.dumps({k: _plain(v) for k, v in record.items()})
        with open(self.path, "a") as f:
            f.write(line + "\n")

    def reset(self) -> None:
        """Start an empty log (a fresh run in a folder that held an old log)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def truncate_after(self, step: int) -> None:
        """Drop lines with ``"step" > step`` (work that a resumed run is about to redo)."""
        if self.path is None or not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)


def read_log(path: str | Path, kind: str | None = "train") -> list[dict]:
    """Read the records of a ``log.jsonl`` file, optionally only those of one ``kind``."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in records if kind is None or r.get("kind") == kind]


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
