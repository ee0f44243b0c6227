"""Exponential moving average of the weights, kept in float32.

After each optimiser step ``theta_ema <- d theta_ema + (1 - d) theta`` (Polyak averaging; the EMA
weights are the ones sampled from, as in DDPM, EDM and most diffusion codebases). With warm-up the
decay after ``n`` updates is ``d_n = min(decay, (1 + n) / (10 + n))`` (TensorFlow's
``ExponentialMovingAverage(num_updates=...)``, timm's ``ModelEmaV3``), so the average forgets the
random initialisation quickly at the start of training.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA", "ema_decay_at"]


def ema_decay_at(num_updates: int, decay: float, warmup: bool = True) -> float:
    """EMA decay used for update number ``num_updates`` (0 for the first update).

    Args:
        num_updates: updates already applied.
        decay: the target decay.
        warmup: apply the ``(1 + n) / (10 + n)`` warm-up (default: true).

    Returns:
        ``min(decay, (1 + n) / (10 + n))`` with warm-up, else ``decay``.
    """
    if not warmup:
        return float(decay)
    return min(float(decay), (1.0 + num_updates) / (10.0 + num_updates))


class EMA(nn.Module):
    """Float32 moving average of a model's parameters (buffers are copied, not averaged).

    The averaged weights live in ``self.module``, a frozen deep copy of the model in eval mode: call
    it, pass it to samplers, or save ``self.module.state_dict()`` as a plain model state dict.

    Args:
        model: the model being trained (before any DDP or compile wrapping).
        decay: target decay; ``0`` makes the EMA a copy of the latest weights.
        warmup: use :func:`ema_decay_at`'s warm-up (default: true).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.module = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.num_updates = 0

    def current_decay(self) -> float:
        """Decay that the next :meth:`update` applies."""
        return ema_decay_at(self.num_updates, self.decay, self.warmup)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Average the current weights of ``model`` into the EMA.

        Args:
            model: the trained model (same architecture and parameter order as at construction).

        Returns:
            The decay used for this update.
        """
        d = self.current_decay()
        ema_params = list(self.module.parameters())
        params = [p.detach().float() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError(f"EMA holds {len(ema_params)} parameters but the model has {len(params)}")
        if ema_params:
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1
        return d

    def state_dict(self, *args, **kwargs):
        """``{"module": weights, "num_updates": n, "decay": d, "warmup": w}``."""
        return {
            "module": self.module.state_dict(),
            "num_updates": self.num_updates,
            "decay": self.decay,
            "warmup": self.warmup,
        }

    def load_state_dict(self, state: dict, strict: bool = True):
        """Restore from :meth:`state_dict`; the decay settings of the current run are kept."""
        self.module.load_state_dict(state["module"], strict=strict)
        self.num_updates = int(state["num_updates"])
