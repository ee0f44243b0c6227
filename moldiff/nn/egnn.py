"""E(n)-equivariant graph neural network denoiser, EDM's architecture, for packed graph batches.

The network follows EGNN (Satorras et al. 2021, Eqs. 3-6) in the variant used by EDM (Hoogeboom
et al. 2022, App. B, and its public code), so a 9 x 256 model for QM9 has the same 5.34 M
parameters and computes the same function as EDM's ``EGNN_dynamics_QM9``:

* ``h <- Linear(h)`` (embedding of the already scaled input features ``[one-hot/4, Z/10, t]``);
* ``layers`` *equivariant blocks*. Each block first computes, on the current coordinates,
  ``d2_ij = |x_i - x_j|^2`` and ``u_ij = (x_i - x_j) / (sqrt(d2_ij + 1e-8) + norm_constant)``; the
  edge features are ``a_ij = [d2_ij, d2_ij^(0), extra]`` where ``d2^(0)`` is the squared distance at
  the *network input* (EDM's "distances" edge attribute) and ``extra`` optional user features.
  Then ``sublayers`` invariant graph convolutions (GCL), EGNN Eqs. 3, 5, 6 with attention::

      m_ij = phi_e(h_i, h_j, a_ij)                          # Linear-SiLU-Linear-SiLU   (Eq. 3)
      m_ij <- m_ij * sigmoid(Linear(m_ij))                  # attention / edge gating  (EDM App. B)
      h_i  <- h_i + phi_h(h_i, sum_j m_ij / Z)              # Linear-SiLU-Linear       (Eqs. 5, 6)

  and one equivariant coordinate update (Eq. 4 with EDM's normalised difference and tanh)::

      x_i  <- x_i + sum_j u_ij * tanh(phi_x(h_i, h_j, a_ij)) * coords_range / Z

  with ``Z = normalization_factor`` (EDM QM9: sum aggregation, ``Z = 1``);
* outputs ``eps_x = P(x_out - x_in)`` (``P`` removes the mean per graph: a zero-CoM vector field)
  and ``eps_h = Linear(h)``.

Efficiency (CPU and GPU). The first layer of ``phi_e`` and ``phi_x`` acts on ``[h_i, h_j, a_ij]``,
so ``W [h_i, h_j, a_ij] + b = (W_i h_i + b) + W_j h_j + W_a a_ij``: the two ``H x H`` products are
done once per *node* and gathered to the edges, leaving one ``E x H x H`` product per MLP (EDM does
``E x (2H+2) x H`` on all padded pairs, self-pairs included). The rest of each edge MLP
(``SiLU -> Linear -> SiLU -> gate or projection``) is one autograd function that keeps only two
``[E, H]`` tensors for backward and recomputes the activations (:class:`_FusedEdgeMLP`). Edges are
kept sorted by receiving node and gathers / sums go through :class:`~moldiff.nn.graph.IndexPlan`,
so aggregation is a segment sum (~10x faster than ``index_add_`` on CPU), in the dtype of the
residual stream (fp32 under bf16 autocast, where coordinates also stay fp32). The straightforward
per-edge formulation lives in ``tests/nn/test_egnn.py`` and checks this one, values and gradients.

Under bf16 autocast on the CPU, fully connected graphs take a faster route to the same function
(``pair_layout``, :mod:`moldiff.nn.egnn_dense`): molecules grouped by size, pairs as dense
per-size grids (broadcasts and batched products instead of gathers and segment sums), bf16
products, fp32 coordinates and residual stream.

Differences from EDM's code, none of which changes the function: no padding, masks or self-pairs
(EDM masks them out); no NaN-to-zero reset of the output (a host sync; the training engine guards
non-finite values). As in EDM's code each block uses the full ``coords_range`` (EDM computes
``coords_range / n_layers`` but never uses it). Not implemented: EDM's optional ``sin_embedding``
of distances (off for QM9; :class:`~moldiff.nn.embeddings.DistanceSinusoidEmbedding` provides it).

Edges follow :mod:`moldiff.nn.graph`: ``edge_index[0] = i`` receives, ``edge_index[1] = j`` sends.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .egnn_dense import PairLayout, bf16_autocast_dtype, dense_egnn_forward
from .graph import IndexPlan, PackedGraphDenoiser, check_edge_options, remove_mean

Tensor = torch.Tensor

__all__ = ["EGNNDenoiser", "EquivariantBlock", "GCL", "EquivariantUpdate", "edge_geometry"]


def edge_geometry(pos: Tensor, rows: IndexPlan, cols: IndexPlan, norm_constant: float = 1.0) -> tuple[Tensor, Tensor]:
    """Squared distances and normalised difference vectors of the edges.

    Args:
        pos: ``[N, 3]`` coordinates.
        rows, cols: :class:`~moldiff.nn.graph.IndexPlan` of the receiving (``i``) and sending
            (``j``) node of each edge.
        norm_constant: ``C`` in ``(x_i - x_j) / (|x_i - x_j| + C)`` (EDM: 1).

    Returns:
        ``d2 [E, 1] = |x_i - x_j|^2`` and ``u [E, 3] = (x_i - x_j) / (sqrt(d2 + 1e-8) + C)``.
    """
    diff = rows.gather(pos) - cols.gather(pos)
    d2 = diff.pow(2).sum(-1, keepdim=True)
    u = diff / (torch.sqrt(d2 + 1e-8) + norm_constant)
    return d2, u


def _split_first_layer(lin: nn.Linear, h: Tensor, rows: IndexPlan, cols: IndexPlan, edge_attr: Tensor) -> Tensor:
    """``lin([h_i, h_j, a_ij])`` computed as node-level products gathered to the edges.

    Args:
        lin: ``Linear(2H + k, H')``.
        h: ``[N, H]`` node features.
        rows, cols: plans of ``i = edge_index[0]`` and ``j = edge_index[1]``.
        edge_attr: ``[E, k]``.

    Returns:
        ``[E, H']``, equal to ``lin(torch.cat([h[row], h[col], edge_attr], 1))``.
    """
    hid = h.shape[1]
    w = lin.weight
    hi = F.linear(h, w[:, :hid], lin.bias)  # [N, H'] (bias folded in at node level)
    hj = F.linear(h, w[:, hid : 2 * hid])  # [N, H']
    # in place on fresh [E, H'] buffers: no extra copies (the gathers save nothing for backward)
    out = rows.gather(hi)
    out.add_(cols.gather(hj))
    return out.addmm_(edge_attr.to(out.dtype), w[:, 2 * hid :].t().to(out.dtype))


def _edge_mlp_reference(
    pre: Tensor, w2: Tensor, b2: Tensor, w_out: Tensor | None, b_out: Tensor | None, mode: str
) -> Tensor:
    """Plain autograd version of :class:`_FusedEdgeMLP` (used for double backward)."""
    m = F.silu(F.linear(F.silu(pre), w2, b2))
    if mode == "plain":
        return m
    logits = F.linear(m, w_out, b_out)
    return m * torch.sigmoid(logits) if mode == "gate" else logits


class _FusedEdgeMLP(torch.autograd.Function):
    """The per-edge tail of EDM's MLPs with a hand-written, memory-lean backward.

    ``m = SiLU(SiLU(pre) W2^T + b2)`` followed by, depending on ``mode``:

    * ``"gate"``: ``m * sigmoid(m w^T + b)`` (GCL with attention), ``[E, H]``;
    * ``"plain"``: ``m`` (GCL without attention), ``[E, H]``;
    * ``"project"``: ``m w^T (+ b)`` (``phi_x`` of the coordinate update), ``[E, 1]``.

    Only ``pre``, ``z = SiLU(pre) W2^T + b2`` and the ``[E, 1]`` gate are kept for backward; the
    activations ``SiLU(pre)`` and ``m`` are recomputed there. With autograd's own graph the same
    function keeps four or five ``[E, H]`` tensors alive per MLP, which for 9 x 256 on a QM9 batch
    means gigabytes of page-faulting allocations on CPU. Everything runs in ``pre.dtype`` (bf16
    under autocast, as autocast would choose); parameter gradients are returned in fp32 (their own
    dtype). Second-order gradients fall back to differentiating :func:`_edge_mlp_reference`.
    """

    @staticmethod
    def forward(ctx, pre, w2, b2, w_out, b_out, mode):  # type: ignore[override]
        dt = pre.dtype
        with torch.autocast(device_type=pre.device.type, enabled=False):
            s1 = F.silu(pre)
            z = torch.addmm(b2.to(dt), s1, w2.to(dt).t())
            del s1
            m = F.silu(z)
            gate = None
            if mode == "plain":
                out = m
            else:
                logits = F.linear(m, w_out.to(dt), None if b_out is None else b_out.to(dt))
                if mode == "gate":
                    gate = torch.sigmoid(logits)
                    out = m.mul_(gate)
                else:
                    out = logits
        ctx.mode = mode
        ctx.has_b_out = b_out is not None
        ctx.save_for_backward(pre, w2, b2, w_out, b_out, z, gate)
        return out

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        pre, w2, b2, w_out, b_out, z, gate = ctx.saved_tensors
        mode = ctx.mode
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formulation
            inputs = [pre, w2, b2, w_out, b_out]
            wanted = [t for t, need in zip(inputs, ctx.needs_input_grad[:5]) if need]
            with torch.enable_grad():
                out = _edge_mlp_reference(pre, w2, b2, w_out, b_out, mode)
            grads = iter(torch.autograd.grad(out, wanted, g_out, create_graph=True, allow_unused=True))
            return tuple(next(grads) if need else None for need in ctx.needs_input_grad[:5]) + (None,)

        dt = pre.dtype
        need = ctx.needs_input_grad
        g_w_out = g_b_out = None
        with torch.autocast(device_type=pre.device.type, enabled=False):
            g_out = g_out.to(dt)
            w_o = None if w_out is None else w_out.to(dt)
            m = F.silu(z) if mode != "plain" else None
            if mode == "gate":
                # out = m * a, a = sigmoid(l), l = m w^T + b
                g_l = (g_out * m).sum(1, keepdim=True).mul_(gate * (1 - gate))  # [E, 1]
                if need[3]:
                    g_w_out = (g_l.t() @ m).to(w_out.dtype)
                if need[4] and ctx.has_b_out:
                    g_b_out = g_l.sum(0).to(b_out.dtype)
                g_m = torch.addmm(g_out * gate, g_l, w_o)
            elif mode == "project":
                if need[3]:
                    g_w_out = (g_out.t() @ m).to(w_out.dtype)
                if need[4] and ctx.has_b_out:
                    g_b_out = g_out.sum(0).to(b_out.dtype)
                g_m = g_out @ w_o  # [E, 1] x [1, H]
            else:
                g_m = g_out
            del m
            g_z = torch.ops.aten.silu_backward(g_m, z)
            del g_m
            g_w2 = g_b2 = g_pre = None
            if need[1]:
                g_w2 = (g_z.t() @ F.silu(pre)).to(w2.dtype)
            if need[2]:
                g_b2 = g_z.sum(0).to(b2.dtype)
            if need[0]:
                g_pre = torch.ops.aten.silu_backward(g_z @ w2.to(dt), pre)
        return g_pre, g_w2, g_b2, g_w_out, g_b_out, None


def fused_edge_mlp(pre: Tensor, lin2: nn.Linear, out: nn.Linear | None, mode: str) -> Tensor:
    """``[E, H]`` pre-activations -> EDM's edge MLP tail, see :class:`_FusedEdgeMLP`.

    Args:
        pre: ``[E, H]`` output of the MLP's first linear layer.
        lin2: the ``Linear(H, H)`` between the two SiLUs.
        out: ``Linear(H, 1)`` of the gate (``mode="gate"``) or of ``phi_x`` (``"project"``).
        mode: ``"gate"``, ``"plain"`` or ``"project"``.

    Returns:
        ``[E, H]`` messages (``gate`` / ``plain``) or ``[E, 1]`` (``project``).
    """
    w_out = None if out is None else out.weight
    b_out = None if out is None else out.bias
    return _FusedEdgeMLP.apply(pre, lin2.weight, lin2.bias, w_out, b_out, mode)


class GCL(nn.Module):
    """Invariant graph convolution with attention (EGNN Eqs. 3, 5, 6; EDM App. B).

    Parameters are laid out as in EDM (``edge_mlp``, ``att_mlp``, ``node_mlp``), so the parameter
    count and the function match EDM's ``GCL`` with ``input_nf = output_nf = hidden_nf = H``.

    Args:
        hidden: ``H``.
        edge_features: ``k``, size of ``a_ij``.
        attention: gate messages by ``sigmoid(Linear(m_ij))`` (default: True).
        normalization_factor: ``Z``, aggregated messages are divided by it (default: 1).
    """

    def __init__(self, hidden: int, edge_features: int, attention: bool = True, normalization_factor: float = 1.0):
        super().__init__()
        self.attention = attention
        self.normalization_factor = float(normalization_factor)
        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * hidden + edge_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        if attention:
            self.att_mlp = nn.Sequential(nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, h: Tensor, rows: IndexPlan, cols: IndexPlan, edge_attr: Tensor) -> Tensor:
        """Args: ``h [N, H]``, plans ``rows`` / ``cols`` of ``i`` / ``j``, ``edge_attr [E, k]``.

        Returns:
            ``h [N, H]``.
        """
        pre = _split_first_layer(self.edge_mlp[0], h, rows, cols, edge_attr)  # first layer of phi_e
        if self.attention:  # m_ij * sigmoid(Linear(m_ij)), m_ij = SiLU(Linear(SiLU(pre)))
            m = fused_edge_mlp(pre, self.edge_mlp[2], self.att_mlp[0], "gate")
        else:
            m = fused_edge_mlp(pre, self.edge_mlp[2], None, "plain")
        agg = rows.scatter(m.to(h.dtype))  # sum_j m_ij, in the residual stream's dtype
        if self.normalization_factor != 1.0:
            agg = agg / self.normalization_factor
        return h + self.node_mlp(torch.cat([h, agg], dim=1))


class EquivariantUpdate(nn.Module):
    """Equivariant coordinate update (EGNN Eq. 4, EDM's tanh variant).

    ``x_i <- x_i + sum_j u_ij * tanh(phi_x(h_i, h_j, a_ij)) * coords_range / Z``; without ``tanh``
    the raw ``phi_x`` multiplies ``u_ij``. The last linear layer has no bias and is initialised with
    Xavier-uniform gain 0.001, as in EDM, so an untrained network barely moves the coordinates.

    Args:
        hidden: ``H``.
        edge_features: ``k``.
        tanh: bound the per-edge step (default: True).
        coords_range: the bound (default: 15).
        normalization_factor: ``Z`` (default: 1).
    """

    def __init__(
        self,
        hidden: int,
        edge_features: int,
        tanh: bool = True,
        coords_range: float = 15.0,
        normalization_factor: float = 1.0,
    ):
        super().__init__()
        self.tanh, self.coords_range = tanh, float(coords_range)
        self.normalization_factor = float(normalization_factor)
        last = nn.Linear(hidden, 1, bias=False)
        nn.init.xavier_uniform_(last.weight, gain=0.001)
        self.coord_mlp = nn.Sequential(
            nn.Linear(2 * hidden + edge_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), last
        )

    def forward(self, h: Tensor, x: Tensor, rows: IndexPlan, cols: IndexPlan, u: Tensor, edge_attr: Tensor) -> Tensor:
        """Args: ``h [N, H]``, ``x [N, 3]``, plans ``rows`` / ``cols``, ``u [E, 3]``,
        ``edge_attr [E, k]``.

        Returns:
            updated ``x [N, 3]``.
        """
        pre = _split_first_layer(self.coord_mlp[0], h, rows, cols, edge_attr)
        phi = fused_edge_mlp(pre, self.coord_mlp[2], self.coord_mlp[4], "project")  # phi_x, [E, 1]
        if self.tanh:
            phi = torch.tanh(phi) * self.coords_range
        trans = (u * phi).to(x.dtype)
        agg = rows.scatter(trans)
        if self.normalization_factor != 1.0:
            agg = agg / self.normalization_factor
        return x + agg


class EquivariantBlock(nn.Module):
    """``sublayers`` GCLs followed by one :class:`EquivariantUpdate` (EDM's ``EquivariantBlock``).

    Args:
        hidden: ``H``.
        edge_features: size of the *static* edge features (``d2^(0)`` plus extras); the block adds
            the current ``d2`` in front, so its MLPs see ``edge_features + 1`` inputs.
        sublayers: GCLs per block (EDM QM9: ``inv_sublayers = 1``).
        attention, tanh, coords_range, norm_constant, normalization_factor: see
            :class:`EGNNDenoiser`.
    """

    def __init__(
        self,
        hidden: int,
        edge_features: int,
        sublayers: int = 1,
        attention: bool = True,
        tanh: bool = True,
        coords_range: float = 15.0,
        norm_constant: float = 1.0,
        normalization_factor: float = 1.0,
    ):
        super().__init__()
        self.norm_constant = float(norm_constant)
        k = edge_features + 1
        self.gcls = nn.ModuleList(
            GCL(hidden, k, attention=attention, normalization_factor=normalization_factor) for _ in range(sublayers)
        )
        self.coord_update = EquivariantUpdate(
            hidden, k, tanh=tanh, coords_range=coords_range, normalization_factor=normalization_factor
        )

    def forward(
        self, h: Tensor, x: Tensor, rows: IndexPlan, cols: IndexPlan, static_attr: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Args: ``h [N, H]``, ``x [N, 3]``, plans ``rows`` / ``cols`` of ``i`` / ``j``,
        ``static_attr [E, edge_features]``.

        Returns:
            ``(h [N, H], x [N, 3])``.
        """
        d2, u = edge_geometry(x, rows, cols, self.norm_constant)
        edge_attr = torch.cat([d2, static_attr.to(d2.dtype)], dim=1)
        for gcl in self.gcls:
            h = gcl(h, rows, cols, edge_attr)
        x = self.coord_update(h, x, rows, cols, u, edge_attr)
        return h, x


class EGNNDenoiser(PackedGraphDenoiser):
    """EDM's EGNN as a denoiser for packed graph batches.

    With the defaults and ``in_features = 7`` (5 one-hot + Z + t) this is EDM's QM9 network
    (Hoogeboom et al. 2022, App. B): 9 blocks x 256 features, one GCL per block, attention, tanh
    coordinate updates of range 15, ``norm_constant = 1``, sum aggregation with normalisation
    factor 1, SiLU, fully connected graphs, squared distances (current and at the input) as edge
    features. Parameters, with ``k = 2 + extra_edge_features``::

        F_in H + H + layers * (sublayers * GCL + UPD) + H F_out + F_out
        GCL = [(2H+k) H + H] + [H^2 + H] + [H + 1]  (edge MLP, attention)  + [2H^2 + H] + [H^2 + H]
        UPD = [(2H+k) H + H] + [H^2 + H] + H        (coordinate MLP, last layer without bias)

    i.e. 5,339,920 for ``in = out = 7`` (EDM's 5.34 M: its output keeps the time column) and
    5,339,663 for ``out = 6``.

    Args:
        in_features: ``F``, size of the (already scaled) node features ``h``.
        out_features: size of the feature output.
        hidden: ``H`` (default: 256).
        layers: number of equivariant blocks (default: 9).
        attention: edge gating ``m_ij * sigmoid(Linear(m_ij))`` (default: True).
        tanh: tanh-bounded coordinate updates (default: True).
        coords_range: bound of one edge's coordinate step (default: 15).
        norm_constant: ``C`` in ``(x_i - x_j) / (d_ij + C)`` (default: 1).
        sublayers: GCLs per block (default: 1).
        edges: ``"full"`` (all pairs in a graph), ``"radius"`` (``cutoff``) or ``"knn"`` (``knn``);
            built from the input coordinates once per call, unless ``edge_index`` is passed.
        cutoff: radius for ``edges="radius"``.
        knn: neighbours per node for ``edges="knn"``.
        extra_edge_features: size of user edge features ``edge_attr`` (default: 0).
        normalization_factor: ``Z``, aggregated sums are divided by it (default: 1, EDM QM9).
        pair_layout: how fully connected graphs (``edges="full"``, no ``edge_index`` or
            ``edge_attr`` given) are computed: ``"edges"`` on the edge list (the path described
            above); ``"dense"`` on dense per-size pair grids (:mod:`moldiff.nn.egnn_dense`: same
            function, products in bf16 under bf16 autocast, else in ``pos.dtype``); ``"auto"``
            dense under bf16 autocast on the CPU, the edge list otherwise, so that fp32 runs the
            edge-list arithmetic unchanged; under ``torch.compile`` always the edge list
            (default: ``"auto"``).

    Shapes:
        ``pos [N, 3]``, ``h [N, F]``, ``batch [N]`` (sorted) -> ``eps_x [N, 3]`` (zero mean per
        graph), ``eps_h [N, out_features]``; both in ``pos.dtype``.

    Example:
        >>> net = EGNNDenoiser(in_features=7, out_features=6, hidden=32, layers=2)
        >>> pos, h = torch.randn(5, 3), torch.randn(5, 7)
        >>> batch = torch.tensor([0, 0, 1, 1, 1])
        >>> eps_x, eps_h = net(pos, h, batch, num_graphs=2)
        >>> eps_x.shape, eps_h.shape
        (torch.Size([5, 3]), torch.Size([5, 6]))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 256,
        layers: int = 9,
        attention: bool = True,
        tanh: bool = True,
        coords_range: float = 15.0,
        norm_constant: float = 1.0,
        sublayers: int = 1,
        edges: Literal["full", "radius", "knn"] = "full",
        cutoff: float | None = None,
        knn: int | None = None,
        extra_edge_features: int = 0,
        normalization_factor: float = 1.0,
        pair_layout: Literal["auto", "edges", "dense"] = "auto",
    ):
        super().__init__()
        check_edge_options(edges, cutoff, knn)
        if pair_layout not in ("auto", "edges", "dense"):
            raise ValueError(f"pair_layout must be 'auto', 'edges' or 'dense', got {pair_layout!r}")
        self.pair_layout = pair_layout
        self._layouts = _LayoutCache()
        self.in_features, self.out_features, self.hidden = in_features, out_features, hidden
        self.edges, self.cutoff, self.knn = edges, cutoff, knn
        self.extra_edge_features = extra_edge_features
        self.embedding = nn.Linear(in_features, hidden)
        self.blocks = nn.ModuleList(
            EquivariantBlock(
                hidden,
                edge_features=1 + extra_edge_features,
                sublayers=sublayers,
                attention=attention,
                tanh=tanh,
                coords_range=coords_range,
                norm_constant=norm_constant,
                normalization_factor=normalization_factor,
            )
            for _ in range(layers)
        )
        self.embedding_out = nn.Linear(hidden, out_features)

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
            pos: ``[N, 3]`` (noisy) coordinates.
            h: ``[N, F]`` (noisy, scaled) node features, time included.
            batch: ``[N]`` sorted graph index.
            num_graphs: ``B``.
            edge_index: optional ``[2, E]`` graph (default: :meth:`build_edges`).
            edge_attr: optional ``[E, extra_edge_features]`` edge features (needs ``edge_index``).

        Returns:
            ``(eps_x [N, 3], eps_h [N, out_features])``, ``eps_x`` with zero mean per graph.
        """
        dtype = self._dense_dtype(pos, edge_index, edge_attr)
        if dtype is not None:
            self.check_inputs(pos, h)
            vel, eps_h = dense_egnn_forward(self, pos, h, self._layouts.get(batch, num_graphs), dtype)
            return remove_mean(vel, batch, num_graphs), eps_h

        edge_attr, rows, cols = self.prepare_graph(pos, h, batch, num_graphs, edge_index, edge_attr)

        d2_input, _ = edge_geometry(pos, rows, cols)
        static = d2_input if edge_attr is None else torch.cat([d2_input, edge_attr.to(pos.dtype)], dim=1)
        x = pos
        # the residual stream stays in pos.dtype (fp32 under bf16 autocast)
        hh = self.embedding(h).to(pos.dtype)
        for block in self.blocks:
            hh, x = block(hh, x, rows, cols, static)
        eps_x = remove_mean(x - pos, batch, num_graphs)
        eps_h = self.embedding_out(hh).to(pos.dtype)
        return eps_x, eps_h

    def _dense_dtype(self, pos: Tensor, edge_index: Tensor | None, edge_attr: Tensor | None) -> torch.dtype | None:
        """Compute dtype of the dense pair path for this call, or ``None`` for the edge-list path."""
        if self.pair_layout == "edges" or self.edges != "full" or edge_index is not None or edge_attr is not None:
            return None
        if self.extra_edge_features or torch.compiler.is_compiling():  # torch.compile traces the edge list
            return None
        bf16 = bf16_autocast_dtype(pos.device)
        if self.pair_layout == "dense":
            return bf16 or pos.dtype
        return bf16 if pos.device.type == "cpu" else None


class _LayoutCache:
    """The :class:`~moldiff.nn.egnn_dense.PairLayout` of the last batch vector seen (a sampler calls
    the network with one batch vector at every step). Keyed by the tensor object and its version
    counter; not copied by ``copy.deepcopy`` (the EMA copy starts empty)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._batch: Tensor | None = None
        self._layout: PairLayout | None = None

    def get(self, batch: Tensor, num_graphs: int) -> PairLayout:
        key = (batch._version, int(num_graphs), batch.device, batch.shape)
        if self._batch is not batch or self._key != key:
            self._layout = PairLayout(batch, num_graphs)
            self._batch, self._key = batch, key
        return self._layout

    def __deepcopy__(self, memo) -> "_LayoutCache":
        return _LayoutCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
