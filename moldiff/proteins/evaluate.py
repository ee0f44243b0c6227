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
* helix / strand / coil fractions from CA geometry (P-SEA-like, :func:`~moldiff.proteins.geometry.secondary_structure`),
  cross-checked with an independent CA-only assigner, biotite's P-SEA
  (:func:`biotite.structure.annotate_sse`, :func:`psea_secondary_structure`): ``helix_psea`` /
  ``strand_psea`` / ``coil_psea`` and the per-residue agreement of the two, ``ss_agreement_psea``
  (when the ``biotite`` package is installed). On the 1,000 CATH domains of the shared archive:
  helix 0.31 (moldiff) and 0.32 (P-SEA), strand 0.24 and 0.16 (moldiff accepts 3-residue strand
  runs, P-SEA wants 4 or 3 with contacts), per-residue agreement 0.84. Unlike moldiff's, biotite's
  P-SEA calls a mirrored (left-handed) helix a helix: its distance criteria cannot see handedness;
* mean pairwise TM-score (lower: more diverse) when the ``tmtools`` package is installed;
* novelty, when training domains are given (``training=``) and ``tmtools`` is installed: for every
  sample its highest TM-score to a training domain (normalised by the sample's length,
  :func:`novelty_tm_scores`), as the mean ``tm_novelty_mean`` (lower: more novel) and
  ``fraction_novel`` (highest TM below 0.5, i.e. no training domain of the same fold). About 15-25
  ms per TM-align at 100-150 residues on one core: ``samples x training`` pairs add up (20 held-out
  CATH domains against 100 training ones: 47 s; their mean highest TM 0.52, 60% "novel").

``pip install moldiff[proteins]`` installs both optional packages (biotite, tmtools); without them
the keys are absent and ``notes`` says so.

**Not measured: designability.** Published backbone generators (RFdiffusion, FrameDiff, Genie) are
judged by self-consistency: ProteinMPNN designs sequences for each backbone and ESMFold refolds
them. That needs model weights unavailable offline here, so these numbers describe geometry,
diversity and novelty only; they do not say whether a backbone is designable. A proxy, the CA-only
ProteinMPNN's confidence in its own designs, is :mod:`moldiff.proteins.mpnn_proxy` (run in its own
environment; ``benchmarks/backbone_mpnn.py``).
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
    "novelty_summary",
    "novelty_tm_scores",
    "novelty_training_domains",
    "pairwise_tm_scores",
    "psea_secondary_structure",
    "DESIGNABILITY_NOTE",
]

DESIGNABILITY_NOTE = (
    "designability (ProteinMPNN + ESMFold self-consistency) is NOT measured: it needs folding "
    "weights unavailable offline; these metrics cover geometry, diversity and novelty only "
    "(benchmarks/backbone_mpnn.py gives a CA-only ProteinMPNN proxy)"
)


def _biotite_available() -> bool:
    try:
        import biotite.structure  # noqa: F401
    except ImportError:
        return False
    return True


PSEA_MAX_GRID_CELLS = 20_000_000
"""Largest contact grid (cells of 5.2 A over the trace's bounding box) :func:`psea_secondary_structure`
lets biotite allocate, one 8-byte word per cell: a trace 1,400 A wide in all three directions."""


def psea_secondary_structure(ca) -> str | None:
    """Per-residue secondary structure of one CA trace by biotite's P-SEA
    (:func:`biotite.structure.annotate_sse`, Labesse et al. 1997), an assigner independent of
    :func:`~moldiff.proteins.geometry.secondary_structure`, in the same letters: ``"H"`` helix
    (biotite ``'a'``), ``"E"`` strand (``'b'``), ``"C"`` coil (``'c'``) and ``"-"`` undetermined
    (``''``: a residue without finite coordinates). ``None`` when biotite is not installed.

    The trace is passed as one chain of CA atoms of alanines numbered ``1..L`` (consecutive, as
    :func:`~moldiff.proteins.geometry.secondary_structure` treats it: no gap is inferred). Chains of
    at most 5 residues are all coil (biotite's rule). biotite allocates a dense 5.2 A contact grid
    over the trace's bounding box (48 GiB for a cloud 10,000 A wide): an exploded trace whose grid
    would exceed :data:`PSEA_MAX_GRID_CELLS` is not assigned, all ``"-"``.
    """
    try:
        import biotite.structure as struc
    except ImportError:
        return None
    x = geo.as_ca(ca).numpy()
    n = x.shape[0]
    if n == 0:
        return ""
    finite = x[np.isfinite(x).all(axis=1)]
    if finite.size:
        with np.errstate(over="ignore", invalid="ignore"):
            cells = np.prod(np.floor(np.ptp(finite, axis=0) / 5.2) + 1.0)
        if not cells <= PSEA_MAX_GRID_CELLS:  # also inf (coordinates beyond float32)
            return "-" * n
    atoms = struc.AtomArray(n)
    atoms.coord = x.astype(np.float32)
    atoms.chain_id[:] = "A"
    atoms.res_id[:] = np.arange(1, n + 1)
    atoms.res_name[:] = "ALA"  # annotate_sse only assigns amino acids (by residue name)
    atoms.atom_name[:] = "CA"
    atoms.element[:] = "C"
    sse = struc.annotate_sse(atoms)
    letters = {"a": "H", "b": "E", "c": "C"}
    return "".join(letters.get(str(c), "-") for c in sse)


def backbone_statistics(cas: Sequence[np.ndarray], *, psea: bool | None = None) -> dict:
    """Pooled per-residue distributions and per-chain values of a set of traces.

    Args:
        cas: CA traces, each ``[L, 3]`` in A.
        psea: also assign secondary structure with biotite's P-SEA (:func:`psea_secondary_structure`);
            default: when biotite is installed.

    Returns:
        ``{"bonds", "angles", "dihedrals"}`` (pooled 1-D arrays: A, degrees, degrees),
        ``{"lengths", "rg_ratio", "breaks", "clashes"}`` (one value per chain),
        ``"ss"`` (residue counts ``{"helix", "strand", "coil"}``), ``"ss_psea"`` (the same counts by
        P-SEA, ``None`` without it; ``"undetermined"`` counts the residues P-SEA left unassigned) and
        ``"ss_same"`` (residues where both assigners give the same letter, ``None`` without P-SEA).
    """
    if psea is None:
        psea = _biotite_available()
    out = {k: [] for k in ("bonds", "angles", "dihedrals", "lengths", "rg_ratio", "breaks", "clashes")}
    ss = {"helix": 0, "strand": 0, "coil": 0}
    ss_psea = {"helix": 0, "strand": 0, "coil": 0, "undetermined": 0} if psea else None
    same = 0
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
        if psea:
            p = psea_secondary_structure(x)
            if p is None:
                raise ImportError("psea=True needs biotite (pip install biotite)")
            for key, letter in (("helix", "H"), ("strand", "E"), ("coil", "C"), ("undetermined", "-")):
                ss_psea[key] += p.count(letter)
            same += sum(a == b for a, b in zip(s, p))
    stats = {
        k: np.concatenate(v) if k in ("bonds", "angles", "dihedrals") and v else np.asarray(v, dtype=float)
        for k, v in out.items()
    }
    stats["ss"] = ss
    stats["ss_psea"] = ss_psea
    stats["ss_same"] = same if psea else None
    return stats


def _cut(dihedrals: np.ndarray) -> np.ndarray:
    """Dihedrals (deg) moved to ``[-90, 270)``: the cut sits in a sparse region, so the strand peak
    near -170 / +190 deg stays in one piece for the (linear) Wasserstein distance."""
    return np.where(dihedrals < -90.0, dihedrals + 360.0, dihedrals)


def _summary(stats: dict) -> dict:
    bonds = stats["bonds"]
    total = max(sum(stats["ss"].values()), 1)
    summary = {
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
    if stats.get("ss_psea") is not None:  # fractions of all residues (undetermined ones count in none)
        for key in ("helix", "strand", "coil"):
            summary[f"{key}_psea"] = stats["ss_psea"][key] / total
        summary["ss_agreement_psea"] = stats["ss_same"] / total
    return summary


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


def novelty_tm_scores(
    samples: Sequence[np.ndarray],
    training_cas: Sequence[np.ndarray],
    max_train: int | None = None,
    *,
    max_rg_ratio: float = 20.0,
) -> np.ndarray | None:
    """For every sample its highest TM-score to a training domain, with ``tmtools`` (TM-align);
    ``None`` when it is not installed.

    The TM-score is normalised by the sample's length (the sample is TM-align's chain 1:
    ``tm_norm_chain1``), the convention of backbone-generator papers: about 1 when the sample
    reappears in (part of) a training domain, below 0.5 when no training domain shares its fold.
    The cost is ``len(samples) * len(training)`` alignments, about 15-25 ms each for 100-150
    residue chains on one core.

    Samples spread over hundreds of A (an exploded or untrained model's output: radius of
    gyration above ``max_rg_ratio`` times the natural ``3.22 N^0.318`` A; a straight 300-residue
    strand is about 17) are not aligned and get NaN: their TM-score is about 0 to anything and
    TM-align slows down to seconds per pair on them.

    Args:
        samples: generated CA traces, each ``[L, 3]`` in A.
        training_cas: the training domains' CA traces.
        max_train: compare with the first this many training domains only (default: all).
        max_rg_ratio: skip (NaN) samples less compact than this (default: 20).

    Returns:
        ``[len(samples)]`` array of maxima; NaN for skipped samples, and for all when no training
        domain is given.
    """
    try:
        from tmtools import tm_align
    except ImportError:
        return None
    train = [np.asarray(geo.as_ca(t).numpy(), dtype=np.float64) for t in list(training_cas)[:max_train]]
    train = [t for t in train if len(t) >= 3]
    best = np.full(len(samples), np.nan)
    for i, sample in enumerate(samples):
        ca = geo.as_ca(sample)
        n = ca.shape[0]
        if n < 3 or not geo.radius_of_gyration(ca) <= max_rg_ratio * geo.expected_radius_of_gyration(n):
            continue  # too short to align, exploded, or NaN coordinates
        x = np.ascontiguousarray(ca.numpy())
        seq = "G" * n
        scores = [tm_align(x, t, seq, "G" * len(t)).tm_norm_chain1 for t in train]
        if scores:
            best[i] = max(scores)
    return best


def novelty_summary(max_tm: np.ndarray, num_train: int, threshold: float = 0.5) -> dict:
    """``{"tm_novelty_mean", "fraction_novel", "novelty_num_samples", "novelty_skipped",
    "novelty_num_train"}`` of the maxima of :func:`novelty_tm_scores` against ``num_train`` training
    domains: their mean (lower: more novel) and the fraction below ``threshold``, over the aligned
    samples (``novelty_num_samples``; NaN ones are counted as ``novelty_skipped``)."""
    max_tm = np.asarray(max_tm, dtype=np.float64).ravel()
    aligned = max_tm[np.isfinite(max_tm)]
    return {
        "tm_novelty_mean": float(aligned.mean()) if aligned.size else float("nan"),
        "fraction_novel": float((aligned < threshold).mean()) if aligned.size else float("nan"),
        "novelty_num_samples": int(aligned.size),
        "novelty_skipped": int(max_tm.size - aligned.size),
        "novelty_num_train": int(num_train),
    }


def evaluate_backbones(
    samples: Sequence[np.ndarray],
    reference: Sequence[np.ndarray] | None = None,
    *,
    tm_score: bool = True,
    training: Sequence[np.ndarray] | None = None,
) -> dict:
    """The evaluation suite (see the module docstring).

    Args:
        samples: generated CA traces, each ``[L, 3]`` in A.
        reference: real CA traces (held-out domains) for the distribution distances and the
            real-vs-real baseline; at least 2 (default: none, no distances).
        tm_score: compute the pairwise TM-score diversity when ``tmtools`` is installed (default: true).
        training: training domains' CA traces for the novelty (:func:`novelty_tm_scores`, with
            ``tmtools``; ``len(samples) * len(training)`` TM-aligns, independent of ``tm_score``);
            default: none, novelty not measured.

    Returns:
        ``{"summary": {...}, "reference": {...} or None, "baseline": {...} or None, "notes": [...]}``;
        ``summary`` holds the samples' metrics and ``w1_bond_angle`` / ``w1_dihedral`` (deg) to the
        reference half ``A``, with ``training``: ``tm_novelty_mean`` / ``fraction_novel`` /
        ``novelty_num_samples`` / ``novelty_skipped`` / ``novelty_num_train`` (:func:`novelty_summary`);
        ``baseline`` the same distances of reference half ``B`` to ``A``;
        ``reference`` the real domains' own metrics. With biotite installed, ``summary`` and
        ``reference`` hold ``helix_psea`` / ``strand_psea`` / ``coil_psea`` / ``ss_agreement_psea``.
    """
    if len(samples) == 0:
        raise ValueError("no backbones to evaluate")
    if training is not None and len(training) == 0:
        raise ValueError("training= needs at least 1 training domain (or None: novelty not measured)")
    psea = _biotite_available()
    stats = backbone_statistics(samples, psea=psea)
    result: dict = {"summary": _summary(stats), "reference": None, "baseline": None, "notes": [DESIGNABILITY_NOTE]}
    if not psea:
        result["notes"].append("P-SEA secondary-structure cross-check (biotite) not measured (pip install biotite)")
    elif stats["ss_psea"]["undetermined"]:
        result["notes"].append(
            f"P-SEA left {stats['ss_psea']['undetermined']} sample residues undetermined (non-finite or exploded "
            "traces); they count as disagreement in ss_agreement_psea"
        )
    if reference is not None:
        if len(reference) < 2:
            raise ValueError("the reference needs at least 2 real backbones (it is split in two halves)")
        # the halves serve the distribution distances only: no P-SEA there
        half_a, half_b = (
            backbone_statistics(reference[0::2], psea=False),
            backbone_statistics(reference[1::2], psea=False),
        )
        ref_all = backbone_statistics(reference, psea=psea)
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
    if training is not None:
        novelty = novelty_tm_scores(samples, training)
        if novelty is None:
            result["notes"].append("novelty (max TM-score to training domains) not measured (pip install tmtools)")
        else:
            result["summary"].update(novelty_summary(novelty, len(training)))
    return result


def novelty_training_domains(reference: str | os.PathLike | None, num: int) -> list[np.ndarray] | None:
    """CA traces of the first ``num`` domains of the reference's training split for novelty
    (``-1``: all of them; 0: none, novelty not measured)."""
    if num < -1:
        raise ValueError(f"novelty: a number of training domains, -1 for all or 0 for none, got {num}")
    if not num:
        return None
    return [b.ca for b in BackboneDataset(reference, "train", limit=None if num < 0 else num)]


def evaluate_folder(
    path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    max_reference: int = 200,
    on_error: str = "raise",
    tm_score: bool = True,
    novelty: int = 0,
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
        novelty: TM-align every sample with the first ``novelty`` domains of the reference's
            training split (``-1``: all of them; 0: novelty not measured) (default: 0).
    """
    training = novelty_training_domains(reference, novelty)
    samples = BackboneDataset(path, "all", on_error=on_error, max_ca_gap=float("inf"))
    ref = BackboneDataset(reference, "holdout", limit=max_reference)
    result = evaluate_backbones([b.ca for b in samples], [b.ca for b in ref], tm_score=tm_score, training=training)
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
        ("helix fraction (P-SEA, biotite)", "helix_psea", "{:.3f}", "~0.32"),
        ("strand fraction (P-SEA, biotite)", "strand_psea", "{:.3f}", "~0.16"),
        ("coil fraction (P-SEA, biotite)", "coil_psea", "{:.3f}", "~0.51"),
        ("SS agreement moldiff vs P-SEA", "ss_agreement_psea", "{:.3f}", "~0.84"),
    ]
    width = 32

    def fmt(d, key, f):
        v = d.get(key)
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        return f.format(int(v)) if f == "{:d}" else f.format(v)

    lines = [f"{'metric':<{width}} {'samples':>10} {'real (held-out)':>16} {'natural':>10}"]
    for label, key, f, natural in rows:
        if key.endswith("_psea") and key not in s and key not in r:
            continue  # biotite not installed: the cross-check rows are left out (the notes say why)
        lines.append(f"{label:<{width}} {fmt(s, key, f):>10} {fmt(r, key, f):>16} {natural:>10}")
    if b:
        lines.append("")
        lines.append(f"{'Wasserstein-1 to real half A':<{width}} {'samples':>10} {'real-vs-real':>16}")
        for label, key in (("CA bond angle (deg)", "w1_bond_angle"), ("CA dihedral (deg)", "w1_dihedral")):
            lines.append(f"{label:<{width}} {fmt(s, key, '{:.2f}'):>10} {fmt(b, key, '{:.2f}'):>16}")
        lines.append(f"(real-vs-real baseline: held-out halves of {b['num_b']} vs {b['num_a']} domains)")
    if "tm_pairwise_mean" in s:
        lines.append(f"{'pairwise TM-score (mean)':<{width}} {s['tm_pairwise_mean']:>10.3f}")
    if "tm_novelty_mean" in s:
        lines.append(f"{'max TM to training (mean)':<{width}} {fmt(s, 'tm_novelty_mean', '{:.3f}'):>10}")
        lines.append(f"{'fraction novel (max TM < 0.5)':<{width}} {fmt(s, 'fraction_novel', '{:.3f}'):>10}")
        if "novelty_num_train" in s:
            skipped = f", {s['novelty_skipped']} exploded ones skipped" if s.get("novelty_skipped") else ""
            lines.append(
                f"(novelty: {s['novelty_num_samples']} samples vs {s['novelty_num_train']} training domains{skipped})"
            )
    if result.get("reference_path"):
        lines.append(f"reference: {result['reference_path']}")
    if result.get("skipped"):
        lines.append(f"skipped files: {result['skipped']}")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
