"""Protein backbone diffusion on C-alpha traces: unconditional generation and motif scaffolding.

The state of a chain of ``L`` residues is its CA coordinates divided by ``coord_scale`` (10 A by
default, so coordinates have about unit spread), ``[L, 3]`` per chain in a packed batch, in the
zero centre-of-mass space of :func:`moldiff.core.zero_com_space` (``(L-1) * 3`` degrees of
freedom). Schedule, preconditioning, loss, samplers and inpainting all come from
:mod:`moldiff.core`; the defaults follow EDM (Karras et al. 2022) with ``sigma_data = 1``.

**Network.** :class:`BackboneNetwork` wraps :class:`~moldiff.nn.egnn.EGNNDenoiser` on a graph of
``knn`` nearest neighbours (on the noisy input) united with sequence neighbours ``i +- o`` for
``o`` in ``sequence_offsets`` (:func:`backbone_graph`): at most ``L (knn + 2 |offsets|)`` edges,
linear in the length, so 300+ residue chains are cheap. Edge features, besides EGNN's squared
distances:

* the relative sequence position ``j - i`` clipped to ``+-max_relative_position``, one-hot;
* with ``chirality`` (default), ``sin`` and ``cos`` of the signed CA virtual dihedral at ``i`` and
  at ``j`` (:func:`node_dihedral_features`; zero at the chain ends). ``sin(phi)`` changes sign
  under a reflection, so the network is SE(3)- but not E(3)-equivariant: it can tell a
  right-handed helix from its mirror image, which a distance-only EGNN cannot;
* with ``distance_rbf > 0``, Gaussian RBFs of the edge length in A of the noisy chain (the network
  input rescaled by :meth:`BackboneNetwork.angstrom_per_unit`), fine enough to see a 0.2 A error in
  the 3.8 A CA-CA spacing.

Sequence edges make node order meaningful, so the network is not permutation-equivariant (nor
should it be).

**Generation.** :meth:`BackboneDiffusion.sample` draws lengths from the training histogram unless
given; ``temperature`` < 1 scales every Gaussian draw of the sampler (the initial noise and, for
stochastic samplers, the noise of every step) by ``temperature``, as RFdiffusion's ``noise_scale``
(Watson et al. 2023); with an ODE sampler only the initial noise is scaled.
:meth:`BackboneDiffusion.scaffold` holds a motif's CA atoms fixed with
:func:`moldiff.core.inpainting` (replacement; the motif is exact at the end of sampling) and
reports the motif RMSD after superposition.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from moldiff.core import (
    DiffusionSettings,
    GraphSpace,
    best_particles,
    denoising_loss,
    edm_preconditioning,
    edm_sigma_from_c_noise,
    get_sampler,
    initial_noise,
    inpainting,
    item_generators,
    zero_com_space,
)
from moldiff.core.settings import require_positive
from moldiff.nn.egnn import EGNNDenoiser
from moldiff.nn.embeddings import GaussianRBF
from moldiff.nn.graph import knn_edges, sequence_edges

from .contig import Contig, ContigError, ContigLayout, parse_contig
from .geometry import dihedral_angle, kabsch_rmsd
from .pdb_io import read_backbone, write_design

Tensor = torch.Tensor

__all__ = [
    "BackboneModelConfig",
    "BackboneNetwork",
    "BackboneDiffusion",
    "Design",
    "backbone_graph",
    "local_distance_loss",
    "node_dihedral_features",
    "relative_position_features",
    "save_designs",
]


@dataclass
class BackboneModelConfig(DiffusionSettings):
    """The ``model:`` section of a backbone config: the network's keys below, plus the diffusion keys
    of :class:`~moldiff.core.DiffusionSettings` (EDM's schedule, preconditioning and weighting by
    default), four of them with other defaults here.

    Attributes:
        hidden: hidden features of the EGNN (default: 64).
        layers: equivariant blocks (default: 4).
        knn: spatial neighbours per residue (default: 16).
        sequence_offsets: sequence separations joined by edges (default: ``[1, 2]``).
        max_relative_position: relative positions are clipped to ``+-`` this (default: 16).
        chirality: add the reflection-odd dihedral edge features (default: true).
        attention: EGNN edge gating (default: true).
        coords_range: bound of one edge's tanh coordinate step, in scaled units (default: 15).
        normalization_factor: EGNN sums over neighbours are divided by it (default: 20, about the
            number of neighbours).
        coord_scale: Angstrom per unit of the diffused coordinates (default: 10).
        sigma_data: EDM's data standard deviation in scaled units (default: 1).
        noise_options: training noise levels, ``ln sigma ~ N(p_mean, p_std^2)`` (default: ``{p_mean: -1.0, p_std: 1.4}``).
        sampler: default sampler (default: ``"heun"``).
        sample_steps: default sampler steps (default: 50).
        local_distance_weight: weight of the auxiliary local-geometry loss of
            :func:`local_distance_loss` on the denoised chain (default: 0, off; the shipped
            ``cath_ca`` uses 0.25).
        local_distance_offsets: sequence separations it compares (default: ``[1, 2, 3]``).
        local_distance_sigma_max: it applies only to chains noised at ``sigma`` up to this, in scaled
            units (default: 0.3, i.e. 3 A at ``coord_scale`` 10), where local geometry is decided.
        distance_rbf: Gaussian radial basis functions of every edge's length in A at the network
            input, centres evenly spaced from 0 to ``distance_rbf_max`` (default: 0, none; the
            shipped ``cath_ca`` uses 16). EGNN's own edge feature is the squared distance in scaled
            units, in which 3.8 and 4.2 A differ by 0.03: too fine for a small MLP to resolve.
        distance_rbf_max: last RBF centre in A (default: 20).
        norm_constant: ``C`` in EGNN's edge direction ``(x_i - x_j) / (|x_i - x_j| + C)``, in scaled
            units (default: 1, EDM's value for molecules in A; 0.1 is the same 1 A at ``coord_scale`` 10).
    """

    hidden: int = 64
    layers: int = 4
    knn: int = 16
    sequence_offsets: list[int] = field(default_factory=lambda: [1, 2])
    max_relative_position: int = 16
    chirality: bool = True
    attention: bool = True
    coords_range: float = 15.0
    normalization_factor: float = 20.0
    coord_scale: float = 10.0
    sigma_data: float = 1.0
    noise_options: dict[str, Any] = field(default_factory=lambda: {"p_mean": -1.0, "p_std": 1.4})
    sampler: str = "heun"
    sample_steps: int = 50
    local_distance_weight: float = 0.0
    local_distance_offsets: list[int] = field(default_factory=lambda: [1, 2, 3])
    local_distance_sigma_max: float = 0.3
    distance_rbf: int = 0
    distance_rbf_max: float = 20.0
    norm_constant: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "hidden", "layers", "knn", "coords_range", "normalization_factor", "coord_scale")


# ------------------------------------------------------------------------------------------------
# graph and features
# ------------------------------------------------------------------------------------------------


def backbone_graph(pos: Tensor, batch: Tensor, num_graphs: int, knn: int, sequence_offsets: Sequence[int]) -> Tensor:
    """k-nearest-neighbour edges united with sequence edges, without duplicates.

    Args:
        pos: ``[N, 3]`` coordinates, each chain's residues contiguous and in order.
        batch: ``[N]`` sorted chain index.
        num_graphs: ``B``.
        knn: spatial neighbours per residue.
        sequence_offsets: sequence separations to join.

    Returns:
        ``edge_index [2, E]`` sorted by receiving then sending node, ``E <= N (knn + 2 |offsets|)``.
    """
    n = pos.shape[0]
    edges = torch.cat(
        [
            knn_edges(pos, batch, knn, num_graphs=num_graphs),
            sequence_edges(batch, sequence_offsets, num_graphs=num_graphs),
        ],
        dim=1,
    )
    key = torch.unique(edges[0] * n + edges[1])  # sorted, deduplicated
    return torch.stack([key // n, key % n])


def relative_position_features(edge_index: Tensor, max_relative_position: int, dtype=torch.float32) -> Tensor:
    """One-hot of the clipped relative sequence position ``clip(j - i, -R, R)``, ``[E, 2R + 1]``."""
    r = max_relative_position
    rel = (edge_index[1] - edge_index[0]).clamp(-r, r) + r
    return nn.functional.one_hot(rel, 2 * r + 1).to(dtype)


def node_dihedral_features(pos: Tensor, batch: Tensor) -> Tensor:
    """``[sin phi_i, cos phi_i]`` of the CA virtual dihedral ``phi_i = dihedral(x_{i-1}, x_i, x_{i+1},
    x_{i+2})`` of every residue, zero where the four residues are not in one chain, ``[N, 2]``.

    ``sin phi`` is odd under reflections, ``cos phi`` even; both are invariant under rotations and
    translations (and under scaling of the coordinates).
    """
    n = pos.shape[0]
    idx = torch.arange(n, device=pos.device)
    im1, ip1, ip2 = (idx - 1).clamp(min=0), (idx + 1).clamp(max=n - 1), (idx + 2).clamp(max=n - 1)
    valid = (idx >= 1) & (idx + 2 < n) & (batch[im1] == batch) & (batch[ip2] == batch)
    phi = dihedral_angle(pos[im1], pos, pos[ip1], pos[ip2])
    feats = torch.stack([torch.sin(phi), torch.cos(phi)], dim=-1)
    return feats * valid.unsqueeze(-1).to(pos.dtype)


def local_distance_loss(
    pred: Tensor, target: Tensor, batch: Tensor, num_graphs: int, offsets: Sequence[int] = (1, 2, 3)
) -> Tensor:
    """Per-chain mean squared error of the distances between residues ``i`` and ``i + o`` (``o`` in
    ``offsets``) of a predicted and a true chain, ``[B]``, in the squared units of the coordinates.

    The auxiliary loss of FrameDiff (Yim et al. 2023, Sec. 4.2, the pairwise-distance term restricted
    to near sequence neighbours): a denoiser trained only on the coordinate error can leave the
    3.8 A CA-CA spacing loose, and the generated chains broken. Invariant under rotations,
    translations and reflections of either chain.

    Args:
        pred, target: ``[N, 3]`` coordinates, each chain's residues contiguous and in order.
        batch: ``[N]`` sorted chain index.
        num_graphs: ``B``.
        offsets: positive sequence separations.

    Returns:
        ``[B]``; zero for a chain shorter than the smallest offset.
    """
    edges = sequence_edges(batch, offsets, num_graphs=num_graphs)
    i, j = edges[:, edges[0] < edges[1]]
    error = ((pred[i] - pred[j]).norm(dim=-1) - (target[i] - target[j]).norm(dim=-1)) ** 2
    total = torch.zeros(num_graphs, dtype=pred.dtype, device=pred.device).index_add_(0, batch[i], error)
    count = torch.bincount(batch[i], minlength=num_graphs).clamp(min=1)
    return total / count.to(pred.dtype)


class BackboneNetwork(nn.Module):
    """The denoising network: an EGNN on :func:`backbone_graph` with sequence and chirality edge features.

    Follows the core's network contract ``network(x [N, 3], t [B], *, batch, num_graphs) -> [N, 3]``
    (the EGNN's zero-mean coordinate output).

    Args:
        config: the model configuration.
    """

    def __init__(self, config: BackboneModelConfig) -> None:
        super().__init__()
        self.config = config
        extra = 2 * config.max_relative_position + 1 + (4 if config.chirality else 0) + config.distance_rbf
        self.egnn = EGNNDenoiser(
            1,
            1,
            hidden=config.hidden,
            layers=config.layers,
            attention=config.attention,
            coords_range=config.coords_range,
            norm_constant=config.norm_constant,
            edges="knn",
            knn=config.knn,
            extra_edge_features=extra,
            normalization_factor=config.normalization_factor,
        )
        self.rbf = GaussianRBF(config.distance_rbf, 0.0, config.distance_rbf_max) if config.distance_rbf > 0 else None

    def angstrom_per_unit(self, t: Tensor) -> Tensor:
        """``[B]`` A per unit of the network's input coordinates. Under EDM preconditioning the
        network sees ``c_in x`` with ``c_in = 1 / sqrt(sigma^2 + sigma_data^2)`` and ``t = c_noise =
        ln(sigma) / 4`` (Karras et al. 2022, Table 1), so the noisy chain's own scale is restored by
        ``coord_scale / c_in``; for the other predictions the input is the state itself."""
        cfg = self.config
        if cfg.prediction != "edm":
            return torch.full_like(t, cfg.coord_scale)
        _, _, c_in, _ = edm_preconditioning(edm_sigma_from_c_noise(t), cfg.sigma_data)
        return cfg.coord_scale / c_in

    def graph(
        self, pos: Tensor, batch: Tensor, num_graphs: int, angstrom_per_unit: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(edge_index [2, E], edge_attr [E, extra])`` for coordinates ``pos``.

        ``angstrom_per_unit`` ``[B]`` converts ``pos`` to A for the distance RBFs (default:
        ``coord_scale``)."""
        cfg = self.config
        edge_index = backbone_graph(pos, batch, num_graphs, cfg.knn, cfg.sequence_offsets)
        parts = [relative_position_features(edge_index, cfg.max_relative_position, pos.dtype)]
        if cfg.chirality:
            dih = node_dihedral_features(pos, batch)
            parts += [dih[edge_index[0]], dih[edge_index[1]]]
        if self.rbf is not None:
            i, j = edge_index
            scale = cfg.coord_scale if angstrom_per_unit is None else angstrom_per_unit.to(pos.dtype)[batch[i]]
            parts.append(self.rbf((pos[i] - pos[j]).norm(dim=-1) * scale))
        return edge_index, torch.cat(parts, dim=-1)

    def forward(self, x: Tensor, t: Tensor, *, batch: Tensor, num_graphs: int) -> Tensor:
        t = t.to(x.dtype)
        edge_index, edge_attr = self.graph(x, batch, num_graphs, self.angstrom_per_unit(t))
        h = t[batch].unsqueeze(-1)
        eps, _ = self.egnn(x, h, batch, num_graphs, edge_index=edge_index, edge_attr=edge_attr)
        return eps


class TemperedSpace(GraphSpace):
    """A graph space whose Gaussian draws are scaled by ``temperature`` (low-temperature sampling)."""

    def __init__(
        self,
        batch: Tensor,
        width: int,
        num_graphs: int,
        temperature: float,
        dtype: torch.dtype,
        zero_com: bool = True,
    ) -> None:
        super().__init__(batch, width, num_graphs, zero_com=zero_com, dtype=dtype)
        self.temperature = float(temperature)

    def randn(self, generator=None, dtype=None):
        return super().randn(generator, dtype) * self.temperature


# ------------------------------------------------------------------------------------------------
# designs
# ------------------------------------------------------------------------------------------------


@dataclass
class Design:
    """One generated backbone.

    Attributes:
        ca: ``[L, 3]`` CA coordinates in A.
        seed: seed of the call that made it.
        index: its position in that call.
        layout: the contig layout (scaffolding only).
        motif_rmsd: CA RMSD (A) between the design's motif residues and the input motif after
            superposition (scaffolding only).
        contig: the contig string (scaffolding only).
    """

    ca: np.ndarray
    seed: int
    index: int
    layout: Optional[ContigLayout] = None
    motif_rmsd: Optional[float] = None
    contig: Optional[str] = None

    @property
    def motif_mask(self) -> np.ndarray:
        """``[L]`` bool, true at motif residues (all false for unconditional designs)."""
        return self.layout.motif_mask if self.layout is not None else np.zeros(len(self.ca), bool)

    def metadata(self) -> dict:
        """JSON-ready facts: seed, index, contig, sampled contig, motif mapping and RMSD."""
        meta: dict[str, Any] = {"seed": self.seed, "index": self.index}
        if self.layout is not None:
            meta.update({"contig": self.contig, **self.layout.to_dict(), "motif_rmsd": self.motif_rmsd})
        return meta


def save_designs(
    designs: Sequence[Design], out_dir: str | os.PathLike, *, prefix: str = "design", metadata: dict | None = None
) -> list[Path]:
    """Write each design as ``<prefix>_<index>.pdb`` with a JSON sidecar (see
    :func:`moldiff.proteins.pdb_io.write_design`); ``metadata`` (model, sampler, ...) goes into
    every sidecar. Returns the PDB paths."""
    paths = []
    for d in designs:
        meta = {**(metadata or {}), **d.metadata()}
        pdb, _ = write_design(out_dir, f"{prefix}_{d.index:04d}", d.ca, meta, motif_mask=d.motif_mask)
        paths.append(pdb)
    return paths


def _read_motif(motif_pdb, contig: Contig) -> np.ndarray:
    """CA coordinates ``[M, 3]`` of the contig's motif residues, in contig order."""
    chains = {}
    rows = []
    for seg in contig.motif_segments:
        if seg.chain not in chains:
            chains[seg.chain] = read_backbone(motif_pdb, chain=seg.chain, max_ca_gap=None, allow_nonstandard=True)
        bb = chains[seg.chain]
        for number in range(seg.start, seg.end + 1):
            try:
                rows.append(bb.ca[bb.residue_index(number)])
            except KeyError as err:
                raise ContigError(f"motif segment {seg} of contig {contig.text!r}: {err.args[0]}") from None
    return np.stack(rows)


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------


class BackboneDiffusion(nn.Module):
    """A diffusion model of protein C-alpha traces.

    Args:
        config: the model configuration.
        stats: dataset statistics saved with the weights: ``length_histogram`` (``{L: count}`` of
            the training chains), optionally ``dataset`` and ``num_structures``.

    Example:
        >>> model = BackboneDiffusion(BackboneModelConfig(hidden=8, layers=1), {"length_histogram": {30: 1}})
        >>> [d.ca.shape for d in model.sample(num=2, steps=2)]
        [(30, 3), (30, 3)]
    """

    def __init__(self, config: BackboneModelConfig, stats: dict) -> None:
        super().__init__()
        self.config = config
        self.stats = dict(stats)
        hist = {int(k): float(v) for k, v in stats.get("length_histogram", {}).items()}
        self._lengths = np.array(sorted(hist), dtype=np.int64)
        self._length_probs = np.array([hist[n] for n in sorted(hist)], dtype=np.float64)
        self.network = self.build_network(config)
        self.schedule = config.build_schedule()
        self.denoiser = config.build_denoiser(self.network, self.schedule, space_fn=self._denoiser_space)

    # ------------------------------------------------------------------ the state of a chain
    # Five hooks say what the diffused state of a chain is; a model of another representation
    # (moldiff.proteins.angles) overrides them and inherits training, sampling and scaffolding.
    state_width = 3
    zero_com = True
    min_length = 2

    def build_network(self, config) -> nn.Module:
        """The denoising network (core contract ``network(x, t, *, batch, num_graphs)``)."""
        return BackboneNetwork(config)

    def state_space(
        self, batch: Tensor, num_graphs: int, dtype: torch.dtype = torch.float32, temperature: float = 1.0
    ) -> GraphSpace:
        """The state space of a packed batch whose state rows belong to the chains ``batch``."""
        if temperature == 1.0:
            return GraphSpace(batch, self.state_width, num_graphs, zero_com=self.zero_com, dtype=dtype)
        return TemperedSpace(batch, self.state_width, num_graphs, temperature, dtype, zero_com=self.zero_com)

    def _denoiser_space(self, x: Tensor, *, batch: Tensor, num_graphs: int, **_) -> GraphSpace:
        return self.state_space(batch, num_graphs, x.dtype)

    def state_lengths(self, lengths: Sequence[int]) -> list[int]:
        """State rows of chains of these residue counts (here one row per residue)."""
        return [int(n) for n in lengths]

    def encode(self, ca: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Clean state: CA coordinates (A) centred per chain and divided by ``coord_scale``, ``[N, 3]``."""
        return zero_com_space(batch, num_graphs, dtype=ca.dtype).project(ca) / self.config.coord_scale

    def decode(self, x: Tensor, lengths: Sequence[int]) -> Tensor:
        """CA coordinates in A, ``[sum(lengths), 3]``, of a packed state ``x``."""
        return x * self.config.coord_scale

    def known_state(self, known: Tensor, mask: Tensor, lengths: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Fixed CA coordinates (A, ``[N, 3]``, ``mask [N]`` true where fixed) as state values and
        a state mask broadcastable to the state, for :func:`moldiff.core.inpainting`."""
        return known / self.config.coord_scale, mask.reshape(-1, 1)

    def structure_guidance(
        self,
        denoiser: Callable,
        space: GraphSpace,
        lengths: Sequence[int],
        potentials: dict[str, float] | None,
        sigma_max: float | None = None,
    ) -> Callable:
        """The denoiser every chain is sampled with: here the model's own (this model has no guiding
        potentials; asking for any is an error)."""
        if potentials:
            raise ValueError(f"{type(self).__name__} has no guiding potentials, got {sorted(potentials)}")
        return denoiser

    def steering_defaults(self) -> dict:
        """``particles``, ``steering`` and ``resample_every`` of :meth:`sample_states` when not given:
        here no steering (this model has no steering potentials)."""
        return {"particles": 1, "steering": {}, "resample_every": 5}

    def steering_potential(self, lengths: Sequence[int], steering: dict[str, float]) -> Callable:
        """``f(state) -> [B]`` that particle steering resamples by (higher: kept more often); this
        model has none, so asking for one is an error."""
        raise ValueError(f"{type(self).__name__} has no steering potentials, got {sorted(steering)}")

    def motif_guidance(
        self, denoiser: Callable, space: GraphSpace, known: Tensor, mask: Tensor, lengths: Sequence[int]
    ) -> Callable:
        """The denoiser that scaffolding wraps in :func:`moldiff.core.inpainting`: here the model's own
        (the replaced motif coordinates fix everything); a representation whose state cannot hold a
        motif's placement adds guidance here."""
        return denoiser

    # ------------------------------------------------------------------ training
    def training_loss(self, batch, generator: torch.Generator | None = None):
        """Mean denoising loss of a :class:`~moldiff.proteins.dataset.BackboneBatch`.

        Metrics: ``loss_std``, the spread of the per-chain losses.
        """
        x0 = self.encode(batch.ca, batch.batch, batch.num_graphs)
        rows = torch.as_tensor(self.state_lengths(batch.lengths.tolist()), device=x0.device)
        state_batch = torch.repeat_interleave(torch.arange(batch.num_graphs, device=x0.device), rows)
        space = self.state_space(state_batch, batch.num_graphs, x0.dtype)
        per_item = denoising_loss(
            self.denoiser,
            x0,
            space,
            generator=generator,
            extra_args={"batch": state_batch, "num_graphs": batch.num_graphs},
            auxiliary=self._auxiliary_loss(batch),
            **self.config.loss_options(),
        )
        return per_item.mean(), {"loss_std": per_item.detach().std() if per_item.numel() > 1 else 0.0}

    def _auxiliary_loss(self, batch) -> Callable | None:
        """The ``auxiliary`` term of :func:`~moldiff.core.denoising_loss`: ``local_distance_weight``
        times :func:`local_distance_loss` in A^2, for chains noised up to ``local_distance_sigma_max``."""
        cfg = self.config
        if cfg.local_distance_weight <= 0:
            return None

        def auxiliary(x0_hat: Tensor, x0: Tensor, t: Tensor) -> Tensor:
            near = (self.schedule.sigma(t) <= cfg.local_distance_sigma_max).to(x0.dtype)
            local = local_distance_loss(x0_hat, x0, batch.batch, batch.num_graphs, cfg.local_distance_offsets)
            return cfg.local_distance_weight * near * local * cfg.coord_scale**2

        return auxiliary

    def state_for_sampling(self) -> dict:
        return {"stats": self.stats, "config": asdict(self.config)}

    # ------------------------------------------------------------------ sampling
    def sample_lengths(self, num: int, rng: np.random.Generator | int | None = None) -> list[int]:
        """``num`` chain lengths drawn from the training histogram."""
        if self._lengths.size == 0:
            raise ValueError("this model has no length histogram: pass lengths explicitly")
        rng = np.random.default_rng(rng)
        return rng.choice(self._lengths, size=num, p=self._length_probs / self._length_probs.sum()).tolist()

    def sigmas(self, steps: int | None = None, grid: str | None = None) -> Tensor:
        """The sampler's noise levels, ``[steps + 1]``."""
        return self.config.sigmas(self.schedule, steps, grid)

    @torch.no_grad()
    def sample_states(
        self,
        lengths: Sequence[int],
        *,
        sampler: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        known: Tensor | None = None,
        mask: Tensor | None = None,
        callback: Callable | None = None,
        dtype: torch.dtype = torch.float32,
        potentials: dict[str, float] | None = None,
        potentials_sigma_max: float | None = None,
        particles: int | None = None,
        steering: dict[str, float] | None = None,
        **sampler_options,
    ) -> tuple[Tensor, Tensor]:
        """Sample one packed batch of chains.

        Args:
            lengths: residues of each chain, ``[B]``, each at least 2.
            sampler: any :data:`moldiff.core.SAMPLERS` name (default: the config's).
            steps: sampler steps (default: the config's).
            grid: time grid (default: the config's).
            temperature: scale of every Gaussian draw (see the module docstring) (default: 1).
            generator: random generator on the model's device.
            known: ``[N, 3]`` CA coordinates in A of residues to hold fixed (inpainting).
            mask: ``[N]`` bool, true where ``known`` holds.
            callback: called after each sampler step.
            dtype: dtype of the sampler state (default: float32).
            potentials: ``{name: weight}`` of the guiding potentials of :meth:`structure_guidance`
                (default: the model's configured ones; ``{}`` for none).
            potentials_sigma_max: they act only at noise levels up to this (default: the model's).
            particles: draws per chain for particle steering (:func:`moldiff.core.sample_heun_steered`,
                resampled by :meth:`steering_potential` of ``steering``; the best final draw of each
                chain is returned; 1: off) (default: :meth:`steering_defaults`).
            steering: ``{name: weight}`` of the steering potentials (default: :meth:`steering_defaults`).
            sampler_options: passed to the sampler.

        Returns:
            ``(ca [N, 3] in A, batch [N])``.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        lengths = [int(n) for n in lengths]
        if min(lengths) < self.min_length:
            raise ValueError(f"every chain needs at least {self.min_length} residues")
        defaults = self.steering_defaults()
        particles = int(defaults["particles"] if particles is None else particles)
        steering = dict(defaults["steering"] if steering is None else steering)
        if particles < 1:
            raise ValueError(f"particles must be at least 1, got {particles}")
        chosen_lengths, log_potential = lengths, None
        if particles > 1:
            if sampler not in (None, "heun_steered"):
                raise ValueError(f"particles={particles} samples with heun_steered, not {sampler!r}")
            if not any(steering.values()):
                raise ValueError(f"particles={particles} needs steering potentials (steering={{'rg': 1, ...}})")
            sampler = "heun_steered"
            lengths = [n for n in lengths for _ in range(particles)]
            generator = _particle_generators(generator, particles)
            if known is not None:
                known, mask = (_repeat_chains(t, chosen_lengths, particles) for t in (known, mask))
            log_potential = self.steering_potential(lengths, steering)
            sampler_options = {
                "log_potential": log_potential,
                "particles": particles,
                "resample_every": defaults["resample_every"],
                **sampler_options,
            }
        sizes = torch.as_tensor(self.state_lengths(lengths), dtype=torch.long)
        device = next(self.parameters()).device
        num_graphs = sizes.numel()
        batch = torch.repeat_interleave(torch.arange(num_graphs), sizes).to(device)
        space = self.state_space(batch, num_graphs, dtype, temperature)
        sigmas = self.sigmas(steps, grid)
        plain = self.state_space(batch, num_graphs, dtype)
        denoiser: Callable = self.denoiser
        if known is not None:
            known, mask = known.to(device, dtype), mask.to(device)
            denoiser = self.motif_guidance(denoiser, plain, known, mask, lengths)
        denoiser = self.structure_guidance(denoiser, plain, lengths, potentials, potentials_sigma_max)
        if known is not None:
            known_x, known_mask = self.known_state(known, mask, lengths)
            denoiser = inpainting(denoiser, plain, known_x, known_mask, generator=generator)
        x = initial_noise(space, float(sigmas[0]), generator=generator, schedule=self.schedule, dtype=dtype)
        x = get_sampler(sampler or self.config.sampler)(
            denoiser,
            x.to(device),
            sigmas,
            space,
            generator=generator,
            callback=callback,
            extra_args={"batch": batch, "num_graphs": num_graphs},
            **sampler_options,
        )
        if log_potential is not None:  # the best final draw of every chain
            best = best_particles(log_potential(x), particles)
            x = torch.cat([x[batch == b] for b in best.tolist()])
            lengths = chosen_lengths
            num_graphs = len(lengths)
        residues = torch.repeat_interleave(torch.arange(num_graphs), torch.as_tensor(lengths)).to(device)
        return self.decode(x, lengths), residues

    def _generate(
        self, lengths: list[int], seed: int, batch_size: int, known: list[np.ndarray] | None = None, **options
    ) -> list[np.ndarray]:
        """Chains of the given lengths in batches; ``known[i]`` ``[L_i, 3]`` with NaN rows where free."""
        device = next(self.parameters()).device
        out: list[np.ndarray] = []
        for start in range(0, len(lengths), batch_size):
            chunk = lengths[start : start + batch_size]
            generator = item_generators(seed, range(start, start + len(chunk)), device)  # chain i: (seed, i)
            k = m = None
            if known is not None:
                rows = torch.as_tensor(np.concatenate(known[start : start + batch_size]))
                m = ~torch.isnan(rows).any(dim=1)
                k = torch.nan_to_num(rows)
            ca, batch = self.sample_states(chunk, generator=generator, known=k, mask=m, **options)
            ca = ca.double().cpu().numpy()
            ends = np.cumsum(chunk)[:-1]
            out += np.split(ca, ends)
        return out

    def sample(
        self,
        lengths: int | Sequence[int] | None = None,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        temperature: float = 1.0,
        *,
        num: int | None = None,
        batch_size: int = 64,
        **options,
    ) -> list[Design]:
        """Generate backbones.

        Args:
            lengths: one length for all chains, or one per chain (default: drawn from the training
                length histogram).
            seed: random seed; the same seed and lengths give the same chains, whatever the batch size
                (chain ``i`` draws its noise from its own generator, :func:`moldiff.core.item_generators`).
            sampler: a :data:`moldiff.core.SAMPLERS` name (default: the config's, ``heun``).
            steps: sampler steps (default: the config's).
            temperature: noise scale below 1 for lower-temperature, less diverse samples (default: 1).
            num: number of chains (needed unless ``lengths`` is a list) (default: 1).
            batch_size: chains sampled together.
            options: ``grid``, ``callback``, ``dtype`` or sampler options (``s_churn``, ``eta``, ...).

        Returns:
            One :class:`Design` per chain.
        """
        if lengths is None:
            sizes = self.sample_lengths(num or 1, np.random.default_rng([int(seed), 1]))
        elif np.isscalar(lengths):
            sizes = [int(lengths)] * (num or 1)
        else:
            sizes = [int(n) for n in lengths]
            if num is not None and num != len(sizes):
                raise ValueError(f"{len(sizes)} lengths for num={num} chains")
        cas = self._generate(sizes, seed, batch_size, sampler=sampler, steps=steps, temperature=temperature, **options)
        return [Design(ca, int(seed), i) for i, ca in enumerate(cas)]

    def scaffold(
        self,
        motif_pdb: str | os.PathLike,
        contig: str | Contig,
        num: int = 1,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        temperature: float = 1.0,
        *,
        length: int | tuple[int, int] | None = None,
        batch_size: int = 64,
        **options,
    ) -> list[Design]:
        """Scaffold a motif: generate chains laid out by ``contig`` whose motif CA atoms are those of
        ``motif_pdb`` (held fixed by :func:`moldiff.core.inpainting`).

        Args:
            motif_pdb: PDB or mmCIF file holding the motif residues.
            contig: RFdiffusion-style contig, e.g. ``"10-20/A15-30/10-20"`` (see
                :mod:`moldiff.proteins.contig`).
            num: number of designs; each draws its own segment lengths.
            seed: random seed (segment lengths and noise).
            sampler, steps, temperature, batch_size, options: as for :meth:`sample`.
            length: optional total length, exact or ``(min, max)``.

        Returns:
            One :class:`Design` per design, with its layout and motif RMSD (A, after superposition).

        Raises:
            ContigError: for a bad contig or motif residues missing from ``motif_pdb``.
        """
        contig = parse_contig(contig) if isinstance(contig, str) else contig
        if not contig.motif_segments:
            raise ContigError(f"contig {contig.text!r} has no motif segment (use sample() for unconditional designs)")
        motif = _read_motif(motif_pdb, contig)
        motif = motif - motif.mean(axis=0)
        rng = np.random.default_rng([int(seed), 2])
        layouts = [contig.sample(rng, length) for _ in range(num)]
        known = []
        for layout in layouts:
            rows = np.full((layout.length, 3), np.nan)
            rows[layout.motif_mask] = motif
            known.append(rows)
        cas = self._generate(
            [lay.length for lay in layouts],
            seed,
            batch_size,
            known=known,
            sampler=sampler,
            steps=steps,
            temperature=temperature,
            **options,
        )
        return [
            Design(ca, int(seed), i, layout, kabsch_rmsd(ca[layout.motif_mask], motif), contig.text)
            for i, (ca, layout) in enumerate(zip(cas, layouts))
        ]


def _particle_generators(generator, particles: int):
    """One generator per particle when there is one per chain (each seeded from its chain's, so a
    chain's draws still do not depend on its batch), else ``generator`` itself."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    out = []
    for g in generator:
        seeds = torch.randint(0, 2**62, (particles,), generator=g, device=g.device).tolist()
        out += [torch.Generator(device=g.device).manual_seed(seed) for seed in seeds]
    return out


def _repeat_chains(rows: Tensor, lengths: Sequence[int], times: int) -> Tensor:
    """Packed per-residue rows with every chain's block repeated ``times`` times in place."""
    return torch.cat([chain for chain in torch.split(rows, list(lengths)) for _ in range(times)])
