"""Property assertions users can run on their own denoisers and samplers.

* :mod:`moldiff.testing.equivariance` — rotations, reflections, translations, permutations and
  zero centre of mass for denoisers of packed 3D graphs.
* :mod:`moldiff.testing.gaussian` — closed-form Gaussian oracle denoisers (dense and on any state
  space, zero-CoM graphs included), exact PF-ODE solutions and sampler convergence-order checks.
* :mod:`moldiff.testing.categorical` — the exact posterior denoiser of a joint state whose categorical
  variables follow a known probability table (Gaussian continuous blocks alongside), and the exact
  output law of a categorical sampler.

Importing this module does not import the heavy optional packages (RDKit, e3nn, ...).
"""

from __future__ import annotations

from .categorical import CategoricalTableOracle, exact_sampler_law, total_variation
from .equivariance import (
    assert_equivariant,
    assert_not_reflection_equivariant,
    assert_zero_com,
    random_permutation_within_graphs,
    random_rotation,
)
from .gaussian import (
    DenseGaussianOracle,
    IsotropicGaussianOracle,
    assert_convergence_order,
    observed_orders,
    sampler_errors,
)

__all__ = [
    "CategoricalTableOracle",
    "exact_sampler_law",
    "total_variation",
    "assert_equivariant",
    "assert_not_reflection_equivariant",
    "assert_zero_com",
    "random_permutation_within_graphs",
    "random_rotation",
    "DenseGaussianOracle",
    "IsotropicGaussianOracle",
    "assert_convergence_order",
    "observed_orders",
    "sampler_errors",
]
