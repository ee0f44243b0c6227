"""An E(3)-equivariant graph network with node *and* pair states, for jointly generated graphs.

Generative models that draw atom types, formal charges and bond orders together with coordinates
(MiDi, Vignac et al. 2023; EQGAT-diff, Le et al. 2024; SemlaFlow, Irwin et al. 2024) need a network
that reads and predicts a variable on every node pair, not only on the nodes. :class:`PairEGNN` is
EGNN (Satorras et al. 2021) with a hidden state ``e_ij`` on every unordered pair ``i < j`` of each
fully connected graph, updated at every layer as in EQGAT-diff's edge updates, and Gaussian RBFs of
the current pair distance as geometric features (they fixed the chain geometry of moldiff's
backbone model; EGNN's raw squared distance is too coarse for a small MLP). One layer, with
``r_ij = |x_i - x_j|`` and the message computed for both directions of a pair::

    m_ij = SiLU(W2 SiLU(W_i h_i + W_j h_j + W_e e_ij + W_r rbf(r_ij) + b) + b2)      (EGNN Eq. 3)
    h_i  <- h_i + phi_h([LN(h_i), sum_j m_ij / Z])                                   (Eqs. 5, 6)
    e_ij <- e_ij + phi_e(m_ij + m_ji)                        (a symmetric pair update)
    x_i  <- x_i + sum_j (x_i - x_j) / (r_ij + 1) * tanh(w_x m_ij) * c / Z            (Eq. 4)

The first layer of the message MLP is split into node-level products gathered to the pairs (as in
:mod:`moldiff.nn.egnn`), so per pair only one ``H x H`` product is paid. Pair outputs read
``e_ij`` (symmetric by construction), node outputs read ``h_i``; the coordinate output is the
final ``x`` (E(3)-equivariant; translations pass through, the caller removes the centre of mass).
Invariance of node and pair outputs, equivariance of coordinates and the consistency of pair
outputs under a permutation of the nodes are checked in ``tests/nn/test_pair_egnn.py``.

Nothing here knows about chemistry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import GaussianRBF
from .graph import IndexPlan

Tensor = torch.Tensor

__all__ = ["PairEGNN", "PairLayer", "directed_pairs"]


def directed_pairs(pairs: Tensor) -> Tensor:
    """Both directions of unordered pairs ``[2, P]`` (``i < j``), ``[2, 2P]``: ``(i, j)`` first, then ``(j, i)``.

    Row 0 receives, row 1 sends (the convention of :mod:`moldiff.nn.graph`).
    """
    return torch.cat([pairs, pairs.flip(0)], dim=1)


class PairLayer(nn.Module):
    """One message-passing layer over nodes and pairs (see the module docstring).

    Args:
        hidden: node features ``H``.
        pair_hidden: pair features ``H_e``.
        num_rbf: Gaussian RBFs of the pair distance.
        rbf_cutoff: the last RBF centre (in the units of the coordinates).
        coords_range: ``c``, bound of one pair's coordinate step.
        normalization_factor: ``Z``, sums over neighbours are divided by it.
        update_coords: whether the layer moves the coordinates.
    """

    def __init__(
        self,
        hidden: int,
        pair_hidden: int,
        num_rbf: int = 16,
        rbf_cutoff: float = 8.0,
        coords_range: float = 10.0,
        normalization_factor: float = 10.0,
        update_coords: bool = True,
    ):
        super().__init__()
        self.rbf = GaussianRBF(num_rbf, 0.0, rbf_cutoff)
        self.message_nodes = nn.Linear(hidden, 2 * hidden)  # [W_i; W_j] in one product (bias on W_i)
        self.message_pair = nn.Linear(pair_hidden + num_rbf, hidden, bias=False)
        self.message_out = nn.Linear(hidden, hidden)
        self.node_norm = nn.LayerNorm(hidden)
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.pair_mlp = nn.Sequential(nn.Linear(hidden, pair_hidden), nn.SiLU(), nn.Linear(pair_hidden, pair_hidden))
        self.update_coords = update_coords
        if update_coords:
            self.coord_out = nn.Linear(hidden, 1, bias=False)
            nn.init.xavier_uniform_(self.coord_out.weight, gain=0.001)
        self.coords_range = float(coords_range)
        self.normalization_factor = float(normalization_factor)
        self.hidden = hidden

    def forward(
        self, h: Tensor, e: Tensor, x: Tensor, rows: IndexPlan, cols: IndexPlan
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Args: ``h [N, H]``, pair states ``e [P, H_e]``, ``x [N, 3]``, plans of the receiving and
        sending nodes of the ``2P`` directed pairs (:func:`directed_pairs`).

        Returns:
            ``(h [N, H], e [P, H_e], x [N, 3])``.
        """
        num_pairs = e.shape[0]
        diff = rows.gather(x) - cols.gather(x)  # [2P, 3]
        r = diff.pow(2).sum(-1, keepdim=True).add(1e-8).sqrt()
        hi, hj = self.message_nodes(h).split(self.hidden, dim=1)
        pair_in = torch.cat([e, self.rbf(r[:num_pairs]).to(e.dtype)], dim=1)  # r is symmetric: one half suffices
        pair_term = self.message_pair(pair_in)
        pre = rows.gather(hi) + cols.gather(hj) + torch.cat([pair_term, pair_term])
        m = F.silu(self.message_out(F.silu(pre)))  # [2P, H]
        agg = rows.scatter(m) / self.normalization_factor
        h = h + self.node_mlp(torch.cat([self.node_norm(h), agg.to(h.dtype)], dim=1)).to(h.dtype)
        e = e + self.pair_mlp(m[:num_pairs] + m[num_pairs:]).to(e.dtype)
        if self.update_coords:
            step = torch.tanh(self.coord_out(m)) * self.coords_range
            x = x + rows.scatter((diff / (r + 1.0)) * step.to(x.dtype)) / self.normalization_factor
        return h, e, x


class PairEGNN(nn.Module):
    """E(3)-equivariant network on node and pair features of fully connected packed graphs.

    Args:
        node_in: size of the node input features.
        pair_in: size of the pair input features.
        node_out: size of the node output (e.g. logits of several node variables side by side).
        pair_out: size of the pair output.
        hidden: node features ``H`` (default: 128).
        pair_hidden: pair features ``H_e`` (default: 32).
        layers: message-passing layers (default: 6).
        num_rbf, rbf_cutoff, coords_range, normalization_factor: see :class:`PairLayer`.
        film_features: size ``C`` of an optional per-node conditioning vector that modulates the
            node states before every layer by FiLM (Perez et al. 2018, Eq. 1; the adaLN-zero
            initialisation of Peebles & Xie 2023): ``h <- h * (1 + gamma(c)) + beta(c)`` with
            ``gamma, beta`` one linear map per layer, initialised to zero, so a network built with it
            computes exactly what it computes without it until trained (0: none) (default: 0).

    Shapes:
        ``pos [N, 3]``, ``h [N, node_in]``, ``pair_attr [P, pair_in]`` on the unordered pairs
        ``pairs [2, P]`` (``i < j``, e.g. :func:`moldiff.core.upper_triangle_edges`) ->
        ``(x [N, 3], node [N, node_out], pair [P, pair_out])``; ``x`` is the updated position
        (equivariant), the others invariant; the pair output is symmetric in ``i, j``.
    """

    def __init__(
        self,
        node_in: int,
        pair_in: int,
        node_out: int,
        pair_out: int,
        *,
        hidden: int = 128,
        pair_hidden: int = 32,
        layers: int = 6,
        num_rbf: int = 16,
        rbf_cutoff: float = 8.0,
        coords_range: float = 10.0,
        normalization_factor: float = 10.0,
        film_features: int = 0,
    ):
        super().__init__()
        self.node_embedding = nn.Linear(node_in, hidden)
        self.pair_embedding = nn.Linear(pair_in, pair_hidden)
        self.layers = nn.ModuleList(
            PairLayer(hidden, pair_hidden, num_rbf, rbf_cutoff, coords_range, normalization_factor)
            for _ in range(layers)
        )
        self.node_head = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, node_out)
        )
        self.pair_rbf = GaussianRBF(num_rbf, 0.0, rbf_cutoff)
        self.pair_head = nn.Sequential(
            nn.Linear(pair_hidden + num_rbf, pair_hidden), nn.SiLU(), nn.Linear(pair_hidden, pair_out)
        )
        self.film = None
        if film_features:
            self.film = nn.ModuleList(nn.Linear(film_features, 2 * hidden) for _ in range(layers))
            for film in self.film:
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)

    def forward(
        self, pos: Tensor, h: Tensor, pair_attr: Tensor, pairs: Tensor, film: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """See the class docstring; ``film [N, film_features]`` is the per-node conditioning vector
        (invariant, e.g. a molecule's embedding gathered to its atoms), ``None`` for none."""
        directed = directed_pairs(pairs)
        rows = IndexPlan(directed[0], pos.shape[0])
        cols = IndexPlan(directed[1], pos.shape[0])
        x = pos
        # the residual streams (and the coordinates) stay in pos.dtype: fp32 under bf16 autocast
        hh = self.node_embedding(h).to(pos.dtype)
        e = self.pair_embedding(pair_attr).to(pos.dtype)
        if film is not None and self.film is None:
            raise ValueError("this PairEGNN was built without film_features: it takes no film= input")
        for k, layer in enumerate(self.layers):
            if film is not None:
                gamma, beta = self.film[k](film).to(hh.dtype).chunk(2, dim=-1)
                hh = hh * (1.0 + gamma) + beta
            hh, e, x = layer(hh, e, x, rows, cols)
        r = (x[pairs[0]] - x[pairs[1]]).pow(2).sum(-1).add(1e-8).sqrt()
        pair = self.pair_head(torch.cat([e, self.pair_rbf(r).to(e.dtype)], dim=1))
        return x, self.node_head(hh).to(pos.dtype), pair.to(pos.dtype)
