"""Denoiser networks for packed graph batches, and the graph utilities they share.

* :class:`EGNNDenoiser` — EDM's E(n)-equivariant GNN (Hoogeboom et al. 2022; Satorras et al. 2021).
* :class:`E3nnDenoiser` — tensor-product network on irreps (needs e3nn; imported on first use).
* :mod:`moldiff.nn.graph` — fully connected, radius, kNN and sequence graphs in plain torch,
  per-graph means and the fast gather / segment-sum :class:`IndexPlan`.
* :mod:`moldiff.nn.embeddings` — time and distance embeddings.

``import moldiff.nn`` imports torch only: neither e3nn nor torch_geometric.
"""

from __future__ import annotations

from moldiff._lazy import lazy_exports

from .egnn import GCL, EGNNDenoiser, EquivariantBlock, EquivariantUpdate
from .embeddings import (
    BesselBasis,
    DistanceSinusoidEmbedding,
    GaussianFourierProjection,
    GaussianRBF,
    MaskedScalarEmbedding,
    SinusoidalEmbedding,
    cosine_cutoff,
    polynomial_cutoff,
)
from .graph import (
    IndexPlan,
    build_edges,
    fully_connected_edges,
    knn_edges,
    radius_edges,
    remove_mean,
    scatter_mean,
    scatter_sum,
    segment_sum,
    sequence_edges,
)

_LAZY = {"E3nnDenoiser": "e3nn_denoiser", "InteractionLayer": "e3nn_denoiser", "UNet": "unet"}

__all__ = [
    "EGNNDenoiser",
    "E3nnDenoiser",
    "UNet",
    "EquivariantBlock",
    "EquivariantUpdate",
    "GCL",
    "BesselBasis",
    "DistanceSinusoidEmbedding",
    "GaussianFourierProjection",
    "GaussianRBF",
    "MaskedScalarEmbedding",
    "SinusoidalEmbedding",
    "cosine_cutoff",
    "polynomial_cutoff",
    "IndexPlan",
    "build_edges",
    "fully_connected_edges",
    "knn_edges",
    "radius_edges",
    "remove_mean",
    "scatter_mean",
    "scatter_sum",
    "segment_sum",
    "sequence_edges",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
