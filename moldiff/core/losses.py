"""Denoising objectives, noise-level sampling, and variational-bound terms.

Every weighting is written as a weight ``w(lambda)`` on the per-item eps mean-squared error, with
``lambda = log SNR`` (Kingma & Gao 2023, "Understanding Diffusion Objectives", Eq. 8): the x0-, v-,
min-SNR and EDM losses are the same objective up to this weight, whatever the network predicts.

The joint loss of a :class:`~moldiff.core.joint.JointSpace` (:func:`joint_loss`) is a sum over
blocks of per-item terms: the mean squared error of the clean prediction for continuous blocks and
the mean cross-entropy of the predicted classes for categorical blocks, each with a weight and an
optional time weighting ``w(t)`` (:func:`clipped_snr_weight`, :func:`velocity_weight`,
:func:`masking_elbo_weight`).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch

from moldiff.errors import UnknownNameError

from .categorical import CategoricalSchedule
from .joint import JointSpace, schedule_rates
from .parameterisation import DiffusionDenoiser
from .schedules import NoiseSchedule
from .spaces import StateSpace

Tensor = torch.Tensor

#: Training noise-level distributions of :func:`sample_times`.
NOISE_SAMPLERS = ("uniform", "discrete", "lognormal", "log_snr_uniform")
#: Loss weightings of :func:`loss_weight`.
WEIGHTINGS = ("eps", "x0", "v", "truncated_snr", "min_snr", "edm", "sigmoid")


# ------------------------------------------------------------------------------------------------
# Noise-level sampling
# ------------------------------------------------------------------------------------------------


def sample_times(
    schedule: NoiseSchedule,
    num_items: int,
    kind: str = "uniform",
    *,
    generator: torch.Generator | None = None,
    device=None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    num_steps: int | None = None,
) -> Tensor:
    """Draw one training time per item, ``[B]`` float64.

    Args:
        kind: ``"uniform"`` (``t ~ U[t_min, t_max]``); ``"discrete"`` (``t = k / T`` with ``k``
            uniform over the schedule's table points, EDM's integer timesteps including ``t = 0``);
            ``"lognormal"`` (``ln ve_sigma ~ N(p_mean, p_std^2)``, Karras et al. 2022, Sec. 5);
            ``"log_snr_uniform"`` (log-SNR uniform between its end values).
        num_steps: ``T`` for ``"discrete"`` (default: the schedule's own ``num_steps``).
    """
    u = torch.rand(num_items, generator=generator, device=device, dtype=torch.float64)
    t_min, t_max = schedule.t_min, schedule.t_max
    if kind == "uniform":
        return t_min + (t_max - t_min) * u
    if kind == "discrete":
        steps = num_steps or getattr(schedule, "num_steps", None)
        if steps is None:
            raise ValueError("noise sampler 'discrete' needs num_steps for a continuous schedule")
        k = torch.randint(0, steps + 1, (num_items,), generator=generator, device=device)
        return t_min + (t_max - t_min) * k.double() / steps
    if kind == "lognormal":
        z = torch.randn(num_items, generator=generator, device=device, dtype=torch.float64)
        sigma = torch.exp(p_mean + p_std * z).clamp(schedule.sigma_min, schedule.sigma_max)
        return schedule.t_from_ve_sigma(sigma).clamp(t_min, t_max)
    if kind == "log_snr_uniform":
        hi = float(schedule.log_snr(torch.tensor(t_min, dtype=torch.float64)))
        lo = float(schedule.log_snr(torch.tensor(t_max, dtype=torch.float64)))
        return schedule.t_from_log_snr(lo + (hi - lo) * u).clamp(t_min, t_max)
    raise UnknownNameError(f"unknown noise sampler {kind!r}; choose from {', '.join(map(repr, NOISE_SAMPLERS))}")


# ------------------------------------------------------------------------------------------------
# Weightings (weights on the eps mean-squared error)
# ------------------------------------------------------------------------------------------------


def loss_weight(
    log_snr: Tensor, kind: str = "eps", *, gamma: float = 5.0, sigma_data: float = 0.5, bias: float = 0.0
) -> Tensor:
    """Weight on the eps-MSE that turns it into the named objective.

    Args:
        log_snr: ``[B]`` log-SNR ``lambda`` of each item.
        kind: ``"eps"`` (1; EDM for molecules and DDPM's L_simple), ``"x0"`` (``1/SNR``: x0-MSE),
            ``"v"`` (``1 + 1/SNR``: v-MSE for VP schedules), ``"truncated_snr"`` (``max(1, 1/SNR)``:
            x0-MSE weighted by ``max(SNR, 1)``, Salimans & Ho 2022), ``"min_snr"``
            (``min(SNR, gamma)/SNR``, Hang et al. 2023, Eq. 8), ``"edm"`` (``1 + sigma^2/sd^2``:
            Karras et al. 2022's ``lambda(sigma)`` on the x0-MSE), ``"sigmoid"``
            (``sigmoid(bias - lambda)``, Kingma & Gao 2023).
    """
    snr = torch.exp(log_snr)
    if kind == "eps":
        return torch.ones_like(log_snr)
    if kind == "x0":
        return 1.0 / snr
    if kind == "v":
        return 1.0 + 1.0 / snr
    if kind == "truncated_snr":
        return torch.clamp(1.0 / snr, min=1.0)
    if kind == "min_snr":
        return torch.clamp(snr, max=gamma) / snr
    if kind == "edm":
        return 1.0 + torch.exp(-log_snr) / sigma_data**2
    if kind == "sigmoid":
        return torch.sigmoid(bias - log_snr)
    raise UnknownNameError(f"unknown loss weighting {kind!r}; choose from {', '.join(map(repr, WEIGHTINGS))}")


def denoising_loss(
    denoiser: DiffusionDenoiser,
    x0: Tensor,
    space: StateSpace,
    *,
    generator: torch.Generator | None = None,
    weighting: str = "eps",
    noise_sampler: str = "uniform",
    extra_args: dict | None = None,
    t: Tensor | None = None,
    weighting_kwargs: dict | None = None,
    noise_kwargs: dict | None = None,
    auxiliary: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Per-item denoising loss ``w(lambda_t) * mean ||eps_hat - eps||^2`` (Ho et al. 2020, Eq. 14 with
    the weights of :func:`loss_weight`; the mean runs over each item's entries, as EDM's ``l2`` loss).

    Args:
        denoiser: the model, whose ``predict(x_t, t, space=...)`` returns ``(x0_hat, eps_hat)``.
        x0: clean batch, a point of ``space``.
        space: the batch's state space (noise is drawn there, e.g. zero-CoM for coordinates).
        generator: random generator for times and noise.
        t: optional per-item times ``[B]`` (drawn with ``noise_sampler`` when absent).
        auxiliary: optional ``f(x0_hat, x0, t) -> [B]``, a modality's own per-item loss on the
            denoised estimate, added unweighted (e.g. the local-geometry loss of a protein backbone,
            as FrameDiff's auxiliary losses, Yim et al. 2023, Sec. 4.2).

    Returns:
        ``[B]`` per-item losses (average them for the training loss).
    """
    schedule = denoiser.schedule
    extra_args = extra_args or {}
    if t is None:
        t = sample_times(
            schedule, space.num_items, noise_sampler, generator=generator, device=x0.device, **(noise_kwargs or {})
        )
    eps = space.randn(generator=generator, dtype=x0.dtype)
    alpha = space.per_item(schedule.alpha(t).to(x0.dtype))
    sigma = space.per_item(schedule.sigma(t).to(x0.dtype))
    x_t = alpha * x0 + sigma * eps
    x0_hat, eps_hat = denoiser.predict(x_t, t, space=space, **extra_args)
    mse = space.mean_per_item((eps_hat - eps) ** 2)
    weight = loss_weight(schedule.log_snr(t), weighting, **(weighting_kwargs or {})).to(mse.dtype)
    loss = weight * mse
    return loss if auxiliary is None else loss + auxiliary(x0_hat, x0, t)


# ------------------------------------------------------------------------------------------------
# Variational bound (Kingma et al. 2021, "Variational Diffusion Models"; EDM, Sec. 3.3)
# ------------------------------------------------------------------------------------------------


def vlb_diffusion_term(eps: Tensor, eps_hat: Tensor, log_snr_s: Tensor, log_snr_t: Tensor, space: StateSpace) -> Tensor:
    """One discrete-time diffusion term ``L_t`` for steps ``s < t`` (VDM, Eq. 13/14):
    ``KL(q(z_s|z_t,x) || p(z_s|z_t)) = 1/2 (SNR(s)/SNR(t) - 1) ||eps - eps_hat||^2``, summed over
    the item's entries (nats), ``[B]``."""
    factor = torch.expm1(log_snr_s - log_snr_t).to(eps.dtype)
    return 0.5 * factor * space.sum_per_item((eps - eps_hat) ** 2)


def prior_kl(x0: Tensor, schedule: NoiseSchedule, space: StateSpace) -> Tensor:
    """``KL(q(z_T | x) || p(z_T))`` per item (nats), ``[B]``, for the prior
    ``N(0, prior_variance I)`` of the VE-frame state, restricted to the space (EDM, Eq. 10)."""
    s2 = schedule.sigma_max**2
    v = schedule.prior_variance()
    ratio = s2 / v
    dof = space.dof.to(x0.dtype)
    return 0.5 * (dof * (ratio - 1 - math.log(ratio)) + space.sum_per_item(x0**2) / v)


def gaussian_nll(x: Tensor, mean: Tensor, variance: Tensor | float, space: StateSpace) -> Tensor:
    """``-log N(x; mean, variance I)`` restricted to the space, ``[B]`` (nats). Used for the
    reconstruction term ``-log p(x | z_0)`` of continuous blocks."""
    return -space.log_normal(x, variance, mean)


def diffusion_vlb_estimate(
    denoiser: DiffusionDenoiser,
    x0: Tensor,
    space: StateSpace,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    extra_args: dict | None = None,
) -> Tensor:
    """Unbiased one-sample estimate of ``sum_{k=1..T} L_k`` (the diffusion part of the bound), ``[B]``.

    Draws ``k`` uniformly in ``1..T`` per item and returns ``T * L_k`` for the grid ``t_k = t_min +
    k/T (t_max - t_min)`` of the schedule (VDM, Eq. 15). Add :func:`prior_kl` and a reconstruction
    term for the full negative log-likelihood bound.
    """
    schedule = denoiser.schedule
    k = torch.randint(1, num_steps + 1, (space.num_items,), generator=generator, device=x0.device)
    span = schedule.t_max - schedule.t_min
    t = schedule.t_min + span * k.double() / num_steps
    s = schedule.t_min + span * (k - 1).double() / num_steps
    eps = space.randn(generator=generator, dtype=x0.dtype)
    alpha = space.per_item(schedule.alpha(t).to(x0.dtype))
    sigma = space.per_item(schedule.sigma(t).to(x0.dtype))
    _, eps_hat = denoiser.predict(alpha * x0 + sigma * eps, t, space=space, **(extra_args or {}))
    return num_steps * vlb_diffusion_term(eps, eps_hat, schedule.log_snr(s), schedule.log_snr(t), space)


# ------------------------------------------------------------------------------------------------
# Joint (continuous + categorical) objectives
# ------------------------------------------------------------------------------------------------

TimeWeight = Callable[[Tensor], Tensor]


def clipped_snr_weight(schedule: NoiseSchedule, low: float = 0.05, high: float = 1.5) -> TimeWeight:
    """EQGAT-diff's time weighting (Le et al. 2024, "Navigating the Design Space of Equivariant
    Diffusion-Based Generative Models for De Novo 3D Molecule Generation"): ``w(t) = clip(SNR(t), low,
    high)`` with ``SNR = alpha^2 / sigma^2`` of ``schedule`` (the same weight on every part there).

    Returns:
        ``w(t [B]) -> [B]`` float64.
    """
    return lambda t: torch.exp(schedule.log_snr(torch.as_tensor(t, dtype=torch.float64))).clamp(low, high)


def velocity_weight(schedule: NoiseSchedule, max_weight: float | None = None) -> TimeWeight:
    """``w(t) = (alpha_dot - sigma_dot alpha / sigma)^2``: the clean-prediction MSE times ``w`` is the
    velocity MSE ``|v_hat - v|^2`` of flow matching (Lipman et al. 2023), since
    ``v_hat - v = (alpha_dot - sigma_dot alpha / sigma) (x0_hat - x0)`` for the same ``x_t``
    (``1 / t^2`` for the linear interpolant). ``max_weight`` caps it near ``t = 0``.

    Returns:
        ``w(t [B]) -> [B]`` float64.
    """

    def weight(t: Tensor) -> Tensor:
        a, s, da, ds = schedule_rates(schedule, t)
        w = (da - ds * a / s) ** 2
        return w if max_weight is None else w.clamp(max=max_weight)

    return weight


def masking_elbo_weight(schedule: CategoricalSchedule, max_weight: float | None = None) -> TimeWeight:
    """``w(t) = -alpha'(t) / (1 - alpha(t))`` (``1 / t`` for the linear schedule): with the
    cross-entropy counted on masked variables only (``only_noised=True``), the categorical part
    becomes the continuous-time ELBO of masked diffusion per variable (Shi et al. 2024, MD4;
    Sahoo et al. 2024, MDLM). ``max_weight`` caps it near ``t = 0``.

    Returns:
        ``w(t [B]) -> [B]`` float64.
    """

    def weight(t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        w = -schedule.alpha_derivative(t) / (1 - schedule.alpha(t))
        return w if max_weight is None else w.clamp(max=max_weight)

    return weight


def joint_loss_terms(
    pred: Mapping[str, Tensor],
    clean: Mapping[str, Tensor],
    noisy: Mapping[str, Tensor],
    space: JointSpace,
    *,
    only_noised: bool = True,
) -> dict[str, Tensor]:
    """Unweighted per-item loss of every block, ``{name: [B]}``.

    * continuous block: ``mean ||P x0_hat - x0||^2`` over the item's entries (``P`` the block's
      projection, e.g. zero CoM; the mean as in :func:`denoising_loss`);
    * categorical block: ``mean_v -log softmax(logits_v)[x0_v]`` over the item's variables (nats);
      with ``only_noised`` and the masking prior, unmasked variables count 0 (but still count in
      the mean).

    Args:
        pred: the denoiser's output at ``(noisy, t)``.
        clean: the clean state ``x_0``.
        noisy: the noised state ``x_t`` it was given.
        space: the batch's joint space.
        only_noised: see above (default: True).
    """
    terms = {}
    for name, block in space.blocks.items():
        if name in space.categorical:
            ce = block.cross_entropy(pred[name], clean[name], noisy[name] if only_noised else None)
            terms[name] = block.mean_per_item(ce)
        else:
            x0 = block.project(clean[name])
            terms[name] = block.mean_per_item((block.project(pred[name].to(x0.dtype)) - x0) ** 2)
    return terms


def joint_loss(
    denoiser: Callable,
    clean: Mapping[str, Tensor],
    space: JointSpace,
    *,
    generator: torch.Generator | None = None,
    t: Tensor | None = None,
    weights: Mapping[str, float] | None = None,
    time_weight: TimeWeight | Mapping[str, TimeWeight] | None = None,
    extra_args: dict | None = None,
    self_condition_prob: float = 0.0,
    t_min: float = 0.0,
    t_max: float = 1.0,
    only_noised: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-item training loss of a joint model: noise, predict, and sum the weighted block terms.

    ``loss_b = sum_name weights[name] * w_name(t_b) * term_name_b`` with the terms of
    :func:`joint_loss_terms` (MSE of the clean prediction for continuous blocks, cross-entropy for
    categorical ones, as Campbell et al. 2024 pair a regression loss on structure with a
    cross-entropy on sequence).

    Args:
        denoiser: ``denoiser(state, t, **extra_args) -> {name: x0_hat or logits}`` (the joint
            samplers' contract; ``t`` is ``[B]`` in ``space.dtype``).
        clean: the clean batch ``{name: x0}`` (categorical blocks: class indices ``[M]``).
        space: the batch's :class:`~moldiff.core.joint.JointSpace`.
        generator: random source for times, noise and the self-conditioning coin.
        t: optional per-item times ``[B]`` (default: uniform on ``[t_min, t_max]``).
        weights: ``{name: weight}`` per block (default: 1 each).
        time_weight: one ``w(t) -> [B]`` for every block, or ``{name: w}`` (blocks not named get 1)
            (default: none), e.g. :func:`clipped_snr_weight`.
        extra_args: further keyword arguments of the denoiser (batch vectors, pair index, context).
        self_condition_prob: probability that a batch is trained with self-conditioning (Chen et al.
            2023, "Analog Bits"): the denoiser is first called with ``self_condition=None``, then
            again with its detached output as ``self_condition``; the keyword is passed only when
            this is positive (default: 0).
        only_noised: count only masked variables of masking-prior blocks (default: True).

    Returns:
        ``(loss [B], terms)``: the weighted per-item loss (average it for the training loss) and the
        unweighted per-block terms ``{name: [B]}`` for logging.
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(space.names))
    if isinstance(time_weight, Mapping):
        unknown += sorted(set(time_weight) - set(space.names))
    if unknown:
        raise ValueError(f"loss weights given for unknown blocks {unknown}; blocks are {space.names}")
    if t is None:
        u = torch.rand(space.num_items, generator=generator, device=space.device, dtype=torch.float64)
        t = t_min + (t_max - t_min) * u
    t = torch.as_tensor(t, dtype=torch.float64, device=space.device)
    noisy = space.noise(clean, t, generator)
    kwargs = dict(extra_args or {})
    t_in = t.to(space.dtype)
    if self_condition_prob > 0:
        coin = torch.rand(1, generator=generator, device=generator.device if generator is not None else "cpu")
        previous = None
        if float(coin) < self_condition_prob:
            with torch.no_grad():
                previous = {k: v.detach() for k, v in denoiser(noisy, t_in, **kwargs, self_condition=None).items()}
        kwargs["self_condition"] = previous
    pred = denoiser(noisy, t_in, **kwargs)
    terms = joint_loss_terms(pred, clean, noisy, space, only_noised=only_noised)
    total = None
    for name, term in terms.items():
        w = weights.get(name, 1.0)
        tw = time_weight.get(name) if isinstance(time_weight, Mapping) else time_weight
        if tw is not None:
            w = w * tw(t).to(term.dtype)
        total = w * term if total is None else total + w * term
    return total, terms
