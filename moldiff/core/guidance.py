"""Guidance: wrappers that turn a denoiser into a guided denoiser with the same contract.

Each function returns a new ``D'(x, sigma, **extra_args) -> x0_hat`` that any sampler of
:mod:`moldiff.core.samplers` accepts, for packed graphs and dense images alike (all per-item
reductions go through the state space of the batch being sampled).
"""

from __future__ import annotations

from typing import Callable

import torch

from .spaces import StateSpace

Tensor = torch.Tensor


def classifier_free_guidance(
    denoiser: Callable, space: StateSpace, scale: float, cond_args: dict, uncond_args: dict, *, rescale: float = 0.0
) -> Callable:
    """Classifier-free guidance (Ho & Salimans 2022, Eq. 6) on the clean-sample prediction:
    ``D' = D_u + w (D_c - D_u)``; ``w = 1`` is the conditional model, ``w = 0`` the unconditional one.

    With ``rescale = phi > 0`` the guided prediction is rescaled per item to the standard deviation of
    the conditional one and mixed back (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample
    Steps are Flawed", Eq. 15-16): ``D'' = phi D' std(D_c)/std(D') + (1 - phi) D'``.

    Args:
        denoiser: conditional denoiser ``D(x, sigma, **args)``.
        space: the state space of the batch being sampled.
        scale: guidance weight ``w``.
        cond_args, uncond_args: keyword arguments for the conditional and unconditional calls
            (e.g. ``{"context": c}`` and ``{"context": None}`` or a null token).
        rescale: ``phi`` in ``[0, 1]``.
    """

    def guided(x: Tensor, sigma: Tensor, **extra) -> Tensor:
        d_cond = denoiser(x, sigma, **extra, **cond_args)
        if scale == 1.0 and rescale == 0.0:
            return d_cond
        d_uncond = denoiser(x, sigma, **extra, **uncond_args)
        d = d_uncond + scale * (d_cond - d_uncond)
        if rescale > 0:

            def std(v):
                centred = v - space.per_item(space.mean_per_item(v))
                return space.mean_per_item(centred**2).clamp_min(1e-12).sqrt()

            d = rescale * d * space.per_item(std(d_cond) / std(d)) + (1 - rescale) * d
        return d

    return guided


def gradient_guidance(
    denoiser: Callable,
    space: StateSpace,
    log_likelihood: Callable,
    scale: float = 1.0,
    *,
    through_denoiser: bool = True,
    max_step: float | None = None,
) -> Callable:
    """Guidance by the gradient of a differentiable function of the predicted clean sample
    (regressor or classifier guidance; Dhariwal & Nichol 2021, Eq. 14; Chung et al. 2023, DPS, Eq. 16;
    EDM for molecules uses a property regressor this way).

    The score is shifted by ``scale * grad_x log p(y | x0_hat(x))``; in denoiser form
    ``D' = D + scale * sigma^2 * P grad``, with ``P`` the space's projection (so zero centre of mass is
    kept).

    Args:
        denoiser: ``D(x, sigma, **args)``.
        space: the batch's state space.
        log_likelihood: ``f(x0_hat, sigma) -> [B]`` per-item log-likelihood (e.g.
            ``-(regressor(x0_hat) - target)**2 / (2 tau^2)`` or a classifier's log-probability).
        scale: guidance strength.
        through_denoiser: differentiate through the network (true, as DPS) or take the gradient with
            respect to ``x0_hat`` only (cheaper; exact in the small-noise limit).
        max_step: optional trust region: each item's guidance step is shrunk so that its root mean
            square over the item's entries is at most ``max_step * sigma`` (the denoised estimate is
            uncertain by about ``sigma`` anyway); ``None`` leaves the step as it is.
    """

    def guided(x: Tensor, sigma: Tensor, **extra) -> Tensor:
        with torch.enable_grad():
            if through_denoiser:
                x_in = x.detach().requires_grad_(True)
                d = denoiser(x_in, sigma, **extra)
                target = x_in
            else:
                d = denoiser(x, sigma, **extra).detach().requires_grad_(True)
                target = d
            value = log_likelihood(d, sigma).sum()
            (grad,) = torch.autograd.grad(value, target)
        step = scale * space.per_item(sigma**2).to(x.dtype) * space.project(grad)
        if max_step is not None:
            rms = space.mean_per_item(step**2).sqrt()
            bound = max_step * sigma.to(x.dtype).expand_as(rms)
            step = step * space.per_item((bound / rms.clamp_min(1e-30)).clamp(max=1.0))
        return d.detach() + step

    return guided


def inpainting(
    denoiser: Callable,
    space: StateSpace,
    known: Tensor,
    mask: Tensor,
    *,
    generator: torch.Generator | None = None,
    renoise: bool = True,
) -> Callable:
    """Keep given parts of the sample fixed: scaffolds around motifs, image regions (replacement
    method: Song et al. 2021, App. I.2; Lugmayr et al. 2022, RePaint, Eq. 8 without resampling).

    The guided denoiser returns ``known`` on the masked entries and the network's prediction
    elsewhere, so every sampler ends exactly on ``known`` there. With ``renoise``, the masked entries
    of the network *input* are replaced by ``known + sigma z`` (a fresh draw from the space), so the
    network sees a consistently noised motif. For zero centre-of-mass blocks ``known`` is translated
    per graph into the sample's frame first (:meth:`StateSpace.align_known`): a motif keeps its shape
    and orientation, and the whole sample stays at zero centre of mass.

    Args:
        denoiser: ``D(x, sigma, **args)``.
        space: the batch's state space.
        known: a tensor shaped like ``x`` holding the fixed values (anything on unmasked entries).
        mask: boolean, broadcastable to ``x``; true where values are fixed.
        generator: random generator for the re-noising.
        renoise: replace masked input entries by a noised copy of ``known``.
    """
    mask = mask.bool()

    def guided(x: Tensor, sigma: Tensor, **extra) -> Tensor:
        x_in = x
        if renoise:
            k = space.align_known(known.to(x.dtype), mask, x)
            noised = k + space.per_item(sigma).to(x.dtype) * space.randn(generator=generator, dtype=x.dtype)
            x_in = space.project(torch.where(mask, noised, x))
        d = denoiser(x_in, sigma, **extra)
        k = space.align_known(known.to(d.dtype), mask, d)
        return space.project(torch.where(mask, k, d))

    return guided
