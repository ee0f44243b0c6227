"""The equivariance checker itself: it passes on equivariant functions and fails, with a message
naming the property, on functions that break one symmetry."""

from __future__ import annotations

import pytest
import torch

from moldiff.testing import (
    assert_equivariant,
    assert_not_reflection_equivariant,
    assert_zero_com,
    random_permutation_within_graphs,
    random_rotation,
)

SIZES = [3, 7, 12]


def packed(sizes=SIZES, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.randn(batch.numel(), 3, generator=g, dtype=torch.float64)
    h = torch.randn(batch.numel(), 4, generator=g, dtype=torch.float64)
    return pos, h, batch, len(sizes)


def centred(pos, batch, n):
    mean = torch.zeros(n, 3, dtype=pos.dtype).index_add_(0, batch, pos)
    return pos - (mean / torch.bincount(batch, minlength=n)[:, None])[batch]


def toy_equivariant(pos, h, batch, n):
    """eps = sum_j (x_i - x_j) w(|x_i - x_j|, h_j) within graphs, features = invariant sums."""
    same = batch[:, None] == batch[None, :]
    diff = pos[:, None, :] - pos[None, :, :]
    d = diff.norm(dim=-1)
    w = torch.tanh(d + h[None, :, 0]) * same
    eps = centred((diff * w[..., None]).sum(1), batch, n)
    feats = torch.stack([(w * d).sum(1), h[:, 1] * (torch.exp(-d) * same).sum(1)], dim=1)
    return eps, feats


def chiral(pos, h, batch, n):
    """Invariant to rotations, translations and permutations, but flips sign under reflections:
    S = A . (B x C) with A, B, C = sum_i r_i^p (x_i - c), p = 1, 2, 3."""
    v = centred(pos, batch, n)
    r = v.norm(dim=1, keepdim=True)
    sums = [torch.zeros(n, 3, dtype=pos.dtype).index_add_(0, batch, v * r**p) for p in (1, 2, 3)]
    s = (sums[0] * torch.linalg.cross(sums[1], sums[2])).sum(1)
    return v * s[batch, None], s[batch, None]


def test_random_rotation_properties():
    g = torch.Generator().manual_seed(0)
    for reflection in (False, True):
        q = random_rotation(g, reflection=reflection)
        assert torch.allclose(q @ q.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert torch.isclose(torch.linalg.det(q), torch.tensor(-1.0 if reflection else 1.0, dtype=torch.float64))
    assert random_rotation(g, dtype=torch.float32).dtype == torch.float32


def test_permutation_stays_within_graphs():
    _, _, batch, _ = packed()
    perm = random_permutation_within_graphs(batch, torch.Generator().manual_seed(0))
    assert torch.equal(batch[perm], batch)
    assert sorted(perm.tolist()) == list(range(batch.numel()))
    assert not torch.equal(perm, torch.arange(batch.numel()))


def test_passes_on_equivariant_function():
    pos, h, batch, n = packed()
    assert_equivariant(toy_equivariant, pos, h, batch, n, reflections=True, atol=1e-10, rtol=1e-10)
    assert_zero_com(toy_equivariant(pos, h, batch, n)[0], batch, n)


def test_fails_on_rotation_breaking_function():
    pos, h, batch, n = packed()

    def broken(p, hh, b, nn):
        eps, f = toy_equivariant(p, hh, b, nn)
        return eps + centred(p[:, :1].expand(-1, 3), b, nn), f  # adds pos[:, 0]

    with pytest.raises(
        AssertionError, match=r"(?s)rotation \(SE\(3\)\) check failed.*coordinate output: max abs error"
    ):
        assert_equivariant(broken, pos, h, batch, n)


def test_fails_on_non_invariant_features():
    pos, h, batch, n = packed()

    def broken(p, hh, b, nn):
        eps, f = toy_equivariant(p, hh, b, nn)
        return eps, f + p[:, 2:3]

    with pytest.raises(AssertionError, match="(?s)rotation.*feature output"):
        assert_equivariant(broken, pos, h, batch, n, translation=False, permutation=False)


def test_translation_modes():
    pos, h, batch, n = packed()
    x0_prediction = lambda p, hh, b, nn: (p + toy_equivariant(p, hh, b, nn)[0], None)  # noqa: E731
    with pytest.raises(AssertionError, match=r"translation \(invariant\)"):
        assert_equivariant(x0_prediction, pos, h, batch, n)
    assert_equivariant(x0_prediction, pos, h, batch, n, translation="equivariant", atol=1e-10)


def test_fails_on_permutation_breaking_function():
    pos, h, batch, n = packed()

    def broken(p, hh, b, nn):
        eps, f = toy_equivariant(p, hh, b, nn)
        return eps, f + torch.arange(p.shape[0], dtype=p.dtype)[:, None]  # depends on node order

    with pytest.raises(AssertionError, match="permutation check failed"):
        assert_equivariant(broken, pos, h, batch, n)


def test_reflection_checks():
    pos, h, batch, n = packed(sizes=[5, 7, 12])
    assert_equivariant(chiral, pos, h, batch, n, atol=1e-9, rtol=1e-9)  # SE(3): fine
    with pytest.raises(AssertionError, match="reflection"):
        assert_equivariant(chiral, pos, h, batch, n, reflections=True, atol=1e-9, rtol=1e-9)
    assert_not_reflection_equivariant(chiral, pos, h, batch, n, atol=1e-9, rtol=1e-9)
    with pytest.raises(AssertionError, match="mirror image"):
        assert_not_reflection_equivariant(toy_equivariant, pos, h, batch, n, atol=1e-9, rtol=1e-9)


def test_assert_zero_com_fails():
    pos, _, batch, n = packed()
    with pytest.raises(AssertionError, match="zero centre of mass violated: graph"):
        assert_zero_com(pos + 1.0, batch, n)
