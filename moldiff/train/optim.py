"""Optimiser, learning-rate schedule and gradient clipping.

The learning rate is a pure function of the step (:class:`LRSchedule`), so a resumed run needs only
the step count to continue the schedule. Gradient clipping comes in two forms: a fixed global-norm
threshold, and EDM's adaptive threshold (Hoogeboom et al. 2022, ``gradient_clipping`` in their
code): clip at ``1.5 * mean + 2 * std`` of the last ``history`` gradient norms, recording the
clipped value when a norm exceeds it, so rare spikes are cut without a hand-tuned threshold.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable

import torch
from torch import nn

__all__ = ["build_optimizer", "LRSchedule", "GradClipper", "grad_norm"]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    lr_scales: dict[str, float] | None = None,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; biases and normalisation weights (1-D tensors) are not decayed.

    Args:
        model: the model.
        lr: peak learning rate (the schedule multiplies it).
        weight_decay: decoupled weight decay for matrices and kernels.
        betas, eps: AdamW's moment coefficients and epsilon.
        lr_scales: ``{parameter name: factor}``: those parameters get their own group whose
            ``"lr_scale"`` :meth:`LRSchedule.apply` multiplies the rate by (default: none, 1 for all).

    Raises:
        ValueError: a name of ``lr_scales`` that is not a trainable parameter of the model.
    """
    lr_scales = dict(lr_scales or {})
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    unknown = sorted(set(lr_scales) - set(named))
    if unknown:
        raise ValueError(f"lr_scales names {unknown[:3]}, not trainable parameters of the model")
    by_group: dict[tuple[bool, float], list[torch.Tensor]] = {}
    for name, p in named.items():
        by_group.setdefault((p.dim() >= 2, float(lr_scales.get(name, 1.0))), []).append(p)
    groups = [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
        for (decays, scale), params in sorted(by_group.items(), key=lambda item: (not item[0][0], item[0][1]))
    ]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    # foreach kernels are fast on both CPU and CUDA; fused needs every parameter on CUDA.
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)


class LRSchedule:
    """Learning-rate multiplier as a function of the optimiser step: linear warm-up, then decay.

    For step ``s`` (0 for the first optimiser step), with ``W = warmup_steps`` and ``T = total_steps``:

    * warm-up, ``s < W``: ``(s + 1) / W``;
    * then, with progress ``p = (s - W) / max(1, T - W)`` clamped to ``[0, 1]`` and floor ``m``:
      ``"none"``: 1; ``"linear"``: ``m + (1 - m)(1 - p)``; ``"cosine"``: ``m + (1 - m)(1 + cos(pi p)) / 2``
      (Loshchilov & Hutter 2017, without restarts).

    Args:
        total_steps: length of the run.
        warmup_steps: warm-up length (default: 0).
        decay: ``"none"``, ``"linear"`` or ``"cosine"`` (default: ``"none"``).
        min_ratio: floor ``m`` of the decay as a fraction of the peak (default: 0).
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0, decay: str = "none", min_ratio: float = 0.0) -> None:
        if decay not in ("none", "linear", "cosine"):
            raise ValueError(f"unknown learning-rate decay {decay!r}; expected 'none', 'linear' or 'cosine'")
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.min_ratio = float(min_ratio)

    def factor(self, step: int) -> float:
        """Multiplier of the peak learning rate at optimiser step ``step``."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay == "none":
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        p = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        shape = 1.0 - p if self.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
        return self.min_ratio + (1.0 - self.min_ratio) * shape

    def apply(self, optimizer: torch.optim.Optimizer, base_lr: float, step: int) -> float:
        """Set every parameter group's learning rate for ``step`` (times the group's ``"lr_scale"``,
        1 when it has none); returns the base group's rate."""
        lr = base_lr * self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def state_dict(self) -> dict:
        return {
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "min_ratio": self.min_ratio,
        }

    def load_state_dict(self, state: dict) -> None:
        """Kept for symmetry; the schedule of the current config wins (it may extend the run)."""


def grad_norm(parameters: Iterable[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of the gradients (a 0-d tensor on their device; no host synchronisation)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


class GradClipper:
    """Global-norm gradient clipping, fixed or adaptive.

    Args:
        mode: ``"none"``, ``"norm"`` (clip at ``value``) or ``"adaptive"`` (EDM: clip at
            ``1.5 * mean + 2 * std`` of the recent norms; the history starts as ``[value]``).
        value: threshold, or the adaptive history's initial entry.
        history: number of recent norms kept by the adaptive mode (default: 50).
    """

    def __init__(self, mode: str = "norm", value: float = 1.0, history: int = 50) -> None:
        if mode not in ("none", "norm", "adaptive"):
            raise ValueError(f"unknown clipping mode {mode!r}; expected 'none', 'norm' or 'adaptive'")
        self.mode = mode
        self.value = float(value)
        self.norms: deque[float] = deque([self.value], maxlen=int(history))

    def threshold(self) -> float:
        """Current clipping threshold (``inf`` when clipping is off)."""
        if self.mode == "none":
            return math.inf
        if self.mode == "norm":
            return self.value
        n = len(self.norms)
        mean = sum(self.norms) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in self.norms) / n)
        return 1.5 * mean + 2.0 * std

    def clip_(self, parameters: Iterable[torch.Tensor], total_norm: torch.Tensor | float) -> float:
        """Scale gradients in place so their global norm is at most :meth:`threshold`.

        Call only with a finite ``total_norm`` (the engine skips non-finite steps first).

        Args:
            parameters: the parameters whose ``.grad`` is clipped.
            total_norm: their current global gradient norm.

        Returns:
            The threshold that was applied.
        """
        limit = self.threshold()
        norm = float(total_norm)
        if self.mode != "none" and norm > limit:
            grads = [p.grad for p in parameters if p.grad is not None]
            torch._foreach_mul_(grads, limit / (norm + 1e-6))
        if self.mode == "adaptive":
            self.norms.append(min(norm, limit))
        return limit

    def state_dict(self) -> dict:
        return {"mode": self.mode, "value": self.value, "norms": list(self.norms)}

    def load_state_dict(self, state: dict) -> None:
        self.norms = deque(state["norms"], maxlen=self.norms.maxlen)
