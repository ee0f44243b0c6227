"""A molecule model that generates atom types, formal charges, bonds and coordinates together.

The second molecule model family of moldiff (the first, :mod:`moldiff.molecules.model`, is EDM's:
types as continuous one-hot features, bonds perceived afterwards from distances). Following MiDi
(Vignac et al. 2023), EQGAT-diff (Le et al. 2024) and SemlaFlow (Irwin et al. 2024), the state of a
molecule of ``n`` atoms is

* ``pos``: coordinates in Angstrom / ``coord_scale`` ``[n, 3]``, zero centre of mass, moved by
  flow matching on the linear interpolant ``x_t = (1 - t) x_0 + t eps`` (Lipman et al. 2023;
  :class:`moldiff.core.FlowSchedule`);
* ``type``: the atom type of every atom, ``charge``: its formal charge class, and ``bond``: the
  bond class of every unordered atom pair ``i < j`` (none / single / double / triple / aromatic),
  each a categorical variable moved by discrete flow matching (Campbell et al. 2024; Gat et al.
  2024) with a masking, uniform or marginal prior (:class:`moldiff.core.CategoricalSpace`).

All four run on one clock in one :class:`moldiff.core.JointSpace`, so one sampler
(``joint_euler``, ``joint_heun``, ``joint_ancestral``) steps them together. The network
(:class:`moldiff.nn.PairEGNN`) reads the noisy state (one-hot classes, Gaussian RBFs of the pair
distances in Angstrom, the time) and, with self-conditioning (Chen et al. 2023), its own previous
prediction (class probabilities and the RBFs of the predicted distances); it predicts the clean
state: coordinates and logits of every categorical variable. The loss is
:func:`moldiff.core.joint_loss`: a weighted sum of the coordinate MSE and the cross-entropies, with
an optional time weighting (EQGAT-diff's clipped SNR).

A sampled molecule is an RDKit molecule built from the generated bonds and charges
(:func:`moldiff.molecules.bond_metrics.bonded_molecule`), no distance-based perception.

**Conditioning on molecular properties** (``model.conditioning: [alpha, gap, ...]``, any of the QM9
properties, for EDM's Table 3 protocol, Hoogeboom et al. 2022, Sec. 5.3): each property enters
normalised as EDM does, ``(c - mean) / MAD`` over the training data (the generator's half of the
QM9 training split, ``data.half: generator``; :func:`~moldiff.molecules.training_data.normalise_context`).
The values of a molecule go through a :class:`~moldiff.nn.embeddings.MaskedScalarEmbedding` (a
learned embedding per property, and a learned "missing" vector in place of a property not given)
into one vector that is concatenated to every atom's input features, as EDM concatenates its context
(``condition_mode: input``), and/or modulates the node states before every layer by FiLM
(``film``; ``both``). In training every property is dropped independently with probability
``condition_dropout`` (and all of them at once with ``condition_dropout_all``), as classifier-free
guidance trains its null condition (Ho & Salimans 2022), so one model samples given any subset of
its properties, and unconditionally. Sampling takes ``condition=`` (any subset where the model was
trained with dropout), ``guidance_scale`` (classifier-free guidance of every block,
:func:`moldiff.core.joint_classifier_free_guidance`) and ``guidance`` (e.g. gradient guidance of the
coordinates by a property predictor, :func:`moldiff.molecules.predictor.joint_predictor_guidance`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from moldiff.core import (
    CategoricalSchedule,
    CategoricalSpace,
    FlowSchedule,
    JointSpace,
    clipped_snr_weight,
    get_sampler,
    joint_classifier_free_guidance,
    joint_inpainting,
    joint_loss,
    joint_times,
    upper_triangle_edges,
    zero_com_space,
)
from moldiff.errors import ConfigError
from moldiff.nn.embeddings import GaussianRBF, MaskedScalarEmbedding
from moldiff.nn.pair_egnn import PairEGNN

from .model import SizeHistogram
from .pyg import as_molecule_batch
from .qm9 import QM9_PROPERTIES
from .training_data import normalise_context

Tensor = torch.Tensor

__all__ = ["MoleculeFlowConfig", "MoleculeFlow", "BLOCKS"]

#: The blocks of the joint state: coordinates, then atom types, formal charges and pair bond classes.
BLOCKS = ("pos", "type", "charge", "bond")


@dataclass
class MoleculeFlowConfig:
    """The ``model:`` section of a joint molecule flow config.

    Attributes:
        hidden: node features of the network (default: 128).
        pair_hidden: pair features of the network (default: 32).
        layers: message-passing layers (default: 6).
        num_rbf: Gaussian RBFs of pair distances, 0 to ``rbf_cutoff`` Angstrom (default: 16).
        rbf_cutoff: the last RBF centre in Angstrom (default: 8).
        coords_range: bound of one pair's coordinate step per layer (default: 10).
        normalization_factor: sums over neighbours are divided by it (default: 10).
        time_features: sinusoidal features of ``t`` given to every node, besides ``t`` (default: 8).
        coord_scale: Angstrom per unit of the coordinate state; the prior is ``N(0, I)`` in those
            units (default: 1).
        type_prior, charge_prior, bond_prior: ``"masking"``, ``"uniform"`` or ``"marginal"`` (the
            training split's class frequencies) prior of each categorical block (default: marginal,
            as MiDi and EQGAT-diff).
        categorical_schedule: ``kind`` of :class:`moldiff.core.CategoricalSchedule` (default: linear).
        categorical_power: its power (default: 1).
        loss_weights: ``{block: weight}`` (default: EQGAT-diff's 3 / 0.4 / 1 / 2 for
            pos / type / charge / bond).
        time_weight: ``"none"`` or ``"clipped_snr"`` (EQGAT-diff's ``w(t) = clip(SNR(t), 0.05, 1.5)`` of
            the coordinate interpolant, ``SNR = (1 - t)^2 / t^2``, on every term as in EQGAT-diff: the
            loss near the data weighs up to 30 times more than near the prior) (default: none).
        self_condition: probability of training a batch with self-conditioning (0: off) (default: 0.5).
        sampler: ``"joint_euler"``, ``"joint_heun"`` or ``"joint_ancestral"`` (default: joint_euler).
        sample_steps: sampler steps (default: 100).
        sample_eta: categorical stochasticity of the Euler step (Campbell et al.) (default: 0).
        sample_rho: time grid ``t_k = (1 - k/n)^rho`` (1: uniform; > 1 denser near the data) (default: 1).
        conditioning: QM9 properties the model is conditioned on, e.g. ``[alpha]`` (one model per
            property, as EDM) or ``[alpha, gap, homo, lumo, mu, Cv]`` (empty: unconditional)
            (default: none).
        condition_dropout: probability of dropping each property independently in training (its
            "missing" embedding takes its place): with it, any subset of the properties may be
            given when sampling (default: 0).
        condition_dropout_all: probability of dropping every property of a molecule at once in
            training, the null condition of classifier-free guidance (default: 0).
        condition_single: probability that a training molecule keeps exactly one of its properties
            (drawn uniformly) instead of the independent ``condition_dropout``: with six properties
            and ``condition_dropout = 0.5`` alone, a molecule is seen with one property and the other
            five missing (EDM's Table 3 setting) 9 % of the time (default: 0).
        condition_features: width of the condition embedding (default: 32).
        condition_mode: ``"input"`` (the embedding concatenated to every atom's input features, as
            EDM feeds its context), ``"film"`` (FiLM of the node states before every layer,
            :class:`~moldiff.nn.PairEGNN`'s ``film_features``) or ``"both"`` (default: input).
    """

    hidden: int = 128
    pair_hidden: int = 32
    layers: int = 6
    num_rbf: int = 16
    rbf_cutoff: float = 8.0
    coords_range: float = 10.0
    normalization_factor: float = 10.0
    time_features: int = 8
    coord_scale: float = 1.0
    type_prior: Literal["masking", "uniform", "marginal"] = "marginal"
    charge_prior: Literal["masking", "uniform", "marginal"] = "marginal"
    bond_prior: Literal["masking", "uniform", "marginal"] = "marginal"
    categorical_schedule: Literal["linear", "polynomial", "cosine"] = "linear"
    categorical_power: float = 1.0
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"pos": 3.0, "type": 0.4, "charge": 1.0, "bond": 2.0}
    )
    time_weight: Literal["none", "clipped_snr"] = "none"
    time_weight_floor: float = 0.05
    self_condition: float = 0.5
    sampler: Literal["joint_euler", "joint_heun", "joint_ancestral"] = "joint_euler"
    sample_steps: int = 100
    sample_eta: float = 0.0
    sample_rho: float = 1.0
    conditioning: list[str] = field(default_factory=list)
    condition_dropout: float = 0.0
    condition_dropout_all: float = 0.0
    condition_single: float = 0.0
    condition_features: int = 32
    condition_mode: Literal["input", "film", "both"] = "input"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.loss_weights) - set(BLOCKS))
        if unknown:
            raise ConfigError(f"loss_weights: unknown blocks {unknown}; the blocks are {list(BLOCKS)}")
        if not 0.0 <= self.self_condition <= 1.0:
            raise ConfigError(f"self_condition: a probability in [0, 1], got {self.self_condition}")
        unknown = [p for p in self.conditioning if p not in QM9_PROPERTIES]
        if unknown:
            raise ConfigError(f"conditioning: unknown QM9 properties {unknown}; available: {list(QM9_PROPERTIES)}")
        twice = sorted({p for p in self.conditioning if self.conditioning.count(p) > 1})
        if twice:
            raise ConfigError(f"conditioning: {twice} given more than once")
        if not 0.0 < self.time_weight_floor <= 1.5:
            raise ConfigError(f"time_weight_floor: in (0, 1.5] (the upper clip), got {self.time_weight_floor}")
        for name in ("condition_dropout", "condition_dropout_all", "condition_single"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: a probability in [0, 1], got {getattr(self, name)}")
        if self.condition_features < 1:
            raise ConfigError(f"condition_features: must be at least 1, got {self.condition_features}")

    @property
    def condition_optional(self) -> bool:
        """Whether a property may be left out when sampling (the model learned its "missing" embedding)."""
        return self.condition_dropout > 0 or self.condition_dropout_all > 0 or self.condition_single > 0


class MoleculeFlow(nn.Module):
    """Joint flow matching over coordinates, atom types, formal charges and bonds (see the module docstring).

    Args:
        config: the model configuration.
        stats: dataset statistics, saved with the weights: ``atom_types`` (element symbols, in class
            order), ``atomic_numbers``, ``charge_values`` (formal charge of each charge class),
            ``bond_classes`` (names of the bond classes, class 0 = not bonded),
            ``num_atoms_histogram`` (``{N: count}``) and ``marginals`` (``{"type", "charge", "bond"}``
            class frequencies of the training split, the marginal priors); for conditional models the
            properties' statistics of :func:`~moldiff.molecules.training_data.context_stats`
            (``context_mean``, ``context_mad``, ``context_range``, ``context_given_n``).
    """

    def __init__(self, config: MoleculeFlowConfig, stats: dict) -> None:
        super().__init__()
        self.config = config
        self.stats = stats
        self.atom_types: list[str] = list(stats["atom_types"])
        self.register_buffer(
            "atomic_numbers", torch.tensor(stats["atomic_numbers"], dtype=torch.long), persistent=False
        )
        self.register_buffer("charge_values", torch.tensor(stats["charge_values"], dtype=torch.long), persistent=False)
        self.num_classes = {
            "type": len(self.atom_types),
            "charge": len(stats["charge_values"]),
            "bond": len(stats["bond_classes"]),
        }
        self.priors = {"type": config.type_prior, "charge": config.charge_prior, "bond": config.bond_prior}
        self.marginals = {
            name: torch.tensor(stats["marginals"][name], dtype=torch.float64) for name in self.num_classes
        }
        states = {n: k + (1 if self.priors[n] == "masking" else 0) for n, k in self.num_classes.items()}
        self.num_states = states
        node_in = states["type"] + states["charge"] + 1 + config.time_features
        node_in += self.num_classes["type"] + self.num_classes["charge"]  # self-conditioning: class probabilities
        pair_in = states["bond"] + self.num_classes["bond"] + config.num_rbf  # + predicted bond probs, distances
        self.conditioning: list[str] = list(config.conditioning)
        self.condition_embedding = None
        if self.conditioning:
            missing = [k for k in ("context_mean", "context_mad") if k not in stats]
            if missing:
                raise ConfigError(f"a model conditioned on {self.conditioning} needs the statistics {missing}")
            self.condition_embedding = MaskedScalarEmbedding(len(self.conditioning), config.condition_features)
            if config.condition_mode in ("input", "both"):
                node_in += config.condition_features  # appended last: weights of an unconditional model fit before it
        film = config.condition_features if self.conditioning and config.condition_mode in ("film", "both") else 0
        self.network = PairEGNN(
            node_in,
            pair_in,
            self.num_classes["type"] + self.num_classes["charge"],
            self.num_classes["bond"],
            hidden=config.hidden,
            pair_hidden=config.pair_hidden,
            layers=config.layers,
            num_rbf=config.num_rbf,
            rbf_cutoff=config.rbf_cutoff / config.coord_scale,
            coords_range=config.coords_range,
            normalization_factor=config.normalization_factor,
            film_features=film,
        )
        self.self_condition_rbf = GaussianRBF(config.num_rbf, 0.0, config.rbf_cutoff / config.coord_scale)
        self.register_buffer(
            "time_frequencies", math.pi * 2.0 ** torch.arange(config.time_features // 2).float(), persistent=False
        )
        self.coordinate_schedule = FlowSchedule(t_min=0.0, t_max=1.0)
        self.categorical_schedule = CategoricalSchedule(config.categorical_schedule, config.categorical_power)
        self.num_atoms = SizeHistogram(stats["num_atoms_histogram"])

    # ------------------------------------------------------------------ the joint space of a batch
    def space(self, batch: Tensor, num_graphs: int, pairs: Tensor | None = None) -> JointSpace:
        """The :class:`~moldiff.core.JointSpace` of a packed batch (``batch [N]``, sorted)."""
        pairs = upper_triangle_edges(batch, num_graphs) if pairs is None else pairs
        blocks = {"pos": zero_com_space(batch, num_graphs)}
        for name in ("type", "charge"):
            blocks[name] = CategoricalSpace.over_nodes(
                batch, self.num_classes[name], num_graphs, prior=self.priors[name], marginal=self.marginals[name]
            )
        blocks["bond"] = CategoricalSpace.over_edges(
            pairs,
            batch,
            self.num_classes["bond"],
            num_graphs,
            prior=self.priors["bond"],
            marginal=self.marginals["bond"],
        )
        schedules = {
            "pos": self.coordinate_schedule,
            **{n: self.categorical_schedule for n in ("type", "charge", "bond")},
        }
        return JointSpace(blocks, schedules)

    # ------------------------------------------------------------------ the denoiser
    def _time_features(self, t: Tensor) -> Tensor:
        angles = t[:, None].float() * self.time_frequencies
        return torch.cat([t[:, None].float(), angles.sin(), angles.cos()], dim=1)

    def denoise(
        self,
        state: dict[str, Tensor],
        t: Tensor,
        *,
        batch: Tensor,
        pairs: Tensor,
        self_condition: dict[str, Tensor] | None = None,
        condition: Tensor | None = None,
        condition_mask: Tensor | None = None,
        **_,
    ) -> dict[str, Tensor]:
        """The joint denoiser: clean-state predictions at ``(state, t)``.

        Args:
            state: ``{"pos": [N, 3], "type": [N], "charge": [N], "bond": [P]}`` (classes as state indices).
            t: ``[B]`` times.
            batch: ``[N]`` graph of every atom; ``pairs``: ``[2, P]`` the pairs of the ``bond`` block.
            self_condition: the previous prediction (same keys, logits), or ``None``.
            condition: conditional models: ``[B, P]`` normalised property values (columns in the
                order of ``config.conditioning``; :meth:`condition_inputs`), ``None``: every property
                missing (the unconditional model of classifier-free guidance).
            condition_mask: ``[B, P]`` bool, true where a property is given (default: all given).

        Returns:
            ``{"pos": x0_hat [N, 3], "type": [N, K_type], "charge": [N, K_charge], "bond": [P, K_bond]}``
            (logits for the categorical blocks).
        """
        pos = state["pos"]
        dtype = pos.dtype
        k_type, k_charge, k_bond = self.num_classes["type"], self.num_classes["charge"], self.num_classes["bond"]
        if self_condition is None:
            sc_node = pos.new_zeros(pos.shape[0], k_type + k_charge)
            sc_pair = pos.new_zeros(pairs.shape[1], k_bond + self.config.num_rbf)
        else:
            sc_node = torch.cat([self_condition["type"].softmax(-1), self_condition["charge"].softmax(-1)], 1).to(dtype)
            x0 = self_condition["pos"].to(dtype)
            r0 = (x0[pairs[0]] - x0[pairs[1]]).pow(2).sum(-1).add(1e-8).sqrt()
            sc_pair = torch.cat(
                [self_condition["bond"].softmax(-1).to(dtype), self.self_condition_rbf(r0).to(dtype)], 1
            )
        h = torch.cat(
            [
                F.one_hot(state["type"], self.num_states["type"]).to(dtype),
                F.one_hot(state["charge"], self.num_states["charge"]).to(dtype),
                self._time_features(t)[batch].to(dtype),
                sc_node,
            ],
            dim=1,
        )
        film = None
        if self.condition_embedding is not None:
            num_graphs = t.shape[0]
            if condition is None:
                condition = pos.new_zeros(num_graphs, len(self.conditioning))
                condition_mask = torch.zeros(num_graphs, len(self.conditioning), dtype=torch.bool, device=pos.device)
            elif condition_mask is None:
                condition_mask = torch.ones(condition.shape, dtype=torch.bool, device=condition.device)
            embedding = self.condition_embedding(condition.to(pos.device), condition_mask.to(pos.device))[batch]
            if self.config.condition_mode in ("input", "both"):
                h = torch.cat([h, embedding.to(dtype)], dim=1)
            if self.config.condition_mode in ("film", "both"):
                film = embedding.to(dtype)
        pair_attr = torch.cat([F.one_hot(state["bond"], self.num_states["bond"]).to(dtype), sc_pair], dim=1)
        x, node, pair = self.network(pos, h, pair_attr, pairs, film=film)
        return {"pos": x, "type": node[:, :k_type], "charge": node[:, k_type:], "bond": pair}

    # ------------------------------------------------------------------ training
    def encode(self, batch) -> dict[str, Tensor]:
        """The clean joint state of a :class:`~moldiff.molecules.bond_data.BondedBatch`."""
        return {
            "pos": batch.pos / self.config.coord_scale,
            "type": batch.atom_types,
            "charge": batch.charge_classes,
            "bond": batch.edge_types,
        }

    def condition_inputs(
        self, values, num_graphs: int, device=None, *, allow_missing: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(condition [B, P], condition_mask [B, P])`` for :meth:`denoise` from property values in
        physical units: ``{name: value or [B] values}`` (a subset where ``config.condition_optional``)
        or a ``[B, P]`` tensor of all of them, normalised by the training data's mean and MAD (EDM)."""
        if not self.conditioning:
            raise ValueError("this model is unconditional: it takes no condition")
        if isinstance(values, dict):
            unknown = [n for n in values if n not in self.conditioning]
            if unknown:
                raise ValueError(f"this model is conditioned on {self.conditioning}; unknown {unknown}")
        optional = self.config.condition_optional if allow_missing is None else allow_missing
        return normalise_context(
            self.stats,
            self.conditioning,
            values,
            num_graphs,
            spread="context_mad",
            allow_missing=optional,
            device=device,
        )

    def adapt_trained_weights(self, weights: dict[str, Tensor], source_config: dict) -> tuple[dict, list[str]]:
        """``train.init_partial`` from a model conditioned on more properties: its condition embedding
        reduced to this model's properties, exactly (``(weights, [adapted names])``; unchanged when
        the source is not such a model).

        The source embeds ``e = W_out silu(sum_p e_p)`` (:class:`~moldiff.nn.MaskedScalarEmbedding`);
        the properties this model lacks are always missing here, so their constant ``sum m_q`` is
        folded into the kept properties' bias and "missing" rows (a ``1/k`` share each of the ``k``
        kept): given any subset of this model's properties, it embeds them as the source did with
        the others missing, so step 0 samples as the source conditioned on those alone.
        """
        source = list(((source_config or {}).get("model") or {}).get("conditioning") or [])
        mine = self.conditioning
        prefix = "condition_embedding."
        if not mine or source == mine or not set(mine) <= set(source) or f"{prefix}weight" not in weights:
            return weights, []
        keep = [source.index(p) for p in mine]
        dropped = [i for i in range(len(source)) if i not in keep]
        out = dict(weights)
        folded = weights[f"{prefix}missing"][dropped].sum(0) / len(keep)
        out[f"{prefix}weight"] = weights[f"{prefix}weight"][keep].clone()
        out[f"{prefix}bias"] = weights[f"{prefix}bias"][keep] + folded
        out[f"{prefix}missing"] = weights[f"{prefix}missing"][keep] + folded
        return out, [f"{prefix}{name}" for name in ("weight", "bias", "missing")]

    def drop_conditions(self, present: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Training's condition dropout: each property kept with probability ``1 - condition_dropout``
        (or, with probability ``condition_single``, exactly one drawn uniformly), then all of a
        molecule's dropped with probability ``condition_dropout_all``, ``[B, P]`` bool."""
        cfg = self.config
        given = present
        if cfg.condition_dropout > 0:
            present = present & (
                torch.rand(present.shape, generator=generator, device=present.device) >= cfg.condition_dropout
            )
        if cfg.condition_single > 0:
            num_graphs, num_properties = given.shape
            single = torch.rand(num_graphs, 1, generator=generator, device=given.device) < cfg.condition_single
            choice = torch.randint(num_properties, (num_graphs,), generator=generator, device=given.device)
            only = torch.nn.functional.one_hot(choice, num_properties).bool()
            present = torch.where(single, given & only, present)
        if cfg.condition_dropout_all > 0:
            keep = (
                torch.rand(present.shape[0], 1, generator=generator, device=present.device) >= cfg.condition_dropout_all
            )
            present = present & keep
        return present

    def training_loss(self, batch, generator: torch.Generator | None = None):
        """:func:`moldiff.core.joint_loss` of a bonded batch: weighted coordinate MSE and cross-entropies
        (conditional models: the batch's properties, columns in ``config.conditioning`` order, each
        dropped as :meth:`drop_conditions` says). ``batch``: a :class:`~moldiff.molecules.bond_data.BondedBatch`
        or a torch_geometric ``Batch`` with bonds (:func:`~moldiff.molecules.pyg.as_molecule_batch`)."""
        batch = as_molecule_batch(batch, self.atomic_numbers, bonded=True)
        space = self.space(batch.batch, batch.num_graphs, batch.edge_index)
        extra = {"batch": batch.batch, "pairs": batch.edge_index}
        if self.conditioning:
            if batch.properties is None:
                raise ValueError(
                    f"a model conditioned on {self.conditioning} trains on molecules with those properties"
                )
            values, present = self.condition_inputs(
                batch.properties, batch.num_graphs, batch.pos.device, allow_missing=False
            )
            extra.update(condition=values, condition_mask=self.drop_conditions(present, generator))
        time_weight = None
        if self.config.time_weight == "clipped_snr":
            time_weight = clipped_snr_weight(self.coordinate_schedule, low=self.config.time_weight_floor)
        per_item, terms = joint_loss(
            self.denoise,
            self.encode(batch),
            space,
            generator=generator,
            weights=self.config.loss_weights,
            time_weight=time_weight,
            extra_args=extra,
            self_condition_prob=self.config.self_condition,
        )
        loss = per_item.mean()
        return loss, {f"{name}_loss": term.mean().detach() for name, term in terms.items()}

    def denoise_batch(self, batch, t: Tensor | float, **denoise_options) -> dict[str, Tensor]:
        """:meth:`denoise` at the state a batch of molecules encodes (:meth:`encode`: coordinates, atom
        types, charge classes, the bond class of every atom pair), at time ``t``.

        Args:
            batch: a :class:`~moldiff.molecules.bond_data.BondedBatch` or a torch_geometric ``Batch`` with
                bonds (:func:`~moldiff.molecules.pyg.as_molecule_batch`): the same molecules give the same output.
            t: ``[B]`` or one time in ``[0, 1]`` (0: data).
            denoise_options: passed to :meth:`denoise` (``self_condition``, ``condition``, ``condition_mask``).

        Returns:
            As :meth:`denoise`; the ``bond`` rows follow the pairs of the moldiff batch (``edge_index``).
        """
        batch = as_molecule_batch(batch, self.atomic_numbers, bonded=True)
        t = torch.as_tensor(t, dtype=torch.float32, device=batch.pos.device).reshape(-1).expand(batch.num_graphs)
        return self.denoise(self.encode(batch), t, batch=batch.batch, pairs=batch.edge_index, **denoise_options)

    def state_for_sampling(self) -> dict:
        return {"stats": self.stats, "config": asdict(self.config)}

    # ------------------------------------------------------------------ sampling
    def sample_num_atoms(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """Molecule sizes drawn from the training histogram ``p(N)``, ``[num]``."""
        return self.num_atoms.sample(num, generator)

    def sampling_defaults(
        self, sampler: str | None = None, steps: int | None = None, grid: str | None = None
    ) -> tuple[str, int, None]:
        """``(sampler, steps, None)``: the config's where not given (the clock is :func:`moldiff.core.joint_times`)."""
        return sampler or self.config.sampler, steps or self.config.sample_steps, None

    @torch.no_grad()
    def sample_states(
        self,
        num_atoms: Sequence[int] | Tensor,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        generator=None,
        callback: Callable | None = None,
        eta: float | None = None,
        rho: float | None = None,
        known: dict[str, Tensor] | None = None,
        masks: dict[str, Tensor] | None = None,
        condition=None,
        guidance_scale: float = 1.0,
        guidance: Callable | None = None,
        device=None,
        **sampler_options,
    ) -> dict[str, Tensor]:
        """Sample one packed batch of molecules.

        Args:
            num_atoms: ``[B]`` sizes (each at least 2).
            sampler: a joint sampler name (default: the config's).
            steps: sampler steps (default: the config's).
            generator: one generator, or one per molecule (:func:`moldiff.core.item_generators`).
            eta, rho: categorical stochasticity and time grid (default: the config's).
            known: parts of the state to hold fixed (a fragment to grow molecules around), in the
                layout of the returned state: ``{"pos": [N, 3] Angstrom, "type": [N], "charge": [N],
                "bond": [P]}`` (classes as indices; any subset of the blocks; anything on free
                entries). Held by :func:`moldiff.core.joint_inpainting` (replacement, inputs re-noised
                by each block's forward process); the sample ends on them exactly (coordinates up to
                one translation per molecule: zero centre of mass).
            masks: ``{name: bool}``, the same blocks: ``[N]`` for ``pos``, ``type`` and ``charge``,
                ``[P]`` for ``bond``; true where fixed.
            condition: conditional models: ``{property: value or [B] values}`` in physical units
                (:data:`~moldiff.molecules.qm9.QM9_PROPERTIES`); a subset of ``config.conditioning``
                where the model was trained with condition dropout, the others "missing"; ``None``:
                every property missing (needs condition dropout).
            guidance_scale: classifier-free guidance weight ``w`` of every block against the
                unconditional model (every property missing): 1 is the conditional model, 0 the
                unconditional one (:func:`moldiff.core.joint_classifier_free_guidance`).
            guidance: optional ``guidance(denoiser, space, extra_args) -> denoiser`` wrapping the
                (classifier-free guided) joint denoiser, e.g. gradient guidance of the coordinates by
                a property predictor (:func:`moldiff.molecules.predictor.joint_predictor_guidance`).

        Returns:
            ``{"pos": [N, 3] Angstrom, "type": [N], "charge": [N], "bond": [P], "batch": [N], "pairs": [2, P]}``
            (classes as indices; the pairs of each molecule in :func:`moldiff.core.upper_triangle_edges` order).
        """
        device = device or next(self.parameters()).device
        sizes = torch.as_tensor(num_atoms, dtype=torch.long).cpu()
        if bool((sizes < 2).any()):
            raise ValueError("every molecule needs at least 2 atoms (zero centre of mass needs two points)")
        num_graphs = sizes.numel()
        batch = torch.repeat_interleave(torch.arange(num_graphs), sizes).to(device)
        pairs = upper_triangle_edges(batch, num_graphs)
        space = self.space(batch, num_graphs, pairs)
        sampler, steps, _ = self.sampling_defaults(sampler, steps)
        times = joint_times(steps, rho=self.config.sample_rho if rho is None else rho)
        state = space.prior(generator)
        denoiser: Callable = self.denoise
        extra = {"batch": batch, "pairs": pairs}
        if self.conditioning:
            if condition is None and not self.config.condition_optional:
                raise ValueError(f"this model is conditioned on {self.conditioning}: pass condition=")
            values, present = self.condition_inputs(condition or {}, num_graphs, device)
            if guidance_scale != 1.0:
                denoiser = joint_classifier_free_guidance(
                    self.denoise,
                    space,
                    guidance_scale,
                    {"condition": values, "condition_mask": present},
                    {"condition": None, "condition_mask": None},
                )
            else:
                extra.update(condition=values, condition_mask=present)
        elif condition:
            raise ValueError("this model is unconditional: it takes no condition")
        if guidance is not None:
            denoiser = guidance(denoiser, space, extra)
        if known is not None:
            scale = {"pos": 1.0 / self.config.coord_scale}
            denoiser = joint_inpainting(
                denoiser,
                space,
                {n: v.to(device) * scale[n] if n in scale else v.to(device) for n, v in known.items()},
                {n: m.to(device).reshape(-1, 1) if n == "pos" else m.to(device) for n, m in masks.items()},
                generator=generator,
            )
        state = get_sampler(sampler)(
            denoiser,
            state,
            times,
            space,
            generator=generator,
            callback=callback,
            extra_args=extra,
            eta=self.config.sample_eta if eta is None else eta,
            self_condition=self.config.self_condition > 0,
            **sampler_options,
        )
        return {
            "pos": state["pos"] * self.config.coord_scale,
            "type": state["type"],
            "charge": state["charge"],
            "bond": state["bond"],
            "batch": batch,
            "pairs": pairs,
        }

    def split_molecules(self, sample: dict[str, Tensor]) -> list[dict[str, Any]]:
        """Per-molecule numpy records of a packed sample: ``{"atomic_numbers" [n], "formal_charges" [n],
        "positions" [n, 3], "bonds" [b, 3] rows (i, j, class) with class > 0}``."""
        batch = sample["batch"].cpu()
        z = self.atomic_numbers.cpu()[sample["type"].cpu()].numpy()
        q = self.charge_values.cpu()[sample["charge"].cpu()].numpy()
        p = sample["pos"].detach().cpu().double().numpy()
        pairs, bond = sample["pairs"].cpu(), sample["bond"].cpu()
        counts = torch.bincount(batch).tolist()
        starts = np.concatenate([[0], np.cumsum(counts)])
        owner = batch[pairs[0]].numpy()
        out = []
        for b, n in enumerate(counts):
            s = slice(starts[b], starts[b] + n)
            keep = (owner == b) & (bond.numpy() > 0)
            rows = np.stack(
                [pairs[0].numpy()[keep] - starts[b], pairs[1].numpy()[keep] - starts[b], bond.numpy()[keep]], 1
            )
            out.append(
                {"atomic_numbers": z[s], "formal_charges": q[s], "positions": p[s], "bonds": rows.astype(np.int64)}
            )
        return out
