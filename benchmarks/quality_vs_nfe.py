"""Molecule quality against the number of network evaluations (NFE), for several samplers.

For every sampler and NFE budget the same ``--num`` molecules are sampled (same seed: same sizes,
drawn from the model's training histogram, and the same chunk seeds) and scored with EDM's metrics
(:func:`moldiff.molecules.metrics.evaluate_molecules`: atom and molecule stability, RDKit validity
of the largest fragment, validity x uniqueness, and connected validity).

A budget becomes a number of sampler steps: the most steps whose evaluations, counted by
:func:`moldiff.core.count_denoiser_calls` on the time grid actually used, fit in the budget. First-
order samplers (``ddpm``, EDM's ancestral sampler; ``ddim``, deterministic; ``dpmpp_2m``) evaluate
once per step, so steps = NFE; Heun evaluates twice per step except on its last (Euler) step to
``sigma = 0``, so steps = (NFE + 1) // 2 and an even budget is spent as NFE - 1. The table shows the
NFE spent. Time grids are the model's defaults (uniform in ``t`` for ``ddpm`` as in EDM, Karras
et al.'s for the others) unless ``--grid`` is given.

Usage::

    python benchmarks/quality_vs_nfe.py                                   # shipped qm9 model, 500 molecules
    python benchmarks/quality_vs_nfe.py --model runs/qm9_small/checkpoints/best.ckpt --num 20 --nfe 10 20
    python benchmarks/quality_vs_nfe.py --samplers dpmpp_2m heun --nfe 25 50 --out quality.json

Prints a markdown table (one row per sampler and budget), a pivot of molecule stability / validity
(samplers x NFE), and as the last line one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from _report import print_record  # benchmarks/_report.py, beside this script

SAMPLER_LABELS = {
    "ddpm": "ancestral (ddpm)",
    "ancestral": "ancestral",
    "ddim": "DDIM (eta 0)",
    "heun": "Heun",
    "dpmpp_2m": "DPM-Solver++(2M)",
}
METRICS = ["atom_stability", "molecule_stability", "validity", "validity_x_uniqueness", "connected_validity"]
HEADERS = ["atom stab %", "mol stab %", "valid %", "valid x unique %", "connected valid %"]


def steps_for_budget(sampler: str, nfe: int, schedule, grid: str) -> tuple[int, int]:
    """The most steps whose network evaluations fit in ``nfe``, and the evaluations they spend."""
    from moldiff.core import count_denoiser_calls, sampling_sigmas

    def cost(steps: int) -> int:
        return count_denoiser_calls(sampler, sampling_sigmas(schedule, steps, grid))

    if cost(1) > nfe:
        raise ValueError(f"{sampler} needs at least {cost(1)} evaluations, budget {nfe}")
    lo, hi = 1, max(1, nfe)  # cost is increasing in steps and cost(steps) >= steps
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= nfe else (lo, mid - 1)
    return lo, cost(lo)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default="qm9_edm", help="an EDM-style pretrained name or checkpoint (default: qm9_edm)"
    )
    parser.add_argument("--num", type=int, default=500, help="molecules per sampler and budget")
    parser.add_argument("--nfe", type=int, nargs="+", default=[25, 50, 100, 250, 1000], help="evaluation budgets")
    parser.add_argument("--samplers", nargs="+", default=["ddpm", "ddim", "heun", "dpmpp_2m"])
    parser.add_argument("--grid", default=None, help="time grid for every sampler (default: the model's per sampler)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250, help="molecules sampled together")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="also write the JSON record here")
    args = parser.parse_args(argv)

    from moldiff.core import get_sampler
    from moldiff.hub import load_pretrained
    from moldiff.molecules.metrics import evaluate_molecules

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for name in args.samplers:
        get_sampler(name)  # fail early on an unknown name
    generator = load_pretrained(args.model, device=args.device)
    schedule = generator.model.schedule
    rows = []
    for sampler in args.samplers:
        _, _, grid = generator.model.sampling_defaults(sampler, grid=args.grid)
        for budget in args.nfe:
            steps, nfe = steps_for_budget(sampler, budget, schedule, grid)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            molecules = generator.sample_arrays(
                args.num, seed=args.seed, sampler=sampler, steps=steps, grid=grid, batch_size=args.batch_size
            )
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            metrics = evaluate_molecules(molecules)
            row = {
                "sampler": sampler,
                "grid": grid,
                "nfe_budget": budget,
                "steps": steps,
                "nfe": nfe,
                "seconds_per_molecule_wall": wall / args.num,
                "seconds_per_molecule_cpu": cpu / args.num,
                **{k: float(metrics[k]) for k in METRICS},
            }
            rows.append(row)
            print(
                f"{sampler:>9} {grid:>7} NFE {nfe:>4} ({steps} steps): mol stab {100 * row['molecule_stability']:.1f}%, "
                f"valid {100 * row['validity']:.1f}%, {row['seconds_per_molecule_wall']:.3f} s/molecule",
                file=sys.stderr,
                flush=True,
            )

    print(f"\n{args.num} molecules per row, model {args.model}, seed {args.seed}\n")
    print("| sampler | grid | steps | NFE | " + " | ".join(HEADERS) + " | s/molecule (wall) |")
    print("|---|---|---|---|" + "---|" * (len(HEADERS) + 1))
    for r in rows:
        cells = " | ".join(f"{100 * r[k]:.1f}" for k in METRICS)
        print(
            f"| {SAMPLER_LABELS.get(r['sampler'], r['sampler'])} | {r['grid']} | {r['steps']} | {r['nfe']} | {cells} | "
            f"{r['seconds_per_molecule_wall']:.3f} |"
        )
    print("\nmolecule stability % / validity % (NFE budget; Heun spends one fewer on even budgets)\n")
    print("| sampler | " + " | ".join(str(b) for b in args.nfe) + " |")
    print("|---|" + "---|" * len(args.nfe))
    for sampler in args.samplers:
        cells = [
            f"{100 * r['molecule_stability']:.1f} / {100 * r['validity']:.1f}"
            for b in args.nfe
            for r in rows
            if r["sampler"] == sampler and r["nfe_budget"] == b
        ]
        print(f"| {SAMPLER_LABELS.get(sampler, sampler)} | " + " | ".join(cells) + " |")

    record = {
        "benchmark": "quality_vs_nfe",
        "model": args.model,
        "num_molecules": args.num,
        "seed": args.seed,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "rows": rows,
    }
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
