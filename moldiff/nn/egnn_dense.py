"""The EGNN's fast path on fully connected graphs: pairs dense per molecule size, bf16 products.

:class:`~moldiff.nn.egnn.EGNNDenoiser` computes its per-edge MLPs on an edge list (gathers to the
edges, segment sums back). For fully connected graphs of small molecules (QM9: at most 29 atoms)
this module computes the *same function* on a different layout:

* the molecules of a batch are put in order of size (a permutation of the nodes, undone at the
  output), so that the molecules of one size ``n`` form a contiguous block of ``G`` molecules;
* the pairs of a block are the dense ``[G, n, n]`` grid, self-pairs ``i = j`` included, stored
  flat and contiguous for all blocks together (``E' = sum_g n_g^2`` pairs, ``sum n_g`` more than
  the edge list: +5.6 % for a QM9 batch);
* the gather ``h_i + h_j`` becomes a broadcast add per block, the gated sum
  ``sum_j sigmoid(l_ij) m_ij`` one batched matrix product per block (with the self-pair's gate set
  to zero), the sums of the backward pass ``sum_j`` / ``sum_i`` plain reductions of the block;
* everything else (``SiLU``, the ``H x H`` products, the gate) runs once on the flat ``[E', H]``
  buffer for all blocks at once, inside one autograd function per MLP (:class:`_PairMLP`) whose
  backward is written by hand and keeps four ``[E', H]`` tensors (no autograd graph per op).

Self-pairs change nothing: their message is gated by exactly zero (so their value and every
gradient through them is zero), and their coordinate message is multiplied by
``u_ii = 0 / (sqrt(1e-8) + C) = 0``. Coordinates, distances, the ``tanh`` coordinate update, the
zero-CoM projection and the residual stream ``h`` stay in ``pos.dtype`` (fp32); only the inputs of
the matrix products and the ``[E', H]`` pair tensors use the compute dtype: bf16 under bf16
autocast (the products run on the CPU's bf16 units with fp32 accumulation), otherwise
``pos.dtype`` (then the dense path reproduces the edge-list path to rounding; in float64 the tests
check it against the plain per-edge reference, values and gradients).

Edges follow :mod:`moldiff.nn.graph`: ``i`` receives, ``j`` sends.
"""

from __future__ import annotations

from itertools import groupby

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

__all__ = ["PairLayout", "dense_egnn_forward", "bf16_autocast_dtype"]


def bf16_autocast_dtype(device: torch.device) -> torch.dtype | None:
    """``torch.bfloat16`` when bf16 autocast is active for ``device``'s type, else ``None``."""
    kind = device.type
    if kind not in ("cpu", "cuda") or not torch.is_autocast_enabled(kind):
        return None
    return torch.bfloat16 if torch.get_autocast_dtype(kind) == torch.bfloat16 else None


class PairLayout:
    """Molecules of a packed batch grouped by size, and the flat dense pair grid of each group.

    Args:
        batch: ``[N]`` sorted graph index of every node.
        num_graphs: ``B``.

    Attributes:
        perm: ``[N]``, node ``perm[k]`` of the batch is node ``k`` of the layout (molecules in order
            of size, stable; the nodes of a molecule keep their order).
        inverse: ``[N]``, the inverse permutation.
        blocks: ``(n, G, node_start, pair_start)`` per size ``n`` present (``G`` molecules).
        num_pairs: ``E'``, pairs in layout order: block, molecule, receiver ``i``, sender ``j``.
        lengths: ``[N]``, the pairs of each receiver (its molecule's size).
        off_diagonal: ``[E', 1]`` bool, false on the self-pairs ``i = j``.

    The sizes are read on the host once (one sync); sampling reuses a layout across steps.
    """

    def __init__(self, batch: Tensor, num_graphs: int) -> None:
        device = batch.device
        sizes = torch.bincount(batch, minlength=num_graphs)
        sizes_host = sizes.tolist()
        order = torch.argsort(sizes, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(num_graphs, device=device)
        self.perm = torch.argsort(rank[batch], stable=True)
        self.inverse = torch.empty_like(self.perm)
        self.inverse[self.perm] = torch.arange(self.perm.numel(), device=device)
        self.num_nodes = int(batch.numel())
        self.num_graphs = int(num_graphs)
        self.batch = batch.index_select(0, self.perm)  # graph of each layout node (not sorted)
        self.blocks: list[tuple[int, int, int, int]] = []
        lengths, off_diagonal = [], []
        node = pair = 0
        for n, group in groupby(sorted(s for s in sizes_host if s > 0)):
            g = len(list(group))
            self.blocks.append((n, g, node, pair))
            lengths.append(torch.full((g * n,), n, dtype=torch.long, device=device))
            eye = torch.eye(n, dtype=torch.bool, device=device)
            off_diagonal.append((~eye).expand(g, n, n).reshape(-1))
            node += g * n
            pair += g * n * n
        self.num_pairs = pair
        self.lengths = torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.long, device=device)
        self.off_diagonal = (
            torch.cat(off_diagonal) if off_diagonal else torch.zeros(0, dtype=torch.bool, device=device)
        ).unsqueeze(1)
        self._lengths_t: Tensor | None = None

    def geometry(self, x_t: Tensor, norm_constant: float = 1.0) -> tuple[Tensor, Tensor]:
        """``d2 [1, E']`` and ``u [3, E']`` of every pair from coordinates ``x_t [3, N]`` (transposed:
        every op runs along the contiguous pair axis; see :func:`moldiff.nn.egnn.edge_geometry`)."""
        diff = _PairDiff.apply(x_t, self.blocks, self.num_pairs)
        d2 = (diff * diff).sum(0, keepdim=True)
        u = diff / (torch.sqrt(d2 + 1e-8) + norm_constant)
        return d2, u

    def receiver_sum(self, values_t: Tensor) -> Tensor:
        """``[D, E'] -> [D, N]``, the sum over the senders ``j`` of each receiver ``i``."""
        lengths = self.lengths
        if self._lengths_t is None or self._lengths_t.shape[0] != values_t.shape[0]:
            self._lengths_t = lengths.expand(values_t.shape[0], lengths.numel()).contiguous()
        return torch.segment_reduce(values_t, "sum", lengths=self._lengths_t, axis=1)


class _PairDiff(torch.autograd.Function):
    """``x_t [3, N] -> [3, E']``, ``x_i - x_j`` of every pair: one broadcast difference per block;
    backward ``g_i = sum_j g_ij - sum_j g_ji``."""

    @staticmethod
    def forward(ctx, x_t, blocks, num_pairs):  # type: ignore[override]
        x_t = x_t.contiguous()
        d = x_t.shape[0]
        out = x_t.new_empty(d, num_pairs)
        for n, g, n0, e0 in blocks:
            xb = x_t[:, n0 : n0 + g * n].view(d, g, n)
            torch.sub(xb.unsqueeze(3), xb.unsqueeze(2), out=out[:, e0 : e0 + g * n * n].view(d, g, n, n))
        ctx.blocks, ctx.num_nodes = blocks, x_t.shape[1]
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        d = grad.shape[0]
        g_x = grad.new_empty(d, ctx.num_nodes)
        for n, g, n0, e0 in ctx.blocks:
            gb = grad[:, e0 : e0 + g * n * n].view(d, g, n, n)
            torch.sub(gb.sum(3), gb.sum(2), out=g_x[:, n0 : n0 + g * n].view(d, g, n))
        return g_x, None, None


def _wide(t: Tensor) -> Tensor:
    """``t`` in at least fp32 (the small ``[E', 1]`` gate maths)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


# ------------------------------------------------------------------------------------------------
# the per-pair MLP tail: broadcast first layer, SiLU, Linear, SiLU, then a gated sum or a projection
# ------------------------------------------------------------------------------------------------
def _first_layer(hij: Tensor, ea: Tensor, wa: Tensor, blocks, num_pairs: int) -> Tensor:
    """``pre = hi_i + hj_j + ea_ij wa^T`` on the flat pair grid, ``[E', H]``, from
    ``hij = [hi | hj]`` (``[N, 2H]``, the node-level parts of the first layer)."""
    hid = hij.shape[1] // 2
    pre = hij.new_empty(num_pairs, hid)
    for n, g, n0, e0 in blocks:
        a = hij[n0 : n0 + g * n, :hid].unflatten(0, (g, n)).unsqueeze(2)
        b = hij[n0 : n0 + g * n, hid:].unflatten(0, (g, n)).unsqueeze(1)
        torch.add(a, b, out=pre[e0 : e0 + g * n * n].view(g, n, n, hid))
    return pre.addmm_(ea, wa.t())


def _gated_sum(gate: Tensor, m: Tensor, blocks, num_nodes: int) -> Tensor:
    """``out_i = sum_j gate_ij m_ij``, ``[N, H]`` (one batched product per block)."""
    hid = m.shape[1]
    out = m.new_empty(num_nodes, hid)
    for n, g, n0, e0 in blocks:
        e1 = e0 + g * n * n
        torch.bmm(
            gate[e0:e1].view(g * n, 1, n), m[e0:e1].view(g * n, n, hid), out=out[n0 : n0 + g * n].view(g * n, 1, hid)
        )
    return out


def _mkldnn_linear_silu_works() -> bool:
    try:
        x = torch.ones(2, 3, dtype=torch.bfloat16)
        y = torch.ops.mkldnn._linear_pointwise(
            x, torch.ones(4, 3, dtype=torch.bfloat16), torch.zeros(4, dtype=torch.bfloat16), "swish", [], ""
        )
        return tuple(y.shape) == (2, 4) and bool(torch.allclose(y.float(), F.silu(torch.full((2, 4), 3.0)), rtol=1e-2))
    except Exception:  # noqa: BLE001 - no oneDNN, or an older / different signature: use the plain ops
        return False


_FUSED_LINEAR_SILU: bool | None = None


def _linear_silu(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``SiLU(x w^T + b)``: on the CPU in bf16 one oneDNN product with the SiLU fused into it
    (``torch.ops.mkldnn._linear_pointwise``), else ``addmm`` then an in-place SiLU."""
    global _FUSED_LINEAR_SILU
    if x.device.type == "cpu" and x.dtype == torch.bfloat16 and x.shape[0] > 0:
        if _FUSED_LINEAR_SILU is None:
            _FUSED_LINEAR_SILU = _mkldnn_linear_silu_works()
        if _FUSED_LINEAR_SILU:
            return torch.ops.mkldnn._linear_pointwise(x, w, b, "swish", [], "")
    return F.silu(torch.addmm(b, x, w.t()), inplace=True)


def _pair_mlp_inference(hij, ea, wa, w2, b2, w_out, b_out, gate_mask, blocks, num_pairs, mode):
    """Forward of :class:`_PairMLP` without saving anything (in place where possible)."""
    pre = _first_layer(hij, ea, wa, blocks, num_pairs)
    s1 = F.silu(pre, inplace=True)
    m = _linear_silu(s1, w2, b2)
    del pre, s1
    if mode == "gate":
        logit = torch.addmm(b_out, m, w_out.t()) if b_out is not None else m @ w_out.t()
        gate = torch.sigmoid(_wide(logit)).mul_(gate_mask).to(m.dtype)
        return _gated_sum(gate, m, blocks, hij.shape[0])
    phi = m @ w_out.t()
    if b_out is not None:
        phi = phi + b_out
    return phi


class _PairMLP(torch.autograd.Function):
    """EDM's per-edge MLP on the dense pair grid, with a hand-written backward.

    ``pre = hi_i + hj_j + a_ij Wa^T`` (``hij = [hi | hj]``, ``[N, 2H]``), ``m = SiLU(SiLU(pre) W2^T + b2)``,
    then

    * ``"gate"``: ``out_i = sum_j mask_ij sigmoid(m_ij w^T + b) m_ij`` (GCL with attention), ``[N, H]``;
    * ``"plain"``: ``out_i = sum_j mask_ij m_ij`` (GCL without attention), ``[N, H]``;
    * ``"project"``: ``out_ij = m_ij w^T (+ b)`` (``phi_x`` of the coordinate update), ``[E', 1]``.

    All inputs arrive in the compute dtype (weights cast by the caller, so their gradients flow
    back through the casts in fp32). Kept for backward: ``pre``, ``SiLU(pre)``, ``z``, ``m`` and
    the ``[E', 1]`` gate. ``gate_mask`` is the ``[E', 1]`` mask of the off-diagonal pairs (in ``pos.dtype``).
    Second-order gradients are not supported (the edge-list path supports them).
    """

    @staticmethod
    def forward(ctx, hij, ea, wa, w2, b2, w_out, b_out, gate_mask, blocks, num_pairs, mode):  # type: ignore[override]
        pre = _first_layer(hij, ea, wa, blocks, num_pairs)
        s1 = F.silu(pre)
        z = torch.addmm(b2, s1, w2.t())
        m = F.silu(z)
        sig = gate = None
        if mode == "gate":
            logit = torch.addmm(b_out, m, w_out.t()) if b_out is not None else m @ w_out.t()
            sig = torch.sigmoid(_wide(logit))
            gate = (sig * gate_mask).to(m.dtype)
            out = _gated_sum(gate, m, blocks, hij.shape[0])
        elif mode == "plain":
            gate = gate_mask.to(m.dtype)
            out = _gated_sum(gate, m, blocks, hij.shape[0])
        else:
            out = m @ w_out.t()
            if b_out is not None:
                out = out + b_out
        ctx.mode, ctx.blocks, ctx.has_b_out, ctx.num_nodes = mode, blocks, b_out is not None, hij.shape[0]
        ctx.save_for_backward(pre, s1, z, m, ea, wa, w2, w_out, sig, gate, gate_mask)
        return out

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        if torch.is_grad_enabled():
            raise RuntimeError(
                "the EGNN's dense bf16 path has no second-order gradients; call it "
                "outside bf16 autocast (the edge-list path) for double backward"
            )
        pre, s1, z, m, ea, wa, w2, w_out, sig, gate, gate_mask = ctx.saved_tensors
        mode, blocks = ctx.mode, ctx.blocks
        need = ctx.needs_input_grad
        dt = m.dtype
        hid = m.shape[1]
        g_w_out = g_b_out = None
        if mode in ("gate", "plain"):
            g = g_out.to(dt)  # [N, H]
            g_m = torch.empty_like(m)
            if mode == "gate":
                # out_i = sum_j a_ij m_ij, a = mask sigmoid(l), l = m w^T + b
                g_gate = m.new_empty(m.shape[0], 1)
                for n, gg, n0, e0 in blocks:
                    e1 = e0 + gg * n * n
                    torch.bmm(
                        m[e0:e1].view(gg * n, n, hid),
                        g[n0 : n0 + gg * n].view(gg * n, hid, 1),
                        out=g_gate[e0:e1].view(gg * n, n, 1),
                    )
                g_l = (_wide(g_gate) * gate_mask).mul_(sig * (1 - sig))  # [E', 1] fp32
                g_l_c = g_l.to(dt)
                if need[5]:
                    g_w_out = (g_l_c.t() @ m).to(w_out.dtype)
                if need[6] and ctx.has_b_out:
                    g_b_out = g_l.sum(0).to(w_out.dtype)
            # g_m_ij = a_ij g_i (+ g_l_ij w): a broadcast product per block, then one rank-1 update
            for n, gg, n0, e0 in blocks:
                e1 = e0 + gg * n * n
                torch.mul(
                    gate[e0:e1].view(gg, n, n, 1),
                    g[n0 : n0 + gg * n].view(gg, n, 1, hid),
                    out=g_m[e0:e1].view(gg, n, n, hid),
                )
            if mode == "gate":
                g_m.addmm_(g_l_c, w_out)
        else:  # out = m w^T (+ b), [E', 1]
            g = g_out.to(dt)
            if need[5]:
                g_w_out = (g.t() @ m).to(w_out.dtype)
            if need[6] and ctx.has_b_out:
                g_b_out = g_out.sum(0).to(w_out.dtype)
            g_m = g @ w_out  # [E', 1] x [1, H]
        del m
        g_z = torch.ops.aten.silu_backward.grad_input(g_m, z, grad_input=g_m)  # in place
        del z
        g_w2 = (g_z.t() @ s1).to(w2.dtype) if need[3] else None
        g_b2 = g_z.sum(0).to(w2.dtype) if need[4] else None
        del s1
        g_s1 = g_z @ w2
        del g_z, g_m
        g_pre = torch.ops.aten.silu_backward.grad_input(g_s1, pre, grad_input=g_s1)  # in place
        del pre
        g_wa = torch.mm(ea.t(), g_pre).t() if need[2] else None  # [k, E'] x [E', H]: the fast orientation
        g_ea = g_pre @ wa if need[1] else None
        g_hij = None
        if need[0]:  # sums over j (of hi_i) and over i (of hj_j), written into one [N, 2H] gradient
            g_hij = g_pre.new_empty(ctx.num_nodes, 2 * hid)
            for n, gg, n0, e0 in blocks:
                gp = g_pre[e0 : e0 + gg * n * n].view(gg, n, n, hid)
                torch.sum(gp, 2, out=g_hij[n0 : n0 + gg * n, :hid].view(gg, n, hid))
                torch.sum(gp, 1, out=g_hij[n0 : n0 + gg * n, hid:].view(gg, n, hid))
        return g_hij, g_ea, g_wa, g_w2, g_b2, g_w_out, g_b_out, None, None, None, None


def _pair_mlp(hij, ea, wa, w2, b2, w_out, b_out, gate_mask, layout: PairLayout, mode: str) -> Tensor:
    tensors = (hij, ea, wa, w2, b2, w_out, b_out)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _PairMLP.apply(hij, ea, wa, w2, b2, w_out, b_out, gate_mask, layout.blocks, layout.num_pairs, mode)
    if mode == "plain":
        return _gated_sum(
            gate_mask.to(hij.dtype), _plain_messages(hij, ea, wa, w2, b2, layout), layout.blocks, hij.shape[0]
        )
    return _pair_mlp_inference(hij, ea, wa, w2, b2, w_out, b_out, gate_mask, layout.blocks, layout.num_pairs, mode)


def _plain_messages(hij, ea, wa, w2, b2, layout):
    pre = _first_layer(hij, ea, wa, layout.blocks, layout.num_pairs)
    return _linear_silu(F.silu(pre, inplace=True), w2, b2)


# ------------------------------------------------------------------------------------------------
# the network
# ------------------------------------------------------------------------------------------------
def _cast(p: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if p is None else p.to(dtype)


def _node_parts(lin, h_c: Tensor, hid: int, dtype: torch.dtype) -> Tensor:
    """``[h W_i^T + b | h W_j^T]`` (``[N, 2H']``, ``dtype``) of a first layer ``Linear(2H + k, H')``
    with ``W = [W_i, W_j, W_a]``: one product with the stacked ``[W_i; W_j]``, then the bias added
    to the first half (as the edge-list path adds it: after the product's rounding)."""
    w = lin.weight
    hij = F.linear(h_c, torch.cat([w[:, :hid], w[:, hid : 2 * hid]], dim=0).to(dtype))
    hij[:, : w.shape[0]] += lin.bias.to(dtype)
    return hij


def _gcl(gcl, h: Tensor, ea: Tensor, layout: PairLayout, mask: Tensor, dtype: torch.dtype) -> Tensor:
    hid = h.shape[1]
    h_c = h.to(dtype)
    lin, lin2 = gcl.edge_mlp[0], gcl.edge_mlp[2]
    hij = _node_parts(lin, h_c, hid, dtype)
    wa = lin.weight[:, 2 * hid :].to(dtype)
    if gcl.attention:
        att = gcl.att_mlp[0]
        agg = _pair_mlp(
            hij,
            ea,
            wa,
            lin2.weight.to(dtype),
            lin2.bias.to(dtype),
            att.weight.to(dtype),
            _cast(att.bias, dtype),
            mask,
            layout,
            "gate",
        )
    else:
        agg = _pair_mlp(hij, ea, wa, lin2.weight.to(dtype), lin2.bias.to(dtype), None, None, mask, layout, "plain")
    if gcl.normalization_factor != 1.0:
        agg = agg / gcl.normalization_factor
    n0, n2 = gcl.node_mlp[0], gcl.node_mlp[2]
    t = F.silu(F.linear(torch.cat([h_c, agg], dim=1), n0.weight.to(dtype), n0.bias.to(dtype)))
    t = F.linear(t, n2.weight.to(dtype), n2.bias.to(dtype))
    return h + t.to(h.dtype)


def _coord_update(
    upd, h: Tensor, x_t: Tensor, u: Tensor, ea: Tensor, layout: PairLayout, mask: Tensor, dtype: torch.dtype
) -> Tensor:
    """``x_t [3, N] -> x_t + sum_j u_ij tanh(phi_ij) range / Z`` (``u [3, E']``)."""
    hid = h.shape[1]
    lin, lin2, last = upd.coord_mlp[0], upd.coord_mlp[2], upd.coord_mlp[4]
    hij = _node_parts(lin, h.to(dtype), hid, dtype)
    wa = lin.weight[:, 2 * hid :].to(dtype)
    phi = _pair_mlp(
        hij,
        ea,
        wa,
        lin2.weight.to(dtype),
        lin2.bias.to(dtype),
        last.weight.to(dtype),
        _cast(last.bias, dtype),
        mask,
        layout,
        "project",
    ).to(x_t.dtype)  # [E', 1]
    if upd.tanh:
        phi = torch.tanh(phi) * upd.coords_range
    agg = layout.receiver_sum(u * phi.view(1, -1))  # self-pairs: u_ii = 0
    if upd.normalization_factor != 1.0:
        agg = agg / upd.normalization_factor
    return x_t + agg


def dense_egnn_forward(model, pos: Tensor, h: Tensor, layout: PairLayout, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """:meth:`EGNNDenoiser.forward <moldiff.nn.egnn.EGNNDenoiser.forward>` on the dense pair layout.

    Args:
        model: an :class:`~moldiff.nn.egnn.EGNNDenoiser` without extra edge features.
        pos: ``[N, 3]`` coordinates (batch order).
        h: ``[N, F]`` node features (batch order).
        layout: the batch's :class:`PairLayout`.
        dtype: compute dtype of the products and pair tensors (``torch.bfloat16`` or ``pos.dtype``).

    Returns:
        ``(x_out - pos [N, 3], h_out [N, out_features])`` in batch order and ``pos.dtype``; the
        caller removes the mean of the first.
    """
    with torch.autocast(pos.device.type, enabled=False):
        p_t = pos.index_select(0, layout.perm).t().contiguous()  # [3, N], coordinates transposed
        hp = h.index_select(0, layout.perm)
        mask = layout.off_diagonal.to(pos.dtype)
        d2_input, _ = layout.geometry(p_t)
        x_t = p_t
        emb = model.embedding
        hh = F.linear(hp.to(dtype), emb.weight.to(dtype), emb.bias.to(dtype)).to(pos.dtype)
        for block in model.blocks:
            d2, u = layout.geometry(x_t, block.norm_constant)
            ea = torch.cat([d2, d2_input], dim=0).t().to(dtype)  # [E', 2]
            for gcl in block.gcls:
                hh = _gcl(gcl, hh, ea, layout, mask, dtype)
            x_t = _coord_update(block.coord_update, hh, x_t, u, ea, layout, mask, dtype)
        out = model.embedding_out
        eps_h = F.linear(hh.to(dtype), out.weight.to(dtype), out.bias.to(dtype)).to(pos.dtype)
        vel = (x_t - p_t).t()
        return vel.index_select(0, layout.inverse), eps_h.index_select(0, layout.inverse)
