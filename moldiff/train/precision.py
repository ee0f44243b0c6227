"""Numeric precision of the network's forward pass: ``"fp32"``, ``"bf16"`` or ``"auto"``.

``"bf16"`` runs the network under ``torch.autocast(device, torch.bfloat16)``: matrix products in
bf16 with fp32 accumulation, everything that autocast keeps in fp32 (and, in
:class:`~moldiff.nn.EGNNDenoiser`, coordinates, distances, the residual stream and the zero-CoM
projection) in fp32; weights, optimiser state, EMA and the schedule maths are never bf16.
``"auto"`` chooses bf16 where the hardware multiplies bf16 matrices natively and fp32 elsewhere:

* CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later);
* CPU: the ``avx512_bf16`` or ``amx_bf16`` flag of ``/proc/cpuinfo`` (Linux; Intel Cooper Lake,
  Sapphire Rapids and later, AMD Zen 4 and later). Other systems get fp32.

Plain ``torch`` only; nothing from moldiff. Part of the engine; the modalities' samplers use it too.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch

__all__ = ["PRECISIONS", "cpu_bf16_flags", "cpu_has_bf16_matmul", "resolve_precision", "precision_autocast"]

PRECISIONS = ("fp32", "bf16", "auto")
Precision = Literal["fp32", "bf16", "auto"]


@functools.lru_cache(maxsize=None)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 matrix-unit flags this CPU reports (``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(sorted(flags & {"avx512_bf16", "amx_bf16"}))
    except OSError:
        pass
    return ()


def cpu_has_bf16_matmul() -> bool:
    """Whether the CPU has bf16 matrix instructions (``avx512_bf16`` or ``amx_bf16``)."""
    return bool(cpu_bf16_flags())


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` on ``device`` (see the module docstring).

    Raises:
        ValueError: an unknown precision, or ``"bf16"`` on a device type autocast cannot run in bf16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "fp32":
        return "fp32"
    if precision == "bf16":
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"precision 'bf16' is supported on cpu and cuda, not {kind!r}")
        return "bf16"
    if kind == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16_matmul() else "fp32"
    return "fp32"


def precision_autocast(precision: str | None, device: torch.device | str):
    """Context manager running the network in ``precision`` (resolved) on ``device``: bf16
    autocast, autocast disabled for ``"fp32"``, or nothing changed for ``None``."""
    if precision is None:
        return contextlib.nullcontext()
    kind = torch.device(device).type
    if resolve_precision(precision, device) == "fp32":
        return torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)
