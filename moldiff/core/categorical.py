"""Categorical state spaces: per-node and per-edge categorical variables of a packed graph batch.

Time runs as everywhere in the core: ``t = 0`` is data, ``t = 1`` is the prior (the papers below
run the other way; their time is ``tau = 1 - t`` and their ``kappa(tau)`` is our ``alpha(1 - tau)``).

**Variables and states.** A categorical block holds ``M`` variables (one per node, or one per
unordered node pair of each graph), each with ``K`` data classes. Its state is a long tensor ``[M]``
of *state* indices in ``0..S-1``: ``S = K + 1`` for the masking prior, whose extra state ``K`` is the
mask, and ``S = K`` otherwise. ``item_index [M]`` names the graph of every variable, as ``batch``
does for nodes. A prediction for the block is a tensor of logits ``[M, K]`` over the data classes:
``softmax(logits)`` is the network's ``p(x_0 = k | x_t)``, the posterior mean of ``one_hot(x_0)``.

**Noising** (the "mixture path": Campbell et al. 2024, "Generative Flows on Discrete State-Spaces",
Sec. 3; Gat et al. 2024, "Discrete Flow Matching", Sec. 2), independently for every variable::

    q_t(x_t | x_0) = alpha(t) delta(x_t, x_0) + (1 - alpha(t)) p_0(x_t)

with ``alpha`` from a :class:`CategoricalSchedule` (``alpha(0) = 1``, ``alpha(1) = 0``) and the prior
``p_0`` = ``delta(mask)`` (``"masking"``, the absorbing state), ``1/K`` (``"uniform"``) or the data
marginal ``m`` (``"marginal"``, as DiGress and EQGAT-diff use for atom and bond types).

**Sampling steps** from ``t`` to ``s < t`` for one variable in state ``x``, with
``pi = softmax(logits)`` (for masking, an unmasked variable keeps its value: ``pi = delta(x)``,
the "carry-over" of Sahoo et al. 2024, MDLM):

* ``"euler"`` — the CTMC Euler step of discrete flow matching. The generating rate of the mixture
  path is ``R*(x -> y) = -alpha'(t) / (1 - alpha(t)) pi(y)`` (Campbell et al.'s ``R*_t``, Gat et
  al.'s factorised velocity); over the step we use its exact integral for a fixed ``pi``: with
  probability ``(alpha(s) - alpha(t)) / (1 - alpha(t))`` the variable is redrawn from ``pi`` (this is
  ``-alpha' dt / (1 - alpha)`` to first order, and exactly 1 on a last step to ``alpha = 1``).
  Stochasticity ``eta > 0`` adds a detailed-balance rate (Campbell et al., Sec. 3.3: any ``R^DB``
  with ``p_t(x|x_0) R^DB(x -> y|x_0) = p_t(y|x_0) R^DB(y -> x|x_0)`` leaves the marginals unchanged).
  We take ``R^DB(x -> y | x_0) = eta p_t(y | x_0) / (1 - alpha(t))`` for ``y != x``, valid for every
  prior; for masking it is Campbell et al.'s choice (re-mask at rate ``eta``, unmask at rate
  ``eta alpha / (1 - alpha)``). Averaged over ``x_0 ~ pi`` it adds, for ``y != x``,
  ``dt * eta * (alpha / (1 - alpha) pi(y) + p_0(y))``. The step to ``alpha = 1`` has no eta part.
* ``"posterior"`` — the ancestral step of discrete diffusion (Austin et al. 2021, D3PM, with the
  ``x_0``-parameterised reverse process):
  ``p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) pi(x_0)`` with the exact posterior of the mixture
  path, whose forward kernel from ``s`` to ``t`` is the mixture with ``beta = alpha(t)/alpha(s)``.
  For masking it coincides with ``"euler"`` at ``eta = 0``.

Both steps are exact for one variable whatever the step size; with several variables the product
of per-variable steps is exact only as the steps shrink (the variables move independently given
the state), which is what the tests measure.

**Edges.** :func:`upper_triangle_edges` lists every unordered node pair ``i < j`` of every graph,
graph by graph; :func:`edge_id` finds the position of any pair in that list (e.g. to write a sparse
bond list into the per-pair variables); :func:`edge_permutation` says how the pair variables move
when the nodes of the graphs are permuted.

Nothing here knows about chemistry.
"""

from __future__ import annotations

import math

import torch

from moldiff.errors import UnknownNameError

from .spaces import Generators

Tensor = torch.Tensor

PRIORS = ("masking", "uniform", "marginal")
METHODS = ("euler", "posterior")


# ------------------------------------------------------------------------------------------------
# Schedule
# ------------------------------------------------------------------------------------------------


class CategoricalSchedule:
    """``alpha(t)``: the probability that a categorical variable still holds its clean value at time ``t``.

    Args:
        kind: ``"linear"`` (``alpha = 1 - t``, the linear path of Campbell et al. 2024 and Gat et
            al. 2024), ``"polynomial"`` (``alpha = (1 - t)^power``) or ``"cosine"``
            (``alpha = cos^2(pi t / 2)``) (default: ``"linear"``).
        power: exponent of the polynomial kind (default: 1, the linear path).

    All maths runs in float64; ``alpha(0) = 1`` and ``alpha(1) = 0``.
    """

    KINDS = ("linear", "polynomial", "cosine")

    def __init__(self, kind: str = "linear", power: float = 1.0) -> None:
        if kind not in self.KINDS:
            raise UnknownNameError(f"unknown categorical schedule {kind!r}; choose from {self.KINDS}")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.kind = kind
        self.power = float(power) if kind == "polynomial" else 1.0

    def alpha(self, t) -> Tensor:
        """Keep probability ``alpha(t)``, float64, shaped like ``t``."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "cosine":
            return torch.cos(0.5 * math.pi * t) ** 2
        return (1 - t) ** self.power

    def alpha_derivative(self, t) -> Tensor:
        """``d alpha / dt`` (non-positive), float64, shaped like ``t``."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "cosine":
            return -0.5 * math.pi * torch.sin(math.pi * t)
        return -self.power * (1 - t) ** (self.power - 1)

    def __repr__(self) -> str:
        return f"CategoricalSchedule(kind={self.kind!r}, power={self.power})"


# ------------------------------------------------------------------------------------------------
# Sampling helper
# ------------------------------------------------------------------------------------------------


def sample_categorical(
    probs: Tensor, generator: torch.Generator | None = None, uniform: Tensor | None = None
) -> Tensor:
    """One draw per row of ``probs [..., S]`` (non-negative, rows need not be normalised), ``[...]`` long.

    Inverse-CDF sampling with ``u`` in ``(0, total]``, so a class of probability zero is never drawn;
    ``uniform`` (``[..., 1]`` draws in ``[0, 1)``) replaces the draw from ``generator`` when given.
    """
    cdf = probs.cumsum(-1)
    if uniform is None:
        uniform = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=cdf.dtype)
    u = 1.0 - uniform.to(cdf.dtype)
    u = u * cdf[..., -1:]
    return (cdf < u).sum(-1).clamp_max(probs.shape[-1] - 1)


# ------------------------------------------------------------------------------------------------
# Space
# ------------------------------------------------------------------------------------------------


class CategoricalSpace:
    """``M`` categorical variables of a batch of ``B`` items (per node or per node pair of packed graphs).

    Args:
        num_classes: number of data classes ``K``.
        item_index: ``[M]`` long, the item (graph) of every variable.
        num_items: ``B`` (default: ``item_index.max() + 1``; pass it to avoid a device synchronisation).
        prior: ``"masking"`` (an extra mask state ``K``), ``"uniform"`` or ``"marginal"``
            (default: ``"masking"``).
        marginal: ``[K]`` class probabilities of the data, required for the marginal prior.
        edge_index: ``[2, M]`` node pairs, kept for reference when the variables live on edges.

    Attributes:
        num_states: ``S`` (``K + 1`` for masking, else ``K``).
        mask_index: the mask state ``K`` for masking, else ``None``.
        prior_probs: ``[S]`` float64, ``p_0``.
        count: ``[B]`` number of variables of each item.
    """

    def __init__(
        self,
        num_classes: int,
        item_index: Tensor,
        num_items: int | None = None,
        *,
        prior: str = "masking",
        marginal: Tensor | None = None,
        edge_index: Tensor | None = None,
    ) -> None:
        if prior not in PRIORS:
            raise UnknownNameError(f"unknown categorical prior {prior!r}; choose from {PRIORS}")
        if item_index.dim() != 1:
            raise ValueError(f"item_index must be a 1-D index vector, got shape {tuple(item_index.shape)}")
        self.num_classes = int(num_classes)
        if self.num_classes < 1:
            raise ValueError("a categorical variable needs at least one class")
        self.prior = prior
        self.item_index = item_index.long()
        self.device = item_index.device
        if num_items is None:
            num_items = int(item_index.max().item()) + 1 if item_index.numel() else 0
        self.num_items = int(num_items)
        self.num_variables = item_index.numel()
        self.shape = (self.num_variables,)
        self.edge_index = edge_index
        self.count = torch.bincount(self.item_index, minlength=self.num_items)
        self.mask_index = self.num_classes if prior == "masking" else None
        self.num_states = self.num_classes + (1 if prior == "masking" else 0)
        if prior == "masking":
            p0 = torch.zeros(self.num_states, dtype=torch.float64)
            p0[-1] = 1.0
        elif prior == "uniform":
            p0 = torch.full((self.num_classes,), 1.0 / self.num_classes, dtype=torch.float64)
        else:
            if marginal is None:
                raise ValueError("the marginal prior needs the data's class probabilities (marginal=[K])")
            p0 = torch.as_tensor(marginal, dtype=torch.float64).flatten()
            if p0.numel() != self.num_classes or bool((p0 < 0).any()) or float(p0.sum()) <= 0:
                raise ValueError(f"marginal must hold {self.num_classes} non-negative probabilities")
            p0 = p0 / p0.sum()
        self.marginal = None if marginal is None else torch.as_tensor(marginal, dtype=torch.float64).flatten()
        self.prior_probs = p0.to(self.device)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def over_nodes(cls, batch: Tensor, num_classes: int, num_graphs: int | None = None, **kwargs) -> "CategoricalSpace":
        """One variable per node of a packed batch (``batch [N]``, the graph of every node)."""
        return cls(num_classes, batch, num_graphs, **kwargs)

    @classmethod
    def over_edges(
        cls, edge_index: Tensor, batch: Tensor, num_classes: int, num_graphs: int | None = None, **kwargs
    ) -> "CategoricalSpace":
        """One variable per listed node pair (``edge_index [2, E]``, e.g. :func:`upper_triangle_edges`)."""
        if num_graphs is None:
            num_graphs = int(batch.max().item()) + 1
        return cls(num_classes, batch[edge_index[0]], num_graphs, edge_index=edge_index, **kwargs)

    def with_items(self, item_index: Tensor, num_items: int | None = None) -> "CategoricalSpace":
        """The same kind of variable (classes, prior) for another batch."""
        return CategoricalSpace(self.num_classes, item_index, num_items, prior=self.prior, marginal=self.marginal)

    # --- per-item reductions ----------------------------------------------------------------------
    def per_item(self, values: Tensor) -> Tensor:
        """Broadcast a per-item vector ``[B]`` to the variables, ``[M]``."""
        return values[self.item_index]

    def sum_per_item(self, values: Tensor) -> Tensor:
        """Sum of per-variable values ``[M]`` over each item, ``[B]``."""
        out = torch.zeros(self.num_items, device=values.device, dtype=values.dtype)
        return out.index_add_(0, self.item_index, values)

    def mean_per_item(self, values: Tensor) -> Tensor:
        """Mean of per-variable values ``[M]`` over each item, ``[B]`` (0 for an item without variables)."""
        return self.sum_per_item(values) / self.count.clamp_min(1).to(values.dtype)

    # --- states -----------------------------------------------------------------------------------
    def one_hot(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``[M] -> [M, S]`` one-hot states (the mask is the last column for masking): a network input."""
        return torch.nn.functional.one_hot(x.long(), self.num_states).to(dtype)

    def rand(self, generator: Generators = None, width: int = 1) -> Tensor:
        """Uniform draws ``[M, width]`` in ``[0, 1)``, float64; with one generator per item
        (:func:`moldiff.core.item_generators`) item ``b``'s variables draw from ``generator[b]``
        (the variables of an item are contiguous, as :meth:`over_nodes` of a sorted batch and
        :func:`upper_triangle_edges` list them)."""
        if isinstance(generator, (list, tuple)):
            if len(generator) != self.num_items:
                raise ValueError(f"{len(generator)} generators for {self.num_items} items")
            parts = [
                torch.rand((int(n), width), generator=g, device=self.device, dtype=torch.float64)
                for n, g in zip(self.count.tolist(), generator)
            ]
            return torch.cat(parts) if parts else torch.empty((0, width), device=self.device, dtype=torch.float64)
        return torch.rand((self.num_variables, width), generator=generator, device=self.device, dtype=torch.float64)

    def sample_prior(self, generator: Generators = None) -> Tensor:
        """``[M]`` states drawn from ``p_0``."""
        if self.prior == "masking":
            return torch.full(self.shape, self.num_classes, dtype=torch.long, device=self.device)
        probs = self.prior_probs.expand(self.num_variables, -1)
        return sample_categorical(probs, uniform=self.rand(generator))

    def noising_matrix(self, alpha: Tensor | float) -> Tensor:
        """``Q[..., k, s] = q_t(x_t = s | x_0 = k) = alpha delta(k, s) + (1 - alpha) p_0(s)``.

        Args:
            alpha: scalar or ``[...]`` keep probabilities.

        Returns:
            ``[..., K, S]`` float64 (rows sum to one).
        """
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device=self.device)[..., None, None]
        eye = torch.eye(self.num_classes, self.num_states, dtype=torch.float64, device=self.device)
        return alpha * eye + (1 - alpha) * self.prior_probs

    def noise_probs(self, x0: Tensor, alpha: Tensor | float) -> Tensor:
        """``q_t(x_t | x_0)`` of every variable, ``[M, S]`` float64 (``alpha``: scalar or ``[M]``)."""
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device=self.device)
        onehot = torch.nn.functional.one_hot(x0.long(), self.num_states).to(torch.float64)
        return alpha[..., None] * onehot + (1 - alpha[..., None]) * self.prior_probs

    def noise(self, x0: Tensor, alpha: Tensor | float, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``x_t ~ q_t(. | x_0)``: keep ``x_0`` with probability ``alpha``, else draw from the prior.

        Args:
            x0: ``[M]`` clean classes in ``0..K-1``.
            alpha: scalar or ``[M]`` keep probabilities (``CategoricalSchedule.alpha(t)[item_index]``).
        """
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device=self.device).expand(self.shape)
        keep = self.rand(generator)[:, 0] < alpha
        return torch.where(keep, x0.long(), self.sample_prior(generator))

    # --- predictions --------------------------------------------------------------------------------
    def clean_probs(self, logits: Tensor, x: Tensor) -> Tensor:
        """``pi = softmax(logits)`` over the ``K`` classes, at least float32, ``[M, K]``; for the masking
        prior an unmasked variable keeps its value (``pi = delta(x)``)."""
        dtype = torch.promote_types(logits.dtype, torch.float32)
        pi = torch.softmax(logits.to(dtype), dim=-1)
        if self.prior == "masking":
            unmasked = x != self.mask_index
            keep = torch.nn.functional.one_hot(x.clamp_max(self.num_classes - 1), self.num_classes).to(dtype)
            pi = torch.where(unmasked[:, None], keep, pi)
        return pi

    def _embed(self, pi: Tensor) -> Tensor:
        """``[M, K] -> [M, S]`` with zero probability on the mask state."""
        if self.prior != "masking":
            return pi
        return torch.cat([pi, pi.new_zeros(pi.shape[0], 1)], dim=-1)

    def transition_probs(
        self,
        x: Tensor,
        logits: Tensor,
        alpha: float,
        alpha_next: float,
        *,
        method: str = "euler",
        eta: float = 0.0,
        dt: float | None = None,
    ) -> Tensor:
        """Probabilities of the next state of every variable for one step from ``t`` to ``s < t``.

        Args:
            x: ``[M]`` current states.
            logits: ``[M, K]`` the network's logits of ``x_0``.
            alpha, alpha_next: ``alpha(t)`` and ``alpha(s)`` (``alpha_next >= alpha``).
            method: ``"euler"`` (CTMC Euler, with ``eta``) or ``"posterior"`` (ancestral); see the
                module docstring for the formulas.
            eta: Campbell et al.'s stochasticity (``"euler"`` only; default 0).
            dt: ``t - s``, needed when ``eta > 0``.

        Returns:
            ``[M, S]`` rows summing to one, at least float32.
        """
        if method not in METHODS:
            raise UnknownNameError(f"unknown categorical step {method!r}; choose from {METHODS}")
        alpha, alpha_next = float(alpha), float(alpha_next)
        if alpha_next < alpha:
            raise ValueError(f"a sampling step must not add noise: alpha {alpha} -> {alpha_next}")
        pi = self._embed(self.clean_probs(logits, x))
        dtype = pi.dtype
        p0 = self.prior_probs.to(dtype)
        current = torch.nn.functional.one_hot(x.long(), self.num_states).to(dtype)
        if method == "posterior":
            return self._posterior(x, pi, current, alpha, alpha_next)
        jump = 1.0 if alpha_next >= 1.0 else (alpha_next - alpha) / (1.0 - alpha)
        off = jump * pi
        if eta > 0 and alpha_next < 1.0:
            if dt is None:
                raise ValueError("eta > 0 needs the step length dt")
            off = off + (dt * eta * alpha / (1.0 - alpha)) * pi + (dt * eta) * p0
        off = off * (1 - current)
        total = off.sum(-1, keepdim=True)
        off = off / total.clamp_min(1.0)  # an over-long step moves with probability one, in proportion
        return off + (1 - off.sum(-1, keepdim=True)).clamp_min(0) * current

    def _posterior(self, x: Tensor, pi: Tensor, current: Tensor, alpha_t: float, alpha_s: float) -> Tensor:
        """``sum_{x_0} q(x_s = y | x_t = x, x_0) pi(x_0)`` with ``q(x_t | x_s) = beta delta + (1 - beta) p_0``."""
        p0 = self.prior_probs.to(pi.dtype)
        p0_x = p0[x][:, None]  # p_0(x_t)
        beta = alpha_t / alpha_s
        a = beta * current + (1 - beta) * p0_x  # q(x_t = x | x_s = y), [M, S]
        denom = alpha_t * current + (1 - alpha_t) * p0_x  # q(x_t = x | x_0 = y)
        tiny = torch.finfo(pi.dtype).tiny
        w = torch.where(denom > 0, pi / denom.clamp_min(tiny), torch.zeros_like(pi))  # pi(x_0) / q(x_t | x_0)
        probs = a * (alpha_s * w + (1 - alpha_s) * p0 * w.sum(-1, keepdim=True))
        total = probs.sum(-1, keepdim=True)
        # a state impossible at t (e.g. unmasked at alpha = 0) has no posterior: it stays
        return torch.where(total > 0, probs / total.clamp_min(tiny), current)

    def step(
        self,
        x: Tensor,
        logits: Tensor,
        alpha: float,
        alpha_next: float,
        *,
        generator: torch.Generator | None = None,
        method: str = "euler",
        eta: float = 0.0,
        dt: float | None = None,
    ) -> Tensor:
        """Draw the next states ``[M]`` from :meth:`transition_probs`."""
        return sample_categorical(
            self.transition_probs(x, logits, alpha, alpha_next, method=method, eta=eta, dt=dt),
            uniform=self.rand(generator),
        )

    # --- loss ---------------------------------------------------------------------------------------
    def cross_entropy(self, logits: Tensor, x0: Tensor, x_t: Tensor | None = None) -> Tensor:
        """Per-variable cross-entropy ``-log softmax(logits)[x_0]``, ``[M]`` (nats, at least float32).

        With ``x_t`` given and the masking prior, variables that are not masked in ``x_t`` count 0
        (their clean value is known: the masked-diffusion ELBO sums over masked positions only;
        Shi et al. 2024, MD4; Sahoo et al. 2024, MDLM).
        """
        dtype = torch.promote_types(logits.dtype, torch.float32)
        ce = torch.nn.functional.cross_entropy(logits.to(dtype), x0.long(), reduction="none")
        if x_t is not None and self.prior == "masking":
            ce = ce * (x_t == self.mask_index).to(dtype)
        return ce

    def __repr__(self) -> str:
        kind = "edges" if self.edge_index is not None else "variables"
        return (
            f"CategoricalSpace({self.num_variables} {kind}, {self.num_items} items, K={self.num_classes}, "
            f"prior={self.prior!r})"
        )


# ------------------------------------------------------------------------------------------------
# Edge indexing of packed graphs
# ------------------------------------------------------------------------------------------------


def _graph_offsets(batch: Tensor, num_graphs: int | None):
    batch = batch.long()
    if num_graphs is None:
        num_graphs = int(batch.max().item()) + 1 if batch.numel() else 0
    counts = torch.bincount(batch, minlength=num_graphs)
    node_offset = torch.cumsum(counts, 0) - counts
    pairs = counts * (counts - 1) // 2
    edge_offset = torch.cumsum(pairs, 0) - pairs
    return batch, counts, node_offset, edge_offset


def upper_triangle_edges(batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Every unordered node pair ``i < j`` of every graph of a packed batch, ``[2, E]``.

    ``E = sum_b n_b (n_b - 1) / 2``. Pairs are listed graph by graph, row-major within a graph
    (``(0,1), (0,2), ..., (1,2), ...`` in local numbering). ``batch [N]`` must be sorted (graphs
    contiguous), as in every packed batch of this package.
    """
    batch, counts, node_offset, _ = _graph_offsets(batch, num_graphs)
    local = torch.arange(batch.numel(), device=batch.device) - node_offset[batch]
    later = counts[batch] - 1 - local  # pairs (i, j > i) starting at each node
    src = torch.repeat_interleave(torch.arange(batch.numel(), device=batch.device), later)
    first = torch.cumsum(later, 0) - later
    dst = src + 1 + torch.arange(src.numel(), device=batch.device) - first[src]
    return torch.stack([src, dst])


def edge_id(i: Tensor, j: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """Position of the unordered pairs ``{i, j}`` (``i != j``, same graph) in :func:`upper_triangle_edges`.

    Args:
        i, j: ``[P]`` node indices of the packed batch (any order within a pair).
        batch: ``[N]`` sorted graph index of every node.

    Returns:
        ``[P]`` long indices into the ``E`` pair variables, e.g. ``values[edge_id(b0, b1, batch)] = order``
        writes a sparse list of labelled pairs into a dense per-pair variable.
    """
    batch, counts, node_offset, edge_offset = _graph_offsets(batch, num_graphs)
    lo, hi = torch.minimum(i, j).long(), torch.maximum(i, j).long()
    g = batch[lo]
    n, a, b = counts[g], lo - node_offset[g], hi - node_offset[g]
    return edge_offset[g] + a * (2 * n - a - 1) // 2 + (b - a - 1)


def edge_permutation(perm: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    """How the pair variables move when the nodes are permuted within their graphs.

    If the nodes are reordered as ``x_new = x[perm]`` (``batch[perm] == batch``, e.g.
    :func:`moldiff.testing.random_permutation_within_graphs`), the pair variables of the reordered
    batch, listed by :func:`upper_triangle_edges`, are ``values_new = values[edge_permutation(perm, batch)]``.

    Returns:
        ``[E]`` long, a permutation of ``0..E-1``.
    """
    edges = upper_triangle_edges(batch, num_graphs)
    return edge_id(perm[edges[0]], perm[edges[1]], batch, num_graphs)
