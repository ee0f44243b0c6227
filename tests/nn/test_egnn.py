"""EGNNDenoiser: symmetries, the fast path against a plain per-edge reference, parameter count,
precision modes."""

from __future__ import annotations

import pytest
import torch

from moldiff.nn import EGNNDenoiser
from moldiff.nn.egnn import _edge_mlp_reference, _FusedEdgeMLP
from moldiff.nn.graph import IndexPlan, fully_connected_edges, sequence_edges
from moldiff.testing import assert_equivariant, assert_not_reflection_equivariant, assert_zero_com

SIZES = [3, 7, 12]


def packed(sizes=SIZES, features=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.randn(batch.numel(), 3, generator=g, dtype=dtype) * 1.5
    h = torch.randn(batch.numel(), features, generator=g, dtype=dtype)
    return pos, h, batch, len(sizes)


def make_model(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"hidden": 32, "layers": 3, **kw}
    model = EGNNDenoiser(in_features=7, out_features=6, **kw).to(dtype)
    with torch.no_grad():  # larger coordinate steps than EDM's 0.001-gain init, so they are tested
        for block in model.blocks:
            block.coord_update.coord_mlp[4].weight.normal_(0, 0.1)
    return model


# ---------------------------------------------------------------------------------------------
# a plain reference of one equivariant block: EGNN Eqs. 3-6 with EDM's choices, per edge
# ---------------------------------------------------------------------------------------------
def reference_block(block, h, x, row, col, static):
    diff = x[row] - x[col]
    d2 = (diff**2).sum(1, keepdim=True)
    u = diff / (torch.sqrt(d2 + 1e-8) + block.norm_constant)
    e = torch.cat([d2, static], dim=1)
    for gcl in block.gcls:
        m = gcl.edge_mlp(torch.cat([h[row], h[col], e], dim=1))  # Eq. 3
        if gcl.attention:
            m = m * gcl.att_mlp(m)
        agg = torch.zeros_like(h).index_add_(0, row, m) / gcl.normalization_factor  # Eq. 5
        h = h + gcl.node_mlp(torch.cat([h, agg], dim=1))  # Eq. 6
    upd = block.coord_update
    phi = upd.coord_mlp(torch.cat([h[row], h[col], e], dim=1))
    if upd.tanh:
        phi = torch.tanh(phi) * upd.coords_range
    x = x + torch.zeros_like(x).index_add_(0, row, u * phi) / upd.normalization_factor  # Eq. 4
    return h, x


def reference_model(model, pos, h, batch, num_graphs, edge_index, edge_attr=None):
    row, col = edge_index
    d2 = ((pos[row] - pos[col]) ** 2).sum(1, keepdim=True)
    static = d2 if edge_attr is None else torch.cat([d2, edge_attr], 1)
    hh, x = model.embedding(h), pos
    for block in model.blocks:
        hh, x = reference_block(block, hh, x, row, col, static)
    vel = x - pos
    mean = torch.zeros(num_graphs, 3, dtype=pos.dtype).index_add_(0, batch, vel)
    mean = mean / torch.bincount(batch, minlength=num_graphs)[:, None]
    return vel - mean[batch], model.embedding_out(hh)


@pytest.mark.parametrize("attention,tanh,sublayers", [(True, True, 1), (False, False, 2)])
def test_fast_block_equals_reference(attention, tanh, sublayers):
    """Values and gradients of one block (float64), a shuffled edge list included."""
    model = make_model(attention=attention, tanh=tanh, sublayers=sublayers, normalization_factor=3.0)
    block = model.blocks[0]
    pos, _, batch, b = packed()
    g = torch.Generator().manual_seed(5)
    h = torch.randn(pos.shape[0], 32, generator=g, dtype=torch.float64, requires_grad=True)
    x = pos.clone().requires_grad_(True)
    ei = fully_connected_edges(batch, b)
    static = torch.rand(ei.shape[1], 1, generator=g, dtype=torch.float64)

    rows = IndexPlan(ei[0], pos.shape[0], assume_sorted=True)
    cols = IndexPlan(ei[1], pos.shape[0])
    h_fast, x_fast = block(h, x, rows, cols, static)
    h_ref, x_ref = reference_block(block, h, x, ei[0], ei[1], static)
    assert torch.allclose(h_fast, h_ref, atol=1e-12, rtol=1e-10)
    assert torch.allclose(x_fast, x_ref, atol=1e-12, rtol=1e-10)

    w = torch.randn(h_ref.shape, generator=g, dtype=torch.float64)
    params = [h, x] + list(block.parameters())
    g_fast = torch.autograd.grad((h_fast * w).sum() + x_fast.pow(2).sum(), params)
    g_ref = torch.autograd.grad((h_ref * w).sum() + x_ref.pow(2).sum(), params)
    for a, r in zip(g_fast, g_ref):
        assert torch.allclose(a, r, atol=1e-10, rtol=1e-8)


def test_model_equals_reference_fp32_and_user_edges():
    """Whole model in fp32 against the reference, with a user-supplied *unsorted* edge list."""
    model = make_model(dtype=torch.float32, extra_edge_features=2)
    pos, h, batch, b = packed(dtype=torch.float32)
    ei = torch.cat([fully_connected_edges(batch, b), sequence_edges(batch, (1,))], dim=1)[:, :200]
    g = torch.Generator().manual_seed(1)
    attr = torch.randn(ei.shape[1], 2, generator=g)
    perm = torch.randperm(ei.shape[1], generator=g)
    ex, eh = model(pos, h, batch, b, edge_index=ei[:, perm], edge_attr=attr[perm])
    rx, rh = reference_model(model, pos, h, batch, b, ei, attr)
    assert torch.allclose(ex, rx, atol=1e-5, rtol=1e-4)
    assert torch.allclose(eh, rh, atol=1e-5, rtol=1e-4)


def test_full_nine_layer_model_equals_reference_float64():
    """EDM's QM9 network as the benchmarks time it (9 blocks, attention, tanh range 15, sum
    aggregation, its own fully connected graph), at width 16 in float64: the fast path computes the
    plain per-edge reference's function, values and gradients (inputs and every parameter)."""
    model = make_model(hidden=16, layers=9)
    pos, h, batch, b = packed(sizes=[2, 5, 9, 19])
    pos.requires_grad_(True)
    h.requires_grad_(True)
    ex, eh = model(pos, h, batch, b)
    rx, rh = reference_model(model, pos, h, batch, b, fully_connected_edges(batch, b))
    assert torch.allclose(ex, rx, atol=1e-10, rtol=1e-8)
    assert torch.allclose(eh, rh, atol=1e-10, rtol=1e-8)

    g = torch.Generator().manual_seed(3)
    wx = torch.randn(ex.shape, generator=g, dtype=torch.float64)
    wh = torch.randn(eh.shape, generator=g, dtype=torch.float64)
    params = [pos, h] + list(model.parameters())
    g_fast = torch.autograd.grad((ex * wx).sum() + (eh * wh).sum(), params)
    g_ref = torch.autograd.grad((rx * wx).sum() + (rh * wh).sum(), params)
    for a, r in zip(g_fast, g_ref):
        assert torch.allclose(a, r, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("mode", ["gate", "plain", "project"])
def test_fused_edge_mlp_gradients(mode):
    g = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    args = (t(6, 4), t(4, 4), t(4), t(1, 4), t(1) if mode == "gate" else None)
    f = lambda *a: _FusedEdgeMLP.apply(*a, mode)  # noqa: E731
    assert torch.allclose(f(*args), _edge_mlp_reference(*args, mode))
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


@pytest.mark.parametrize(
    "edges",
    [{"edges": "full"}, {"edges": "radius", "cutoff": 3.0}, {"edges": "knn", "knn": 4}],
    ids=["full", "radius", "knn"],
)
def test_egnn_is_e3_equivariant_and_zero_com(edges):
    model = make_model(**edges)
    pos, h, batch, b = packed()
    fn = lambda p, hh, bb, n: model(p, hh, bb, n)  # noqa: E731
    with torch.no_grad():
        assert_equivariant(fn, pos, h, batch, b, reflections=True, atol=1e-9, rtol=1e-7, trials=2)
        eps_x, eps_h = fn(pos, h, batch, b)
    assert eps_x.abs().max() > 1e-3  # the coordinate output is not trivially zero
    assert eps_h.shape == (pos.shape[0], 6)
    assert_zero_com(eps_x, batch, b, atol=1e-12)
    with pytest.raises(AssertionError, match="reflection"):  # it cannot tell mirror images apart
        assert_not_reflection_equivariant(fn, pos, h, batch, b, atol=1e-9)


def expected_num_parameters(f_in, f_out, hidden, layers, sublayers=1, edge_features=2, attention=True):
    """EDM's EGNN, counted by hand (EDM App. B / egnn_new.py layer shapes)."""
    H, k = hidden, edge_features
    edge_mlp = (2 * H + k) * H + H + H * H + H  # Linear(2H+k, H), Linear(H, H)
    att = H + 1 if attention else 0  # Linear(H, 1)
    node_mlp = 2 * H * H + H + H * H + H  # Linear(2H, H), Linear(H, H)
    coord_mlp = (2 * H + k) * H + H + H * H + H + H  # ..., Linear(H, 1, bias=False)
    return f_in * H + H + layers * (sublayers * (edge_mlp + att + node_mlp) + coord_mlp) + H * f_out + f_out


@pytest.mark.parametrize(
    "f_in,f_out,hidden,layers,kw",
    [(7, 7, 256, 9, {}), (7, 6, 256, 9, {}), (5, 3, 16, 2, {"sublayers": 2, "attention": False})],
)
def test_parameter_count(f_in, f_out, hidden, layers, kw):
    model = EGNNDenoiser(f_in, f_out, hidden=hidden, layers=layers, **kw)
    count = sum(p.numel() for p in model.parameters())
    assert count == expected_num_parameters(f_in, f_out, hidden, layers, **kw)
    if (f_in, f_out, hidden, layers) == (7, 7, 256, 9):
        assert round(count / 1e6, 2) == 5.34  # EDM reports 5.34 M for QM9 (in = out = 7 incl. time)


def test_bf16_autocast_close_to_fp32():
    model = make_model(dtype=torch.float32)
    pos, h, batch, b = packed(dtype=torch.float32)
    ex, eh = model(pos, h, batch, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bx, bh = model(pos, h, batch, b)
        loss = bx.pow(2).sum() + bh.pow(2).sum()
    loss.backward()
    assert bx.dtype == torch.float32 and bh.dtype == torch.float32
    assert (bx - ex).abs().max() < 0.05 * ex.abs().max()
    assert (bh - eh).abs().max() < 0.05 * eh.abs().max()
    assert_zero_com(bx, batch, b, atol=1e-5)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_single_atom_graphs_and_input_errors():
    model = make_model(dtype=torch.float32)
    pos, h, batch, b = packed(sizes=[1, 4, 1], dtype=torch.float32)
    ex, _ = model(pos, h, batch, b)
    assert torch.all(ex[batch != 1] == 0)  # a lone atom has zero CoM velocity
    with pytest.raises(ValueError, match="edge_attr"):
        model(pos, h, batch, b, edge_attr=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="h must be"):
        model(pos, h[:, :3], batch, b)
    with pytest.raises(ValueError, match="cutoff"):
        EGNNDenoiser(7, 6, edges="radius")
