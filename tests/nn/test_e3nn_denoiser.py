"""E3nnDenoiser: O(3) equivariance, zero-CoM output, lazy import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

pytest.importorskip("e3nn")

from moldiff.nn import E3nnDenoiser  # noqa: E402
from moldiff.testing import assert_equivariant, assert_zero_com  # noqa: E402

SIZES = [3, 7, 12]


def packed(sizes=SIZES, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.randn(batch.numel(), 3, generator=g, dtype=dtype) * 1.5
    h = torch.randn(batch.numel(), 7, generator=g, dtype=dtype)
    return pos, h, batch, len(sizes)


@pytest.mark.parametrize("edges", [{"edges": "full"}, {"edges": "radius", "cutoff": 3.0}], ids=["full", "radius"])
def test_e3nn_denoiser_is_e3_equivariant(edges):
    torch.manual_seed(0)
    model = E3nnDenoiser(7, 6, irreps_hidden="8x0e + 4x1o + 2x2e", layers=2, **edges).double()
    pos, h, batch, b = packed()
    fn = lambda p, hh, bb, n: model(p, hh, bb, n)  # noqa: E731
    with torch.no_grad():
        # e3nn builds some constants in float32, hence 1e-7 rather than 1e-12
        assert_equivariant(fn, pos, h, batch, b, reflections=True, atol=1e-7, rtol=1e-6, trials=2)
        eps_x, eps_h = fn(pos, h, batch, b)
    assert eps_x.abs().max() > 1e-3 and eps_h.shape == (pos.shape[0], 6)
    assert_zero_com(eps_x, batch, b, atol=1e-12)


def test_e3nn_denoiser_trains_in_fp32():
    torch.manual_seed(0)
    model = E3nnDenoiser(7, 6, irreps_hidden="8x0e + 4x1o", layers=1)
    pos, h, batch, b = packed(dtype=torch.float32)
    eps_x, eps_h = model(pos, h, batch, b)
    (eps_x.pow(2).sum() + eps_h.pow(2).sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_import_moldiff_nn_is_light():
    code = "import sys, moldiff.nn; print('e3nn' in sys.modules, 'torch_geometric' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
