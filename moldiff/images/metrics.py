"""Image-generation metrics: Frechet distance, k-NN precision and recall, classifier accuracy, bits per dim.

The distribution metrics compare *features*: here the penultimate layer of the small classifier
that moldiff trains (:mod:`moldiff.images.classifier`), not Inception-v3. The numbers are therefore
**not** FID, precision or recall as published for CIFAR-10 or ImageNet and must not be called or
compared as such. Report them beside the floor that real data reaches under the same protocol
(real test images against real training images, the same counts), as ``benchmarks/images.py`` does.

* :func:`frechet_distance` — ``d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})``,
  the squared 2-Wasserstein (Frechet) distance between ``N(mu_1, S_1)`` and ``N(mu_2, S_2)``
  (Dowson & Landau 1982, Eq. 3; used on Inception features by Heusel et al. 2017, Eq. 6).
* :func:`precision_recall` — improved precision and recall (Kynkaanniemi et al. 2019, Eq. 1-2).
* :func:`classifier_accuracy` — how often the classifier assigns a sample its conditioning label.
* :func:`image_bits_per_dim` — negative log-likelihood of 8-bit images under the probability-flow
  ODE with uniform dequantisation, in bits per dimension (convention in its docstring).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from moldiff.core.likelihood import bits_per_dim, pf_ode_log_likelihood
from moldiff.core.spaces import EuclideanSpace

Tensor = torch.Tensor

__all__ = [
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "knn_radii",
    "precision_recall",
    "feature_metrics",
    "classifier_accuracy",
    "dequantize",
    "dequantisation_offset",
    "image_bits_per_dim",
]


# ------------------------------------------------------------------------------------------------
# Frechet distance
# ------------------------------------------------------------------------------------------------


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (divisor ``N - 1``) of features ``[N, D]``, float64."""
    f = features.detach().double().reshape(features.shape[0], -1)
    if f.shape[0] < 2:
        raise ValueError("the covariance needs at least 2 feature vectors")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = torch.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Squared Frechet (2-Wasserstein) distance between two Gaussians.

    ``d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})``
    (Dowson & Landau 1982). The matrix ``S_1^{1/2} S_2 S_1^{1/2}`` is symmetric positive
    semi-definite, so its square root comes from a symmetric eigendecomposition in float64 (no
    complex ``sqrtm`` round-off as with ``scipy.linalg.sqrtm(S_1 S_2)``).

    Args:
        mu1, mu2: means ``[D]``.
        cov1, cov2: covariances ``[D, D]``.

    Returns:
        ``d^2`` (a float, >= 0 up to round-off).
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(a).double() for a in (mu1, mu2, cov1, cov2))
    root1 = _sqrtm_psd(cov1)
    middle = root1 @ cov2 @ root1
    vals = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0)
    value = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * vals.sqrt().sum()
    return float(value)


def frechet_distance_from_features(features1: Tensor, features2: Tensor) -> float:
    """:func:`frechet_distance` between the Gaussians fitted to two feature sets ``[N1, D]`` and ``[N2, D]``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# ------------------------------------------------------------------------------------------------
# Precision and recall (Kynkaanniemi et al. 2019)
# ------------------------------------------------------------------------------------------------


def knn_radii(features: Tensor, k: int = 3, chunk: int = 1024) -> Tensor:
    """Distance from each feature vector to its ``k``-th nearest *other* vector of the set, ``[N]``."""
    f = features.detach().float()
    if not 1 <= k < f.shape[0]:
        raise ValueError(f"k must lie in 1..{f.shape[0] - 1} for {f.shape[0]} vectors, got {k}")
    out = []
    for start in range(0, f.shape[0], chunk):
        d = torch.cdist(f[start : start + chunk], f)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the smallest distance is the vector itself (0)
    return torch.cat(out)


def _inside_manifold(queries: Tensor, support: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """``f(q, support)``: whether each query lies in some ball ``B(s, r_s)``, ``[Q]`` bool."""
    q, s = queries.detach().float(), support.detach().float()
    out = []
    for start in range(0, q.shape[0], chunk):
        d = torch.cdist(q[start : start + chunk], s)
        out.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, Eq. 1-2).

    Each set approximates its manifold by the union of balls centred on its points, each with the
    radius to the point's ``k``-th nearest neighbour in the same set:
    ``f(phi, Phi) = 1`` if ``|phi - phi'| <= |phi' - NN_k(phi', Phi)|`` for some ``phi'`` in ``Phi``.
    Then ``precision = mean_{phi_g} f(phi_g, Phi_r)`` (samples that look real) and
    ``recall = mean_{phi_r} f(phi_r, Phi_g)`` (real data the samples cover).

    Args:
        real: real features ``[N_r, D]``.
        fake: generated features ``[N_g, D]``.
        k: neighbourhood size (the paper uses 3).
        chunk: rows per distance block (memory ``chunk * N`` floats).

    Returns:
        ``(precision, recall)`` in ``[0, 1]``.
    """
    precision = _inside_manifold(fake, real, knn_radii(real, k, chunk), chunk).float().mean()
    recall = _inside_manifold(real, fake, knn_radii(fake, k, chunk), chunk).float().mean()
    return float(precision), float(recall)


def feature_metrics(reference: Tensor, generated: Tensor, k: int = 3) -> dict[str, float]:
    """``{"frechet_distance", "precision", "recall"}`` of ``generated`` against ``reference`` features."""
    precision, recall = precision_recall(reference, generated, k)
    return {
        "frechet_distance": frechet_distance_from_features(reference, generated),
        "precision": precision,
        "recall": recall,
    }


@torch.no_grad()
def classifier_accuracy(
    classifier: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, batch_size: int = 500
) -> float:
    """Fraction of ``images`` ``[N, C, H, W]`` (floats in ``[-1, 1]``) that ``classifier`` (logits
    ``[B, K]``) assigns to ``labels`` ``[N]``: for class-conditional samples, how often the sample
    shows the class it was asked for."""
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        logits = classifier(images[start : start + batch_size])
        correct += int((logits.argmax(dim=1).cpu() == labels[start : start + batch_size].cpu()).sum())
    return correct / max(images.shape[0], 1)


# ------------------------------------------------------------------------------------------------
# Bits per dimension
# ------------------------------------------------------------------------------------------------


def dequantisation_offset(bits: int = 8, data_range: float = 2.0) -> float:
    """``bits - log2(data_range)``: the bits per dimension added to the continuous density's NLL when
    ``2^bits`` levels are spread uniformly over an interval of width ``data_range`` (7 for 8-bit
    data on ``[-1, 1)``)."""
    return bits - math.log2(data_range)


def dequantize(images: Tensor, generator: torch.Generator | None = None, bits: int = 8) -> Tensor:
    """Uniform dequantisation of integer images ``u`` in ``{0, ..., 2^bits - 1}``:
    ``y = 2 (u + v) / 2^bits - 1`` with ``v ~ U[0, 1)`` per entry, so ``y`` lies in ``[-1, 1)`` and
    each integer level owns a bin of width ``2 / 2^bits`` (Theis et al. 2016, Sec. 3.1)."""
    v = torch.rand(images.shape, generator=generator, device=images.device, dtype=torch.float64)
    return (2.0 * (images.double() + v) / 2**bits - 1.0).float()


def image_bits_per_dim(
    denoiser: Callable,
    images: Tensor,
    *,
    generator: torch.Generator | None = None,
    bits: int = 8,
    extra_args: dict | None = None,
    dtype: torch.dtype = torch.float32,
    **likelihood_options,
) -> Tensor:
    """Bits per dimension of integer images under a diffusion model's probability-flow ODE.

    Convention (uniform dequantisation; Theis et al. 2016; Song et al. 2021, App. D.2; Kingma et al.
    2021 report the same quantity for VDM): the images ``u`` in ``{0, ..., 255}^D`` are dequantised
    once, ``y = 2 (u + v) / 256 - 1`` with ``v ~ U[0, 1)^D`` (:func:`dequantize`), the continuous
    density ``p(y)`` of ``y`` is taken from :func:`moldiff.core.likelihood.pf_ode_log_likelihood`, and

        ``bpd = -log p(y) / (D ln 2) + 8 - log2(2) = -log p(y) / (D ln 2) + 7``.

    The ``+8`` turns a density on ``[0, 1)^D`` into probabilities of the ``256^D`` unit bins of
    ``[0, 256)^D`` and the ``-log2(2)`` accounts for the width 2 of ``[-1, 1)``: the Jacobian of
    ``u + v -> y`` is ``(2/256)^D``. Since ``log P(u) = log E_v p(u + v) >= E_v log p(u + v)``
    (Jensen), the returned value is, in expectation over ``v`` (and over the Hutchinson probes,
    which the estimate of ``log p`` is unbiased in), an upper bound on the model's discrete NLL in
    bits per dimension. The density is evaluated at the ODE's smallest noise level ``sigma_min``,
    taken as the data (``D = C H W``).

    Args:
        denoiser: the VE-frame denoiser ``D(x, sigma, **extra_args)``.
        images: ``[B, C, H, W]`` integer images (``uint8`` or any integer dtype).
        generator: draws the dequantisation noise, then the trace probes.
        bits: bit depth (default: 8).
        extra_args: conditioning passed to the denoiser (e.g. ``{"labels": y}`` for ``log p(x | y)``).
        dtype: floating dtype of the integration (default: float32).
        likelihood_options: passed to :func:`~moldiff.core.likelihood.pf_ode_log_likelihood`
            (``schedule`` or ``sigma_min``/``sigma_max``, ``num_steps``, ``trace``, ``num_probes``, ...).

    Returns:
        ``[B]`` bits per dimension.
    """
    y = dequantize(images, generator, bits).to(dtype)
    space = EuclideanSpace.like(y)
    log_p = pf_ode_log_likelihood(denoiser, y, space, generator=generator, extra_args=extra_args, **likelihood_options)
    return bits_per_dim(log_p, space) + dequantisation_offset(bits, 2.0)
