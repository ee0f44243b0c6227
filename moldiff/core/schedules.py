"""Noise schedules and sampling time grids.

Every schedule describes the forward process ``x_t = alpha(t) x_0 + sigma(t) eps`` for ``t`` in
``[t_min, t_max]`` (Kingma et al. 2021, "Variational Diffusion Models", Eq. 1). Three views of the
same schedule are used:

* ``alpha(t)``, ``sigma(t)`` — the signal scale and noise standard deviation;
* ``log_snr(t) = log(alpha^2 / sigma^2)`` — strictly decreasing in ``t``; its inverse
  ``t_from_log_snr`` lets a model trained on one discretisation sample on any other;
* ``ve_sigma(t) = sigma(t) / alpha(t) = exp(-log_snr / 2)`` — the noise level of the rescaled state
  ``x_t / alpha(t) = x_0 + ve_sigma * eps`` (Karras et al. 2022, "Elucidating the Design Space",
  Eq. 7 with ``s(t) = alpha(t)``). **Samplers work in this frame**, so one sampler serves VP, VE,
  EDM and flow schedules alike.

All schedule maths runs in float64 and is cast back to the caller's dtype.
"""

from __future__ import annotations

import math

import torch

from moldiff.errors import UnknownNameError

Tensor = torch.Tensor


def _f64(t) -> Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


class NoiseSchedule:
    """Base class. Subclasses define ``log_snr`` and ``t_from_log_snr``; VP schedules get
    ``alpha^2 = sigmoid(log_snr)`` and ``sigma^2 = sigmoid(-log_snr)`` from here.

    Attributes:
        t_min, t_max: the time interval the schedule is defined on.
        variance_preserving: whether ``alpha^2 + sigma^2 = 1``.
    """

    t_min: float = 0.0
    t_max: float = 1.0
    variance_preserving: bool = True

    # --- to be provided by subclasses ---------------------------------------------------------
    def log_snr(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        raise NotImplementedError

    # --- derived views ------------------------------------------------------------------------
    def alpha(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        return torch.sigmoid(self.log_snr(_f64(t))).sqrt().to(t.dtype if t.is_floating_point() else torch.float32)

    def sigma(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        return torch.sigmoid(-self.log_snr(_f64(t))).sqrt().to(t.dtype if t.is_floating_point() else torch.float32)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return self.alpha(t), self.sigma(t)

    def ve_sigma(self, t: Tensor) -> Tensor:
        """``sigma(t) / alpha(t)``: noise level of ``x_t / alpha(t)`` (Karras et al. 2022, Eq. 7)."""
        t = torch.as_tensor(t)
        out = torch.exp(-0.5 * self.log_snr(_f64(t)))
        return out.to(t.dtype) if t.is_floating_point() else out

    def t_from_ve_sigma(self, ve_sigma: Tensor) -> Tensor:
        s = torch.as_tensor(ve_sigma)
        out = self.t_from_log_snr(-2.0 * torch.log(_f64(s)))
        return out.to(s.dtype) if s.is_floating_point() else out

    def alpha_from_ve_sigma(self, ve_sigma: Tensor) -> Tensor:
        """Signal scale ``alpha`` at the time whose VE noise level is ``ve_sigma``."""
        return self.alpha(self.t_from_ve_sigma(ve_sigma))

    @property
    def sigma_min(self) -> float:
        """Smallest VE noise level, ``ve_sigma(t_min)``."""
        return float(self.ve_sigma(_f64(self.t_min)))

    @property
    def sigma_max(self) -> float:
        """Largest VE noise level, ``ve_sigma(t_max)``."""
        return float(self.ve_sigma(_f64(self.t_max)))

    def prior_variance(self) -> float:
        """Variance of the prior ``N(0, v I)`` for the VE-frame state at ``t_max``.

        VP schedules: ``1 / alpha(t_max)^2 = 1 + sigma_max^2`` (unit-variance prior in the VP frame);
        VE-type schedules: ``sigma_max^2``.
        """
        s = self.sigma_max
        return 1.0 + s * s if self.variance_preserving else s * s

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class VPSchedule(NoiseSchedule):
    """Continuous-time variance-preserving schedules.

    Args:
        kind: ``"linear"`` — Song et al. 2021 VP-SDE, ``beta(t) = beta_min + t (beta_max - beta_min)``,
            ``log alpha(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2`` (Eq. 33);
            ``"cosine"`` — Nichol & Dhariwal 2021, ``alpha^2(t) = cos^2(pi/2 (t + s)/(1 + s)) / cos^2(pi/2 s/(1+s))``
            (Eq. 17), truncated at ``t_max`` so the log-SNR stays finite.
        beta_min, beta_max: linear kind's rates (default 0.1, 20).
        cosine_s: cosine offset ``s`` (default 0.008).
        t_min, t_max: time interval (default ``1e-3, 1``; the cosine kind uses ``t_max = 0.9946`` at most).
    """

    def __init__(
        self,
        kind: str = "linear",
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        cosine_s: float = 0.008,
        t_min: float = 1e-3,
        t_max: float = 1.0,
    ) -> None:
        if kind not in ("linear", "cosine"):
            raise UnknownNameError(f"unknown VP schedule kind {kind!r}; expected 'linear' or 'cosine'")
        self.kind = kind
        self.beta_min, self.beta_max, self.cosine_s = float(beta_min), float(beta_max), float(cosine_s)
        self.t_min = float(t_min)
        self.t_max = float(min(t_max, 0.9946)) if kind == "cosine" else float(t_max)

    def _log_alpha2(self, t: Tensor) -> Tensor:
        if self.kind == "linear":
            return -0.5 * t**2 * (self.beta_max - self.beta_min) - t * self.beta_min
        s = self.cosine_s
        return 2 * (
            torch.log(torch.cos(0.5 * math.pi * (t + s) / (1 + s))) - math.log(math.cos(0.5 * math.pi * s / (1 + s)))
        )

    def log_snr(self, t):
        t = _f64(t)
        la2 = self._log_alpha2(t)
        return la2 - torch.log(-torch.expm1(la2))

    def t_from_log_snr(self, log_snr):
        lam = _f64(log_snr)
        log_alpha2 = -torch.nn.functional.softplus(-lam)  # log sigmoid(lam)
        if self.kind == "linear":
            a = 0.5 * (self.beta_max - self.beta_min)
            b = self.beta_min
            # a t^2 + b t + log_alpha2 = 0, positive root
            return (-b + torch.sqrt(b * b - 4 * a * log_alpha2)) / (2 * a)
        s = self.cosine_s
        c0 = math.log(math.cos(0.5 * math.pi * s / (1 + s)))
        cos_val = torch.exp(0.5 * log_alpha2 + c0)
        return torch.arccos(cos_val.clamp(-1, 1)) * 2 * (1 + s) / math.pi - s


class DiscreteVPSchedule(NoiseSchedule):
    """A variance-preserving schedule given as a table of ``alpha_bar`` values at fixed times.

    Between table points the log-SNR is interpolated linearly in ``t``, so a model trained on the
    ``T``-step table samples with any number of steps (Kingma et al. 2021 treat the discrete-time
    model as the continuous one evaluated on a grid). Nothing ``T``-sized enters the network: it
    receives ``t`` in ``[0, 1]``.

    Args:
        alpha_bar: ``[K]`` values of ``alpha^2`` at ``times``, strictly decreasing.
        times: ``[K]`` strictly increasing times in ``[0, 1]``.
    """

    def __init__(self, alpha_bar: Tensor, times: Tensor) -> None:
        alpha_bar, times = _f64(alpha_bar), _f64(times)
        if alpha_bar.shape != times.shape or alpha_bar.dim() != 1 or alpha_bar.numel() < 2:
            raise ValueError("alpha_bar and times must be 1-D tensors of the same length >= 2")
        if not bool((alpha_bar > 0).all() and (alpha_bar < 1).all()):
            raise ValueError("alpha_bar values must lie strictly between 0 and 1")
        log_snr = torch.log(alpha_bar) - torch.log1p(-alpha_bar)
        if not bool((torch.diff(log_snr) < 0).all()) or not bool((torch.diff(times) > 0).all()):
            raise ValueError("alpha_bar must decrease strictly along strictly increasing times")
        self._times = times
        self._log_snr = log_snr
        self.num_steps = alpha_bar.numel() - 1
        self.t_min = float(times[0])
        self.t_max = float(times[-1])

    @staticmethod
    def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
        """Piecewise-linear interpolation for increasing ``xp`` (clamped at the ends)."""
        x = x.clamp(xp[0], xp[-1])
        idx = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
        x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
        w = (x - x0) / (x1 - x0)
        return f0 + w * (f1 - f0)

    def log_snr(self, t):
        return self._interp(_f64(t), self._times, self._log_snr)

    def t_from_log_snr(self, log_snr):
        # log-SNR decreases with t: interpolate on the reversed table.
        return self._interp(_f64(log_snr), self._log_snr.flip(0), self._times.flip(0))

    def alpha_bar(self) -> Tensor:
        """The table of ``alpha^2`` values, ``[K]`` (float64)."""
        return torch.sigmoid(self._log_snr)

    @classmethod
    def linear_beta(
        cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> "DiscreteVPSchedule":
        """DDPM's linear betas (Ho et al. 2020, Sec. 4): ``alpha_bar_k = prod_{i<=k} (1 - beta_i)``,
        ``k = 1..T`` at ``t = k / T``."""
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        alpha_bar = torch.cumprod(1 - betas, 0)
        times = torch.arange(1, num_steps + 1, dtype=torch.float64) / num_steps
        return cls(alpha_bar, times)

    @classmethod
    def cosine(cls, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "DiscreteVPSchedule":
        """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, Eq. 17), betas clipped at ``max_beta``."""
        k = torch.arange(num_steps + 1, dtype=torch.float64)
        f = torch.cos((k / num_steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        alpha_bar = torch.cumprod(1 - betas, 0)
        times = k[1:] / num_steps
        return cls(alpha_bar, times)

    @classmethod
    def polynomial(
        cls, num_steps: int = 1000, power: float = 2.0, precision: float = 1e-5, clip_value: float = 0.001
    ) -> "DiscreteVPSchedule":
        """EDM's ``polynomial_<power>`` schedule (Hoogeboom et al. 2022, App. B).

        ``alpha^2 = (1 - (x / (T+1))^power)^2`` on ``T + 1`` points ``x = linspace(0, T+1, T+1)``
        (EDM's own grid), step ratios ``alpha^2_k / alpha^2_{k-1}`` clipped below at ``clip_value``,
        then ``alpha^2 <- (1 - 2 precision) alpha^2 + precision``. Table point ``k`` sits at
        ``t = k / T``, so ``t = 0`` is the least-noisy level, as in EDM.
        """
        steps = num_steps + 1
        x = torch.linspace(0, steps, steps, dtype=torch.float64)
        alphas2 = (1 - (x / steps) ** power) ** 2
        alphas2 = torch.cat([torch.ones(1, dtype=torch.float64), alphas2])
        step_ratio = (alphas2[1:] / alphas2[:-1]).clamp(min=clip_value, max=1.0)
        alphas2 = torch.cumprod(step_ratio, 0)
        alphas2 = (1 - 2 * precision) * alphas2 + precision
        times = torch.arange(steps, dtype=torch.float64) / num_steps
        return cls(alphas2, times)


class VESchedule(NoiseSchedule):
    """Variance-exploding schedule (Song et al. 2021, Eq. 31): ``alpha = 1``,
    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` for ``t`` in ``[0, 1]``."""

    variance_preserving = False

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        self.s_min, self.s_max = float(sigma_min), float(sigma_max)
        self.t_min, self.t_max = 0.0, 1.0

    def log_snr(self, t):
        t = _f64(t)
        return -2 * (math.log(self.s_min) + t * math.log(self.s_max / self.s_min))

    def t_from_log_snr(self, log_snr):
        return (-0.5 * _f64(log_snr) - math.log(self.s_min)) / math.log(self.s_max / self.s_min)

    def alpha(self, t):
        t = torch.as_tensor(t)
        return torch.ones_like(t, dtype=t.dtype if t.is_floating_point() else torch.float32)

    def sigma(self, t):
        return self.ve_sigma(t)


class EDMSchedule(VESchedule):
    """Karras et al. 2022 schedule: ``alpha = 1``, ``sigma(t) = t``, ``t`` in ``[sigma_min, sigma_max]``
    (Table 1, "Ours")."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        super().__init__(sigma_min, sigma_max)
        self.t_min, self.t_max = float(sigma_min), float(sigma_max)

    def log_snr(self, t):
        return -2 * torch.log(_f64(t))

    def t_from_log_snr(self, log_snr):
        return torch.exp(-0.5 * _f64(log_snr))


class FlowSchedule(NoiseSchedule):
    """The linear (rectified-flow / conditional flow matching) interpolant
    ``x_t = (1 - t) x_0 + t eps`` (Lipman et al. 2023; Liu et al. 2023), ``t`` in ``[t_min, t_max]``.
    Its VE noise level is ``t / (1 - t)``."""

    variance_preserving = False

    def __init__(self, t_min: float = 1e-3, t_max: float = 0.999) -> None:
        self.t_min, self.t_max = float(t_min), float(t_max)

    def log_snr(self, t):
        t = _f64(t)
        return 2 * (torch.log1p(-t) - torch.log(t))

    def t_from_log_snr(self, log_snr):
        return torch.sigmoid(-0.5 * _f64(log_snr))

    def alpha(self, t):
        t = torch.as_tensor(t)
        return 1 - t

    def sigma(self, t):
        return torch.as_tensor(t)

    def prior_variance(self) -> float:
        a = 1 - self.t_max
        return (a * a + self.t_max**2) / (a * a)


# ------------------------------------------------------------------------------------------------
# Time grids
# ------------------------------------------------------------------------------------------------


def uniform_times(schedule: NoiseSchedule, num_points: int) -> Tensor:
    """``num_points`` times evenly spaced from ``t_max`` down to ``t_min`` (float64)."""
    return torch.linspace(schedule.t_max, schedule.t_min, num_points, dtype=torch.float64)


def quadratic_times(schedule: NoiseSchedule, num_points: int) -> Tensor:
    """Times ``t_min + (t_max - t_min) u^2`` for ``u`` evenly spaced from 1 to 0 (Song et al. 2021,
    DDIM, App. D.2 "quadratic" sub-sequence): denser near the data."""
    u = torch.linspace(1.0, 0.0, num_points, dtype=torch.float64)
    return schedule.t_min + (schedule.t_max - schedule.t_min) * u**2


def karras_times(schedule: NoiseSchedule, num_points: int, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022, Eq. 5: ``sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``
    in VE noise levels, mapped back to the schedule's times."""
    return schedule.t_from_ve_sigma(karras_sigmas(num_points, schedule.sigma_min, schedule.sigma_max, rho))


def log_snr_times(schedule: NoiseSchedule, num_points: int) -> Tensor:
    """Times with the log-SNR evenly spaced (Lu et al. 2022, DPM-Solver, "logSNR" step spacing)."""
    lo = schedule.log_snr(_f64(schedule.t_max))
    hi = schedule.log_snr(_f64(schedule.t_min))
    return schedule.t_from_log_snr(torch.linspace(float(lo), float(hi), num_points, dtype=torch.float64))


def karras_sigmas(num_points: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022, Eq. 5 (float64, decreasing, no trailing zero)."""
    ramp = torch.linspace(0, 1, num_points, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (a + ramp * (b - a)) ** rho


TIME_GRIDS = {
    "uniform": uniform_times,
    "quadratic": quadratic_times,
    "karras": karras_times,
    "log_snr": log_snr_times,
}


def sampling_sigmas(
    schedule: NoiseSchedule, num_steps: int, grid: str = "karras", append_zero: bool = True, **grid_kwargs
) -> Tensor:
    """The decreasing VE noise levels a sampler walks through.

    Args:
        schedule: the model's noise schedule.
        num_steps: number of sampler steps; the grid has ``num_steps`` noise levels from
            ``sigma_max`` to ``sigma_min``, then a final ``0`` (the last step denoises fully), as in
            k-diffusion. First-order samplers call the denoiser ``num_steps`` times.
        grid: ``"uniform"``, ``"quadratic"``, ``"karras"`` (``rho=7`` by default) or ``"log_snr"``.
        append_zero: end the grid with ``sigma = 0`` (default: true).

    Returns:
        ``[num_steps + 1]`` float64 tensor (``[num_steps]`` without the zero).
    """
    if grid not in TIME_GRIDS:
        raise UnknownNameError(f"unknown time grid {grid!r}; choose from {sorted(TIME_GRIDS)}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if num_steps == 1:
        sig = _f64([schedule.sigma_max])
    else:
        sig = schedule.ve_sigma(TIME_GRIDS[grid](schedule, num_steps, **grid_kwargs))
    if append_zero:
        sig = torch.cat([sig, sig.new_zeros(1)])
    return sig


SCHEDULES = {
    "vp_linear": lambda **kw: VPSchedule("linear", **kw),
    "vp_cosine": lambda **kw: VPSchedule("cosine", **kw),
    "ddpm_linear": DiscreteVPSchedule.linear_beta,
    "ddpm_cosine": DiscreteVPSchedule.cosine,
    "polynomial": DiscreteVPSchedule.polynomial,
    "ve": VESchedule,
    "edm": EDMSchedule,
    "flow": FlowSchedule,
}


def make_schedule(name: str, **kwargs) -> NoiseSchedule:
    """Build a schedule by name (see ``SCHEDULES``), e.g. ``make_schedule("polynomial", power=2)``."""
    if name not in SCHEDULES:
        raise UnknownNameError(f"unknown noise schedule {name!r}; choose from {sorted(SCHEDULES)}")
    return SCHEDULES[name](**kwargs)
