"""EDM-style 3D molecule diffusion: an equivariant denoiser + the zero-CoM product space + a schedule.

The state of a molecule with ``N`` atoms is one tensor ``[N, 3 + K (+1)]`` per packed batch
(Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule Generation in 3D", Sec. 3):

* ``pos / norm_x``  — coordinates in Angstrom, zero centre of mass per molecule (``(N-1)*3`` dof);
* ``onehot / norm_h`` — the atom type as a one-hot vector over the dataset's vocabulary;
* ``Z / norm_z``    — the atomic number ("charges" in EDM; optional),

with EDM's normalisation ``[norm_x, norm_h, norm_z] = [1, 4, 10]``. Coordinates and features are
diffused jointly by the same schedule (EDM's ``polynomial_2`` with precision ``1e-5`` by default),
and decoded by the argmax of the one-hot block. The number of atoms is drawn from the training
histogram ``p(N)``. Everything that is not molecule-specific (schedules, the noise, samplers, the
loss) comes from :mod:`moldiff.core`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from moldiff.core import (
    DiffusionSettings,
    classifier_free_guidance,
    denoising_loss,
    get_sampler,
    initial_noise,
    inpainting,
    molecule_space,
    sampling_sigmas,
)
from moldiff.core.settings import require_positive
from moldiff.errors import ConfigError
from moldiff.nn.e3nn_denoiser import E3nnDenoiser
from moldiff.nn.egnn import EGNNDenoiser
from moldiff.train.precision import precision_autocast

from .pyg import as_molecule_batch
from .training_data import normalise_context

Tensor = torch.Tensor


@dataclass
class MoleculeModelConfig(DiffusionSettings):
    """The ``model:`` section of a molecule config: the network's keys, and the diffusion's keys of
    :class:`moldiff.core.DiffusionSettings` with EDM's values as defaults.

    Attributes:
        network: ``"egnn"`` (EDM's EGNN) or ``"e3nn"`` (tensor-product denoiser).
        hidden: hidden features (EDM QM9: 256).
        layers: equivariant blocks (EDM QM9: 9).
        attention: EGNN edge gating (EDM: true).
        coords_range: bound of the tanh coordinate update (EDM: 15).
        normalization_factor: EGNN sums over neighbours are divided by it (EDM QM9: 1; use about
            the typical number of neighbours for larger molecules, or training can diverge).
        edges: ``"full"``, ``"radius"`` or ``"knn"`` graphs.
        cutoff: radius in Angstrom for ``edges="radius"``.
        knn: neighbours for ``edges="knn"``.
        schedule: a :data:`moldiff.core.SCHEDULES` name (EDM: ``"polynomial"``, whose defaults are
            EDM's ``T = 1000``, power 2, precision 1e-5; set them in ``schedule_options``).
        prediction: ``"eps"``, ``"x0"``, ``"v"``, ``"score"`` or ``"edm"`` (EDM: eps).
        weighting: loss weighting of :func:`moldiff.core.loss_weight` (EDM: ``"eps"``).
        noise_sampler: training noise levels (EDM: ``"discrete"``, integer ``t`` in ``0..T``).
        sampler: default sampler (EDM's ancestral ``"ddpm"``, with ``T`` steps on a uniform grid;
            any other sampler defaults to ``sample_steps`` = 50 on the ``karras`` grid).
        norm_values: ``[norm_x, norm_h, norm_z]`` (EDM: ``[1, 4, 10]``).
        include_charges: append ``Z / norm_z`` to the features (EDM QM9: true).
        context: names of properties the model is conditioned on (empty: unconditional).
        context_dropout: probability of dropping the context in training (classifier-free guidance).
        e3nn_irreps: hidden irreps of the e3nn denoiser.

    Configs written before these keys moved to :class:`~moldiff.core.DiffusionSettings` name the
    schedule's parameters ``schedule_steps``, ``schedule_power`` and ``precision``; they still load
    (:meth:`upgrade_legacy`).
    """

    network: Literal["egnn", "e3nn"] = "egnn"
    hidden: int = 256
    layers: int = 9
    attention: bool = True
    coords_range: float = 15.0
    normalization_factor: float = 1.0
    edges: Literal["full", "radius", "knn"] = "full"
    cutoff: Optional[float] = None
    knn: Optional[int] = None
    schedule: str = "polynomial"
    prediction: str = "eps"
    weighting: str = "eps"
    noise_sampler: str = "discrete"
    sampler: str = "ddpm"
    sample_steps: int = 50
    sample_grid: str = "karras"
    norm_values: list[float] = field(default_factory=lambda: [1.0, 4.0, 10.0])
    include_charges: bool = True
    context: list[str] = field(default_factory=list)
    context_dropout: float = 0.0
    e3nn_irreps: str = "32x0e + 8x1o + 4x2e"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "hidden", "layers", "coords_range", "normalization_factor", "cutoff", "knn")
        if not 0.0 <= self.context_dropout <= 1.0:
            raise ConfigError(f"context_dropout: must lie in [0, 1], got {self.context_dropout!r}")

    @classmethod
    def upgrade_legacy(cls, data: dict) -> dict:
        """Move the keys of older configs into ``schedule_options``: ``schedule_steps`` (``num_steps`` of
        the discrete schedules), ``schedule_power`` and ``precision`` (of ``polynomial``)."""
        legacy = {key: data.pop(key) for key in ("schedule_steps", "schedule_power", "precision") if key in data}
        if not legacy:
            return data
        if "schedule_options" in data:
            raise ConfigError(f"model: give schedule_options or the older keys {sorted(legacy)}, not both")
        schedule = data.get("schedule", "polynomial")
        names = {
            "polynomial": {"schedule_steps": "num_steps", "schedule_power": "power", "precision": "precision"},
            "ddpm_linear": {"schedule_steps": "num_steps"},
            "ddpm_cosine": {"schedule_steps": "num_steps"},
        }
        data["schedule_options"] = {new: legacy[old] for old, new in names.get(schedule, {}).items() if old in legacy}
        return data


class _StateNetwork(nn.Module):
    """Adapts a graph denoiser ``net(pos, h, batch, num_graphs) -> (eps_x, eps_h)`` to the core's
    network contract ``network(x_t [N, 3+F], t [B], batch=..., num_graphs=..., context=...)``:
    the time (and the per-molecule context) is appended to every node's features."""

    def __init__(self, net: nn.Module, num_context: int) -> None:
        super().__init__()
        self.net = net
        self.num_context = num_context

    def forward(
        self, x_t: Tensor, t: Tensor, *, batch: Tensor, num_graphs: int, context: Tensor | None = None
    ) -> Tensor:
        pos, feats = x_t[:, :3], x_t[:, 3:]
        parts = [feats, t.to(x_t.dtype)[batch].unsqueeze(-1)]
        if self.num_context:
            if context is None:  # the "null" context used for classifier-free guidance
                context = torch.zeros(num_graphs, self.num_context, dtype=x_t.dtype, device=x_t.device)
            parts.append(context.to(x_t.dtype)[batch])
        eps_x, eps_h = self.net(pos, torch.cat(parts, dim=-1), batch, num_graphs)
        return torch.cat([eps_x, eps_h], dim=-1)


def _space_fn(width: int):
    """The denoiser's ``space_fn``: the batch's zero-CoM product space, built once per batch vector
    (a sampler calls the denoiser with one batch vector at every step)."""
    last: dict = {}

    def space(x: Tensor, *, batch: Tensor, num_graphs: int, **_) -> Any:
        key = (batch._version, int(num_graphs), x.dtype, batch.device, batch.shape)
        if last.get("batch") is not batch or last.get("key") != key:
            last.update(batch=batch, key=key, space=molecule_space(batch, width, num_graphs, dtype=x.dtype))
        return last["space"]

    return space


class SizeHistogram(nn.Module):
    """``p(N)``, the distribution of molecule sizes in the training set, kept with a model to draw the
    sizes of the molecules it samples (EDM, Hoogeboom et al. 2022, Sec. 3.4).

    Args:
        histogram: ``{N: count}`` (the ``num_atoms_histogram`` of a model's statistics).
    """

    def __init__(self, histogram: dict) -> None:
        super().__init__()
        hist = {int(k): float(v) for k, v in histogram.items()}
        sizes = sorted(hist)
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        probs = torch.tensor([hist[n] for n in sizes], dtype=torch.float64) / sum(hist.values())
        self.register_buffer("probs", probs, persistent=False)

    def sample(self, num: int, generator: torch.Generator | None = None, *, at_least: int | None = None) -> Tensor:
        """``num`` sizes drawn from ``p(N)``, ``[num]``; with ``at_least``, from ``p(N | N >= at_least)``
        (molecules grown around a fragment of ``at_least - 1`` atoms).

        Raises:
            ValueError: no training molecule has ``at_least`` atoms or more.
        """
        if at_least is None:
            return self.sizes[torch.multinomial(self.probs, num, replacement=True, generator=generator)]
        probs = torch.where(self.sizes >= int(at_least), self.probs, torch.zeros_like(self.probs))
        if float(probs.sum()) <= 0:
            raise ValueError(
                f"no training molecule has {at_least} atoms or more (the largest has {int(self.sizes.max())})"
            )
        return self.sizes[torch.multinomial(probs, num, replacement=True, generator=generator)]


class MoleculeDiffusion(nn.Module):
    """A 3D molecule diffusion model (EDM) over packed batches.

    Args:
        config: the model configuration.
        stats: dataset statistics, saved with the weights: ``atom_types`` (element symbols of the
            vocabulary, in one-hot order), ``atomic_numbers`` (same order), ``num_atoms_histogram``
            (``{N: count}`` over the training molecules) and, for conditional models,
            ``context_mean`` / ``context_std`` (per property, normalising the context) and
            ``context_range`` (per property ``[min, max]`` seen in training).
    """

    def __init__(self, config: MoleculeModelConfig, stats: dict) -> None:
        super().__init__()
        self.config = config
        self.stats = stats
        self.atom_types: list[str] = list(stats["atom_types"])
        self.register_buffer(
            "atomic_numbers", torch.tensor(stats["atomic_numbers"], dtype=torch.long), persistent=False
        )
        self.num_types = len(self.atom_types)
        self.feature_width = self.num_types + int(config.include_charges)
        num_context = len(config.context)
        in_features = self.feature_width + 1 + num_context
        if config.network == "egnn":
            net = EGNNDenoiser(
                in_features,
                self.feature_width,
                hidden=config.hidden,
                layers=config.layers,
                attention=config.attention,
                coords_range=config.coords_range,
                edges=config.edges,
                cutoff=config.cutoff,
                knn=config.knn,
                normalization_factor=config.normalization_factor,
            )
        elif config.network == "e3nn":
            net = E3nnDenoiser(
                in_features,
                self.feature_width,
                irreps_hidden=config.e3nn_irreps,
                layers=config.layers,
                edges=config.edges,
                cutoff=config.cutoff,
                knn=config.knn,
            )
        else:
            raise ValueError(f"unknown network {config.network!r}; expected 'egnn' or 'e3nn'")
        self.network = _StateNetwork(net, num_context)
        self.schedule = config.build_schedule()
        self.denoiser = config.build_denoiser(self.network, self.schedule, space_fn=_space_fn(self.feature_width))
        self.num_atoms = SizeHistogram(stats["num_atoms_histogram"])

    # ------------------------------------------------------------------ features <-> state
    def encode(self, pos: Tensor, atom_types: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Clean state ``x0 [N, 3 + F]`` from coordinates (Angstrom) and vocabulary indices ``[N]``."""
        nx, nh, nz = self.config.norm_values
        space = molecule_space(batch, self.feature_width, num_graphs, dtype=pos.dtype)
        pos = space.blocks[0].project(pos) / nx
        parts = [pos, nn.functional.one_hot(atom_types, self.num_types).to(pos.dtype) / nh]
        if self.config.include_charges:
            parts.append(self.atomic_numbers[atom_types].to(pos.dtype).unsqueeze(-1) / nz)
        return torch.cat(parts, dim=-1)

    def decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(pos [N, 3] Angstrom, atom_types [N] vocabulary indices)`` from a sampled state."""
        nx = self.config.norm_values[0]
        return x[:, :3] * nx, x[:, 3 : 3 + self.num_types].argmax(dim=-1)

    def normalise_context(self, values: dict[str, Any] | Tensor, num_graphs: int, device=None) -> Tensor | None:
        """Per-molecule context ``[B, P]`` in the model's normalised units."""
        names = self.config.context
        if not names:
            return None
        return normalise_context(self.stats, list(names), values, num_graphs, spread="context_std", device=device)[0]

    # ------------------------------------------------------------------ training
    def training_loss(self, batch, generator: torch.Generator | None = None):
        """EDM's objective: eps-MSE over positions and features, per-molecule mean (``[B]``) averaged.
        ``batch``: a :class:`~moldiff.molecules.graph.PackedMolecules` or a torch_geometric ``Batch``
        (:func:`~moldiff.molecules.pyg.as_molecule_batch`)."""
        batch = as_molecule_batch(batch, self.atomic_numbers)
        x0 = self.encode(batch.pos, batch.atom_types, batch.batch, batch.num_graphs)
        space = molecule_space(batch.batch, self.feature_width, batch.num_graphs, dtype=x0.dtype)
        extra = {"batch": batch.batch, "num_graphs": batch.num_graphs}
        if self.config.context:
            context = self.normalise_context(batch.properties, batch.num_graphs, x0.device)  # columns = config.context
            if self.config.context_dropout > 0:
                keep = (
                    torch.rand(batch.num_graphs, 1, generator=generator, device=x0.device)
                    >= self.config.context_dropout
                )
                context = context * keep
            extra["context"] = context
        per_item = denoising_loss(
            self.denoiser, x0, space, generator=generator, extra_args=extra, **self.config.loss_options()
        )
        loss = per_item.mean()
        return loss, {"eps_mse": loss.detach()}

    def denoise_batch(self, batch, sigma: Tensor | float, **extra_args) -> Tensor:
        """The denoiser at the state a batch of molecules encodes (:meth:`encode`: zero-CoM coordinates,
        one-hot atom types), at noise level ``sigma``.

        Args:
            batch: a :class:`~moldiff.molecules.graph.PackedMolecules` or a torch_geometric ``Batch``
                (:func:`~moldiff.molecules.pyg.as_molecule_batch`): the same molecules give the same output.
            sigma: ``[B]`` or one noise level of the model's schedule.
            extra_args: passed to the denoiser (``context=`` ``[B, P]`` normalised, for a conditional model).

        Returns:
            ``x0 [N, 3 + F]``, the denoised state (:meth:`decode` reads coordinates and types from it).
        """
        batch = as_molecule_batch(batch, self.atomic_numbers)
        x = self.encode(batch.pos, batch.atom_types, batch.batch, batch.num_graphs)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(batch.num_graphs)
        return self.denoiser(x, sigma, batch=batch.batch, num_graphs=batch.num_graphs, **extra_args)

    def state_for_sampling(self) -> dict:
        return {"stats": self.stats, "config": asdict(self.config)}

    # ------------------------------------------------------------------ sampling
    def sample_num_atoms(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """Molecule sizes drawn from the training histogram ``p(N)``, ``[num]``."""
        return self.num_atoms.sample(num, generator)

    def sampling_defaults(
        self, sampler: str | None = None, steps: int | None = None, grid: str | None = None
    ) -> tuple[str, int, str]:
        """``(sampler, steps, grid)`` where not given (:meth:`moldiff.core.DiffusionSettings.sampling_defaults`):
        EDM's ancestral sampler with ``T`` steps on a grid uniform in ``t`` (a faithful reproduction);
        any other sampler 50 steps on Karras et al.'s grid."""
        return self.config.sampling_defaults(self.schedule, sampler, steps, grid)

    @torch.no_grad()
    def sample_states(
        self,
        num_atoms: Sequence[int] | Tensor,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        grid: str | None = None,
        generator: torch.Generator | None = None,
        context=None,
        guidance_scale: float = 1.0,
        guidance: Callable | None = None,
        known: Tensor | None = None,
        mask: Tensor | None = None,
        callback: Callable | None = None,
        device=None,
        dtype=torch.float32,
        precision: str | None = None,
        **sampler_options,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sample one packed batch.

        Args:
            num_atoms: size of each molecule, ``[B]``.
            sampler: any name of :data:`moldiff.core.SAMPLERS` (default: the config's, ``ddpm``).
            steps: sampler steps (default: the schedule's ``T`` for ``ddpm``, else 50).
            grid: time grid (default: ``"uniform"`` in ``t`` for ``ddpm`` as EDM, else ``"karras"``).
            context: property values (dict name -> value or ``[B]`` tensor) for conditional models.
            guidance_scale: classifier-free guidance weight (1: plain conditional sampling).
            guidance: optional ``guidance(denoiser, space, extra_args) -> denoiser`` wrapping the
                (classifier-free guided) denoiser, e.g. gradient guidance by a property predictor
                (:func:`moldiff.molecules.predictor.predictor_guidance`).
            known: ``[N, 3 + F]`` clean states (:meth:`encode` of the fixed atoms, anything on the other
                rows) of atoms to hold fixed: a fragment to grow a molecule around. Held by
                :func:`moldiff.core.inpainting` (replacement, re-noised inputs), applied outside any
                other guidance; the sample ends on these rows exactly, up to one translation per
                molecule (zero centre of mass).
            mask: ``[N]`` bool, true at the fixed atoms (their coordinates and features).
            precision: the network's precision, ``"fp32"``, ``"bf16"`` or ``"auto"``
                (:mod:`moldiff.train.precision`; the sampler's state, the schedule and the zero-CoM
                projection stay in ``dtype``); ``None`` leaves any autocast of the caller as it is
                (default: ``None``).

        Returns:
            ``(pos [N, 3] Angstrom, atom_types [N] vocabulary indices, batch [N])``.
        """
        device = device or next(self.parameters()).device
        sizes = torch.as_tensor(num_atoms, dtype=torch.long).cpu()
        if bool((sizes < 2).any()):
            raise ValueError("every molecule needs at least 2 atoms (zero centre of mass needs two points)")
        num_graphs = sizes.numel()
        batch = torch.repeat_interleave(torch.arange(num_graphs), sizes).to(device)
        space = molecule_space(batch, self.feature_width, num_graphs, dtype=dtype)
        sampler, steps, grid = self.sampling_defaults(sampler, steps, grid)
        sigmas = sampling_sigmas(self.schedule, steps, grid)
        extra = {"batch": batch, "num_graphs": num_graphs}
        denoiser: Callable = self.denoiser
        if self.config.context:
            if context is None:
                raise ValueError(f"this model is conditioned on {self.config.context}: pass context=")
            ctx = self.normalise_context(context, num_graphs, device)
            if guidance_scale != 1.0:
                denoiser = classifier_free_guidance(
                    self.denoiser, space, guidance_scale, {"context": ctx}, {"context": None}
                )
            else:
                extra["context"] = ctx
        if guidance is not None:
            denoiser = guidance(denoiser, space, extra)
        if known is not None:
            denoiser = inpainting(
                denoiser, space, known.to(device, dtype), mask.to(device).reshape(-1, 1), generator=generator
            )
        x = initial_noise(space, float(sigmas[0]), generator=generator, schedule=self.schedule, dtype=dtype).to(device)
        with precision_autocast(precision, device):
            x = get_sampler(sampler)(
                denoiser, x, sigmas, space, generator=generator, callback=callback, extra_args=extra, **sampler_options
            )
        pos, types = self.decode(x)
        return pos, types, batch


def sample_context(
    stats: dict, names: list[str], sizes: torch.Tensor, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Targets drawn from ``p(c | N)`` for molecules of the given sizes, as EDM's
    ``DistributionProperty.sample``: a bin by its count, then uniformly inside it; several properties
    are drawn independently given ``N``. Sizes never seen in training use the nearest seen size.

    Args:
        stats: a conditional model's statistics (``context_given_n``, see :func:`dataset_stats`).
        names: properties to draw.
        sizes: ``[B]`` molecule sizes.
        generator: random source.

    Returns:
        ``{name: [B] float32}`` in the property's units.
    """
    out = {}
    for name in names:
        table = stats["context_given_n"][name]
        seen = np.array(sorted(int(k) for k in table))
        values = torch.empty(len(sizes), dtype=torch.float64)
        for i, n in enumerate(sizes.tolist()):
            entry = table[int(seen[np.abs(seen - n).argmin()])]
            counts = torch.tensor(entry["counts"], dtype=torch.float64)
            k = int(torch.multinomial(counts, 1, generator=generator))
            lo, hi = entry["range"]
            u = float(torch.rand(1, generator=generator, dtype=torch.float64))
            values[i] = lo + (k + u) / len(counts) * (hi - lo)
        out[name] = values.float()
    return out


def split_molecules(model: MoleculeDiffusion, pos: torch.Tensor, types: torch.Tensor, batch: torch.Tensor):
    """Per-molecule ``(atomic_numbers [n], positions [n, 3])`` numpy pairs from a packed sample."""
    z = model.atomic_numbers.cpu()[types.cpu()].numpy()
    p = pos.detach().cpu().double().numpy()
    counts = torch.bincount(batch.cpu()).tolist()
    out, start = [], 0
    for n in counts:
        out.append((z[start : start + n], p[start : start + n]))
        start += n
    return out
