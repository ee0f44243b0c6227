"""Closed-form oracles for joint (continuous + categorical) samplers.

For categorical data with a known joint law the optimal denoiser is exact: if every item carries
the same ``V`` categorical variables with joint probability table ``p(c)``, ``c = (c_1..c_V)``, and
the noising is independent per variable, ``q_t(x | c) = prod_v Q_t(x_v | c_v)``, then

    p(c | x_t) ∝ p(c) prod_v Q_t(x_v | c_v),   p(x_0,v = k | x_t) = sum_{c: c_v = k} p(c | x_t),

which :class:`CategoricalTableOracle` returns as logits. Continuous blocks may ride along as
independent isotropic Gaussians ``N(m, v P)`` (``P`` the block's projection), whose posterior mean in
the native frame ``x_t = alpha x_0 + sigma eps`` is ``m + alpha v / (alpha^2 v + sigma^2) (x_t - alpha m)``.

:func:`exact_sampler_law` propagates the *exact* distribution of a categorical sampler's output
(every joint state enumerated), so a test can measure a sampler's error without sampling noise.
"""

from __future__ import annotations

import itertools
from typing import Mapping

import torch

from moldiff.core.categorical import CategoricalSpace
from moldiff.core.joint import JointSpace

Tensor = torch.Tensor

__all__ = ["CategoricalTableOracle", "exact_sampler_law", "total_variation"]


def total_variation(p: Tensor, q: Tensor) -> float:
    """``1/2 sum |p - q|`` of two probability vectors."""
    return 0.5 * float((p.double() - q.double()).abs().sum())


class CategoricalTableOracle:
    """The exact denoiser of a :class:`~moldiff.core.joint.JointSpace` whose categorical variables follow a table.

    Every item must carry the same number of variables in each categorical block, stored item by
    item (a packed batch of graphs of one size, pairs from
    :func:`~moldiff.core.categorical.upper_triangle_edges`). Item ``b``'s variables, in block order,
    are the ``V`` axes of ``table``.

    Args:
        space: the joint space.
        table: ``[K_1, ..., K_V]`` joint probabilities (normalised here).
        gaussians: ``{name: (mean, variance)}`` for the continuous blocks: ``mean`` a point of the
            block (projected here), ``variance`` a scalar.
    """

    def __init__(
        self, space: JointSpace, table: Tensor, gaussians: Mapping[str, tuple[Tensor, float]] | None = None
    ) -> None:
        self.space = space
        self.gaussians = {}
        for name, (mean, variance) in (gaussians or {}).items():
            self.gaussians[name] = (space.blocks[name].project(mean.double()), float(variance))
        missing = [n for n in space.continuous if n not in self.gaussians]
        if missing:
            raise ValueError(f"give a Gaussian (mean, variance) for the continuous blocks {missing}")
        self.layout: list[tuple[str, int]] = []  # (block name, variables per item)
        classes: list[int] = []
        B = space.num_items
        for name in space.categorical:
            block: CategoricalSpace = space.blocks[name]
            per = block.num_variables // B
            expected = torch.repeat_interleave(torch.arange(B, device=block.device), per)
            if per * B != block.num_variables or not torch.equal(block.item_index, expected):
                raise ValueError(f"block {name!r}: every item needs the same number of variables, stored item by item")
            self.layout.append((name, per))
            classes += [block.num_classes] * per
        self.classes = classes
        table = table.double()
        if list(table.shape) != classes:
            raise ValueError(f"table shape {list(table.shape)} does not match the variables' classes {classes}")
        self.table = table / table.sum()
        self.configs = torch.tensor(list(itertools.product(*[range(k) for k in classes])), dtype=torch.long)  # [C, V]
        self.probs = self.table.reshape(-1)  # [C]
        self.num_variables = len(classes)

    # --- data -----------------------------------------------------------------------------------
    def sample(self, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """A clean batch ``{name: x_0}`` of the space's ``B`` items."""
        B = self.space.num_items
        idx = torch.multinomial(self.probs, B, replacement=True, generator=generator)
        values = self.configs[idx]  # [B, V]
        out, start = {}, 0
        for name, per in self.layout:
            out[name] = values[:, start : start + per].reshape(-1).to(self.space.blocks[name].device)
            start += per
        for name, (mean, variance) in self.gaussians.items():
            out[name] = mean + variance**0.5 * self.space.blocks[name].randn(generator=generator, dtype=torch.float64)
        return out

    def values(self, state: Mapping[str, Tensor]) -> Tensor:
        """``[B, V]`` the categorical variables of every item, in table order."""
        B = self.space.num_items
        return torch.cat([state[name].reshape(B, per) for name, per in self.layout], dim=1)

    def config_index(self, state: Mapping[str, Tensor]) -> Tensor:
        """``[B]`` the table cell of every item's clean values."""
        values = self.values(state).long().cpu()
        index = torch.zeros(self.space.num_items, dtype=torch.long)
        for v, k in enumerate(self.classes):
            index = index * k + values[:, v]
        return index

    def empirical(self, state: Mapping[str, Tensor]) -> Tensor:
        """``[C]`` frequencies of the table cells in a clean batch."""
        counts = torch.bincount(self.config_index(state), minlength=self.probs.numel()).double()
        return counts / counts.sum()

    def marginal(self, name: str) -> Tensor:
        """``[K]`` class probabilities of block ``name`` pooled over its variables (the data marginal)."""
        names = [n for n, _ in self.layout]
        if name not in names:
            raise ValueError(f"{name!r} is not a categorical block of the space ({names})")
        i = names.index(name)
        start, per = sum(p for _, p in self.layout[:i]), self.layout[i][1]
        k = self.space.blocks[name].num_classes
        out = torch.zeros(k, dtype=torch.float64)
        for v in range(start, start + per):
            out += torch.zeros(k, dtype=torch.float64).index_add_(0, self.configs[:, v], self.probs)
        return out / per

    # --- the denoiser ----------------------------------------------------------------------------
    def _log_posterior(self, x: Tensor, t: Tensor) -> Tensor:
        """``[R, C]`` log posterior over table cells for rows of noisy values ``x [R, V]`` at times ``t [R]``."""
        rows = torch.arange(x.shape[0])[:, None]
        logs = torch.log(self.probs.clamp_min(1e-300)).expand(x.shape[0], -1).clone()
        v0 = 0
        for name, per in self.layout:
            q = self.space.blocks[name].noising_matrix(self.space.schedules[name].alpha(t)).cpu()  # [R, K, S]
            for v in range(v0, v0 + per):
                # log q_t(x_v | c_v) for every cell c
                logs = logs + torch.log(q[rows, self.configs[None, :, v], x[:, v, None]].clamp_min(1e-300))
            v0 += per
        return torch.log_softmax(logs, dim=-1)

    def posterior(self, state: Mapping[str, Tensor], t: Tensor) -> Tensor:
        """``[B, C]`` the posterior over table cells given the noisy categorical variables at ``t [B]``."""
        t = torch.as_tensor(t, dtype=torch.float64).cpu().expand(self.space.num_items)
        x = self.values({k: v.cpu() for k, v in state.items()})
        return self._log_posterior(x, t).exp()

    def _class_marginals(self, log_post: Tensor) -> Tensor:
        """``[R, V, K_max]`` log ``p(x_0,v = k | x_t)`` from the log posterior over cells."""
        post = log_post.exp()
        kmax = max(self.classes)
        onehot = torch.nn.functional.one_hot(self.configs, kmax).double()  # [C, V, K]
        marg = torch.einsum("rc,cvk->rvk", post, onehot)
        return torch.log(marg.clamp_min(1e-300))

    def __call__(self, state: Mapping[str, Tensor], t: Tensor, **_) -> dict[str, Tensor]:
        """Exact predictions: logits of ``p(x_0,v | x_t)`` for categorical blocks, ``E[x_0 | x_t]`` for Gaussians."""
        out = {}
        B = self.space.num_items
        tt = torch.as_tensor(t, dtype=torch.float64).cpu().expand(B)
        if self.layout:
            x = self.values({k: v.cpu() for k, v in state.items()})  # [B, V]
            states = [self.space.blocks[name].num_states for name, per in self.layout for _ in range(per)]
            num_joint = 1
            for s in states:
                num_joint *= s
            if bool((tt == tt[0]).all()) and num_joint <= 4 * B:
                # one time for all items: evaluate every joint state once, then look the items up
                grid = torch.tensor(list(itertools.product(*[range(s) for s in states])), dtype=torch.long)
                table = self._class_marginals(self._log_posterior(grid, tt[:1].expand(num_joint)))
                key = torch.zeros(B, dtype=torch.long)
                for v, s in enumerate(states):
                    key = key * s + x[:, v]
                logm = table[key]
            else:
                logm = self._class_marginals(self._log_posterior(x, tt))  # [B, V, K_max]
            v0 = 0
            for name, per in self.layout:
                block = self.space.blocks[name]
                k = block.num_classes
                out[name] = logm[:, v0 : v0 + per, :k].reshape(B * per, k).to(block.device)
                v0 += per
        for name, (mean, variance) in self.gaussians.items():
            block = self.space.blocks[name]
            schedule = self.space.schedules[name]
            a = block.per_item(torch.as_tensor(schedule.alpha(tt)).double().to(block.device))
            s = block.per_item(torch.as_tensor(schedule.sigma(tt)).double().to(block.device))
            x = state[name].double()
            out[name] = (mean + a * variance / (a * a * variance + s * s) * (x - a * mean)).to(state[name].dtype)
        return out


def exact_sampler_law(
    oracle: CategoricalTableOracle, times: Tensor, *, method: str = "euler", eta: float = 0.0
) -> Tensor:
    """The exact distribution ``[C]`` over table cells of a categorical joint sampler's output.

    Enumerates every joint state of one item (``S^V`` of them), evaluates the oracle on all of them
    at each step, forms the joint transition matrix as the product of the per-variable
    :meth:`~moldiff.core.categorical.CategoricalSpace.transition_probs`, and propagates the prior
    through the grid ``times`` (which must end at ``t = 0``). For a space of categorical blocks only.

    Args:
        oracle: the exact denoiser (its space fixes the variables, priors and schedules).
        times: the sampler's clock, from ``t_max`` to ``0``.
        method: ``"euler"`` (:func:`~moldiff.core.sample_joint_euler`, with ``eta``) or
            ``"posterior"`` (:func:`~moldiff.core.sample_joint_ancestral`).
    """
    space = oracle.space
    if space.continuous:
        raise ValueError("exact_sampler_law needs a space of categorical blocks only")
    levels = [float(t) for t in times]
    if levels[-1] != 0.0:
        raise ValueError("the grid must end at t = 0")
    states_per_var = []
    for name, per in oracle.layout:
        states_per_var += [space.blocks[name].num_states] * per
    all_states = torch.tensor(list(itertools.product(*[range(s) for s in states_per_var])), dtype=torch.long)  # [n, V]
    n = all_states.shape[0]
    # the same variables for n items, one per joint state
    blocks, v0 = {}, 0
    enum_state = {}
    for name, per in oracle.layout:
        block = space.blocks[name]
        blocks[name] = block.with_items(torch.repeat_interleave(torch.arange(n), per), n)
        enum_state[name] = all_states[:, v0 : v0 + per].reshape(-1)
        v0 += per
    enum_space = JointSpace(blocks, {k: space.schedules[k] for k in blocks})
    enum_oracle = CategoricalTableOracle(enum_space, oracle.table)
    # initial law: the prior, independently per variable
    law = torch.ones(n, dtype=torch.float64)
    v0 = 0
    for name, per in oracle.layout:
        p0 = space.blocks[name].prior_probs.cpu()
        for j in range(per):
            law = law * p0[all_states[:, v0 + j]]
        v0 += per
    for t, t_next in zip(levels[:-1], levels[1:]):
        pred = enum_oracle(enum_state, torch.full((n,), t, dtype=torch.float64))
        trans = torch.ones(n, 1, dtype=torch.float64)
        for name, per in oracle.layout:
            block = blocks[name]
            schedule = space.schedules[name]
            a, a_next = float(schedule.alpha(t)), float(schedule.alpha(t_next))
            probs = (
                block.transition_probs(enum_state[name], pred[name], a, a_next, method=method, eta=eta, dt=t - t_next)
                .double()
                .reshape(n, per, -1)
            )
            for j in range(per):
                trans = (trans[:, :, None] * probs[:, j, None, :]).reshape(n, -1)
        law = law @ trans
    # keep the states whose values are all data classes (none masked), in table order
    data = torch.ones(n, dtype=torch.bool)
    for v, k in enumerate(oracle.classes):
        data &= all_states[:, v] < k
    index = torch.zeros(n, dtype=torch.long)
    for v, k in enumerate(oracle.classes):
        index = index * k + all_states[:, v].clamp_max(k - 1)
    out = torch.zeros(oracle.probs.numel(), dtype=torch.float64)
    return out.index_add_(0, index[data], law[data])
