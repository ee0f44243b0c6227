"""Guidance: wrappers that turn a denoiser into a guided denoiser with the same contract.

Each function returns a new ``D'(x, sigma, **extra_args) -> x0_hat`` that any sampler of
:mod:`moldiff.core.samplers` accepts, for packed graphs and dense images alike (all per-item
reductions go through the state space of the batch being sampled); :func:`joint_inpainting` wraps a
joint denoiser ``D(state, t, **extra_args) -> {name: prediction}`` of :mod:`moldiff.core.joint` the
same way, for the joint samplers, and so do :func:`joint_classifier_free_guidance` (every block:
continuous blocks on the clean-state prediction, categorical blocks on the log-probabilities) and
:func:`joint_gradient_guidance` (continuous blocks along the gradient of a log-likelihood).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from .joint import JointSpace
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


def below_noise_level(guided: Callable, denoiser: Callable, sigma_max: float | None) -> Callable:
    """``guided`` at noise levels up to ``sigma_max``, the plain ``denoiser`` above (guidance for the
    later part of the trajectory only); ``sigma_max = None``: ``guided`` itself, at every level. The
    level is read from the per-item ``sigma`` on the host: samplers give every item the same one."""
    if sigma_max is None:
        return guided

    def windowed(x: Tensor, sigma: Tensor, **extra_args) -> Tensor:
        return (guided if float(sigma.max()) <= sigma_max else denoiser)(x, sigma, **extra_args)

    return windowed


def _renoised_known(
    space: StateSpace, known: Tensor, mask: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, generator
) -> Tensor:
    """``x`` with its masked entries replaced by ``alpha known + sigma z`` (``z`` a fresh draw from the
    space), ``known`` translated into the frame of ``x`` first (:meth:`StateSpace.align_known`);
    ``alpha``, ``sigma``: broadcastable to ``x`` (per item, :meth:`StateSpace.per_item`)."""
    k = space.align_known(alpha * known.to(x.dtype), mask, x)
    noised = k + sigma * space.randn(generator=generator, dtype=x.dtype)
    return space.project(torch.where(mask, noised, x))


def _replaced_known(space: StateSpace, known: Tensor, mask: Tensor, d: Tensor) -> Tensor:
    """``d`` with its masked entries replaced by ``known`` translated into the frame of ``d``; the
    replacement keeps each graph's centre of mass where it was."""
    k = space.align_known(known.to(d.dtype), mask, d)
    return space.project(torch.where(mask, k, d))


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
            one = torch.ones((), dtype=x.dtype, device=x.device)
            x_in = _renoised_known(space, known, mask, x, one, space.per_item(sigma).to(x.dtype), generator)
        return _replaced_known(space, known, mask, denoiser(x_in, sigma, **extra))

    return guided


#: Logit of the classes other than the known one in :func:`joint_inpainting`'s fixed predictions:
#: ``softmax`` puts exactly all mass on the known class (``exp(-1e4)`` is 0 in every float type).
FIXED_LOGIT_GAP = 1e4


def joint_inpainting(
    denoiser: Callable,
    space: JointSpace,
    known: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    *,
    generator=None,
    renoise: bool = True,
) -> Callable:
    """Keep given parts of a joint state fixed (continuous and categorical blocks): :func:`inpainting`
    for the joint denoisers of :mod:`moldiff.core.joint` (molecules grown around a fragment whose
    coordinates, atom types, charges and bonds are all given).

    The replacement method (Song et al. 2021, App. I.2; Lugmayr et al. 2022, RePaint, Eq. 8 without
    resampling) on every block, with the block's own forward process ``q_t(x_t | x_0)``:

    * the guided denoiser returns, on masked entries, ``known`` for a continuous block (translated
      into the sample's frame, :meth:`StateSpace.align_known`, as :func:`inpainting` does) and, for
      a categorical block, logits that put all mass on the known class (``0`` for it,
      ``-FIXED_LOGIT_GAP`` for the others). Every joint sampler's last step to ``t = 0`` returns the
      clean prediction of continuous blocks and draws every categorical variable from its predicted
      class probabilities, so the sample ends *exactly* on ``known`` (up to one translation per item
      for zero centre-of-mass blocks);
    * with ``renoise``, the masked entries of the network *input* at time ``t`` are replaced by a
      fresh draw from the forward process given the known clean value: ``alpha(t) known + sigma(t) z``
      for a continuous block (``z`` from the block's space; the linear interpolant of flow matching,
      ``(1 - t) known + t z``), and for a categorical block the mixture path
      ``q_t(x_t | x_0 = known) = alpha(t) delta(known) + (1 - alpha(t)) p_0`` (Campbell et al. 2024,
      Sec. 3; Gat et al. 2024): the network sees the fixed part noised as in training, at the time
      it is called at. The sampler's own state on masked entries is never read by the network.

    Args:
        denoiser: ``denoiser(state, t, **extra) -> {name: prediction}`` (the contract of
            :mod:`moldiff.core.joint`).
        space: the batch's :class:`~moldiff.core.joint.JointSpace`.
        known: ``{name: tensor shaped like the block}``: clean values (continuous: native frame;
            categorical: class indices ``[M]`` in ``0..K-1``; anything on unmasked entries); blocks
            without an entry are free.
        masks: ``{name: bool}`` broadcastable to the block (``[N, 1]`` for coordinates ``[N, 3]``,
            ``[M]`` for a categorical block): true where the value is fixed.
        generator: random source of the re-noising (one generator, or one per item).
        renoise: replace masked input entries by a draw from ``q_t(x_t | x_0 = known)``.
    """
    unknown = sorted((set(known) | set(masks)) - set(space.names))
    if unknown or set(known) != set(masks):
        raise ValueError(
            f"known and masks must name the same blocks of {space.names}; got {sorted(known)} and {sorted(masks)}"
        )
    masks = {name: m.bool() for name, m in masks.items()}

    def guided(state: Mapping[str, Tensor], t: Tensor, **extra) -> dict[str, Tensor]:
        x_in = dict(state)
        if renoise:
            for name, value in known.items():
                block, schedule, mask = space.blocks[name], space.schedules[name], masks[name]
                tt = torch.as_tensor(t, dtype=torch.float64, device=space.device)
                if name in space.categorical:
                    noised = block.noise(value, block.per_item(schedule.alpha(tt)), generator)
                    x_in[name] = torch.where(mask, noised, state[name])
                else:
                    x = state[name]
                    alpha = block.per_item(torch.as_tensor(schedule.alpha(tt)).to(x.dtype))
                    sigma = block.per_item(torch.as_tensor(schedule.sigma(tt)).to(x.dtype))
                    x_in[name] = _renoised_known(block, value, mask, x, alpha, sigma, generator)
        pred = dict(denoiser(x_in, t, **extra))
        for name, value in known.items():
            block, mask, d = space.blocks[name], masks[name], pred[name]
            if name in space.categorical:
                hot = torch.nn.functional.one_hot(value.long(), block.num_classes).to(d.dtype)
                pred[name] = torch.where(mask.reshape(-1, 1), (hot - 1.0) * FIXED_LOGIT_GAP, d)
            else:
                pred[name] = _replaced_known(block, value, mask, d)
        return pred

    return guided


# ------------------------------------------------------------------------------------------------
# Joint (continuous + categorical) denoisers
# ------------------------------------------------------------------------------------------------


def guided_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance of a categorical prediction on log-probabilities, renormalised:

    ``log p_w(x_0 | x_t) = w log p_c(x_0 | x_t) + (1 - w) log p_u(x_0 | x_t) - log Z``, i.e.
    ``p_w ∝ p_c^w p_u^(1 - w)``, the geometric interpolation of the two clean-data posteriors (the
    discrete form of Ho & Salimans 2022, Eq. 6, read as ``p_u (p_c / p_u)^w``; the logit mix of
    classifier-free guidance for categorical diffusion, Tang et al. 2022, "Improved Vector Quantized
    Diffusion Models", Sec. 3.2, and of MiDi-style conditional graph models). ``w = 1`` gives
    ``p_c``, ``w = 0`` gives ``p_u``, ``w > 1`` sharpens towards classes the condition favours.

    This guides the *clean-data posterior* that the CTMC / posterior steps of
    :mod:`moldiff.core.categorical` turn into rates. Nisonoff et al. 2024 ("Unlocking Guidance for
    Discrete State-Space Diffusion and Flow Models", Sec. 3, predictor-free guidance) instead tilt the
    *rates*, ``R_w = R_c^w R_u^(1 - w)``; the two agree at ``w = 0`` and ``w = 1`` and differ in between.

    Args:
        cond, uncond: ``[M, K]`` logits (any normalisation) of the conditional and unconditional calls.
        scale: ``w``.

    Returns:
        ``[M, K]`` normalised log-probabilities (at least float32).
    """
    dtype = torch.promote_types(torch.promote_types(cond.dtype, uncond.dtype), torch.float32)
    lc = torch.log_softmax(cond.to(dtype), dim=-1)
    lu = torch.log_softmax(uncond.to(dtype), dim=-1)
    return torch.log_softmax(scale * lc + (1.0 - scale) * lu, dim=-1)


def guided_prediction(
    cond: Mapping[str, Tensor], uncond: Mapping[str, Tensor], scale: float, space: JointSpace
) -> dict[str, Tensor]:
    """The classifier-free guided joint prediction of :func:`joint_classifier_free_guidance`.

    Continuous blocks: ``D_u + w (D_c - D_u)`` on the clean-state prediction (Ho & Salimans 2022,
    Eq. 6, in x0 form). The PF-ODE velocity ``v = alpha_dot D + sigma_dot (x - alpha D) / sigma`` is
    affine in ``D`` with coefficients that do not depend on the condition, so this *is* guidance of
    the velocity, ``v_w = v_u + w (v_c - v_u)`` (for flow matching's linear interpolant
    ``v = (x - D) / t``), and of the score. Categorical blocks: :func:`guided_logits`.
    """
    out = {}
    for name in space.names:
        c, u = cond[name], uncond[name]
        if name in space.categorical:
            out[name] = guided_logits(c, u, scale)
        else:
            out[name] = u + scale * (c - u)
    return out


def joint_classifier_free_guidance(
    denoiser: Callable, space: JointSpace, scale: float, cond_args: dict, uncond_args: dict
) -> Callable:
    """Classifier-free guidance of a joint denoiser, for the joint samplers.

    Returns ``D'(state, t, **extra) -> {block: prediction}`` that calls ``denoiser`` twice per step,
    with ``cond_args`` and with ``uncond_args`` (the same state, time and ``extra``, which holds
    ``self_condition`` when the sampler self-conditions: both calls see the previous *guided*
    prediction), and mixes them by :func:`guided_prediction`: ``D_u + w (D_c - D_u)`` for continuous
    blocks, ``log_softmax(w log p_c + (1 - w) log p_u)`` for categorical ones. ``w = 1`` returns the
    conditional call unchanged (one call), ``w = 0`` the unconditional prediction.

    Args:
        denoiser: the joint denoiser ``D(state, t, **args)``.
        space: the :class:`~moldiff.core.joint.JointSpace` of the batch.
        scale: guidance weight ``w``.
        cond_args, uncond_args: keyword arguments of the conditional and unconditional calls (e.g.
            ``{"condition": c}`` and ``{"condition": None}``).
    """

    def guided(state: dict, t: Tensor, **extra) -> dict[str, Tensor]:
        d_cond = denoiser(state, t, **extra, **cond_args)
        if scale == 1.0:
            return d_cond
        d_uncond = denoiser(state, t, **extra, **uncond_args)
        return guided_prediction(d_cond, d_uncond, scale, space)

    return guided


def joint_gradient_guidance(
    denoiser: Callable,
    space: JointSpace,
    log_likelihood: Callable,
    scale: float = 1.0,
    *,
    blocks: Sequence[str] | None = None,
    through_denoiser: bool = True,
    max_step: float | None = None,
    sigma_max: float | None = None,
) -> Callable:
    """Gradient (regressor / classifier) guidance of the continuous blocks of a joint denoiser.

    The analogue of :func:`gradient_guidance` in a continuous block's native frame
    ``x_t = alpha x_0 + sigma eps``: the score is shifted by ``scale * grad_x log p(y | x0_hat(x_t))``
    (Dhariwal & Nichol 2021, Eq. 14; DPS, Chung et al. 2023, Eq. 16), and by Tweedie's formula
    ``E[x_0 | x_t] = (x_t + sigma^2 score) / alpha`` the clean prediction moves by
    ``scale * (sigma^2 / alpha) * P grad_x`` (``P`` the block's projection: zero centre of mass is
    kept). In the VE frame of the same block (``sigma_VE = sigma / alpha``) this is
    ``scale * sigma_VE^2 * P grad_{x_VE}``, the step of :func:`gradient_guidance`, so its trust region
    and window are in ``sigma_VE`` units too. Categorical blocks are left as predicted.

    Args:
        denoiser: the joint denoiser ``D(state, t, **args)``.
        space: the batch's :class:`~moldiff.core.joint.JointSpace`.
        log_likelihood: ``f(prediction dict, t) -> [B]`` per-item log-likelihood of the clean
            prediction (e.g. ``-(regressor(pred["pos"], softmax(pred["type"])) - y)^2 / (2 tau^2)``).
        scale: guidance strength.
        blocks: the continuous blocks to guide (default: every continuous block).
        through_denoiser: differentiate through the network (true, DPS) or with respect to the
            predicted clean block only (cheaper; exact in the small-noise limit).
        max_step: trust region: each item's step is shrunk so that its root mean square over the
            item's entries is at most ``max_step * sigma_VE`` (``None``: unbounded).
        sigma_max: guide only while every item's ``sigma_VE <= sigma_max`` (the later part of the
            trajectory; ``None``: whenever ``alpha > 0``). At ``alpha = 0`` (the prior end of the
            linear interpolant) the step is undefined and never taken.
    """
    names = list(space.continuous if blocks is None else blocks)
    unknown = [n for n in names if n not in space.continuous]
    if unknown:
        raise ValueError(f"gradient guidance moves continuous blocks; {unknown} are not among {space.continuous}")

    def rates(name: str, t: Tensor) -> tuple[Tensor, Tensor]:
        schedule = space.schedules[name]
        tt = torch.as_tensor(t, dtype=torch.float64)
        return torch.as_tensor(schedule.alpha(tt)).double(), torch.as_tensor(schedule.sigma(tt)).double()

    def guided(state: dict, t: Tensor, **extra) -> dict[str, Tensor]:
        coefficients = {n: rates(n, t) for n in names}
        if any(bool((a <= 0).any()) for a, _ in coefficients.values()) or (
            sigma_max is not None and any(bool((s / a > sigma_max).any()) for a, s in coefficients.values())
        ):
            return denoiser(state, t, **extra)
        with torch.enable_grad():
            if through_denoiser:
                inputs = {n: state[n].detach().requires_grad_(True) for n in names}
                pred = denoiser({**state, **inputs}, t, **extra)
                targets = [inputs[n] for n in names]
            else:
                pred = dict(denoiser(state, t, **extra))
                for n in names:
                    pred[n] = pred[n].detach().requires_grad_(True)
                targets = [pred[n] for n in names]
            value = log_likelihood(pred, t).sum()
            grads = torch.autograd.grad(value, targets, allow_unused=True)
        out = {k: v.detach() for k, v in pred.items()}
        for n, grad in zip(names, grads):
            if grad is None:
                continue
            block = space.blocks[n]
            a, s = coefficients[n]
            sigma_ve = s / a
            # grad in the VE frame: alpha * grad_x through the network, grad_{x0} otherwise
            g_ve = grad * block.per_item(a.to(grad)) if through_denoiser else grad
            step = scale * block.per_item((sigma_ve**2).to(grad)) * block.project(g_ve)
            if max_step is not None:
                rms = block.mean_per_item(step**2).sqrt()
                bound = (max_step * sigma_ve).to(rms).expand_as(rms)
                step = step * block.per_item((bound / rms.clamp_min(1e-30)).clamp(max=1.0))
            out[n] = out[n] + step.to(out[n].dtype)
        return out

    return guided
