"""Geometry of C-alpha traces: bonds, angles, virtual dihedrals, size, clashes, secondary structure.

Every function takes one chain's CA coordinates ``ca [N, 3]`` in Angstrom (numpy array or torch
tensor) and computes in float64 torch; results are torch tensors or Python numbers.

Definitions (residues ``i = 0..N-1``):

* virtual bond ``b_i = |x_{i+1} - x_i|`` (natural 3.80 A), ``[N-1]``;
* virtual bond angle ``theta_i = angle(x_{i-1}, x_i, x_{i+1})`` for ``i = 1..N-2`` (helix about
  91 deg, strand about 120 deg), ``[N-2]``;
* virtual dihedral ``phi_i = dihedral(x_{i-1}, x_i, x_{i+1}, x_{i+2})`` for ``i = 1..N-3``
  (right-handed alpha helix about +50 deg, strand about -170 deg), ``[N-3]``, in ``(-180, 180]``.
  It is the one reflection-odd quantity here: a mirror image flips its sign, so natural proteins
  have about 2% of dihedrals in the left-handed window ``[-70, -30]`` deg and mirrored ones far more;
* radius of gyration against the natural scaling ``3.22 N^0.318`` A (reference.md);
* secondary structure from CA geometry with P-SEA's criteria (Labesse et al. 1997, CABIOS 13:291):
  see :func:`secondary_structure`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

Tensor = torch.Tensor

__all__ = [
    "as_ca",
    "dihedral_angle",
    "bond_lengths",
    "bond_angles",
    "virtual_dihedrals",
    "radius_of_gyration",
    "expected_radius_of_gyration",
    "chain_breaks",
    "clashes",
    "left_handed_fraction",
    "secondary_structure",
    "secondary_structure_fractions",
    "kabsch_rmsd",
    "wasserstein_1d",
    "ideal_helix",
    "LEFT_HANDED_WINDOW",
]

#: virtual dihedral window (degrees) counted as left-handed helical
LEFT_HANDED_WINDOW = (-70.0, -30.0)


def as_ca(ca) -> Tensor:
    """``ca`` as a float64 ``[N, 3]`` tensor (numpy arrays and tensors accepted)."""
    t = torch.as_tensor(np.asarray(ca) if not isinstance(ca, Tensor) else ca).detach().to(torch.float64)
    if t.dim() != 2 or t.shape[1] != 3:
        raise ValueError(f"CA coordinates must be [N, 3], got {tuple(t.shape)}")
    return t


def dihedral_angle(p0: Tensor, p1: Tensor, p2: Tensor, p3: Tensor) -> Tensor:
    """Signed dihedral angle (radians, ``(-pi, pi]``) of the points ``p0-p1-p2-p3``, ``[..., 3] -> [...]``.

    IUPAC sign convention (positive: clockwise looking down ``p1 -> p2``); odd under reflections.
    Differentiable, any dtype.
    """
    b0, b1, b2 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = torch.cross(b0, b1, dim=-1), torch.cross(b1, b2, dim=-1)
    b1n = b1 / b1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    m1 = torch.cross(b1n, n1, dim=-1)
    x = (n1 * n2).sum(-1)
    y = (m1 * n2).sum(-1)
    return torch.atan2(y, x)


def bond_lengths(ca) -> Tensor:
    """Consecutive CA-CA distances, ``[N-1]`` (A)."""
    x = as_ca(ca)
    return (x[1:] - x[:-1]).norm(dim=-1)


def bond_angles(ca) -> Tensor:
    """Virtual bond angles ``theta_i``, ``[N-2]`` (degrees)."""
    x = as_ca(ca)
    u, v = x[:-2] - x[1:-1], x[2:] - x[1:-1]
    cos = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1)).clamp_min(1e-12)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def virtual_dihedrals(ca) -> Tensor:
    """Virtual dihedrals ``phi_i``, ``[N-3]`` (degrees, ``(-180, 180]``)."""
    x = as_ca(ca)
    return torch.rad2deg(dihedral_angle(x[:-3], x[1:-2], x[2:-1], x[3:]))


def radius_of_gyration(ca) -> float:
    """``sqrt(mean |x_i - mean x|^2)`` in A."""
    x = as_ca(ca)
    return float((x - x.mean(0)).pow(2).sum(-1).mean().sqrt())


def expected_radius_of_gyration(n: int | float) -> float:
    """Natural radius of gyration of a compact domain of ``n`` residues, ``3.22 n^0.318`` A."""
    return 3.22 * float(n) ** 0.318


def chain_breaks(ca, max_gap: float = 4.2) -> int:
    """Number of consecutive CA-CA distances above ``max_gap`` A."""
    return int((bond_lengths(ca) > max_gap).sum())


def clashes(ca, threshold: float = 3.0, min_separation: int = 3) -> int:
    """Non-local clashes: pairs ``|i - j| >= min_separation`` with CA-CA distance below ``threshold`` A."""
    x = as_ca(ca)
    n = x.shape[0]
    d = torch.cdist(x, x)
    i, j = torch.triu_indices(n, n, offset=min_separation)
    return int((d[i, j] < threshold).sum())


def left_handed_fraction(dihedrals_deg) -> float:
    """Fraction of virtual dihedrals in :data:`LEFT_HANDED_WINDOW` (natural proteins: about 2%)."""
    d = torch.as_tensor(dihedrals_deg, dtype=torch.float64)
    if d.numel() == 0:
        return float("nan")
    lo, hi = LEFT_HANDED_WINDOW
    return float(((d >= lo) & (d <= hi)).double().mean())


def _pair_distance(x: Tensor, k: int) -> Tensor:
    """``[N]`` distances ``|x_i - x_{i+k}|`` (NaN where ``i + k >= N``)."""
    out = torch.full((x.shape[0],), float("nan"), dtype=x.dtype)
    if x.shape[0] > k:
        out[:-k] = (x[k:] - x[:-k]).norm(dim=-1)
    return out


def _runs(flags: Tensor, min_length: int) -> Tensor:
    """Keep only runs of true values at least ``min_length`` long."""
    keep = torch.zeros_like(flags)
    n, i = flags.numel(), 0
    values = flags.tolist()
    while i < n:
        if values[i]:
            j = i
            while j < n and values[j]:
                j += 1
            if j - i >= min_length:
                keep[i:j] = True
            i = j
        else:
            i += 1
    return keep


def secondary_structure(ca) -> str:
    """Per-residue secondary structure from CA geometry, ``"H"`` helix, ``"E"`` strand, ``"C"`` coil.

    P-SEA (Labesse et al. 1997) criteria for residue ``i``, using the virtual angle and dihedral at
    ``i`` and the distances ``d2, d3, d4`` from ``x_i`` to ``x_{i+2}, x_{i+3}, x_{i+4}``:

    * helix: ``theta = 89 +- 12`` and ``phi = 50 +- 20`` deg, or ``d2 = 5.5 +- 0.5``,
      ``d3 = 5.3 +- 0.5``, ``d4 = 6.4 +- 0.6`` A with a dihedral that is not negative (distances
      alone cannot tell a helix from its mirror image); runs of at least 5 residues;
    * strand: ``theta = 124 +- 14`` and ``phi = -170 +- 45`` deg, or ``d2 = 6.7 +- 0.6``,
      ``d3 = 9.9 +- 0.9``, ``d4 = 12.4 +- 1.1`` A; runs of at least 3 residues (helix wins ties).

    This is a simplification (no strand pairing, no segment extension), good for distributions,
    not for per-residue assignment; natural domains give helix about 0.33, strand 0.25.
    """
    x = as_ca(ca)
    n = x.shape[0]
    theta = torch.full((n,), float("nan"), dtype=torch.float64)
    phi = torch.full((n,), float("nan"), dtype=torch.float64)
    if n >= 3:
        theta[1:-1] = bond_angles(x)
    if n >= 4:
        phi[1:-2] = virtual_dihedrals(x)
    d2, d3, d4 = (_pair_distance(x, k) for k in (2, 3, 4))

    def near(v, centre, tol):
        return (v - centre).abs() <= tol  # NaN compares false

    dphi_strand = torch.remainder(phi + 170.0 + 180.0, 360.0) - 180.0  # wrap around +-180
    right_handed = ~(phi < 0)  # distances cannot see handedness: a mirrored helix is no helix
    helix = (near(theta, 89, 12) & near(phi, 50, 20)) | (
        right_handed & near(d2, 5.5, 0.5) & near(d3, 5.3, 0.5) & near(d4, 6.4, 0.6)
    )
    strand = (near(theta, 124, 14) & (dphi_strand.abs() <= 45)) | (
        near(d2, 6.7, 0.6) & near(d3, 9.9, 0.9) & near(d4, 12.4, 1.1)
    )
    helix = _runs(helix, 5)
    strand = _runs(strand & ~helix, 3)
    return "".join("H" if h else "E" if e else "C" for h, e in zip(helix.tolist(), strand.tolist()))


def secondary_structure_fractions(ca) -> dict[str, float]:
    """``{"helix", "strand", "coil"}`` fractions of :func:`secondary_structure`."""
    ss = secondary_structure(ca)
    n = max(len(ss), 1)
    return {"helix": ss.count("H") / n, "strand": ss.count("E") / n, "coil": ss.count("C") / n}


def kabsch_rmsd(a, b) -> float:
    """RMSD (A) between two ``[M, 3]`` point sets after optimal rigid superposition (Kabsch 1976;
    rotations only, no reflection)."""
    x, y = as_ca(a), as_ca(b)
    if x.shape != y.shape:
        raise ValueError(f"point sets differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    x, y = x - x.mean(0), y - y.mean(0)
    u, _, vt = torch.linalg.svd(x.T @ y)
    d = torch.ones(3, dtype=x.dtype)
    d[-1] = torch.sign(torch.linalg.det(u @ vt))
    rot = (u * d) @ vt  # x @ rot best matches y
    return float((x @ rot - y).pow(2).sum(-1).mean().sqrt())


def wasserstein_1d(a, b) -> float:
    """Wasserstein-1 distance between two 1-D samples: ``int |F_a(t) - F_b(t)| dt`` over the
    empirical CDFs (equal to :func:`scipy.stats.wasserstein_distance`). Returns NaN if either is empty."""
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        return float("nan")
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(a, grid[:-1], side="right") / a.size
    fb = np.searchsorted(b, grid[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(grid)))


def ideal_helix(n: int, *, left_handed: bool = False) -> Tensor:
    """CA trace of an ideal alpha helix: rise 1.5 A and 100 deg per residue on a 2.3 A radius
    (CA-CA about 3.8 A, virtual angle about 91 deg, dihedral about +50 deg; mirrored when
    ``left_handed``), ``[n, 3]`` float64."""
    k = torch.arange(n, dtype=torch.float64)
    turn = math.radians(100.0) * k
    x = torch.stack([2.3 * torch.cos(turn), 2.3 * torch.sin(turn), 1.5 * k], dim=-1)
    if left_handed:
        x[:, 2] = -x[:, 2]
    return x
