"""Parameterisations (eps, x0, v, score), their conversions, and the denoiser contract.

Forward process: ``x_t = alpha x_0 + sigma eps`` (any schedule of :mod:`moldiff.core.schedules`).
A network may predict any of

* ``eps``   — the noise (Ho et al. 2020, Eq. 11);
* ``x0``    — the clean sample;
* ``v``     — ``alpha eps - sigma x_0`` (Salimans & Ho 2022, Sec. 4; for non-VP schedules we use the
  general inverse ``x_0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2)``);
* ``score`` — ``grad log p(x_t) = -eps / sigma``;
* ``edm``   — Karras et al. 2022 preconditioning (Table 1): ``D(x; s) = c_skip x + c_out F(c_in x, c_noise)``
  in the VE frame, with ``c_skip = sd^2/(s^2+sd^2)``, ``c_out = s sd / sqrt(s^2+sd^2)``,
  ``c_in = 1/sqrt(s^2+sd^2)``, ``c_noise = ln(s)/4``.

The one contract every sampler relies on is a **denoiser** ``D(x, sigma, **cond) -> x0_hat`` in the
VE frame: ``x = x_t / alpha(t)`` and ``sigma = sigma(t) / alpha(t)`` is a per-item tensor ``[B]``.
:class:`DiffusionDenoiser` turns any network into one.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from moldiff.errors import UnknownNameError

from .schedules import NoiseSchedule
from .spaces import EuclideanSpace

Tensor = torch.Tensor

PREDICTIONS = ("eps", "x0", "v", "score", "edm")


def x0_from_prediction(pred: Tensor, kind: str, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Convert a network prediction of the given ``kind`` to ``x_0`` (native frame ``x_t``).

    ``alpha`` and ``sigma`` must broadcast against ``x_t`` (use ``space.per_item``).
    """
    if kind == "eps":
        return (x_t - sigma * pred) / alpha
    if kind == "x0":
        return pred
    if kind == "v":
        return (alpha * x_t - sigma * pred) / (alpha**2 + sigma**2)
    if kind == "score":
        return (x_t + sigma**2 * pred) / alpha
    raise UnknownNameError(f"unknown prediction kind {kind!r}; expected one of {PREDICTIONS[:-1]}")


def prediction_from_x0(x0: Tensor, kind: str, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Inverse of :func:`x0_from_prediction`: the ``kind`` target implied by ``x_0`` and ``x_t``."""
    if kind == "x0":
        return x0
    eps = (x_t - alpha * x0) / sigma
    if kind == "eps":
        return eps
    if kind == "v":
        return alpha * eps - sigma * x0
    if kind == "score":
        return -eps / sigma
    raise UnknownNameError(f"unknown prediction kind {kind!r}; expected one of {PREDICTIONS[:-1]}")


def convert_prediction(pred: Tensor, source: str, target: str, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Convert between any two of ``eps``, ``x0``, ``v`` and ``score``."""
    if source == target:
        return pred
    return prediction_from_x0(x0_from_prediction(pred, source, x_t, alpha, sigma), target, x_t, alpha, sigma)


def edm_preconditioning(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Karras et al. 2022, Table 1 (``c_skip, c_out, c_in, c_noise``) for VE noise levels ``sigma``."""
    sd2 = sigma_data**2
    s2 = sigma**2
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * sigma_data / (s2 + sd2).sqrt()
    c_in = 1 / (s2 + sd2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def edm_sigma_from_c_noise(c_noise: Tensor) -> Tensor:
    """The noise level a network was given as :func:`edm_preconditioning`'s ``c_noise = ln(sigma) / 4``:
    ``sigma = exp(4 c_noise)``, for networks that need ``sigma`` itself (e.g. to undo ``c_in``)."""
    return torch.exp(4 * c_noise)


class DiffusionDenoiser(nn.Module):
    """Wrap a network into the denoiser contract used by samplers, losses and guidance.

    The network is called as ``network(x_in, t_in, **cond)`` where ``t_in`` is a per-item ``[B]``
    tensor: the schedule time ``t`` (or, for ``prediction="edm"``, ``c_noise = ln(sigma)/4``), and
    ``x_in`` is ``x_t`` in the schedule's native frame (``c_in x`` for ``"edm"``). The network never
    sees a step index, so a model trained on one discretisation samples on any other.

    Args:
        network: the neural network.
        schedule: the noise schedule it is trained with.
        prediction: ``"eps"``, ``"x0"``, ``"v"``, ``"score"`` or ``"edm"``.
        space_fn: ``space_fn(x, **cond) -> StateSpace`` giving the space of a batch (needed to
            broadcast per-item ``alpha``/``sigma``); defaults to a dense :class:`EuclideanSpace`.
        sigma_data: data standard deviation for ``"edm"`` preconditioning (default 0.5).
    """

    def __init__(
        self,
        network: nn.Module | Callable,
        schedule: NoiseSchedule,
        prediction: str = "eps",
        space_fn: Callable | None = None,
        sigma_data: float = 0.5,
    ) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise UnknownNameError(f"unknown prediction kind {prediction!r}; expected one of {PREDICTIONS}")
        self.network = network
        self.schedule = schedule
        self.prediction = prediction
        self.sigma_data = float(sigma_data)
        self.space_fn = space_fn

    def _space(self, x: Tensor, cond: dict):
        if self.space_fn is not None:
            return self.space_fn(x, **cond)
        return EuclideanSpace.like(x)

    def predict(self, x_t: Tensor, t: Tensor, space=None, **cond) -> tuple[Tensor, Tensor]:
        """Network output at native-frame ``x_t`` and per-item times ``t`` ``[B]``.

        Returns:
            ``(x0_hat, eps_hat)``, both shaped like ``x_t``.
        """
        space = space or self._space(x_t, cond)
        alpha = space.per_item(self.schedule.alpha(t.double()).to(x_t.dtype))
        sigma = space.per_item(self.schedule.sigma(t.double()).to(x_t.dtype))
        if self.prediction == "edm":
            ve = (self.schedule.ve_sigma(t.double())).to(x_t.dtype)
            x0 = self._edm_forward(x_t / alpha, ve, space, cond)
        else:
            pred = self.network(x_t, t.to(x_t.dtype), **cond)
            x0 = x0_from_prediction(pred, self.prediction, x_t, alpha, sigma)
        eps = (x_t - alpha * x0) / sigma
        return x0, eps

    def _edm_forward(self, x: Tensor, ve_sigma: Tensor, space, cond: dict) -> Tensor:
        c_skip, c_out, c_in, c_noise = edm_preconditioning(ve_sigma, self.sigma_data)
        f = self.network(space.per_item(c_in) * x, c_noise, **cond)
        return space.per_item(c_skip) * x + space.per_item(c_out) * f

    def forward(self, x: Tensor, sigma: Tensor, **cond) -> Tensor:
        """The sampler contract: ``x0_hat = D(x, sigma)`` in the VE frame.

        Args:
            x: state ``x_t / alpha(t)``, any shape the network accepts.
            sigma: ``[B]`` VE noise levels ``sigma(t) / alpha(t)``, all positive.
        """
        space = self._space(x, cond)
        if self.prediction == "edm":
            return self._edm_forward(x, sigma.to(x.dtype), space, cond)
        t = self.schedule.t_from_ve_sigma(sigma.double())
        alpha = space.per_item(self.schedule.alpha(t).to(x.dtype))
        x0, _ = self.predict(alpha * x, t, space=space, **cond)
        return x0
