"""Closed-form Gaussian oracles and sampler checks.

For Gaussian data the optimal denoiser, the noised marginals and the probability-flow ODE are all
known in closed form (e.g. Karras et al. 2022, App. B.3): with data ``N(m, C)``,

* ``D(x, sigma) = m + C (C + sigma^2 I)^{-1} (x - m)``;
* ``p_sigma = N(m, C + sigma^2 I)``;
* along the PF-ODE, in the eigenbasis of ``C`` (eigenvalue ``l``):
  ``x(s') - m = sqrt((l + s'^2) / (l + s^2)) (x(s) - m)``.

These oracles let tests (ours and users') check samplers, likelihoods and losses against exact
answers rather than golden numbers.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from moldiff.core.spaces import EuclideanSpace, StateSpace

Tensor = torch.Tensor


class DenseGaussianOracle:
    """Data ``N(mean, cov)`` for every item of a dense batch ``[B, D]`` (any item shape flattened).

    Args:
        mean: ``[D]`` mean of one item.
        cov: ``[D, D]`` symmetric positive-definite covariance.
    """

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        self.mean = mean.double()
        self.cov = 0.5 * (cov.double() + cov.double().T)
        self.eigvals, self.eigvecs = torch.linalg.eigh(self.cov)
        if bool((self.eigvals <= 0).any()):
            raise ValueError("covariance must be positive definite")
        self.dim = self.mean.numel()

    def _apply(self, x: Tensor, scale_fn: Callable[[Tensor], Tensor]) -> Tensor:
        """``mean + U diag(scale_fn(eigvals)) U^T (x - mean)`` per item."""
        flat = x.reshape(x.shape[0], -1).double() - self.mean
        coeff = flat @ self.eigvecs
        out = (coeff * scale_fn(self.eigvals)) @ self.eigvecs.T + self.mean
        return out.reshape(x.shape).to(x.dtype)

    def __call__(self, x: Tensor, sigma: Tensor, **_) -> Tensor:
        """Optimal denoiser ``D(x, sigma)`` (``sigma``: ``[B]``)."""
        s2 = sigma.double().reshape(-1, 1) ** 2
        return self._apply(x, lambda lam: lam / (lam + s2))

    def ode_solution(self, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
        """Exact PF-ODE transport of ``x`` from ``sigma_from`` to ``sigma_to``."""
        return self._apply(x, lambda lam: torch.sqrt((lam + sigma_to**2) / (lam + sigma_from**2)))

    def sample(self, num_items: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(num_items, self.dim, generator=generator, dtype=torch.float64)
        return self.mean + (z * self.eigvals.sqrt()) @ self.eigvecs.T

    def log_density(self, x: Tensor, sigma: float = 0.0) -> Tensor:
        """``log N(x; mean, cov + sigma^2 I)`` per item, ``[B]``."""
        flat = x.reshape(x.shape[0], -1).double() - self.mean
        lam = self.eigvals + sigma**2
        coeff = flat @ self.eigvecs
        return -0.5 * ((coeff**2 / lam).sum(-1) + torch.log(2 * math.pi * lam).sum())

    def space(self, num_items: int) -> EuclideanSpace:
        return EuclideanSpace((num_items, self.dim), dtype=torch.float64)


class IsotropicGaussianOracle:
    """Data ``mean + sqrt(variance) z`` with ``z`` standard noise *of the space*, for any space
    (packed graphs with zero centre of mass included): covariance ``variance * P`` per column.

    Args:
        space: the batch's state space (fixes the layout the oracle answers for).
        mean: a point of the space (e.g. zero-CoM node positions), shaped like the batch.
        variance: scalar, or broadcastable to ``mean`` but constant within each column of a
            constrained (zero-CoM) block, e.g. ``[width]`` per column.
    """

    def __init__(self, space: StateSpace, mean: Tensor, variance: Tensor | float) -> None:
        self.space = space
        self.mean = space.project(mean.double())
        self.variance = torch.as_tensor(variance, dtype=torch.float64)

    def __call__(self, x: Tensor, sigma: Tensor, **_) -> Tensor:
        """Optimal denoiser ``D(x, sigma)`` (``sigma``: ``[B]``)."""
        s2 = self.space.per_item(sigma.double()) ** 2
        return (self.mean + self.variance / (self.variance + s2) * (x.double() - self.mean)).to(x.dtype)

    def ode_solution(self, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
        ratio = torch.sqrt((self.variance + sigma_to**2) / (self.variance + sigma_from**2))
        return (self.mean + ratio * (x.double() - self.mean)).to(x.dtype)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.mean + self.variance.sqrt() * self.space.randn(generator=generator, dtype=torch.float64)

    def log_density(self, x: Tensor, sigma: float = 0.0) -> Tensor:
        """``log N(x; mean, (variance + sigma^2) P)`` on the space, ``[B]`` (scalar variance only)."""
        if self.variance.numel() != 1:
            raise ValueError("log_density needs a scalar variance")
        return self.space.log_normal(x.double(), self.variance + sigma**2, self.mean)


def sampler_errors(
    sampler: Callable,
    oracle,
    x_init: Tensor,
    space: StateSpace,
    sigma_grid: Callable[[int], Tensor],
    steps: Sequence[int] = (8, 16, 32, 64),
    **sampler_kwargs,
) -> list[float]:
    """Global error of a deterministic sampler against the oracle's exact PF-ODE solution.

    Args:
        sampler: a ``moldiff.core`` sampler.
        oracle: an oracle with ``__call__`` (the denoiser) and ``ode_solution``.
        x_init: starting state at ``sigma_grid(n)[0]`` (identical for every ``n``).
        sigma_grid: ``n -> sigmas``, a grid of ``n`` steps that ends above zero.
        steps: step counts to try.

    Returns:
        Max-abs error at the end of the grid for each step count.
    """
    errors = []
    for n in steps:
        sigmas = sigma_grid(n)
        if float(sigmas[-1]) <= 0:
            raise ValueError("convergence checks need a grid that ends above sigma = 0")
        exact = oracle.ode_solution(x_init, float(sigmas[0]), float(sigmas[-1]))
        out = sampler(oracle, x_init.clone(), sigmas, space, **sampler_kwargs)
        errors.append(float((out - exact).abs().max()))
    return errors


def observed_orders(errors: Sequence[float]) -> list[float]:
    """``log2(e_n / e_2n)`` for consecutive step doublings."""
    return [math.log2(a / b) for a, b in zip(errors[:-1], errors[1:])]


def assert_convergence_order(
    sampler: Callable,
    oracle,
    x_init: Tensor,
    space: StateSpace,
    sigma_grid: Callable[[int], Tensor],
    order: float,
    *,
    steps: Sequence[int] = (8, 16, 32, 64),
    tolerance: float = 0.3,
    **sampler_kwargs,
) -> list[float]:
    """Assert that doubling the steps divides the error by about ``2**order`` (last doubling)."""
    errors = sampler_errors(sampler, oracle, x_init, space, sigma_grid, steps, **sampler_kwargs)
    orders = observed_orders(errors)
    if abs(orders[-1] - order) > tolerance:
        raise AssertionError(f"expected convergence order {order} +- {tolerance}, observed {orders} (errors {errors})")
    return orders
