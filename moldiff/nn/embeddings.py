"""Embeddings of scalars: noise levels / times, and interatomic distances.

All modules map a tensor of scalars ``[...]`` (or ``[..., 1]``) to features ``[..., dim]`` and
hold no trainable parameters unless stated.

* :class:`SinusoidalEmbedding` — transformer / DDPM time embedding (Vaswani et al. 2017; Ho et al.
  2020): ``[cos(w_k t), sin(w_k t)]`` with ``w_k = max_period^{-k/half}``.
* :class:`GaussianFourierProjection` — random Fourier features of ``log sigma`` (Song et al. 2021,
  score_sde; Karras et al. 2022 use it for VE/EDM).
* :class:`GaussianRBF` — Gaussian radial basis on ``[start, stop]`` (SchNet, Schütt et al. 2017).
* :class:`BesselBasis` — ``sqrt(2/c) sin(n pi r / c) / r`` (DimeNet, Gasteiger et al. 2020, Eq. 7),
  optionally times a smooth :func:`polynomial_cutoff` envelope.
* :class:`DistanceSinusoidEmbedding` — EDM's optional ``sin_embedding`` of squared distances
  (Hoogeboom et al. 2022 code): sines and cosines of ``d`` at geometric frequencies.
* :class:`MaskedScalarEmbedding` (trainable) — a vector of optional scalars (conditioning values,
  any of which may be missing) to one feature vector, with a learned embedding for "missing".
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor

__all__ = [
    "SinusoidalEmbedding",
    "GaussianFourierProjection",
    "GaussianRBF",
    "BesselBasis",
    "DistanceSinusoidEmbedding",
    "MaskedScalarEmbedding",
    "polynomial_cutoff",
    "cosine_cutoff",
]


def _squeeze_last(x: Tensor) -> Tensor:
    return x.squeeze(-1) if x.dim() > 0 and x.shape[-1] == 1 else x


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar (time step or noise level).

    ``emb(t) = [cos(t w_0), ..., cos(t w_{h-1}), sin(t w_0), ..., sin(t w_{h-1})]`` with
    ``w_k = max_period^{-k / h}``, ``h = dim // 2`` (zero-padded when ``dim`` is odd).

    Args:
        dim: output size.
        max_period: longest period (default: 10000).
        scale: factor applied to ``t`` first (e.g. 1000 for ``t in [0, 1]``) (default: 1).

    Shapes:
        ``t [...]`` or ``[..., 1]`` -> ``[..., dim]``.
    """

    def __init__(self, dim: int, max_period: float = 10000.0, scale: float = 1.0):
        super().__init__()
        self.dim, self.max_period, self.scale = dim, max_period, scale
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / max(half, 1))
        self.register_buffer("freqs", freqs.float(), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        t = _squeeze_last(t)
        dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
        args = (t.to(dtype) * self.scale)[..., None] * self.freqs.to(dtype)
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.dim % 2:
            emb = torch.nn.functional.pad(emb, (0, 1))
        return emb


class GaussianFourierProjection(nn.Module):
    """Random Fourier features ``[sin(2 pi W t), cos(2 pi W t)]``, ``W ~ N(0, scale^2)`` fixed.

    Args:
        dim: output size (even).
        scale: standard deviation of the frequencies (default: 16, as in score_sde).
        seed: seed of the frequencies, so a model rebuilt from its config gets the same ones.

    Shapes:
        ``t [...]`` or ``[..., 1]`` -> ``[..., dim]``.
    """

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("W", torch.randn(dim // 2, generator=gen) * scale)

    def forward(self, t: Tensor) -> Tensor:
        t = _squeeze_last(t)
        args = 2 * math.pi * t.float()[..., None] * self.W
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class GaussianRBF(nn.Module):
    """Gaussian radial basis ``exp(-(r - mu_k)^2 / (2 width^2))``, ``mu_k`` evenly spaced.

    Args:
        num_basis: number of Gaussians.
        start: first centre (default: 0).
        stop: last centre (default: 10, in the units of ``r``).
        width: standard deviation; defaults to the spacing of the centres.

    Shapes:
        ``r [...]`` or ``[..., 1]`` -> ``[..., num_basis]``.
    """

    def __init__(self, num_basis: int, start: float = 0.0, stop: float = 10.0, width: float | None = None):
        super().__init__()
        centres = torch.linspace(start, stop, num_basis)
        spacing = (stop - start) / max(num_basis - 1, 1)
        self.width = float(width if width is not None else spacing)
        self.register_buffer("centres", centres, persistent=False)

    def forward(self, r: Tensor) -> Tensor:
        r = _squeeze_last(r)
        return torch.exp(-0.5 * ((r[..., None] - self.centres.to(r.dtype)) / self.width) ** 2)


def polynomial_cutoff(r: Tensor, cutoff: float, p: int = 6) -> Tensor:
    """Smooth envelope of DimeNet (Gasteiger et al. 2020, Eq. 8), 1 at ``r=0``, 0 for ``r>=cutoff``.

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^{p+1} - p(p+1)/2 x^{p+2}``, ``x = r / cutoff``;
    ``p`` continuous derivatives vanish at the cutoff.
    """
    x = (r / cutoff).clamp(0, 1)
    out = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    return out * (r < cutoff).to(r.dtype)


def cosine_cutoff(r: Tensor, cutoff: float) -> Tensor:
    """Cosine envelope ``0.5 (cos(pi r / cutoff) + 1)`` for ``r < cutoff``, else 0 (SchNet)."""
    return 0.5 * (torch.cos(math.pi * r / cutoff) + 1) * (r < cutoff).to(r.dtype)


class BesselBasis(nn.Module):
    """Bessel radial basis ``sqrt(2/c) sin(n pi r / c) / r``, ``n = 1..num_basis`` (DimeNet Eq. 7).

    Args:
        num_basis: number of functions.
        cutoff: ``c``.
        trainable: learn the frequencies ``n pi`` (NequIP) (default: False).
        envelope_p: multiply by :func:`polynomial_cutoff` with this ``p``; ``None`` for no envelope
            (default: 6).

    Shapes:
        ``r [...]`` or ``[..., 1]`` -> ``[..., num_basis]``.
    """

    def __init__(self, num_basis: int, cutoff: float, trainable: bool = False, envelope_p: int | None = 6):
        super().__init__()
        self.cutoff, self.envelope_p = float(cutoff), envelope_p
        freqs = math.pi * torch.arange(1, num_basis + 1, dtype=torch.float32)
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, r: Tensor) -> Tensor:
        r = _squeeze_last(r)
        rr = r[..., None].clamp_min(1e-9)
        out = math.sqrt(2.0 / self.cutoff) * torch.sin(self.freqs.to(r.dtype) * rr / self.cutoff) / rr
        if self.envelope_p is not None:
            out = out * polynomial_cutoff(r, self.cutoff, self.envelope_p)[..., None]
        return out


class DistanceSinusoidEmbedding(nn.Module):
    """EDM's ``sin_embedding`` of squared distances: ``d = sqrt(d2 + 1e-8)``, features
    ``[sin(f_k d), cos(f_k d)]`` with ``f_k = 2 pi div^k / max_res`` for
    ``k = 0 .. floor(log_div(max_res / min_res))``.

    Args:
        max_res: longest resolved length (default: 15).
        min_res: shortest resolved length (default: 15 / 2000).
        div_factor: ratio of consecutive frequencies (default: 4).

    Shapes:
        ``d2 [...]`` or ``[..., 1]`` -> ``[..., dim]``, ``dim = 2 * num_frequencies`` (12 by default).
    """

    def __init__(self, max_res: float = 15.0, min_res: float = 15.0 / 2000.0, div_factor: float = 4.0):
        super().__init__()
        n = int(math.log(max_res / min_res, div_factor)) + 1
        freqs = 2 * math.pi * div_factor ** torch.arange(n, dtype=torch.float64) / max_res
        self.register_buffer("freqs", freqs.float(), persistent=False)
        self.dim = 2 * n

    def forward(self, d2: Tensor) -> Tensor:
        d = torch.sqrt(_squeeze_last(d2) + 1e-8)[..., None]
        emb = d * self.freqs.to(d.dtype)
        return torch.cat([emb.sin(), emb.cos()], dim=-1)


class MaskedScalarEmbedding(nn.Module):
    """``P`` optional scalars per item to ``dim`` features, a learned vector standing in for a missing one.

    ``e = W_out silu(sum_p e_p)`` with ``e_p = w_p c_p + b_p`` when scalar ``p`` is given and
    ``e_p = m_p`` (learned) when it is missing: the "null" condition of classifier-free guidance
    training (Ho & Salimans 2022) per scalar, so any subset of the scalars can be given, and none.

    Args:
        num_scalars: ``P``.
        dim: output features.

    Shapes:
        ``values [B, P]`` (anything where missing, NaN included), ``present [B, P]`` bool -> ``[B, dim]``.
    """

    def __init__(self, num_scalars: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_scalars, dim) / math.sqrt(max(num_scalars, 1)))
        self.bias = nn.Parameter(torch.zeros(num_scalars, dim))
        self.missing = nn.Parameter(torch.randn(num_scalars, dim) / math.sqrt(max(num_scalars, 1)))
        self.out = nn.Linear(dim, dim)

    def forward(self, values: Tensor, present: Tensor) -> Tensor:
        """See the class docstring."""
        present = present.bool()
        values = torch.where(present, values, torch.zeros_like(values)).to(self.weight.dtype)
        given = values[..., None] * self.weight + self.bias  # [B, P, dim]
        e = torch.where(present[..., None], given, self.missing.expand_as(given))
        return self.out(torch.nn.functional.silu(e.sum(dim=-2)))
