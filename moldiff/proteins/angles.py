"""C-alpha backbones diffused in internal coordinates: virtual bond angles and dihedrals.

A CA trace of ``L`` residues with fixed consecutive CA-CA distance ``b`` (3.80 A, the trans-peptide
value) is determined, up to a rigid motion, by its ``L - 2`` virtual bond angles and ``L - 3``
virtual dihedrals (the representation of FoldingDiff, Wu et al. 2024, *Nat. Commun.* 15:1059,
reduced to the CA trace). Diffusing those instead of coordinates buys three things on a small
compute budget:

* every sample has exact 3.80 A CA-CA spacing: no chain breaks, by construction;
* the state is invariant under rotations and translations, and a mirror image has the opposite
  dihedrals, so handedness is learned from the data and not left to the network;
* secondary structure is local in this state (a helix is a run of ``theta ~ 91``, ``tau ~ 50`` deg,
  a strand of ``theta ~ 120``, ``tau ~ -170`` deg), which a sequence network learns from few
  examples.

The price is that global shape (compactness, clashes) is a sum of many local choices: small angle
errors move distant residues far (the lever-arm effect), and nothing in the state sees a clash.
Sampling therefore adds guiding potentials on the decoded chain (:func:`structure_log_likelihood`:
radius of gyration, non-local clashes), and scaffolding a motif of several segments projects every
clean prediction onto the motif's distances between segments
(:meth:`AngleBackboneDiffusion.motif_guidance`). Measured effects, good and bad: ``benchmarks/results.md``,
"cath_ca in internal coordinates".

**State.** Row ``j`` (``j = 0 .. L - 3``) of a chain holds ``[(theta_j - mu) / s * c, cos tau_j,
sin tau_j]``: ``theta_j`` is the angle at residue ``j + 1`` between residues ``j`` and ``j + 2``,
``tau_j`` the dihedral of residues ``j .. j + 3`` (IUPAC sign, :func:`~moldiff.proteins.geometry.dihedral_angle`),
``mu, s`` the training set's mean and spread of ``theta`` and ``c = 0.7`` the spread of ``cos tau``
and ``sin tau`` on real domains, so the three columns have about the same scale (``sigma_data``).
The last row has no dihedral (it would need residue ``L``): it repeats the one before and
:func:`ca_from_internal` ignores it. The dihedral is diffused as the point ``(cos, sin)`` of the
plane (Gaussian noise in the embedding, read back with ``atan2``), so the core's Euclidean samplers
and losses serve it unchanged.

**Network.** :class:`AngleTransformer`: a transformer over each chain's rows (pre-norm blocks
modulated by the noise level, adaLN as in DiT, Peebles & Xie 2023), with a learned per-head bias for
the clipped relative sequence position (Shaw et al. 2018; T5) and the distances to both chain
ends as input features. Optionally (``geometry_features``) the network also sees the 3D chain it
predicts: a first pass's clean prediction is decoded and radial basis functions of every CA-CA
distance of that chain become a per-head attention bias of a second pass, as AlphaFold 2
recycles its predicted distances into its pair stack (Jumper et al. 2021, Suppl. 1.10), so contacts,
clashes and compactness are visible to it during training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from moldiff.core.guidance import below_noise_level, gradient_guidance
from moldiff.core.parameterisation import edm_preconditioning, edm_sigma_from_c_noise
from moldiff.core.settings import require_positive
from moldiff.nn.embeddings import GaussianRBF, SinusoidalEmbedding

from .dataset import BackboneBatch
from .geometry import as_ca, bond_angles, dihedral_angle
from .model import BackboneDiffusion, BackboneModelConfig

Tensor = torch.Tensor

__all__ = [
    "AngleBackboneConfig",
    "AngleBackboneDiffusion",
    "AngleTransformer",
    "CA_CA_DISTANCE",
    "ca_from_internal",
    "decoded_distance_loss",
    "internal_from_ca",
    "motif_distance_log_likelihood",
    "parse_potentials",
    "sampling_options",
    "state_angles",
    "structure_log_likelihood",
    "POTENTIALS",
    "padded",
]

#: consecutive CA-CA distance of trans peptides (A); the training domains: 3.803 +- 0.05
CA_CA_DISTANCE = 3.80

#: the guiding potentials of :func:`structure_log_likelihood`
POTENTIALS = ("rg", "clash")


def parse_potentials(items: Sequence[str] | None, where: str = "--potential") -> dict[str, float] | None:
    """``["rg=1", "clash=100"]`` -> ``{"rg": 1.0, "clash": 100.0}``; ``["none"]`` -> ``{}`` (no potentials);
    ``None`` or ``[]`` -> ``None`` (the model's own)."""
    if not items:
        return None
    if list(items) == ["none"]:
        return {}
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)  # no "=": float("") fails too
        except ValueError:
            raise ValueError(f"{where}: expected NAME=WEIGHT (e.g. clash=100) or none, got {item!r}") from None
    check_potentials(out, where)
    return out


def sampling_options(
    potential: Sequence[str] | None = None,
    steer: Sequence[str] | None = None,
    particles: int | None = None,
    potential_sigma_max: float | None = None,
) -> dict:
    """The ``potentials=``, ``steering=``, ``particles=`` and ``potentials_sigma_max=`` keywords of a
    backbone model's ``sample`` / ``scaffold`` for the command-line values of ``--potential``,
    ``--steer``, ``--particles`` and ``--potential-sigma-max`` (each left out when not given: the
    model's own; ``none``: no potentials).

    Raises:
        ValueError: a malformed value, naming its option.
    """
    options = {}
    for key, items, where in (("potentials", potential, "--potential"), ("steering", steer, "--steer")):
        parsed = parse_potentials(items, where)
        if parsed is not None:
            options[key] = parsed
    if particles is not None:
        if particles < 1:
            raise ValueError(f"--particles must be at least 1, got {particles}")
        options["particles"] = particles
    if potential_sigma_max is not None:
        if not potential_sigma_max > 0:
            raise ValueError(f"--potential-sigma-max must be positive, got {potential_sigma_max}")
        options["potentials_sigma_max"] = potential_sigma_max
    return options


def check_potentials(potentials: dict, where: str) -> None:
    """Refuse unknown potential names and negative weights, naming ``where`` they came from."""
    for name, weight in potentials.items():
        if name not in POTENTIALS:
            raise ValueError(f"{where}: unknown potential {name!r}; choose from {', '.join(POTENTIALS)}")
        if not float(weight) >= 0:
            raise ValueError(f"{where}: the weight of {name!r} must be at least 0, got {weight}")


# ------------------------------------------------------------------------------------------------
# internal coordinates
# ------------------------------------------------------------------------------------------------


def internal_from_ca(ca) -> tuple[Tensor, Tensor]:
    """Virtual bond angles and dihedrals (radians, float64) of one CA trace: those of
    :func:`~moldiff.proteins.geometry.bond_angles` and :func:`~moldiff.proteins.geometry.virtual_dihedrals`.

    Args:
        ca: ``[L, 3]`` (tensor or array), ``L >= 4``.

    Returns:
        ``(theta [L - 2], tau [L - 3])``: ``theta[j]`` the angle at residue ``j + 1``, ``tau[j]`` the
        dihedral of residues ``j .. j + 3`` in ``(-pi, pi]``.
    """
    x = as_ca(ca)
    return torch.deg2rad(bond_angles(x)), dihedral_angle(x[:-3], x[1:-2], x[2:-1], x[3:])


def ca_from_internal(theta: Tensor, tau: Tensor, bond: float = CA_CA_DISTANCE) -> Tensor:
    """CA traces from virtual bond angles and dihedrals (Natural Extension Reference Frame: Parsons
    et al. 2005, *J. Comput. Chem.* 26:1063, Eq. 1-3), batched and differentiable.

    Residues 0, 1, 2 are placed in the xy-plane (residue 0 at the origin, residue 1 on the x axis);
    residue ``k >= 3`` at distance ``bond`` from ``k - 1``, with the angle ``theta[k - 2]`` at
    ``k - 1`` and the dihedral ``tau[k - 3]`` of ``k - 3 .. k``.

    Args:
        theta: ``[..., L - 2]`` radians.
        tau: ``[..., L - 3]`` radians (extra trailing entries are ignored).
        bond: CA-CA distance in A.

    Returns:
        ``[..., L, 3]`` coordinates in A.
    """
    n = theta.shape[-1] + 2
    shape, dtype, device = theta.shape[:-1], theta.dtype, theta.device
    x0 = torch.zeros((*shape, 3), dtype=dtype, device=device)
    x1 = x0.clone()
    x1[..., 0] = bond
    t0 = theta[..., 0]
    x2 = torch.stack([bond - bond * torch.cos(t0), bond * torch.sin(t0), torch.zeros_like(t0)], dim=-1)
    points = [x0, x1, x2]
    if n > 3:
        # the local displacement of every later residue at once (Parsons et al., Eq. 2)
        th, tu = theta[..., 1 : n - 2], tau[..., : n - 3]
        local = torch.stack(
            [-bond * torch.cos(th), bond * torch.sin(th) * torch.cos(tu), bond * torch.sin(th) * torch.sin(tu)], dim=-1
        )
        a, b, c = x0, x1, x2
        for k in range(n - 3):
            bc = c - b
            bc = bc / bc.norm(dim=-1, keepdim=True)
            normal = torch.cross(b - a, bc, dim=-1)
            normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            m = torch.cross(normal, bc, dim=-1)
            d = local[..., k, :]
            new = c + d[..., :1] * bc + d[..., 1:2] * m + d[..., 2:] * normal
            points.append(new)
            a, b, c = b, c, new
    return torch.stack(points, dim=-2)


def state_angles(x: Tensor, config: AngleBackboneConfig) -> tuple[Tensor, Tensor]:
    """``(theta, tau)`` in radians of state rows ``x [..., 3]`` (module docstring; ``theta`` clamped
    to ``[1, 179]`` deg, ``tau = atan2(sin, cos)`` of the last two columns)."""
    theta = x[..., 0] / config.angle_scale * config.theta_std + config.theta_mean
    theta = torch.deg2rad(theta.clamp(1.0, 179.0))
    return theta, torch.atan2(x[..., 2], x[..., 1])


def padded(x: Tensor, lengths: Sequence[int]) -> tuple[Tensor, Tensor]:
    """A packed ``[N, ...]`` tensor of consecutive chains as ``([B, max_len, ...], mask [B, max_len])``."""
    sizes = torch.as_tensor(list(lengths), dtype=torch.long, device=x.device)
    width = int(sizes.max()) if sizes.numel() else 0
    mask = torch.arange(width, device=x.device)[None, :] < sizes[:, None]
    out = x.new_zeros((sizes.numel(), width, *x.shape[1:]))
    out[mask] = x
    return out, mask


# ------------------------------------------------------------------------------------------------
# network
# ------------------------------------------------------------------------------------------------


@dataclass
class AngleBackboneConfig(BackboneModelConfig):
    """The ``model:`` section of an internal-coordinate backbone config (task ``backbone_angles``):
    the keys below, plus the diffusion keys of :class:`~moldiff.core.DiffusionSettings`. The keys of
    :class:`~moldiff.proteins.model.BackboneModelConfig` that describe its EGNN (``knn``,
    ``coord_scale``, ``local_distance_weight``, ...) are not used.

    Attributes:
        hidden: transformer width (default: 128).
        layers: transformer blocks (default: 6).
        heads: attention heads (default: 4).
        max_relative_position: relative positions are clipped to ``+-`` this for the attention bias
            (default: 32).
        end_features: sinusoidal features of the distance (in residues) to each chain end (default: 16).
        theta_mean, theta_std: the training domains' virtual bond angle mean and spread, degrees
            (default: 106.0 and 17.1, measured on the CATH training split).
        angle_scale: spread the normalised bond angle is given, to match ``cos tau`` and ``sin tau``
            (default: 0.7).
        bond: CA-CA distance of the decoded traces in A (default: 3.80).
        max_train_length: training chains longer than this are cropped to a random window of this
            many residues (default: 0, no cropping).
        sigma_data: EDM's data spread (default: 0.7).
        sample_motif_iterations: optimiser steps that move each clean prediction towards a motif's
            distances between segments when scaffolding (:meth:`AngleBackboneDiffusion.motif_guidance`;
            0: none) (default: 20).
        sample_motif_step: their Adam step size, in state units (default: 0.05).
        sample_motif_sigma: the highest noise level at which they act (default: 10, all).
        sample_motif_tolerance: the distance error (A) that costs one half (default: 0.5).
        sample_motif_clash: weight of the clash potential in that objective (default: 10).
        distance_loss_weight: weight of the training loss on the decoded chain's distances
            (:func:`decoded_distance_loss`, A^2): the angles alone never see where distant residues
            land (default: 0, off).
        distance_loss_cutoff: it compares residue pairs at most this far apart (A) in the true or
            the decoded chain (default: 12).
        distance_loss_sigma_max: it applies to chains noised up to this ``sigma`` (default: 0.5).
        geometry_features: recycling (AlphaFold 2's, Jumper et al. 2021, Suppl. 1.10): the network
            runs twice, the clean prediction of the first pass is decoded to a chain, and Gaussian
            radial basis functions (this many) of that chain's CA-CA distances become a per-head
            attention bias of every layer of the second (0: off, one pass) (default: 0). The angles alone
            do not say which residues touch or how compact the chain is; this lets the network see
            the 3D chain it is predicting, at every noise level (the bias starts at zero, so a model
            without it fine-tunes from step 0 unchanged; twice the network's cost). Needs
            ``prediction: edm`` (the clean prediction is formed from the preconditioned input).
        geometry_cutoff: the last basis centre, A (default: 16).
        sample_potentials: guiding potentials every sample is drawn with, ``{name: weight}`` (names of
            :data:`POTENTIALS`; default: none). The state sees no clash and no compactness; these
            push the decoded chain (:func:`structure_log_likelihood`), as RFdiffusion's auxiliary
            potentials do (Watson et al. 2023, ``monomer_ROG``).
        sample_potentials_sigma_max: the guiding potentials act only at noise levels up to this
            (default: none, every level). With particle steering, 0.3 leaves the global shape to the
            resampling and lets the gradients clear what is left late, when they no longer undo helices.
        sample_particles: draws per chain for particle steering (1: off; default 1). Above 1 every
            chain is drawn this many times with :func:`moldiff.core.sample_heun_steered`, the draws
            resampled by ``sample_steering`` on their clean predictions and the best kept: the
            potentials choose among the network's chains instead of bending their angles.
        sample_steering: the potentials steering resamples by, ``{name: weight}`` as
            ``sample_potentials`` (default: none).
        sample_resample_every: sampler steps between resamplings (default: 5).
    """

    hidden: int = 128
    layers: int = 6
    heads: int = 4
    max_relative_position: int = 32
    end_features: int = 16
    theta_mean: float = 106.0
    theta_std: float = 17.1
    angle_scale: float = 0.7
    bond: float = CA_CA_DISTANCE
    max_train_length: int = 0
    sigma_data: float = 0.7
    sample_motif_iterations: int = 20
    sample_motif_step: float = 0.05
    sample_motif_sigma: float = 10.0
    sample_motif_tolerance: float = 0.5
    sample_motif_clash: float = 10.0
    sample_potentials: dict[str, float] = field(default_factory=dict)
    sample_potentials_sigma_max: float | None = None
    sample_particles: int = 1
    sample_steering: dict[str, float] = field(default_factory=dict)
    sample_resample_every: int = 5
    distance_loss_weight: float = 0.0
    distance_loss_cutoff: float = 12.0
    distance_loss_sigma_max: float = 0.5
    geometry_features: int = 0
    geometry_cutoff: float = 16.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.geometry_features < 0:
            raise ValueError(f"geometry_features must be at least 0, got {self.geometry_features}")
        if self.geometry_features and self.prediction != "edm":
            raise ValueError(
                f"geometry_features needs prediction: edm (the recycled clean prediction is formed from c_in x), "
                f"got {self.prediction!r}"
            )
        require_positive(self, "geometry_cutoff")
        if self.distance_loss_weight < 0:
            raise ValueError(f"distance_loss_weight must be at least 0, got {self.distance_loss_weight}")
        require_positive(self, "distance_loss_cutoff", "distance_loss_sigma_max")
        require_positive(
            self, "heads", "theta_std", "angle_scale", "bond", "sample_motif_tolerance", "sample_motif_step"
        )
        if self.sample_motif_iterations < 0 or self.sample_motif_sigma < 0:
            raise ValueError("sample_motif_iterations and sample_motif_sigma must be at least 0")
        check_potentials(self.sample_potentials, "sample_potentials")
        check_potentials(self.sample_steering, "sample_steering")
        if self.sample_potentials_sigma_max is not None and not self.sample_potentials_sigma_max > 0:
            raise ValueError(f"sample_potentials_sigma_max must be positive, got {self.sample_potentials_sigma_max}")
        for name in ("sample_particles", "sample_resample_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")


class _Block(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the noise embedding (adaLN-Zero)."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.modulation = nn.Linear(hidden, 6 * hidden)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, cond: Tensor, bias: Tensor) -> Tensor:
        """``h [B, L, D]``, ``cond [B, D]``, ``bias [B, H, L, L]`` (additive, ``-inf`` at padding) -> ``[B, L, D]``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond)[:, None].chunk(6, dim=-1)
        b, n, d = h.shape
        a = self.norm1(h) * (1 + scale1) + shift1
        q, k, v = self.qkv(a).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        h = h + gate1 * self.proj(att.transpose(1, 2).reshape(b, n, d))
        a = self.norm2(h) * (1 + scale2) + shift2
        return h + gate2 * self.mlp(a)


class AngleTransformer(nn.Module):
    """The denoising network of :class:`AngleBackboneDiffusion`.

    Follows the core's network contract ``network(x [N, 3], t [B], *, batch, num_graphs) -> [N, 3]``
    on packed chains (rows of a chain contiguous and in order); inside, the chains are padded to
    ``[B, max_len, ...]``. Not permutation-equivariant: row order is sequence order.
    """

    def __init__(self, config: AngleBackboneConfig) -> None:
        super().__init__()
        self.config = config
        d, r = config.hidden, config.max_relative_position
        self.time = nn.Sequential(SinusoidalEmbedding(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.ends = SinusoidalEmbedding(config.end_features, max_period=1000.0)
        self.embed = nn.Linear(3 + 2 * config.end_features, d)
        self.relative_bias = nn.Embedding(2 * r + 1, config.heads)
        nn.init.zeros_(self.relative_bias.weight)
        self.blocks = nn.ModuleList(_Block(d, config.heads) for _ in range(config.layers))
        self.geometry_rbf = self.geometry_bias = None
        if config.geometry_features:
            self.geometry_rbf = GaussianRBF(config.geometry_features, 0.0, config.geometry_cutoff)
            self.geometry_bias = nn.Linear(config.geometry_features, config.heads)
            nn.init.zeros_(self.geometry_bias.weight)
            nn.init.zeros_(self.geometry_bias.bias)
        self.norm = nn.LayerNorm(d, elementwise_affine=False)
        self.out_modulation = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, 3)
        for layer in (self.out_modulation, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def chain_distances(self, state: Tensor) -> Tensor:
        """CA-CA distances (A) of the chains padded state rows ``state [B, n, 3]`` (data units) decode
        to, between the residues at the centre of each row's bond angle (residue ``j + 1`` for row
        ``j``): ``[B, n, n]`` float32 (:func:`ca_from_internal`; rows beyond a chain's end decode to
        junk, which the attention mask hides)."""
        theta, tau = state_angles(state.float(), self.config)
        ca = ca_from_internal(theta, tau[..., :-1], self.config.bond)[:, 1:-1]
        return torch.cdist(ca, ca)

    def recycled_state(self, xs: Tensor, out: Tensor, t: Tensor) -> Tensor:
        """The clean prediction ``D = c_skip x_t + c_out F`` (Karras et al. 2022, Eq. 7) of a first
        pass ``F = out [B, n, 3]`` on the padded input ``xs = c_in x_t``, in data units; ``t`` is
        ``c_noise = ln(sigma) / 4``, ``[B]``."""
        sigma = edm_sigma_from_c_noise(t.float().reshape(-1))
        c_skip, c_out, c_in, _ = edm_preconditioning(sigma, self.config.sigma_data)
        c_skip, c_out, c_in = (c.reshape(-1, 1, 1) for c in (c_skip, c_out, c_in))
        return c_skip * xs.float() / c_in + c_out * out.float()

    def _trunk(self, h: Tensor, cond: Tensor, bias: Tensor) -> Tensor:
        """The blocks and the output layer, every block with the attention bias ``bias``."""
        for block in self.blocks:
            h = block(h, cond, bias)
        shift, scale = self.out_modulation(cond)[:, None].chunk(2, dim=-1)
        return self.out(self.norm(h) * (1 + scale) + shift)

    def forward(self, x: Tensor, t: Tensor, *, batch: Tensor, num_graphs: int) -> Tensor:
        sizes = torch.bincount(batch, minlength=num_graphs)
        xs, mask = padded(x, sizes.tolist())
        b, n = mask.shape
        position = torch.arange(n, device=x.device, dtype=x.dtype)[None].expand(b, n)
        to_end = sizes[:, None].to(x.dtype) - 1 - position
        h = self.embed(torch.cat([xs, self.ends(position).to(x.dtype), self.ends(to_end).to(x.dtype)], dim=-1))
        cond = self.time(t.to(x.dtype).reshape(-1, 1)).to(x.dtype)  # [B, D], also for B = 1
        r = self.config.max_relative_position
        offset = torch.arange(n, device=x.device)
        rel = (offset[None, :] - offset[:, None]).clamp(-r, r) + r
        bias = self.relative_bias(rel).permute(2, 0, 1)[None].to(x.dtype)  # [1, H, L, L]
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))
        if self.geometry_bias is None:
            return self._trunk(h, cond, bias)[mask]
        # recycling (AlphaFold 2): a first pass without geometry, its clean prediction decoded to a
        # chain, that chain's distances as the bias of the second pass; no gradient through the first
        with torch.no_grad():
            first = self._trunk(h, cond, bias)
            distances = self.chain_distances(self.recycled_state(xs, first, t))
        geometry = self.geometry_bias(self.geometry_rbf(distances)).to(x.dtype).permute(0, 3, 1, 2)  # [B, H, n, n]
        return self._trunk(h, cond, bias + geometry)[mask]


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------


class AngleBackboneDiffusion(BackboneDiffusion):
    """A diffusion model of CA traces in internal coordinates (see the module docstring).

    Training, sampling, low-temperature sampling and motif scaffolding are those of
    :class:`~moldiff.proteins.model.BackboneDiffusion`; only the state of a chain differs. A
    scaffolded motif fixes the angles inside each of its segments (a segment of ``m >= 4`` residues
    keeps its shape exactly, up to the CA-CA distance); how segments sit relative to each other is
    not fixed by the state.

    Args:
        config: an :class:`AngleBackboneConfig`.
        stats: as for :class:`~moldiff.proteins.model.BackboneDiffusion`.

    Example:
        >>> model = AngleBackboneDiffusion(AngleBackboneConfig(hidden=8, layers=1, heads=2), {"length_histogram": {30: 1}})
        >>> [d.ca.shape for d in model.sample(num=2, steps=2)]
        [(30, 3), (30, 3)]
    """

    zero_com = False
    min_length = 4

    def build_network(self, config) -> nn.Module:
        return AngleTransformer(config)

    def state_lengths(self, lengths: Sequence[int]) -> list[int]:
        return [int(n) - 2 for n in lengths]

    def _state_of_chain(self, ca: Tensor) -> Tensor:
        cfg = self.config
        theta, tau = internal_from_ca(ca)
        tau = torch.cat([tau, tau[-1:]])  # the last row has no dihedral: repeat the one before
        theta = (torch.rad2deg(theta) - cfg.theta_mean) / cfg.theta_std * cfg.angle_scale
        return torch.stack([theta, torch.cos(tau), torch.sin(tau)], dim=-1).to(ca.dtype)

    def encode(self, ca: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Clean state of a packed batch of traces, ``[N - 2 B, 3]`` (module docstring)."""
        sizes = torch.bincount(batch, minlength=num_graphs).tolist()
        return torch.cat([self._state_of_chain(chain) for chain in torch.split(ca, sizes)])

    def angles(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`state_angles` under this model's config."""
        return state_angles(x, self.config)

    def decode_padded(self, x: Tensor, lengths: Sequence[int]) -> tuple[Tensor, Tensor]:
        """CA traces (A, float64) of a packed state, padded: ``(ca [B, max L, 3], mask [B, max L])``,
        each chain centred at its mean and zero beyond its end; differentiable."""
        rows, _ = padded(x.to(torch.float64), self.state_lengths(lengths))
        theta, tau = self.angles(rows)
        ca = ca_from_internal(theta, tau[..., :-1], self.config.bond)  # padding rows decode to junk
        sizes = torch.as_tensor(list(lengths), device=x.device)
        mask = torch.arange(ca.shape[1], device=x.device)[None, :] < sizes[:, None]
        valid = mask.unsqueeze(-1).to(ca.dtype)
        centre = (ca * valid).sum(dim=1, keepdim=True) / sizes.to(ca.dtype)[:, None, None]
        return (ca - centre) * valid, mask

    def decode(self, x: Tensor, lengths: Sequence[int]) -> Tensor:
        """CA traces (A) of a packed state, ``[sum(lengths), 3]``, each centred at its mean."""
        ca, mask = self.decode_padded(x, lengths)
        return ca[mask].to(x.dtype)

    def known_state(self, known: Tensor, mask: Tensor, lengths: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Fixed residues as fixed angles: ``theta_j`` is fixed where residues ``j .. j + 2`` are, the
        dihedral columns where residues ``j .. j + 3`` are (``mask [N_state, 3]``)."""
        states, masks = [], []
        start = 0
        for n in lengths:
            ca, m = known[start : start + n], mask[start : start + n]
            start += n
            states.append(self._state_of_chain(ca))
            fixed_theta = m[:-2] & m[1:-1] & m[2:]
            fixed_tau = torch.cat([m[:-3] & m[1:-2] & m[2:-1] & m[3:], m.new_zeros(1)])
            masks.append(torch.stack([fixed_theta, fixed_tau, fixed_tau], dim=-1))
        return torch.cat(states), torch.cat(masks)

    def structure_guidance(
        self,
        denoiser,
        space,
        lengths: Sequence[int],
        potentials: dict[str, float] | None,
        sigma_max: float | None = None,
    ):
        """Gradient guidance (on the clean prediction) by the potentials of :func:`structure_log_likelihood`,
        ``potentials`` or else the configured ones, at noise levels up to ``sigma_max`` (else the
        configured ``sample_potentials_sigma_max``; ``None``: every level); none: the model's own denoiser."""
        potentials = dict(self.config.sample_potentials if potentials is None else potentials)
        check_potentials(potentials, "potentials")
        if not any(potentials.values()):
            return denoiser
        log_likelihood = structure_log_likelihood(self, lengths, **potentials)
        guided = gradient_guidance(
            denoiser, space, lambda d, sigma: log_likelihood(d), 1.0, through_denoiser=False, max_step=1.0
        )
        if sigma_max is not None and not sigma_max > 0:
            raise ValueError(f"potentials_sigma_max must be positive, got {sigma_max}")
        sigma_max = self.config.sample_potentials_sigma_max if sigma_max is None else sigma_max
        return below_noise_level(guided, denoiser, sigma_max)

    def steering_defaults(self) -> dict:
        cfg = self.config
        return {
            "particles": cfg.sample_particles,
            "steering": cfg.sample_steering,
            "resample_every": cfg.sample_resample_every,
        }

    def steering_potential(self, lengths: Sequence[int], steering: dict[str, float]):
        """:func:`structure_log_likelihood` of ``steering`` (the names of :data:`POTENTIALS`)."""
        check_potentials(steering, "steering")
        return structure_log_likelihood(self, lengths, **steering)

    def motif_guidance(self, denoiser, space, known: Tensor, mask: Tensor, lengths: Sequence[int]):
        """Place a motif's segments relative to each other: the fixed angles keep each segment's shape,
        nothing else in the state says where the segments sit. Every clean prediction at noise levels
        up to ``sample_motif_sigma`` is moved, before the sampler uses it, by
        ``sample_motif_iterations`` Adam steps on its free entries towards the motif's distances
        between residues of different segments (:func:`motif_distance_log_likelihood`): a projection
        of the prediction onto the motif's constraint, as in manifold-constrained sampling (Chung et
        al. 2022, "Improving Diffusion Models for Inverse Problems using Manifold Constraints"), here
        with the network left out of the gradient. Its objective adds the clash potential of
        :func:`structure_log_likelihood` at weight ``sample_motif_clash``, so that the linker is not
        pulled through the rest of the chain; the guiding potentials act after it
        (:meth:`structure_guidance` wraps this denoiser). Chains whose motif is one segment are left
        alone; ``sample_motif_iterations: 0`` turns it off."""
        cfg = self.config
        motif = motif_distance_log_likelihood(self, known, mask, lengths, cfg.sample_motif_tolerance)
        if cfg.sample_motif_iterations == 0 or motif is None:
            return denoiser
        clash = (
            structure_log_likelihood(self, lengths, clash=cfg.sample_motif_clash) if cfg.sample_motif_clash else None
        )

        def log_likelihood(state: Tensor) -> Tensor:
            return motif(state) if clash is None else motif(state) + clash(state)

        known_x, known_mask = self.known_state(known, mask, lengths)
        known_mask = known_mask.expand_as(known_x)

        def projected(x: Tensor, sigma: Tensor, **extra) -> Tensor:
            d = denoiser(x, sigma, **extra)
            if float(sigma.max()) > cfg.sample_motif_sigma:
                return d
            with torch.enable_grad():
                free = d.detach().clone().requires_grad_(True)
                optimiser = torch.optim.Adam([free], lr=cfg.sample_motif_step)
                for _ in range(cfg.sample_motif_iterations):  # Adam is per entry: the chains stay independent
                    loss = -log_likelihood(torch.where(known_mask, known_x, free)).sum()
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
            return free.detach()

        return projected

    def _auxiliary_loss(self, batch):
        """``distance_loss_weight`` times :func:`decoded_distance_loss` of the clean prediction, for
        chains noised up to ``distance_loss_sigma_max``; none when the weight is 0."""
        cfg = self.config
        if cfg.distance_loss_weight <= 0:
            return None
        lengths = batch.lengths.tolist()

        def auxiliary(x0_hat: Tensor, x0: Tensor, t: Tensor) -> Tensor:
            near = self.schedule.sigma(t) <= cfg.distance_loss_sigma_max
            if not bool(near.any()):
                return x0_hat.new_zeros(len(lengths))
            distance = decoded_distance_loss(self, x0_hat, x0, lengths, cfg.distance_loss_cutoff)
            return cfg.distance_loss_weight * near.to(distance.dtype) * distance.to(x0_hat.dtype)

        return auxiliary

    def training_loss(self, batch, generator: torch.Generator | None = None):
        """As :meth:`BackboneDiffusion.training_loss`, on random windows of at most
        ``max_train_length`` residues of longer chains."""
        crop = self.config.max_train_length
        if crop and int(batch.lengths.max()) > crop:
            batch = _crop(batch, crop, generator)
        return super().training_loss(batch, generator)


def _segments(mask: Tensor) -> Tensor:
    """``[L]`` long: the index of the motif segment (run of true entries) of every residue, -1 elsewhere."""
    starts = mask & ~torch.cat([mask.new_zeros(1), mask[:-1]])
    return torch.where(mask, torch.cumsum(starts.long(), 0) - 1, torch.full_like(starts, -1, dtype=torch.long))


def motif_distance_log_likelihood(
    model: "AngleBackboneDiffusion", known: Tensor, mask: Tensor, lengths: Sequence[int], tolerance: float
):
    """``f(state) -> [B]``: minus the squared error, over ``2 tolerance^2``, of the distances between
    motif residues of *different* segments in the decoded chains, against the motif's own; ``None``
    when no chain's motif has two segments.

    Invariant under rigid motions of either chain; with each segment's shape fixed by its angles, the
    distances between two segments fix their relative pose (a mirror pose would need mirrored segments).

    Args:
        model: the angle model (its :meth:`~AngleBackboneDiffusion.decode`, differentiable).
        known: ``[N, 3]`` motif CA coordinates in A on the motif residues.
        mask: ``[N]`` bool, the motif residues.
        lengths: residues per chain.
        tolerance: distance error (A) that costs one half.
    """
    pairs, targets, owners = [], [], []
    start = 0
    for b, n in enumerate(lengths):
        seg = _segments(mask[start : start + n])
        i, j = torch.triu_indices(n, n, 1, device=mask.device)
        keep = (seg[i] >= 0) & (seg[j] >= 0) & (seg[i] != seg[j])
        i, j = i[keep] + start, j[keep] + start
        pairs.append(torch.stack([i, j]))
        targets.append((known[i] - known[j]).norm(dim=-1))
        owners.append(torch.full((i.numel(),), b, dtype=torch.long, device=mask.device))
        start += n
    pair_index, target, owner = torch.cat(pairs, 1), torch.cat(targets), torch.cat(owners)
    if target.numel() == 0:
        return None
    num_chains = len(lengths)

    def log_likelihood(state: Tensor) -> Tensor:
        ca = model.decode(state, lengths)
        error = (ca[pair_index[0]] - ca[pair_index[1]]).norm(dim=-1) - target.to(ca.dtype)
        total = torch.zeros(num_chains, dtype=ca.dtype, device=ca.device).index_add_(0, owner, error**2)
        count = torch.bincount(owner, minlength=num_chains).clamp(min=1).to(ca.dtype)
        return -(total / count) / (2 * tolerance**2)

    return log_likelihood


def nonlocal_pairs(mask: Tensor, min_separation: int) -> Tensor:
    """``[B, L, L]`` bool: residue pairs of each padded chain (``mask [B, L]``) at least
    ``min_separation`` apart in sequence, both real residues."""
    index = torch.arange(mask.shape[1], device=mask.device)
    apart = (index[None, :] - index[:, None]).abs() >= min_separation
    return apart[None] & mask[:, None, :] & mask[:, :, None]


def structure_log_likelihood(
    model: "AngleBackboneDiffusion",
    lengths: Sequence[int],
    rg: float = 0.0,
    clash: float = 0.0,
    *,
    rg_tolerance: float = 0.05,
    clash_distance: float = 4.0,
):
    """``f(state) -> [B]``: minus the guiding potentials of the decoded chains.

    * ``rg``: ``rg * relu(Rg / Rg_0 - 1)^2 / (2 rg_tolerance^2)`` with ``Rg_0 = 3.22 N^0.318`` A, the
      radius of gyration of compact domains: a chain no more extended than a real domain costs
      nothing (one-sided, as RFdiffusion's ``monomer_ROG``);
    * ``clash``: ``clash`` times the sum over residue pairs ``|i - j| >= 3`` of
      ``relu(clash_distance - d_ij)^2`` (A^2) per residue: non-local CA atoms closer than 4 A push apart
      (real domains: none closer than about 4 A).

    Args:
        model: the angle model (its differentiable :meth:`~AngleBackboneDiffusion.decode`).
        lengths: residues per chain.
        rg, clash: weights (0: off).
        rg_tolerance: the relative excess of Rg that costs ``rg / 2``.
        clash_distance: the CA-CA distance below which a non-local pair costs (A).
    """
    sizes = torch.as_tensor(list(lengths), dtype=torch.float64)
    rg_0 = 3.22 * sizes**0.318

    def log_likelihood(state: Tensor) -> Tensor:
        ca, mask = model.decode_padded(state, lengths)
        ca = ca.to(state.dtype)  # the potentials in the state's precision, as the decoded chains are returned
        valid = mask.to(ca.dtype)
        n = valid.sum(dim=1)
        total = torch.zeros_like(n)
        if rg:
            radius = ((ca**2).sum(-1) * valid).sum(1).div(n).sqrt()  # decode centres every chain
            total = total + rg * torch.relu(radius / rg_0.to(ca) - 1) ** 2 / (2 * rg_tolerance**2)
        if clash:
            distance = torch.cdist(ca, ca)
            pair = nonlocal_pairs(mask, 3)
            overlap = torch.relu(clash_distance - distance) ** 2 * pair.to(ca.dtype)
            total = total + clash * overlap.sum((1, 2)) / 2 / n
        return -total

    return log_likelihood


def decoded_distance_loss(
    model: "AngleBackboneDiffusion",
    pred: Tensor,
    target: Tensor,
    lengths: Sequence[int],
    cutoff: float = 12.0,
    *,
    min_separation: int = 3,
    delta: float = 2.0,
) -> Tensor:
    """Per-chain error of the CA-CA distances of two packed states after decoding, ``[B]`` (A^2).

    The pairwise-distance loss of FrameDiff (Yim et al. 2023, Sec. 4.2, Eq. 8: pairs within a
    cutoff) on the decoded traces: Huber (quadratic up to ``delta`` A, linear beyond, so that the
    lever arm of one wrong angle does not swamp the rest) of ``d_pred - d_true`` over residue pairs
    at least ``min_separation`` apart in sequence and closer than ``cutoff`` in either chain, averaged
    per chain. A predicted contact that the true chain lacks costs, and so does a clash. Differentiable
    in ``pred`` (through :func:`ca_from_internal`); the target is not differentiated.

    Args:
        model: the angle model (its :meth:`~AngleBackboneDiffusion.decode_padded`).
        pred, target: ``[N_state, 3]`` packed states of the same chains.
        lengths: residues per chain.
        cutoff: pair selection distance (A).
        min_separation: smallest sequence separation compared (consecutive spacing is exact anyway).
        delta: Huber threshold (A).
    """
    ca_pred, mask = model.decode_padded(pred, lengths)
    with torch.no_grad():
        ca_true, _ = model.decode_padded(target.detach(), lengths)
        d_true = torch.cdist(ca_true, ca_true)
    d_pred = torch.cdist(ca_pred, ca_pred)
    pair = nonlocal_pairs(mask, min_separation) & ((d_true < cutoff) | (d_pred.detach() < cutoff))
    error = torch.nn.functional.huber_loss(d_pred, d_true, delta=delta, reduction="none") * pair.to(d_pred.dtype)
    return error.sum((1, 2)) / pair.sum((1, 2)).clamp(min=1).to(d_pred.dtype)


def _crop(batch, crop: int, generator: torch.Generator | None):
    """A :class:`~moldiff.proteins.dataset.BackboneBatch` with every chain longer than ``crop`` cut to
    a uniformly placed window of ``crop`` residues."""
    chains, sizes = [], []
    for chain in torch.split(batch.ca, batch.lengths.tolist()):
        n = chain.shape[0]
        if n > crop:
            start = int(torch.randint(0, n - crop + 1, (1,), generator=generator))
            chain = chain[start : start + crop]
        chains.append(chain)
        sizes.append(chain.shape[0])
    lengths = torch.tensor(sizes, dtype=torch.long)
    return BackboneBatch(torch.cat(chains), torch.repeat_interleave(torch.arange(len(sizes)), lengths), lengths)
