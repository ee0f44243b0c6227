"""Samplers: pure functions with one signature.

Every sampler is ``sample_x(denoiser, x, sigmas, space, *, generator=None, callback=None,
extra_args=None, **options) -> x0`` where

* ``denoiser(x, sigma, **extra_args) -> x0_hat`` is the VE-frame denoiser of
  :mod:`moldiff.core.parameterisation` (``sigma`` is a per-item ``[B]`` tensor);
* ``x`` is the initial state at noise level ``sigmas[0]`` (see :func:`initial_noise`);
* ``sigmas`` is a decreasing 1-D tensor of VE noise levels (float64), usually ending in ``0``
  (:func:`moldiff.core.schedules.sampling_sigmas`); any grid works;
* ``space`` is the batch's state space: all noise comes from ``space.randn(generator)`` and every
  denoiser output is projected with ``space.project``, so zero centre of mass holds after every
  step and packed graphs of different sizes just work;
* ``callback(info)`` is called after each step with ``{"i", "x", "sigma", "sigma_next", "denoised"}``.

No sampler keeps state between calls. The ODE the deterministic samplers solve is the probability
flow ODE in Karras et al. (2022) form, ``dx/dsigma = (x - D(x, sigma)) / sigma`` (Eq. 4 with
``s(t) = 1``, ``sigma(t) = t``).

**Joint samplers** (``sample_joint_*``, registered in :data:`JOINT_SAMPLERS` and found by
:func:`get_sampler` too) advance the state of a :class:`~moldiff.core.joint.JointSpace`, continuous
and categorical blocks together, with the same shape of signature
``sample_joint_x(denoiser, state, times, space, *, generator=None, callback=None, extra_args=None,
**options) -> state`` where

* ``denoiser(state, t, **extra_args) -> {name: prediction}`` returns per block the clean-data
  prediction (``x0_hat`` for continuous blocks in their native frame, logits ``[M, K]`` for
  categorical blocks), ``t`` a per-item ``[B]`` tensor;
* ``state`` is the dict of block tensors at ``times[0]`` (see :meth:`JointSpace.prior`);
* ``times`` is a non-increasing clock in ``[0, 1]`` (float64, :func:`~moldiff.core.joint.joint_times`),
  usually from 1 to 0;
* every step is delegated to the blocks by :meth:`JointSpace.step` (all noise drawn through the
  space from ``generator``), so zero centre of mass holds after every step;
* ``callback(info)`` gets ``{"i", "x", "t", "t_next", "denoised"}`` after each step (``x`` and
  ``denoised`` are dicts);
* ``self_condition=True`` passes the previous prediction (``None`` at the first call) to the
  denoiser as the keyword ``self_condition`` (self-conditioning, Chen et al. 2023, "Analog Bits").
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from moldiff.errors import UnknownNameError

from .joint import JointSpace
from .schedules import NoiseSchedule
from .spaces import StateSpace

Tensor = torch.Tensor
Denoiser = Callable[..., Tensor]


def initial_noise(
    space: StateSpace,
    sigma_max: float,
    *,
    generator: torch.Generator | None = None,
    schedule: NoiseSchedule | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw the starting state ``x ~ N(0, v I)`` in the space.

    ``v = sigma_max^2`` for VE-type schedules; for a variance-preserving schedule the VE-frame prior
    is ``x_T / alpha_T`` with ``x_T ~ N(0, I)``, i.e. ``v = 1 + sigma_max^2``.
    """
    var = sigma_max**2
    if schedule is not None and schedule.variance_preserving:
        var += 1.0
    return space.randn(generator=generator, dtype=dtype) * math.sqrt(var)


def _denoise(denoiser: Denoiser, x: Tensor, sigma: float, space: StateSpace, extra_args: dict | None) -> Tensor:
    s = space.full(sigma, dtype=x.dtype)
    return space.project(denoiser(x, s, **(extra_args or {})))


def _report(callback, i, x, sigma, sigma_next, denoised):
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})


def _levels(sigmas: Tensor) -> list[float]:
    levels = [float(s) for s in sigmas]
    if any(b > a for a, b in zip(levels, levels[1:])) or levels[-1] < 0:
        raise ValueError("sigmas must be a non-increasing sequence of non-negative noise levels")
    return levels


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    space: StateSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song et al. 2021, Eq. 12) in the VE frame.

    From level ``s`` to ``s'``: ``x' = x0 + sqrt(s'^2 - c^2) eps_hat + c z`` with
    ``c = eta * s' sqrt(s^2 - s'^2) / s``. ``eta = 0`` is deterministic (the exact solution of the
    PF-ODE for a constant ``x0_hat``); ``eta = 1`` is DDPM's ancestral step with the posterior
    variance ``beta_tilde`` (Ho et al. 2020, Eq. 6-7).
    """
    levels = _levels(sigmas)
    x = space.project(x)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _denoise(denoiser, x, s, space, extra_args)
        if s_next == 0:
            x = denoised
        else:
            eps = (x - denoised) / s
            c = eta * s_next * math.sqrt(max(s * s - s_next * s_next, 0.0)) / s
            x = denoised + math.sqrt(max(s_next * s_next - c * c, 0.0)) * eps
            if c > 0:
                x = x + c * space.randn(generator=generator, dtype=x.dtype)
        _report(callback, i, x, s, s_next, denoised)
    return x


def sample_ddpm(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, space: StateSpace, *, generator=None, callback=None, extra_args=None
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2; EDM's sampler for molecules): each step
    samples the Gaussian posterior ``q(x_s | x_t, x0 = D(x_t))``. Identical to DDIM with ``eta = 1``."""
    return sample_ddim(
        denoiser, x, sigmas, space, generator=generator, callback=callback, extra_args=extra_args, eta=1.0
    )


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, space: StateSpace, *, generator=None, callback=None, extra_args=None
) -> Tensor:
    """Euler's method on the PF-ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` (first order)."""
    levels = _levels(sigmas)
    x = space.project(x)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _denoise(denoiser, x, s, space, extra_args)
        x = x + (s_next - s) * (x - denoised) / s
        _report(callback, i, x, s, s_next, denoised)
    return x


def _heun_step(denoiser, x, s, s_next, gamma, space, generator, s_noise, extra_args) -> tuple[Tensor, Tensor]:
    """One step of Karras et al.'s Alg. 2 from ``s`` to ``s_next`` with churn ``gamma``:
    ``(x_next, denoised at s_hat)``."""
    s_hat = s * (1.0 + gamma)
    if gamma > 0:
        x = x + s_noise * math.sqrt(s_hat**2 - s**2) * space.randn(generator=generator, dtype=x.dtype)
    denoised = _denoise(denoiser, x, s_hat, space, extra_args)
    d = (x - denoised) / s_hat
    dt = s_next - s_hat
    if s_next == 0:
        return x + d * dt, denoised
    x_euler = x + d * dt
    d_next = (x_euler - _denoise(denoiser, x_euler, s_next, space, extra_args)) / s_next
    return x + 0.5 * (d + d_next) * dt, denoised


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    space: StateSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Tensor:
    """Heun's second-order method with optional churn (Karras et al. 2022, Alg. 2).

    With ``s_churn > 0`` each step inside ``[s_tmin, s_tmax]`` first raises the noise level to
    ``s_hat = s (1 + gamma)``, ``gamma = min(s_churn / n, sqrt(2) - 1)``, adding fresh noise drawn in
    the space. The final step to ``sigma = 0`` is an Euler step.
    """
    levels = _levels(sigmas)
    n = len(levels) - 1
    x = space.project(x)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        gamma = min(s_churn / n, math.sqrt(2.0) - 1.0) if s_tmin <= s <= s_tmax else 0.0
        x, denoised = _heun_step(denoiser, x, s, s_next, gamma, space, generator, s_noise, extra_args)
        _report(callback, i, x, s, s_next, denoised)
    return x


def _group_generators(generator, num_groups: int, particles: int) -> list:
    """The generator each particle group resamples with: its first particle's when there is one per
    item (so a group's draws do not depend on the other groups), else the one shared generator."""
    if generator is not None and not isinstance(generator, torch.Generator):
        return [generator[g * particles] for g in range(num_groups)]
    return [generator] * num_groups


def resample_particles(log_weights: Tensor, particles: int, generators: list) -> Tensor:
    """Multinomial resampling inside consecutive groups of ``particles`` items: ``[B]`` long, the
    item each slot copies (always one of its own group), drawn with probabilities
    ``softmax(log_weights)`` of the group; ``generators``: one per group (or ``None`` entries)."""
    groups = log_weights.reshape(-1, particles)
    probs = torch.softmax(groups.double(), dim=1)
    picks = [torch.multinomial(p, particles, replacement=True, generator=g) for p, g in zip(probs, generators)]
    offset = torch.arange(groups.shape[0], device=log_weights.device)[:, None] * particles
    return (torch.stack(picks).to(log_weights.device) + offset).reshape(-1)


def best_particles(scores: Tensor, particles: int) -> Tensor:
    """``[B / particles]`` long: the item of highest score in each consecutive group of ``particles``."""
    groups = scores.reshape(-1, particles)
    offset = torch.arange(groups.shape[0], device=scores.device) * particles
    return groups.argmax(dim=1) + offset


@torch.no_grad()
def sample_heun_steered(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    space: StateSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    log_potential: Callable[[Tensor], Tensor] | None = None,
    particles: int = 1,
    resample_every: int = 5,
    resample_sigma_min: float = 0.05,
    s_churn: float = 10.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Heun steps with churn, steered by particle resampling: Feynman-Kac steering (Singhal et al.
    2025, "A General Framework for Inference-Time Scaling and Steering of Diffusion Models",
    Alg. 1 with the difference potential).

    The batch's items are consecutive groups of ``particles`` draws of one request. Every
    ``resample_every`` steps whose next level is at least ``resample_sigma_min``, each particle gets
    the log weight ``G_k - G_j`` with ``G = log_potential(denoised) [B]`` now and at the group's last
    resampling (``G_j = 0`` at the first), and every group is resampled multinomially by
    :func:`resample_particles` (``space.take_items`` copies the chosen particles). The potential is
    never differentiated: the network's local structure is left as it made it, the potential only
    chooses among its draws; churn (``s_churn``, as :func:`sample_heun`) separates the copies again.
    Returns every particle's final state (choose with :func:`best_particles`). With ``particles = 1``
    or no potential this is :func:`sample_heun` with churn.
    """
    levels = _levels(sigmas)
    n = len(levels) - 1
    if particles < 1 or space.num_items % particles:
        raise ValueError(f"{space.num_items} items do not form groups of particles={particles}")
    if resample_every < 1:
        raise ValueError(f"resample_every must be at least 1, got {resample_every}")
    steer = log_potential is not None and particles > 1
    generators = _group_generators(generator, space.num_items // particles, particles) if steer else None
    last = None
    x = space.project(x)
    gamma = min(s_churn / n, math.sqrt(2.0) - 1.0) if n else 0.0
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        x, denoised = _heun_step(denoiser, x, s, s_next, gamma, space, generator, s_noise, extra_args)
        if steer and (i + 1) % resample_every == 0 and s_next >= resample_sigma_min:
            potential = log_potential(denoised).detach()
            index = resample_particles(potential if last is None else potential - last, particles, generators)
            x, last = space.take_items(x, index), potential[index]
        _report(callback, i, x, s, s_next, denoised)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, space: StateSpace, *, generator=None, callback=None, extra_args=None
) -> Tensor:
    """DPM-Solver++(2M), the multistep second-order data-prediction solver (Lu et al. 2022,
    "DPM-Solver++", Alg. 2) in the VE frame, where ``lambda = -log sigma`` and ``alpha = 1``:
    ``x' = (s'/s) x - expm1(-h) D_eff`` with ``D_eff = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}``, ``r = h_{i-1}/h_i``.
    The first step, and a final step to ``sigma = 0``, are first order."""
    levels = _levels(sigmas)
    x = space.project(x)
    previous = None
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _denoise(denoiser, x, s, space, extra_args)
        if s_next == 0:
            x = denoised
        else:
            h = math.log(s) - math.log(s_next)
            if previous is None:
                d_eff = denoised
            else:
                h_last = math.log(levels[i - 1]) - math.log(s)
                r = h_last / h
                d_eff = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
            x = (s_next / s) * x - math.expm1(-h) * d_eff
        previous = denoised
        _report(callback, i, x, s, s_next, denoised)
    return x


@torch.no_grad()
def sample_euler_maruyama(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, space: StateSpace, *, generator=None, callback=None, extra_args=None
) -> Tensor:
    """Euler-Maruyama on the reverse-time SDE (Song et al. 2021, Eq. 6) of the VE-frame process
    ``dx = sqrt(d sigma^2/dt) dw``: from ``s`` to ``s'``,
    ``x' = x + (s^2 - s'^2) score + sqrt(s^2 - s'^2) z`` with ``score = (D(x, s) - x) / s^2``.
    A final step to ``sigma = 0`` returns the denoised state."""
    levels = _levels(sigmas)
    x = space.project(x)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _denoise(denoiser, x, s, space, extra_args)
        if s_next == 0:
            x = denoised
        else:
            dvar = s * s - s_next * s_next
            x = x + dvar * (denoised - x) / (s * s) + math.sqrt(dvar) * space.randn(generator=generator, dtype=x.dtype)
        _report(callback, i, x, s, s_next, denoised)
    return x


@torch.no_grad()
def langevin_correct(
    denoiser: Denoiser,
    x: Tensor,
    sigma: float,
    space: StateSpace,
    *,
    generator=None,
    extra_args=None,
    snr: float = 0.16,
    steps: int = 1,
) -> Tensor:
    """Annealed Langevin corrector at a fixed noise level (Song et al. 2021, Alg. 4/5):
    ``x <- x + step score + sqrt(2 step) z`` with ``step = 2 (snr sigma)^2``.

    The paper sets ``step = 2 (snr |z| / |score|)^2`` from the drawn noise and the score norm,
    averaged over the batch in its reference code. We use that ratio's value for noised data,
    ``|z| / |score| ~ sigma`` (``|score| ~ sqrt(dof) / sigma``), which keeps the items independent:
    per-item norms of low-dimensional items make the step heavy-tailed and inflate the variance,
    and batch-averaged norms couple the items."""
    step = 2.0 * (snr * sigma) ** 2
    for _ in range(steps):
        score = (_denoise(denoiser, x, sigma, space, extra_args) - x) / (sigma * sigma)
        z = space.randn(generator=generator, dtype=x.dtype)
        x = x + step * score + math.sqrt(2 * step) * z
    return x


@torch.no_grad()
def sample_pc(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    space: StateSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    snr: float = 0.16,
    corrector_steps: int = 1,
    predictor: str = "euler_maruyama",
) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1): at each level ``corrector_steps``
    Langevin corrections (:func:`langevin_correct`), then one predictor step (``"euler_maruyama"``
    or ``"ddpm"``) to the next level."""
    if predictor not in ("euler_maruyama", "ddpm"):
        raise UnknownNameError(f"unknown predictor {predictor!r}; expected 'euler_maruyama' or 'ddpm'")
    step_fn = sample_euler_maruyama if predictor == "euler_maruyama" else sample_ddpm
    levels = _levels(sigmas)
    x = space.project(x)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        if corrector_steps > 0:
            x = langevin_correct(
                denoiser, x, s, space, generator=generator, extra_args=extra_args, snr=snr, steps=corrector_steps
            )
        x = step_fn(
            denoiser,
            x,
            sigmas.new_tensor([s, s_next]),
            space,
            generator=generator,
            extra_args=extra_args,
            callback=None if callback is None else (lambda info, i=i: callback({**info, "i": i})),
        )
    return x


@torch.no_grad()
def sample_pf_ode(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, space: StateSpace, *, generator=None, callback=None, extra_args=None
) -> Tensor:
    """The probability-flow ODE (Song et al. 2021, Eq. 13) ``dx/dsigma = (x - D(x, sigma)) / sigma``
    integrated with the classical fourth-order Runge-Kutta method on the given grid (4 denoiser
    calls per step). A final step to ``sigma = 0`` returns the denoised state."""
    levels = _levels(sigmas)
    x = space.project(x)

    def f(xv, s):
        return (xv - _denoise(denoiser, xv, s, space, extra_args)) / s

    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:])):
        if s_next == 0:
            denoised = _denoise(denoiser, x, s, space, extra_args)
            x = denoised
        else:
            h = s_next - s
            k1 = f(x, s)
            denoised = x - s * k1
            k2 = f(x + 0.5 * h * k1, s + 0.5 * h)
            k3 = f(x + 0.5 * h * k2, s + 0.5 * h)
            k4 = f(x + h * k3, s_next)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        _report(callback, i, x, s, s_next, denoised)
    return x


# ------------------------------------------------------------------------------------------------
# Joint samplers: continuous and categorical blocks of a JointSpace on one clock
# ------------------------------------------------------------------------------------------------


def _clock(times: Tensor) -> list[float]:
    levels = [float(t) for t in times]
    if len(levels) < 2 or any(b > a for a, b in zip(levels, levels[1:])) or levels[-1] < 0 or levels[0] > 1:
        raise ValueError("times must be a non-increasing sequence of at least two times in [0, 1]")
    return levels


def _joint_inputs(state, space) -> None:
    if not isinstance(space, JointSpace) or not isinstance(state, dict):
        raise TypeError(
            "joint samplers advance the dict state of a JointSpace; for a tensor state use "
            "the continuous samplers (sample_euler, sample_heun, ...)"
        )


def _joint_denoise(denoiser, state, t: float, space: JointSpace, extra_args, self_condition: bool, previous):
    kwargs = dict(extra_args or {})
    if self_condition:
        kwargs["self_condition"] = previous
    return space.check_prediction(denoiser(state, space.full(t), **kwargs))


def _report_joint(callback, i, state, t, t_next, denoised):
    if callback is not None:
        callback({"i": i, "x": state, "t": t, "t_next": t_next, "denoised": denoised})


@torch.no_grad()
def sample_joint_euler(
    denoiser: Callable,
    state: dict,
    times: Tensor,
    space: JointSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    eta: float = 0.0,
    self_condition: bool = False,
) -> dict:
    """First-order joint sampler: one denoiser call per step, then every block steps by ``"euler"``.

    Continuous blocks: ``x' = alpha' D + sigma' eps_hat`` (DDIM with ``eta = 0``, Song et al. 2021,
    Eq. 12; for the linear interpolant the Euler step of flow matching). Categorical blocks: the CTMC
    Euler step of discrete flow matching (Campbell et al. 2024, Sec. 3; Gat et al. 2024) with the
    rate integrated exactly over the step for a fixed prediction, plus Campbell et al.'s
    detailed-balance stochasticity ``eta`` (``0``: none). Both steps are exact in the limit of small
    steps for the exact denoiser; a last step to ``t = 0`` returns the clean prediction of
    continuous blocks and draws every categorical variable from its predicted class probabilities.

    Args:
        denoiser: ``denoiser(state, t, **extra_args) -> {name: x0_hat or logits}``.
        state: joint state at ``times[0]``.
        times: non-increasing clock in ``[0, 1]``, e.g. :func:`~moldiff.core.joint.joint_times`.
        space: the :class:`~moldiff.core.joint.JointSpace` of the batch.
        eta: categorical stochasticity (default: 0).
        self_condition: pass the previous prediction as ``self_condition=`` (default: False).

    Returns:
        The joint state at ``times[-1]``.
    """
    _joint_inputs(state, space)
    levels = _clock(times)
    state = space.project(state)
    previous = None
    for i, (t, t_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _joint_denoise(denoiser, state, t, space, extra_args, self_condition, previous)
        state = space.step(state, denoised, t, t_next, generator=generator, method="euler", eta=eta)
        previous = denoised
        _report_joint(callback, i, state, t, t_next, denoised)
    return state


@torch.no_grad()
def sample_joint_heun(
    denoiser: Callable,
    state: dict,
    times: Tensor,
    space: JointSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    eta: float = 0.0,
    self_condition: bool = False,
) -> dict:
    """Heun's second-order method for the continuous blocks, the CTMC Euler step for the categorical ones.

    Each step first moves every block as :func:`sample_joint_euler` does (categorical variables
    take their final value for the step there), then evaluates the denoiser on that state at
    ``t_next`` and replaces each continuous block by the trapezoidal rule
    ``x' = x + (t_next - t) (v(x, t) + v(x_e, t_next)) / 2`` on the PF-ODE velocity
    ``v = alpha_dot D + sigma_dot eps_hat`` (Karras et al. 2022, Alg. 1, in the native time ``t``).
    A step to ``t = 0``, and every step of a space without continuous blocks, is an Euler step
    (one denoiser call). Options as :func:`sample_joint_euler`.
    """
    _joint_inputs(state, space)
    levels = _clock(times)
    state = space.project(state)
    previous = None
    for i, (t, t_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _joint_denoise(denoiser, state, t, space, extra_args, self_condition, previous)
        new = space.step(state, denoised, t, t_next, generator=generator, method="euler", eta=eta)
        previous = denoised
        if t_next > 0 and t_next < t and space.continuous:
            v = space.velocity(state, denoised, t)
            denoised_next = _joint_denoise(denoiser, new, t_next, space, extra_args, self_condition, denoised)
            v_next = space.velocity(new, denoised_next, t_next)
            for name in space.continuous:
                new[name] = space.blocks[name].project(state[name] + (0.5 * (t_next - t)) * (v[name] + v_next[name]))
            previous = denoised_next
        state = new
        _report_joint(callback, i, state, t, t_next, denoised)
    return state


@torch.no_grad()
def sample_joint_ancestral(
    denoiser: Callable,
    state: dict,
    times: Tensor,
    space: JointSpace,
    *,
    generator=None,
    callback=None,
    extra_args=None,
    self_condition: bool = False,
) -> dict:
    """Ancestral joint sampler: every block draws from the posterior ``q(x_s | x_t, x_0 = prediction)``.

    Continuous blocks: DDPM's Gaussian posterior (Ho et al. 2020, Eq. 6-7, with ``x_0 = D``).
    Categorical blocks: the discrete-diffusion step ``sum_{x_0} q(x_s | x_t, x_0) pi(x_0)`` of the
    mixture path (Austin et al. 2021, D3PM, with the ``x_0``-parameterised reverse process); for the
    masking prior this equals the CTMC Euler step. Options as :func:`sample_joint_euler` (no ``eta``).
    """
    _joint_inputs(state, space)
    levels = _clock(times)
    state = space.project(state)
    previous = None
    for i, (t, t_next) in enumerate(zip(levels[:-1], levels[1:])):
        denoised = _joint_denoise(denoiser, state, t, space, extra_args, self_condition, previous)
        state = space.step(state, denoised, t, t_next, generator=generator, method="ancestral")
        previous = denoised
        _report_joint(callback, i, state, t, t_next, denoised)
    return state


SAMPLERS: dict[str, Callable] = {
    "ddpm": sample_ddpm,
    "ancestral": sample_ddpm,
    "ddim": sample_ddim,
    "euler": sample_euler,
    "heun": sample_heun,
    "heun_steered": sample_heun_steered,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler_maruyama": sample_euler_maruyama,
    "pc": sample_pc,
    "pf_ode": sample_pf_ode,
}

# Samplers of a JointSpace state (continuous and categorical blocks); their grid is a clock in [0, 1].
JOINT_SAMPLERS: dict[str, Callable] = {
    "joint_euler": sample_joint_euler,
    "joint_heun": sample_joint_heun,
    "joint_ancestral": sample_joint_ancestral,
}

# Denoiser calls per step (the last step to sigma = 0 costs one call for every sampler; joint_heun
# calls twice only on a space with a continuous block).
CALLS_PER_STEP = {"heun": 2, "heun_steered": 2, "pf_ode": 4, "joint_heun": 2}


def get_sampler(name: str) -> Callable:
    """Look a sampler up by name (see ``SAMPLERS`` for tensor states, ``JOINT_SAMPLERS`` for joint ones)."""
    if name in SAMPLERS:
        return SAMPLERS[name]
    if name in JOINT_SAMPLERS:
        return JOINT_SAMPLERS[name]
    raise UnknownNameError(
        f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)} or, for a JointSpace, {sorted(JOINT_SAMPLERS)}"
    )


def count_denoiser_calls(name: str, sigmas: Tensor, corrector_steps: int = 1) -> int:
    """Number of network evaluations ``name`` spends on the grid ``sigmas`` (no churn)."""
    levels = _levels(sigmas)
    steps = len(levels) - 1
    final_zero = levels[-1] == 0
    if name == "pc":
        return steps * (1 + corrector_steps)
    per = CALLS_PER_STEP.get(name, 1)
    return per * (steps - int(final_zero)) + int(final_zero)
