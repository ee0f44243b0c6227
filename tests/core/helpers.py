"""Shared builders for the core tests: Gaussian problems on dense and packed-graph batches."""

from __future__ import annotations

import torch

from moldiff.core import GraphSpace, ProductSpace
from moldiff.testing.gaussian import DenseGaussianOracle, IsotropicGaussianOracle


def dense_problem(seed: int = 0, dim: int = 3):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    cov = a @ a.T / dim + 0.3 * torch.eye(dim, dtype=torch.float64)
    mean = torch.randn(dim, generator=g, dtype=torch.float64)
    return DenseGaussianOracle(mean, cov)


def graph_batch(sizes, seed: int = 0):
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return batch


def graph_problem(sizes, seed: int = 0, feature_width: int = 2):
    """Positions (zero-CoM, variance 0.5) next to node features (variance 2), random means."""
    g = torch.Generator().manual_seed(seed)
    batch = graph_batch(sizes)
    pos = GraphSpace(batch, 3, len(sizes), zero_com=True, dtype=torch.float64)
    space = ProductSpace([pos, pos.with_width(feature_width, zero_com=False)])
    mean = torch.randn(batch.numel(), 3 + feature_width, generator=g, dtype=torch.float64)
    variance = torch.tensor([0.5] * 3 + [2.0] * feature_width, dtype=torch.float64)
    return space, IsotropicGaussianOracle(space, mean, variance)


def com(x: torch.Tensor, space) -> torch.Tensor:
    """Centre of mass of the position block per graph, ``[B, 3]``."""
    return space.blocks[0].node_mean(x[:, :3]) if isinstance(space, ProductSpace) else space.node_mean(x)
