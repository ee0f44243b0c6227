"""Motif scaffolding on motifs cut from held-out CATH domains: motif RMSD and success rate per model.

The motif set is fixed by the held-out split (no choice by hand): from each of the first ``--motifs``
held-out domains of 60-200 residues,

* **one segment**: the first window of 12 residues, at least 10 from either end, of which at least
  8 are helix or strand by moldiff's CA assigner (else the middle 12);
* **two segments**: the first pair of 8-residue windows at least 12 residues apart in sequence whose
  centroids lie within 10 A (two elements packed against each other, as the residues of a binding
  site or an active site are).

Each motif is scaffolded at its native place: the contig keeps the native flank and linker lengths
+- 5 (``"7-17/A13-24/40-50"``), so a scaffold is as long as the domain it came from, about. A design
**succeeds** when its motif CA RMSD after superposition is below 1 A *and* its chain is whole (no
consecutive CA-CA beyond 4.2 A) *and* it has no non-local clash (CA pairs ``|i - j| >= 3`` closer than
3 A; real domains have none). Designability is not part of it (no ESMFold here): RFdiffusion's
in-silico success adds scRMSD < 2 A, which this does not measure.

    python benchmarks/backbone_scaffolding.py --model cath_ca --model cath_ca_egnn
    python benchmarks/backbone_scaffolding.py --model untrained --motifs 2 --num 2 --steps 4   # smoke test

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _report import add_potential_argument, potential_options, print_record  # benchmarks/_report.py, beside this script


def one_segment_motif(ca: np.ndarray, ss: str, width: int = 12, margin: int = 10) -> tuple[int, int]:
    """``(start, end)`` 0-based inclusive of the one-segment motif of a domain (module docstring)."""
    n = len(ca)
    for s in range(margin, n - margin - width + 1):
        if sum(c in "HE" for c in ss[s : s + width]) >= 8:
            return s, s + width - 1
    s = (n - width) // 2
    return s, s + width - 1


def two_segment_motif(ca: np.ndarray, width: int = 8, separation: int = 12, radius: float = 10.0):
    """``((s1, e1), (s2, e2))`` 0-based inclusive, or ``None`` (module docstring)."""
    n = len(ca)
    centroids = np.stack([ca[s : s + width].mean(axis=0) for s in range(n - width + 1)])
    for s1 in range(5, n - width + 1):
        for s2 in range(s1 + width + separation, n - width - 4):
            if np.linalg.norm(centroids[s1] - centroids[s2]) < radius:
                return (s1, s1 + width - 1), (s2, s2 + width - 1)
    return None


def _flank(n: int, slack: int = 5, least: int = 0) -> str:
    return f"{max(least, n - slack)}-{max(least, n - slack, n + slack)}"


def contig_for(segments, length: int) -> str:
    """The contig that puts 0-based inclusive motif ``segments`` at their native place, flanks +- 5."""
    parts, previous = [], -1
    for k, (s, e) in enumerate(segments):
        gap = s - previous - 1
        parts.append(_flank(gap, least=3 if k else 0))
        parts.append(f"A{s + 1}-{e + 1}")
        previous = e
    parts.append(_flank(length - previous - 1))
    return "/".join(parts)


def motif_set(reference, count: int) -> list[dict]:
    """The benchmark's motifs: ``{"domain", "kind", "contig", "ca"}`` (``ca`` the whole domain)."""
    from moldiff.proteins.geometry import secondary_structure

    motifs = []
    for chain in reference:
        if len(motifs) >= 2 * count:
            break
        ca = np.asarray(chain.ca, dtype=np.float64)
        if not 60 <= len(ca) <= 200:
            continue
        one = one_segment_motif(ca, secondary_structure(ca))
        motifs.append({"domain": chain.name, "kind": "one_segment", "contig": contig_for([one], len(ca)), "ca": ca})
        two = two_segment_motif(ca)
        if two is not None:
            motifs.append({"domain": chain.name, "kind": "two_segments", "contig": contig_for(two, len(ca)), "ca": ca})
    return motifs


def score(designs) -> dict:
    """Success and its parts over a list of scaffolds."""
    from moldiff.proteins import geometry as geo

    rmsd = np.array([d.motif_rmsd for d in designs])
    whole = np.array([geo.chain_breaks(d.ca) == 0 for d in designs])
    clash_free = np.array([geo.clashes(d.ca) == 0 for d in designs])
    return {
        "designs": len(designs),
        "motif_rmsd_median": float(np.median(rmsd)),
        "motif_rmsd_below_1": float((rmsd < 1.0).mean()),
        "whole_chain": float(whole.mean()),
        "clash_free": float(clash_free.mean()),
        "success": float(((rmsd < 1.0) & whole & clash_free).mean()),
    }


def _load(model: str):
    if model == "untrained":
        import torch

        from moldiff.proteins.angles import AngleBackboneConfig, AngleBackboneDiffusion

        torch.manual_seed(0)
        cfg = AngleBackboneConfig(hidden=16, layers=1, heads=2)
        return AngleBackboneDiffusion(cfg, {"length_histogram": {50: 1}})
    from moldiff.hub import load_model

    return load_model(model)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="backbone model (repeat to compare)")
    parser.add_argument("--motifs", type=int, default=8, help="held-out domains that give motifs (default: 8)")
    parser.add_argument("--num", type=int, default=8, help="scaffolds per motif (default: 8)")
    parser.add_argument("--sampler", default=None, help="(default: each model's)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: each model's)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    add_potential_argument(parser)
    parser.add_argument("--reference", default=None, help="CATH archive or folder (default: the shared archive)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the JSON record to this file")
    args = parser.parse_args(argv)
    from moldiff.hub import data_path

    try:
        args.reference = data_path(args.reference, "proteins/cath_domains_1000.tar.gz", option="--reference")
    except FileNotFoundError as err:
        raise SystemExit(f"benchmarks/backbone_scaffolding.py: {err}") from None

    import torch

    from moldiff.proteins.dataset import BackboneDataset
    from moldiff.proteins.pdb_io import write_design

    if args.threads:
        torch.set_num_threads(args.threads)
    motifs = motif_set(BackboneDataset(args.reference, "holdout"), args.motifs)
    print(f"{len(motifs)} motifs from {len({m['domain'] for m in motifs})} held-out domains")
    record: dict = {"motifs": [{k: m[k] for k in ("domain", "kind", "contig")} for m in motifs], "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for m in motifs:
            m["pdb"], _ = write_design(tmp, f"{m['domain']}_{m['kind']}", m["ca"], {})
        for name in args.model:
            model = _load(name)
            rows, tick = {}, time.process_time()
            for m in motifs:
                designs = model.scaffold(
                    m["pdb"],
                    m["contig"],
                    num=args.num,
                    seed=args.seed,
                    sampler=args.sampler,
                    steps=args.steps,
                    **potential_options(args),
                )
                rows.setdefault(m["kind"], []).extend(designs)
            cpu = time.process_time() - tick
            result = {kind: score(designs) for kind, designs in rows.items()}
            result["cpu_s_per_design"] = cpu / sum(len(d) for d in rows.values())
            record["models"][name] = result
            print(f"== {name} ==")
            print(
                f"{'motif kind':<14} {'designs':>8} {'RMSD med':>9} {'RMSD<1':>7} {'whole':>6} {'no clash':>8} {'success':>8}"
            )
            for kind in ("one_segment", "two_segments"):
                if kind in result:
                    r = result[kind]
                    print(
                        f"{kind:<14} {r['designs']:>8d} {r['motif_rmsd_median']:>9.3f} {r['motif_rmsd_below_1']:>7.2f} "
                        f"{r['whole_chain']:>6.2f} {r['clash_free']:>8.2f} {r['success']:>8.2f}"
                    )
            print(f"CPU s per design: {result['cpu_s_per_design']:.2f}")
    record.update(
        num_per_motif=args.num,
        seed=args.seed,
        sampler=args.sampler,
        steps=args.steps,
        potentials=args.potential or "each model's",
        potential_sigma_max=args.potential_sigma_max or "each model's",
        particles=args.particles or "each model's",
        steering=args.steer or "each model's",
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
