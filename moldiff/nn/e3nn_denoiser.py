"""An O(3)-equivariant tensor-product denoiser built on e3nn (imported lazily).

Node features are a direct sum of irreducible representations, e.g. ``64x0e + 16x1o + 8x2e``
(scalars, vectors, rank-2 tensors). One interaction layer, in the style of Tensor Field Networks
(Thomas et al. 2018) and NequIP (Batzner et al. 2022, Eqs. 3-6):

* ``Y(r_hat_ij)``: spherical harmonics ``l = 0..lmax`` of the edge direction ``r_ij = x_j - x_i``;
* ``R(|r_ij|)``: a radial MLP on a distance basis (Gaussian for full graphs, Bessel with a smooth
  polynomial envelope for radius graphs, NequIP Eq. 8) produces the per-edge weights of a
  channel-wise ("uvu") tensor product;
* message ``m_ij = TP_{R(|r_ij|)}(W h_j, Y(r_hat_ij))``, aggregated
  ``sum_j m_ij / sqrt(avg_num_neighbours)``;
* ``h_i <- Gate(Linear(sum_j m_ij)) + Linear_self(h_i)``: gated nonlinearity (Weiler et al. 2018):
  SiLU on scalars, each higher-order channel multiplied by ``sigmoid`` of its own gate scalar.

Outputs: ``out_features`` scalars ``0e`` per node and one vector ``1o`` per node for the
coordinates, projected to zero mean per graph. All irreps have their natural parity (``1o``
vectors, ``2e`` tensors, no pseudo-scalars in the output), so the model is E(3)-equivariant,
reflections included. e3nn's ``1o`` components are in ``(x, y, z)`` order (e3nn >= 0.5).

``import moldiff.nn`` does not import e3nn; constructing :class:`E3nnDenoiser` does.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .embeddings import BesselBasis, GaussianRBF
from .graph import IndexPlan, PackedGraphDenoiser, check_edge_options, remove_mean

Tensor = torch.Tensor

__all__ = ["E3nnDenoiser", "InteractionLayer"]


class InteractionLayer(nn.Module):
    """One convolution + gate layer on node irreps ``irreps_node`` (module docstring).

    Args:
        irreps_node: irreps of the node features (input and output).
        irreps_sh: irreps of the edge spherical harmonics.
        num_radial: size of the radial input (basis + extra edge features).
        radial_hidden: width of the radial MLP.
        avg_num_neighbours: the aggregated sum is divided by its square root.
    """

    def __init__(self, irreps_node, irreps_sh, num_radial: int, radial_hidden: int, avg_num_neighbours: float):
        super().__init__()
        from e3nn import o3
        from e3nn.nn import FullyConnectedNet, Gate

        irreps_node, irreps_sh = o3.Irreps(irreps_node), o3.Irreps(irreps_sh)
        self.irreps_node = irreps_node
        self.norm = 1.0 / math.sqrt(avg_num_neighbours)
        wanted = {ir for _, ir in irreps_node}

        # channel-wise ("uvu") tensor product: every input channel keeps its own channels
        irreps_mid, instructions = [], []
        for i1, (mul, ir_in) in enumerate(irreps_node):
            for i2, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in wanted:
                        instructions.append((i1, i2, len(irreps_mid), "uvu", True))
                        irreps_mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(irreps_mid)
        irreps_mid_sorted, perm, _ = irreps_mid.sort()
        instructions = [(a, b, perm[k], mode, w) for a, b, k, mode, w in instructions]

        self.linear_in = o3.Linear(irreps_node, irreps_node)
        self.tp = o3.TensorProduct(
            irreps_node, irreps_sh, irreps_mid_sorted, instructions, internal_weights=False, shared_weights=False
        )
        self.radial = FullyConnectedNet(
            [num_radial, radial_hidden, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu
        )

        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_node if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_node if ir.l > 0])
        gates = o3.Irreps([(mul, "0e") for mul, _ in gated])
        act_scalars = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = Gate(scalars, act_scalars, gates, [torch.sigmoid] * len(gates), gated)
        self.linear_out = o3.Linear(irreps_mid_sorted.simplify(), self.gate.irreps_in)
        self.self_connection = o3.Linear(irreps_node, irreps_node)
        if self.gate.irreps_out != irreps_node:
            raise ValueError(
                f"irreps {irreps_node} must list scalars first and each irrep once, sorted "
                f"(e.g. '64x0e + 16x1o + 8x2e'); the gate returns {self.gate.irreps_out}"
            )

    def forward(self, h: Tensor, rows: IndexPlan, cols: IndexPlan, sh: Tensor, radial: Tensor) -> Tensor:
        """Args: ``h [N, irreps_node.dim]``, plans of ``i`` / ``j``, ``sh [E, irreps_sh.dim]``,
        ``radial [E, num_radial]``. Returns ``h [N, irreps_node.dim]``."""
        weights = self.radial(radial)  # [E, weight_numel]
        msg = self.tp(cols.gather(self.linear_in(h)), sh, weights)  # m_ij from h_j
        agg = rows.scatter(msg) * self.norm
        return self.gate(self.linear_out(agg)) + self.self_connection(h)


class E3nnDenoiser(PackedGraphDenoiser):
    """E(3)-equivariant tensor-product denoiser with the :class:`~moldiff.nn.EGNNDenoiser` interface.

    Args:
        in_features: ``F``, size of the scalar node features ``h`` (time included).
        out_features: number of scalar outputs per node.
        irreps_hidden: node irreps, scalars first, each irrep once (default:
            ``"32x0e + 8x1o + 4x2e"``, small so tests are fast; ``"64x0e + 16x1o + 8x2e"`` is a
            reasonable model).
        layers: interaction layers (default: 3).
        lmax: highest degree of the edge spherical harmonics (default: 2).
        num_basis: radial basis functions (default: 8).
        radial_hidden: width of the radial MLPs (default: 32).
        max_radius: extent of the Gaussian basis for ``edges="full"`` / ``"knn"`` (default: 5, in
            the units of ``pos``); ignored for ``"radius"``, which uses a Bessel basis on
            ``[0, cutoff]`` with a smooth envelope so edges enter and leave continuously.
        avg_num_neighbours: aggregated messages are divided by its square root (default: 16).
        edges, cutoff, knn, extra_edge_features: as in :class:`~moldiff.nn.EGNNDenoiser`; extra
            edge features are appended to the radial basis (invariant inputs only).

    Shapes:
        ``pos [N, 3]``, ``h [N, F]``, ``batch [N]`` (sorted) -> ``eps_x [N, 3]`` (zero mean per
        graph), ``eps_h [N, out_features]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        irreps_hidden: str = "32x0e + 8x1o + 4x2e",
        layers: int = 3,
        lmax: int = 2,
        num_basis: int = 8,
        radial_hidden: int = 32,
        max_radius: float = 5.0,
        avg_num_neighbours: float = 16.0,
        edges: Literal["full", "radius", "knn"] = "full",
        cutoff: float | None = None,
        knn: int | None = None,
        extra_edge_features: int = 0,
    ):
        super().__init__()
        from e3nn import o3

        check_edge_options(edges, cutoff, knn)
        self.in_features, self.out_features = in_features, out_features
        self.edges, self.cutoff, self.knn = edges, cutoff, knn
        self.extra_edge_features = extra_edge_features
        self.irreps_hidden = o3.Irreps(irreps_hidden)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        if edges == "radius":
            self.basis = BesselBasis(num_basis, cutoff, envelope_p=6)
        else:
            self.basis = GaussianRBF(num_basis, 0.0, max_radius)
        num_radial = num_basis + extra_edge_features
        self.embedding = o3.Linear(o3.Irreps(f"{in_features}x0e"), self.irreps_hidden)
        self.layers = nn.ModuleList(
            InteractionLayer(self.irreps_hidden, self.irreps_sh, num_radial, radial_hidden, avg_num_neighbours)
            for _ in range(layers)
        )
        self.out_scalars = o3.Linear(self.irreps_hidden, o3.Irreps(f"{out_features}x0e"))
        self.out_vector = o3.Linear(self.irreps_hidden, o3.Irreps("1x1o"))
        if self.out_vector.weight_numel == 0:
            raise ValueError(f"irreps_hidden={self.irreps_hidden} has no 1o channel for the coordinate output")

    def forward(
        self,
        pos: Tensor,
        h: Tensor,
        batch: Tensor,
        num_graphs: int,
        edge_index: Tensor | None = None,
        edge_attr: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Predict the coordinate and feature noise.

        Args:
            pos: ``[N, 3]`` coordinates.
            h: ``[N, F]`` scalar node features.
            batch: ``[N]`` sorted graph index.
            num_graphs: ``B``.
            edge_index: optional ``[2, E]`` graph (default: :meth:`build_edges`).
            edge_attr: optional ``[E, extra_edge_features]`` invariant edge features.

        Returns:
            ``(eps_x [N, 3], eps_h [N, out_features])``, ``eps_x`` with zero mean per graph.
        """
        from e3nn import o3

        edge_attr, rows, cols = self.prepare_graph(pos, h, batch, num_graphs, edge_index, edge_attr)

        vec = cols.gather(pos) - rows.gather(pos)  # r_ij = x_j - x_i, [E, 3]
        d2 = vec.pow(2).sum(-1, keepdim=True)
        dist = torch.sqrt(d2 + 1e-12)
        # unit vectors (smoothly zero for coincident atoms instead of NaN)
        sh = o3.spherical_harmonics(
            self.irreps_sh, vec / torch.sqrt(d2 + 1e-8), normalize=False, normalization="component"
        )
        radial = self.basis(dist).to(pos.dtype)
        if edge_attr is not None:
            radial = torch.cat([radial, edge_attr.to(pos.dtype)], dim=1)

        x = self.embedding(h.to(pos.dtype))
        for layer in self.layers:
            x = layer(x, rows, cols, sh, radial)
        eps_h = self.out_scalars(x)
        eps_x = remove_mean(self.out_vector(x), batch, num_graphs)
        return eps_x, eps_h
