"""The diffusion half of a model config, shared by every modality.

A model config (the ``model:`` section of a YAML file) holds two kinds of keys: the network's
(channels, layers, ...) and the diffusion's (schedule, parameterisation, training loss, default
sampler). :class:`DiffusionSettings` is the second kind once: the image and backbone configs inherit
it, so the keys read the same everywhere, and a model builds its core objects from it with
:meth:`~DiffusionSettings.build_schedule`, :meth:`~DiffusionSettings.build_denoiser`,
:meth:`~DiffusionSettings.loss_options` and :meth:`~DiffusionSettings.sigmas`. A subclass changes a
default by declaring the field again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from moldiff.errors import ConfigError, InputError

from .losses import NOISE_SAMPLERS, WEIGHTINGS
from .parameterisation import PREDICTIONS, DiffusionDenoiser
from .samplers import SAMPLERS
from .schedules import SCHEDULES, TIME_GRIDS, make_schedule, sampling_sigmas

__all__ = ["DiffusionSettings", "ANCESTRAL_SAMPLERS", "require_positive"]

#: Names of DDPM's ancestral sampler (see :meth:`DiffusionSettings.sampling_defaults`).
ANCESTRAL_SAMPLERS = ("ddpm", "ancestral")


def require_positive(config: Any, *names: str) -> None:
    """Stop with a :class:`~moldiff.errors.ConfigError` naming the first of ``names`` that is not
    positive (a zero width or depth builds a network that trains to nothing, without any error).

    Used by the ``__post_init__`` of config dataclasses; :func:`moldiff.train.config.from_dict`
    prefixes the section, so the message reads ``model.hidden: must be positive, got 0``.
    """
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ConfigError(f"{name}: must be positive, got {value!r}")


@dataclass
class DiffusionSettings:
    """Schedule, parameterisation, training loss and default sampler of a diffusion model.

    Attributes:
        schedule: a :data:`moldiff.core.SCHEDULES` name (default: ``"edm"``, Karras et al. 2022).
        schedule_options: keyword arguments of that schedule, e.g. ``{num_steps: 1000}`` (default: none).
        prediction: ``"eps"``, ``"x0"``, ``"v"`` or ``"edm"`` (default: ``"edm"`` preconditioning).
        sigma_data: data standard deviation of EDM's preconditioning and weighting (default: 0.5).
        weighting: loss weighting of :func:`moldiff.core.loss_weight` (default: ``"edm"``).
        noise_sampler: training noise levels of :func:`moldiff.core.sample_times` (default: ``"lognormal"``).
        noise_options: its keyword arguments, e.g. ``{p_mean: -1.2, p_std: 1.2}`` (default: none).
        sampler: default sampler, a :data:`moldiff.core.SAMPLERS` name (default: ``"dpmpp_2m"``).
        sample_steps: default number of sampler steps (default: 20).
        sample_grid: default time grid of :func:`moldiff.core.sampling_sigmas` (default: ``"karras"``).
    """

    schedule: str = "edm"
    schedule_options: dict[str, Any] = field(default_factory=dict)
    prediction: str = "edm"
    sigma_data: float = 0.5
    weighting: str = "edm"
    noise_sampler: str = "lognormal"
    noise_options: dict[str, Any] = field(default_factory=dict)
    sampler: str = "dpmpp_2m"
    sample_steps: int = 20
    sample_grid: str = "karras"

    def __post_init__(self) -> None:
        choices = {
            "schedule": SCHEDULES,
            "prediction": PREDICTIONS,
            "weighting": WEIGHTINGS,
            "noise_sampler": NOISE_SAMPLERS,
            "sampler": SAMPLERS,
            "sample_grid": TIME_GRIDS,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}: expected one of {', '.join(map(repr, allowed))}, got {getattr(self, key)!r}")
        require_positive(self, "sample_steps", "sigma_data")

    def build_schedule(self):
        """The noise schedule, ``make_schedule(schedule, **schedule_options)``."""
        return make_schedule(self.schedule, **self.schedule_options)

    def build_denoiser(
        self, network: torch.nn.Module, schedule, space_fn: Optional[Callable] = None
    ) -> DiffusionDenoiser:
        """``network`` wrapped in this parameterisation as a denoiser ``D(x, sigma)``."""
        return DiffusionDenoiser(network, schedule, self.prediction, space_fn=space_fn, sigma_data=self.sigma_data)

    def loss_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`moldiff.core.denoising_loss` for this weighting and noise sampler."""
        return {
            "weighting": self.weighting,
            "noise_sampler": self.noise_sampler,
            "noise_kwargs": self.noise_options,
            "weighting_kwargs": {"sigma_data": self.sigma_data},
        }

    def sampling_defaults(
        self, schedule, sampler: Optional[str] = None, steps: Optional[int] = None, grid: Optional[str] = None
    ) -> tuple[str, int, str]:
        """``(sampler, steps, grid)`` with this config's defaults where not given.

        The one exception, stated here once for every modality: the ancestral sampler (``"ddpm"``) of a
        discrete-time schedule (one with ``num_steps``, e.g. EDM's ``polynomial``) defaults to the
        schedule's own ``T`` steps on a grid uniform in ``t``, the faithful reproduction of DDPM / EDM
        sampling; every other sampler takes ``sample_steps`` on ``sample_grid``.
        """
        if steps is not None and steps < 1:  # 0 would silently mean the default
            raise InputError(f"steps must be at least 1, got {steps}")
        sampler = sampler or self.sampler
        num_steps = getattr(schedule, "num_steps", None)
        if sampler in ANCESTRAL_SAMPLERS and num_steps:
            return sampler, steps or int(num_steps), grid or "uniform"
        return sampler, steps or self.sample_steps, grid or self.sample_grid

    def sigmas(
        self, schedule, steps: Optional[int] = None, grid: Optional[str] = None, sampler: Optional[str] = None
    ) -> torch.Tensor:
        """The sampler's noise levels ``[steps + 1]`` (the defaults of :meth:`sampling_defaults` where not given)."""
        _, steps, grid = self.sampling_defaults(schedule, sampler, steps, grid)
        return sampling_sigmas(schedule, steps, grid)
