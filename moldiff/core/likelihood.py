"""Exact log-likelihood through the probability-flow ODE.

For the PF-ODE ``dx/dsigma = f(x, sigma) = (x - D(x, sigma)) / sigma`` the instantaneous change of
variables (Chen et al. 2018, Thm. 1; Song et al. 2021, Eq. 39) gives

    log p_{sigma_min}(x(sigma_min)) = log p_{sigma_max}(x(sigma_max)) + int_{sigma_min}^{sigma_max} div f(x(sigma), sigma) dsigma.

The divergence is taken *within the state space* (``tr(J P)`` with ``P`` the projection), so for zero
centre-of-mass coordinates the density lives on the ``(N-1)*3``-dimensional subspace and the prior is
:meth:`StateSpace.log_normal` with ``dof`` degrees of freedom (EDM, Eq. 5).
"""

from __future__ import annotations

from typing import Callable

import torch

from .schedules import NoiseSchedule, karras_sigmas
from .spaces import StateSpace

Tensor = torch.Tensor


def _drift_and_divergence(
    denoiser: Callable, x: Tensor, sigma: float, space: StateSpace, probes: list[Tensor] | None, extra_args: dict
) -> tuple[Tensor, Tensor]:
    """``f(x, sigma)`` and its divergence in the space, ``[B]`` (exact when ``probes`` is None)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        d = space.project(denoiser(x, space.full(sigma, dtype=x.dtype), **extra_args))
        f = (x - d) / sigma
        if probes is not None:  # Hutchinson: E[z^T J z] = tr(J P) for probes with covariance P
            div = torch.zeros(space.num_items, dtype=x.dtype, device=x.device)
            for k, z in enumerate(probes):
                (g,) = torch.autograd.grad(f, x, z, retain_graph=k + 1 < len(probes))
                div = div + space.dot(g, z)
            div = div / len(probes)
        else:  # exact: tr(J P) = sum_j (P J^T e_j)_j, one backward pass per entry
            flat = f.reshape(-1)
            contrib = torch.zeros_like(flat)
            for j in range(flat.numel()):
                (g,) = torch.autograd.grad(flat[j], x, retain_graph=True)
                contrib[j] = space.project(g).reshape(-1)[j]
            div = space.sum_per_item(contrib.reshape(x.shape))
    return f.detach(), div.detach()


def pf_ode_log_likelihood(
    denoiser: Callable,
    x0: Tensor,
    space: StateSpace,
    *,
    schedule: NoiseSchedule | None = None,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    num_steps: int = 100,
    rho: float = 7.0,
    prior_variance: float | None = None,
    trace: str = "hutchinson",
    num_probes: int = 1,
    generator: torch.Generator | None = None,
    extra_args: dict | None = None,
) -> Tensor:
    """Log-likelihood of ``x0`` under the model's PF-ODE, per item, in nats, ``[B]``.

    The ODE is integrated from ``sigma_min`` up to ``sigma_max`` with Heun's method on a Karras grid
    (``rho``), carrying the integral of the divergence. The prior is ``N(0, prior_variance I)`` in the
    space (default: the schedule's :meth:`prior_variance`, or ``sigma_max^2``).

    Args:
        denoiser: VE-frame denoiser ``D(x, sigma)``.
        x0: data, a point of ``space`` (the state at ``sigma_min``).
        schedule: supplies ``sigma_min``, ``sigma_max`` and the prior when they are not given.
        num_steps: Heun steps (2 divergence evaluations each, except where noted).
        trace: ``"hutchinson"`` (``num_probes`` Rademacher probes projected into the space, fixed
            along the path; Hutchinson 1989; Grathwohl et al. 2019, FFJORD) or ``"exact"`` (one backward pass per entry: small
            dimensions only).
        generator: random generator for the probes.

    Returns:
        ``log p(x0)`` per item (density with respect to Lebesgue measure on the space, nats).
    """
    if trace not in ("hutchinson", "exact"):
        raise ValueError(f"trace must be 'hutchinson' or 'exact', got {trace!r}")
    if sigma_min is None or sigma_max is None:
        if schedule is None:
            raise ValueError("give sigma_min and sigma_max, or a schedule to take them from")
        sigma_min = schedule.sigma_min if sigma_min is None else sigma_min
        sigma_max = schedule.sigma_max if sigma_max is None else sigma_max
    if prior_variance is None:
        prior_variance = schedule.prior_variance() if schedule is not None else sigma_max**2
    extra_args = extra_args or {}
    probes = None
    if trace == "hutchinson":  # Rademacher probes projected into the space: covariance P, low variance
        probes = [
            space.project(torch.randint(0, 2, x0.shape, generator=generator, device=x0.device).to(x0.dtype) * 2 - 1)
            for _ in range(num_probes)
        ]
    levels = [float(s) for s in karras_sigmas(num_steps + 1, sigma_min, sigma_max, rho).flip(0)]
    x = space.project(x0)
    integral = torch.zeros(space.num_items, dtype=x0.dtype, device=x0.device)
    for s, s_next in zip(levels[:-1], levels[1:]):
        h = s_next - s
        f1, div1 = _drift_and_divergence(denoiser, x, s, space, probes, extra_args)
        x_euler = x + h * f1
        f2, div2 = _drift_and_divergence(denoiser, x_euler, s_next, space, probes, extra_args)
        x = x + 0.5 * h * (f1 + f2)
        integral = integral + 0.5 * h * (div1 + div2)
    return space.log_normal(x, prior_variance) + integral


def bits_per_dim(log_likelihood: Tensor, space: StateSpace) -> Tensor:
    """Convert per-item nats to bits per degree of freedom, ``[B]``."""
    return -log_likelihood / (
        space.dof.to(log_likelihood.dtype) * torch.log(torch.tensor(2.0, dtype=log_likelihood.dtype))
    )
