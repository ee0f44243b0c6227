"""The joint state space: continuous and categorical blocks advanced on one clock.

A generative model of graphs with labelled nodes and pairs draws, for a packed batch, zero-CoM
coordinates ``[N, 3]`` (a continuous block) together with categorical variables on the nodes
``[N]`` and on every node pair ``[E]`` (categorical blocks, :mod:`moldiff.core.categorical`).
:class:`JointSpace` names each block, gives each its schedule, and runs all of them on one clock
``t`` in ``[0, 1]`` (``0`` data, ``1`` prior), so one sampler loop steps them together; each step is
delegated to the block through the space (:meth:`JointSpace.step`).

**The joint state is a plain ``dict`` of tensors**, ``{name: tensor}``: continuous blocks are float
tensors in the schedule's native frame (``x_t = alpha(t) x_0 + sigma(t) eps``), categorical blocks
are long tensors of state indices ``[M]``. Not a single tensor, because node blocks ``[N, ...]`` and
pair blocks ``[E]`` share no leading dimension and a flat concatenation would hide which entries are
class indices; not a structure with arithmetic, because arithmetic means nothing on a class index
(``x + h v``), and every operation a sampler needs (step, velocity, projection, noise) is per block
anyway and lives here. A dict is what a network reads (``state["pos"]``) and what ``torch.compile``
and ``.to()`` handle.

**The denoiser contract** of the joint samplers and loss is
``denoiser(state, t, **extra_args) -> {name: prediction}`` with ``t`` a per-item ``[B]`` float
tensor and, per block, the clean-data prediction: ``x0_hat`` shaped like the block (native frame,
not the VE frame of :mod:`moldiff.core.samplers`) for a continuous block, logits ``[M, K]`` over the
data classes for a categorical block (``softmax`` = the posterior mean of ``one_hot(x_0)``).

**Continuous blocks** (any :class:`~moldiff.core.schedules.NoiseSchedule` defined on ``[0, 1]``;
default :class:`~moldiff.core.schedules.FlowSchedule`, ``x_t = (1 - t) x_0 + t eps``), with
``eps_hat = (x - alpha D) / sigma`` and primes for the next time ``s < t``:

* noise: ``x_t = alpha x_0 + sigma eps``, ``eps`` drawn in the block's space (zero-CoM included);
* ``"euler"`` step: ``x' = alpha' D + sigma' eps_hat`` (DDIM, Song et al. 2021, Eq. 12, ``eta = 0``:
  the exact PF-ODE solution for a constant ``D``); for the linear interpolant this is flow
  matching's Euler step ``x' = x + (s - t) v_hat`` with ``v_hat = (x - D) / t`` (Lipman et al. 2023;
  Liu et al. 2023);
* ``"ancestral"`` step: ``x' = alpha' D + sqrt(sigma'^2 - c^2) eps_hat + c z`` with
  ``c = sigma' sqrt(1 - r^2)``, ``r = alpha sigma' / (alpha' sigma)``: the Gaussian posterior
  ``q(x_s | x_t, x_0 = D)`` (Ho et al. 2020, Eq. 6-7; DDIM with ``eta = 1``);
* velocity: ``dx/dt = alpha_dot D + sigma_dot eps_hat`` (the PF-ODE; ``(x - D) / t`` for the flow).

**Categorical blocks** step by ``"euler"`` (CTMC Euler of discrete flow matching, with Campbell et
al.'s stochasticity ``eta``) or, for ``"ancestral"``, by the exact discrete-diffusion posterior; see
:mod:`moldiff.core.categorical`.
"""

from __future__ import annotations

import math
from typing import Mapping, Union

import torch

from moldiff.errors import UnknownNameError

from .categorical import CategoricalSchedule, CategoricalSpace
from .schedules import FlowSchedule, NoiseSchedule
from .spaces import StateSpace

Tensor = torch.Tensor
Block = Union[StateSpace, CategoricalSpace]
Schedule = Union[NoiseSchedule, CategoricalSchedule]

STEP_METHODS = ("euler", "ancestral")


def schedule_rates(schedule: NoiseSchedule, t) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``alpha(t), sigma(t)`` and their time derivatives, float64, shaped like ``t`` (autograd)."""
    with torch.enable_grad():
        tt = torch.as_tensor(t, dtype=torch.float64).detach().clone().requires_grad_(True)
        values = (torch.as_tensor(schedule.alpha(tt)).double(), torch.as_tensor(schedule.sigma(tt)).double())
        rates = []
        for v in values:
            g = torch.autograd.grad(v.sum(), tt, allow_unused=True)[0] if v.requires_grad else None
            rates.append(torch.zeros_like(tt) if g is None else g)
    return values[0].detach(), values[1].detach(), rates[0].detach(), rates[1].detach()


def joint_times(num_steps: int, *, t_max: float = 1.0, t_min: float = 0.0, rho: float = 1.0) -> Tensor:
    """The decreasing clock of a joint sampler, ``[num_steps + 1]`` float64.

    ``t_k = t_min + (t_max - t_min) (1 - k / n)^rho``: uniform for ``rho = 1`` (Campbell et al.
    2024's Euler grid), denser near the data for ``rho > 1``. End at ``t_min = 0`` so that the last
    step returns the clean prediction of continuous blocks and unmasks every categorical variable.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    u = 1.0 - torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    return t_min + (t_max - t_min) * u**rho


class JointSpace:
    """Named continuous and categorical blocks of one batch, each with its schedule, on one clock.

    Args:
        blocks: ``{name: space}``, a :class:`~moldiff.core.spaces.StateSpace` (e.g. zero-CoM
            coordinates, :func:`~moldiff.core.spaces.zero_com_space`) or a
            :class:`~moldiff.core.categorical.CategoricalSpace` (variables over nodes or pairs), all
            over the same ``B`` items. The order is the order of noise draws.
        schedules: ``{name: schedule}``: a :class:`~moldiff.core.schedules.NoiseSchedule` for a
            continuous block (default: :class:`~moldiff.core.schedules.FlowSchedule`), a
            :class:`~moldiff.core.categorical.CategoricalSchedule` for a categorical one (default:
            linear).

    Example (a model of graphs with 5 node classes and 4 pair classes; ``net`` follows the
    denoiser contract of the module docstring)::

        batch = torch.tensor([0, 0, 0, 1, 1])               # two graphs of 3 and 2 nodes
        pairs = upper_triangle_edges(batch)                 # [2, 4]: (0,1) (0,2) (1,2) (3,4)
        space = JointSpace({
            "pos": zero_com_space(batch),
            "node": CategoricalSpace.over_nodes(batch, 5, prior="masking"),
            "pair": CategoricalSpace.over_edges(pairs, batch, 4, prior="marginal",
                                                marginal=torch.tensor([0.7, 0.2, 0.05, 0.05])),
        })
        # training: per-item loss, per-block terms for logging
        loss, terms = joint_loss(net, {"pos": pos, "node": node, "pair": pair}, space,
                                 weights={"pos": 3.0, "node": 0.4, "pair": 2.0},
                                 time_weight=clipped_snr_weight(FlowSchedule()),
                                 extra_args={"batch": batch, "pairs": pairs}, self_condition_prob=0.5)
        loss.mean().backward()
        # sampling: {"pos": [5, 3], "node": [5], "pair": [4]}
        out = get_sampler("joint_euler")(net, space.prior(g), joint_times(100), space, generator=g,
                                         extra_args={"batch": batch, "pairs": pairs}, eta=1.0,
                                         self_condition=True)
    """

    def __init__(self, blocks: Mapping[str, Block], schedules: Mapping[str, Schedule] | None = None) -> None:
        if not blocks:
            raise ValueError("a joint space needs at least one block")
        self.blocks: dict[str, Block] = dict(blocks)
        schedules = dict(schedules or {})
        unknown = sorted(set(schedules) - set(self.blocks))
        if unknown:
            raise ValueError(f"schedules given for unknown blocks {unknown}; blocks are {list(self.blocks)}")
        self.schedules: dict[str, Schedule] = {}
        self.continuous: list[str] = []
        self.categorical: list[str] = []
        for name, block in self.blocks.items():
            if isinstance(block, CategoricalSpace):
                schedule = schedules.get(name, CategoricalSchedule())
                if not isinstance(schedule, CategoricalSchedule):
                    raise TypeError(f"block {name!r} is categorical: its schedule must be a CategoricalSchedule")
                self.categorical.append(name)
            elif isinstance(block, StateSpace):
                schedule = schedules.get(name, FlowSchedule())
                if not isinstance(schedule, NoiseSchedule):
                    raise TypeError(f"block {name!r} is continuous: its schedule must be a NoiseSchedule")
                self.continuous.append(name)
            else:
                raise TypeError(
                    f"block {name!r} must be a StateSpace or a CategoricalSpace, got {type(block).__name__}"
                )
            self.schedules[name] = schedule
        sizes = {name: b.num_items for name, b in self.blocks.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all blocks must describe the same number of items, got {sizes}")
        first = next(iter(self.blocks.values()))
        self.num_items = first.num_items
        self.device = first.device
        self.dtype = self.blocks[self.continuous[0]].dtype if self.continuous else torch.float32

    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    def full(self, t: float | Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """A per-item time vector ``[B]`` (the network's ``t``)."""
        return torch.full((self.num_items,), float(t), device=self.device, dtype=dtype or self.dtype)

    def features(self, state: Mapping[str, Tensor], dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """Network inputs: continuous blocks as they are, categorical blocks one-hot ``[M, S]``."""
        dtype = dtype or self.dtype
        return {n: self.blocks[n].one_hot(state[n], dtype) if n in self.categorical else state[n] for n in self.names}

    # --- drawing states ------------------------------------------------------------------------
    def prior(
        self, generator: torch.Generator | None = None, *, t: float = 1.0, dtype: torch.dtype | None = None
    ) -> dict[str, Tensor]:
        """The starting state at time ``t``: ``sigma(t) eps`` for continuous blocks (the exact marginal
        when ``alpha(t) = 0``, as for the linear interpolant at ``t = 1``), the categorical prior
        ``p_0`` for categorical blocks (exact at ``t = 1``)."""
        out = {}
        for name, block in self.blocks.items():
            if name in self.categorical:
                out[name] = block.sample_prior(generator)
            else:
                sigma = float(torch.as_tensor(self.schedules[name].sigma(torch.tensor(float(t), dtype=torch.float64))))
                out[name] = sigma * block.randn(generator=generator, dtype=dtype)
        return out

    def noise(
        self, clean: Mapping[str, Tensor], t: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Draw ``x_t ~ q_t(. | x_0)`` for every block (training), per-item times ``t [B]``.

        Continuous: ``alpha(t) x_0 + sigma(t) eps``; categorical: keep ``x_0`` with probability
        ``alpha(t)``, else draw from the prior.
        """
        t = torch.as_tensor(t, dtype=torch.float64, device=self.device)
        out = {}
        for name, block in self.blocks.items():
            x0 = clean[name]
            schedule = self.schedules[name]
            if name in self.categorical:
                out[name] = block.noise(x0, block.per_item(schedule.alpha(t)), generator)
            else:
                alpha = block.per_item(torch.as_tensor(schedule.alpha(t)).to(x0.dtype))
                sigma = block.per_item(torch.as_tensor(schedule.sigma(t)).to(x0.dtype))
                out[name] = alpha * block.project(x0) + sigma * block.randn(generator=generator, dtype=x0.dtype)
        return out

    def project(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Continuous blocks projected onto their spaces (zero CoM); categorical blocks unchanged."""
        return {n: self.blocks[n].project(v) if n in self.continuous else v for n, v in state.items()}

    def check_prediction(self, pred: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Validate a denoiser output and project its continuous blocks."""
        missing = [n for n in self.names if n not in pred]
        if missing:
            raise ValueError(f"the denoiser returned no prediction for blocks {missing} (got {sorted(pred)})")
        for n in self.categorical:
            k = self.blocks[n].num_classes
            if pred[n].shape[-1] != k:
                raise ValueError(
                    f"block {n!r}: expected logits [M, {k}] over the data classes, got {tuple(pred[n].shape)}"
                )
        return self.project(pred)

    # --- sampling steps ---------------------------------------------------------------------------
    def velocity(self, state: Mapping[str, Tensor], pred: Mapping[str, Tensor], t: float) -> dict[str, Tensor]:
        """PF-ODE velocity ``dx/dt = alpha_dot D + sigma_dot (x - alpha D) / sigma`` of each continuous block."""
        out = {}
        for name in self.continuous:
            x, d = state[name], pred[name].to(state[name].dtype)
            a, s, da, ds = (float(v) for v in schedule_rates(self.schedules[name], float(t)))
            out[name] = da * d + ds * (x - a * d) / s
        return out

    def step(
        self,
        state: Mapping[str, Tensor],
        pred: Mapping[str, Tensor],
        t: float,
        t_next: float,
        *,
        generator: torch.Generator | None = None,
        method: str = "euler",
        eta: float = 0.0,
    ) -> dict[str, Tensor]:
        """Advance every block from ``t`` to ``t_next < t`` given the denoiser's predictions.

        Args:
            state: the joint state at ``t``.
            pred: the (checked) denoiser output at ``(state, t)``.
            method: ``"euler"`` (continuous DDIM/flow Euler step, categorical CTMC Euler step with
                stochasticity ``eta``) or ``"ancestral"`` (continuous DDPM posterior draw,
                categorical exact posterior draw); formulas in the module docstrings.
            eta: Campbell et al.'s categorical stochasticity (``"euler"`` only).
        """
        if method not in STEP_METHODS:
            raise UnknownNameError(f"unknown step method {method!r}; choose from {STEP_METHODS}")
        t, t_next = float(t), float(t_next)
        out = {}
        for name, block in self.blocks.items():
            x = state[name]
            schedule = self.schedules[name]
            if name in self.categorical:
                a, a_next = float(schedule.alpha(t)), float(schedule.alpha(t_next))
                out[name] = block.step(
                    x,
                    pred[name],
                    a,
                    a_next,
                    generator=generator,
                    method="euler" if method == "euler" else "posterior",
                    eta=eta,
                    dt=t - t_next,
                )
                continue
            d = pred[name].to(x.dtype)
            a, s = (
                float(torch.as_tensor(f(torch.tensor(t, dtype=torch.float64))))
                for f in (schedule.alpha, schedule.sigma)
            )
            a2, s2 = (
                float(torch.as_tensor(f(torch.tensor(t_next, dtype=torch.float64))))
                for f in (schedule.alpha, schedule.sigma)
            )
            if s2 <= 0.0:
                out[name] = a2 * d
                continue
            eps = (x - a * d) / s
            if method == "euler":
                out[name] = a2 * d + s2 * eps
            else:
                r = min(a * s2 / (a2 * s), 1.0)
                c = s2 * math.sqrt(max(1.0 - r * r, 0.0))
                z = block.randn(generator=generator, dtype=x.dtype)
                out[name] = a2 * d + math.sqrt(max(s2 * s2 - c * c, 0.0)) * eps + c * z
        return out
