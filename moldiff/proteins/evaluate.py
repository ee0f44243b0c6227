"""Evaluation of generated C-alpha backbones against real domains (``moldiff evaluate-backbones``).

For a set of traces the suite reports (:func:`evaluate_backbones`):

* consecutive CA-CA distance: mean, standard deviation and fraction within ``3.8 +- 0.1`` A
  (natural 3.79 +- 0.02, over 99% within);
* chain breaks (CA-CA above 4.2 A) and non-local clashes (CA pairs ``|i - j| >= 3`` closer than 3 A);
* radius of gyration divided by the natural ``3.22 N^0.318`` A (compact domains: about 1);
* Wasserstein-1 distances of the CA virtual bond-angle and dihedral distributions to held-out real
  domains (dihedrals on ``[-90, 270)`` deg, so the strand peak at about -170 deg is not split by the
  +-180 cut), with the **real-vs-real baseline** beside them: the reference set is split in two halves
  ``A`` (even positions) and ``B`` (odd); samples are compared with ``A`` and ``B`` with ``A``, so a
  generator matching the data reaches the baseline (up to sample-size noise);
* the left-handed virtual dihedral fraction (``[-70, -30]`` deg; natural about 2%, a mirrored
  protein far more);
* helix / strand / coil fractions from CA geometry (P-SEA-like, :func:`~moldiff.proteins.geometry.secondary_structure`);
* mean pairwise TM-score (lower: more diverse) when the ``tmtools`` package is installed.

**Not measured: designability.** Published backbone generators (RFdiffusion, FrameDiff, Genie) are
judged by self-consistency: ProteinMPNN designs sequences for each backbone and ESMFold refolds
them. That needs model weights unavailable offline here, so these numbers describe geometry and
diversity only; they do not say whether a backbone is designable.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from . import geometry as geo
from .dataset import BackboneDataset

__all__ = [
    "backbone_statistics",
    "evaluate_backbones",
    "evaluate_folder",
    "format_report",
    "pairwise_tm_scores",
    "DESIGNABILITY_NOTE",
]

DESIGNABILITY_NOTE = (
    "designability (ProteinMPNN + ESMFold self-consistency) is NOT measured: it needs folding "
    "weights unavailable offline; these metrics cover geometry and diversity only"
)


def backbone_statistics(cas: Sequence[np.ndarray]) -> dict:
    """Pooled per-residue distributions and per-chain values of a set of traces.

    Returns:
        ``{"bonds", "angles", "dihedrals"}`` (pooled 1-D arrays: A, degrees, degrees),
        ``{"lengths", "rg_ratio", "breaks", "clashes"}`` (one value per chain) and
        ``"ss"`` (residue counts ``{"helix", "strand", "coil"}``).
    """
    out = {k: [] for k in ("bonds", "angles", "dihedrals", "lengths", "rg_ratio", "breaks", "clashes")}
    ss = {"helix": 0, "strand": 0, "coil": 0}
    for ca in cas:
        x = geo.as_ca(ca)
        n = x.shape[0]
        out["bonds"].append(geo.bond_lengths(x).numpy())
        out["angles"].append(geo.bond_angles(x).numpy())
        out["dihedrals"].append(geo.virtual_dihedrals(x).numpy())
        out["lengths"].append(n)
        out["rg_ratio"].append(geo.radius_of_gyration(x) / geo.expected_radius_of_gyration(n))
        out["breaks"].append(geo.chain_breaks(x))
        out["clashes"].append(geo.clashes(x))
        s = geo.secondary_structure(x)
        for key, letter in (("helix", "H"), ("strand", "E"), ("coil", "C")):
            ss[key] += s.count(letter)
    stats = {
        k: np.concatenate(v) if k in ("bonds", "angles", "dihedrals") and v else np.asarray(v, dtype=float)
        for k, v in out.items()
    }
    stats["ss"] = ss
    return stats


def _cut(dihedrals: np.ndarray) -> np.ndarray:
    """Dihedrals (deg) moved to ``[-90, 270)``: the cut sits in a sparse region, so the strand peak
    near -170 / +190 deg stays in one piece for the (linear) Wasserstein distance."""
    return np.where(dihedrals < -90.0, dihedrals + 360.0, dihedrals)


def _summary(stats: dict) -> dict:
    bonds = stats["bonds"]
    total = max(sum(stats["ss"].values()), 1)
    return {
        "num_backbones": int(len(stats["lengths"])),
        "mean_length": float(np.mean(stats["lengths"])),
        "ca_ca_mean": float(bonds.mean()) if bonds.size else float("nan"),
        "ca_ca_std": float(bonds.std()) if bonds.size else float("nan"),
        "ca_ca_within_0.1": float((np.abs(bonds - 3.8) <= 0.1).mean()) if bonds.size else float("nan"),
        "chain_breaks": int(stats["breaks"].sum()),
        "fraction_with_breaks": float((stats["breaks"] > 0).mean()),
        "clashes_per_backbone": float(stats["clashes"].mean()),
        "fraction_with_clashes": float((stats["clashes"] > 0).mean()),
        "rg_ratio_mean": float(stats["rg_ratio"].mean()),
        "rg_ratio_std": float(stats["rg_ratio"].std()),
        "left_handed_fraction": geo.left_handed_fraction(stats["dihedrals"]),
        "helix": stats["ss"]["helix"] / total,
        "strand": stats["ss"]["strand"] / total,
        "coil": stats["ss"]["coil"] / total,
    }


def pairwise_tm_scores(cas: Sequence[np.ndarray], max_pairs: int = 1000) -> np.ndarray | None:
    """TM-scores (normalised by the first chain) of pairs of traces with ``tmtools``; ``None`` when it
    is not installed. At most ``max_pairs`` pairs, in order."""
    try:
        from tmtools import tm_align
    except ImportError:
        return None
    scores = []
    for a, b in itertools.islice(itertools.combinations(range(len(cas)), 2), max_pairs):
        xa, xb = np.asarray(cas[a], dtype=np.float64), np.asarray(cas[b], dtype=np.float64)
        res = tm_align(xa, xb, "G" * len(xa), "G" * len(xb))
        scores.append(0.5 * (res.tm_norm_chain1 + res.tm_norm_chain2))
    return np.asarray(scores)


def evaluate_backbones(
    samples: Sequence[np.ndarray], reference: Sequence[np.ndarray] | None = None, *, tm_score: bool = True
) -> dict:
    """The evaluation suite (see the module docstring).

    Args:
        samples: generated CA traces, each ``[L, 3]`` in A.
        reference: real CA traces (held-out domains) for the distribution distances and the
            real-vs-real baseline; at least 2 (default: none, no distances).
        tm_score: compute the pairwise TM-score diversity when ``tmtools`` is installed (default: true).

    Returns:
        ``{"summary": {...}, "reference": {...} or None, "baseline": {...} or None, "notes": [...]}``;
        ``summary`` holds the samples' metrics and ``w1_bond_angle`` / ``w1_dihedral`` (deg) to the
        reference half ``A``; ``baseline`` the same distances of reference half ``B`` to ``A``;
        ``reference`` the real domains' own metrics.
    """
    if len(samples) == 0:
        raise ValueError("no backbones to evaluate")
    stats = backbone_statistics(samples)
    result: dict = {"summary": _summary(stats), "reference": None, "baseline": None, "notes": [DESIGNABILITY_NOTE]}
    if reference is not None:
        if len(reference) < 2:
            raise ValueError("the reference needs at least 2 real backbones (it is split in two halves)")
        half_a, half_b = backbone_statistics(reference[0::2]), backbone_statistics(reference[1::2])
        ref_all = backbone_statistics(reference)
        result["reference"] = _summary(ref_all)
        result["summary"]["w1_bond_angle"] = geo.wasserstein_1d(stats["angles"], half_a["angles"])
        result["summary"]["w1_dihedral"] = geo.wasserstein_1d(_cut(stats["dihedrals"]), _cut(half_a["dihedrals"]))
        result["baseline"] = {
            "w1_bond_angle": geo.wasserstein_1d(half_b["angles"], half_a["angles"]),
            "w1_dihedral": geo.wasserstein_1d(_cut(half_b["dihedrals"]), _cut(half_a["dihedrals"])),
            "num_a": len(reference[0::2]),
            "num_b": len(reference[1::2]),
        }
    tm = pairwise_tm_scores(samples) if tm_score and len(samples) > 1 else None
    if tm is not None and tm.size:
        result["summary"]["tm_pairwise_mean"] = float(tm.mean())
    elif tm_score:
        result["notes"].append("pairwise TM-score diversity not measured (pip install tmtools)")
    return result


def evaluate_folder(
    path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    max_reference: int = 200,
    on_error: str = "raise",
    tm_score: bool = True,
) -> dict:
    """Evaluate every structure in a folder (e.g. the output of ``moldiff sample``).

    Args:
        path: folder of PDB/mmCIF files.
        reference: the real domains: a CATH archive or folder, whose fixed held-out split is used
            (default: the shared CATH archive, :func:`~moldiff.proteins.dataset.default_cath_path`).
        max_reference: use at most this many held-out domains (default: 200).
        on_error: ``"raise"`` or ``"skip"`` unreadable sample files; chain breaks are *measured*
            for samples, not rejected.
        tm_score: see :func:`evaluate_backbones`.
    """
    samples = BackboneDataset(path, "all", on_error=on_error, max_ca_gap=float("inf"))
    ref = BackboneDataset(reference, "holdout", limit=max_reference)
    result = evaluate_backbones([b.ca for b in samples], [b.ca for b in ref], tm_score=tm_score)
    result["samples_path"] = str(Path(path))
    result["reference_path"] = f"{ref.source} (held-out split, {len(ref)} domains)"
    if samples.skipped:
        result["skipped"] = dict(samples.skipped)
    return result


def format_report(result: dict) -> str:
    """A plain-text table: samples, real domains and the real-vs-real baseline side by side."""
    s, r, b = result["summary"], result.get("reference") or {}, result.get("baseline") or {}
    rows = [
        ("backbones", "num_backbones", "{:d}", "-"),
        ("mean length", "mean_length", "{:.1f}", "-"),
        ("CA-CA mean (A)", "ca_ca_mean", "{:.3f}", "3.80"),
        ("CA-CA std (A)", "ca_ca_std", "{:.3f}", "0.02"),
        ("CA-CA within 3.8+-0.1", "ca_ca_within_0.1", "{:.3f}", ">0.99"),
        ("chain breaks (>4.2 A)", "chain_breaks", "{:d}", "0"),
        ("clashes per backbone (<3 A)", "clashes_per_backbone", "{:.2f}", "0"),
        ("Rg / 3.22 N^0.318", "rg_ratio_mean", "{:.3f}", "~1"),
        ("left-handed dihedral frac.", "left_handed_fraction", "{:.3f}", "~0.02"),
        ("helix fraction", "helix", "{:.3f}", "0.33-0.36"),
        ("strand fraction", "strand", "{:.3f}", "0.24-0.28"),
        ("coil fraction", "coil", "{:.3f}", "~0.39"),
    ]
    width = 30

    def fmt(d, key, f):
        v = d.get(key)
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        return f.format(int(v)) if f == "{:d}" else f.format(v)

    lines = [f"{'metric':<{width}} {'samples':>10} {'real (held-out)':>16} {'natural':>10}"]
    for label, key, f, natural in rows:
        lines.append(f"{label:<{width}} {fmt(s, key, f):>10} {fmt(r, key, f):>16} {natural:>10}")
    if b:
        lines.append("")
        lines.append(f"{'Wasserstein-1 to real half A':<{width}} {'samples':>10} {'real-vs-real':>16}")
        for label, key in (("CA bond angle (deg)", "w1_bond_angle"), ("CA dihedral (deg)", "w1_dihedral")):
            lines.append(f"{label:<{width}} {fmt(s, key, '{:.2f}'):>10} {fmt(b, key, '{:.2f}'):>16}")
        lines.append(f"(real-vs-real baseline: held-out halves of {b['num_b']} vs {b['num_a']} domains)")
    if "tm_pairwise_mean" in s:
        lines.append(f"{'pairwise TM-score (mean)':<{width}} {s['tm_pairwise_mean']:>10.3f}")
    if result.get("reference_path"):
        lines.append(f"reference: {result['reference_path']}")
    if result.get("skipped"):
        lines.append(f"skipped files: {result['skipped']}")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
