"""Quality and cost of a QM9 model under EDM's protocol, printed next to EDM's published row.

Samples molecules (sizes from the training histogram, fixed seed), evaluates EDM's metrics (atom and
molecule stability, validity of the largest fragment, validity x uniqueness, novelty against the
QM9 training split) plus connected validity, and times the sampling.

    python benchmarks/qm9_pretrained.py                                   # 1,000 samples, EDM's 1000-step ancestral sampler
    python benchmarks/qm9_pretrained.py --sampler dpmpp_2m --steps 50     # a fast sampler
    python benchmarks/qm9_pretrained.py --model runs/qm9_small/checkpoints/best.ckpt --num 200
    python benchmarks/qm9_pretrained.py --processes 2                      # the same 1,000 molecules on 2 cores
    python benchmarks/qm9_pretrained.py --sampler dpmpp_2m --steps 50 --precision bf16   # bf16 network

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

EDM_ROWS = {
    "QM9 data (EDM table)": {
        "atom_stability": 99.0,
        "molecule_stability": 95.2,
        "validity": 97.7,
        "validity_x_uniqueness": 97.7,
    },
    "EDM (1000 steps)": {
        "atom_stability": 98.7,
        "molecule_stability": 82.0,
        "validity": 91.9,
        "validity_x_uniqueness": 90.7,
    },
    "GeoLDM (1000 steps)": {
        "atom_stability": 98.9,
        "molecule_stability": 89.4,
        "validity": 93.8,
        "validity_x_uniqueness": 92.7,
    },
}
COLUMNS = ["atom_stability", "molecule_stability", "validity", "validity_x_uniqueness", "novelty", "connected_validity"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qm9_edm", help="an EDM-style model (default: the shipped qm9_edm)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--steps", type=int, default=None, help="default: 1000 for ddpm, 50 otherwise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument(
        "--no-novelty", action="store_true", help="skip the QM9 training SMILES (saves ~1 min the first time)"
    )
    parser.add_argument("--out", default=None, help="also write the samples to this SDF")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="sample in this many one-thread processes (chunk k in process k mod N: the same molecules "
        "as one process); CPU time is summed over them",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="the network's precision (moldiff.train.precision; default: fp32)",
    )
    args = parser.parse_args(argv)

    from moldiff.hub import load_pretrained
    from moldiff.molecules.metrics import evaluate_molecules

    generator = load_pretrained(args.model)
    _, steps, _ = generator.model.sampling_defaults(args.sampler, args.steps)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.processes > 1:
        from moldiff.molecules.generator import sample_in_processes

        sizes = generator.plan(args.num, args.seed)
        molecules, cpu = sample_in_processes(
            args.model,
            sizes,
            args.seed,
            processes=args.processes,
            targets=generator.plan_condition(sizes, args.seed, None),
            batch_size=args.batch_size,
            sampler=args.sampler,
            steps=steps,
            precision=args.precision,
        )
        threads = 1
    else:
        molecules = generator.sample_arrays(
            args.num,
            seed=args.seed,
            sampler=args.sampler,
            steps=steps,
            batch_size=args.batch_size,
            progress=True,
            precision=args.precision,
        )
        cpu = time.process_time() - cpu0
        threads = torch.get_num_threads()
    wall = time.perf_counter() - wall0
    training = None
    if not args.no_novelty:
        from moldiff.molecules import QM9Dataset, training_smiles

        training = training_smiles(QM9Dataset("train"))
    metrics = evaluate_molecules(molecules, training_smiles=training)
    if args.out:
        from moldiff.molecules.rdkit_io import write_sdf

        write_sdf(molecules, args.out)
    result = {
        "model": args.model,
        "sampler": args.sampler,
        "steps": steps,
        "num_molecules": args.num,
        "seed": args.seed,
        "precision": args.precision,
        "seconds_per_molecule_wall": wall / args.num,
        "seconds_per_molecule_cpu": cpu / args.num,
        "threads": threads,
        "processes": args.processes,
        "device": "cpu",
        "cores": os.cpu_count(),
        **{k: (None if v is None else float(v)) for k, v in metrics.items()},
    }
    header = "| model | " + " | ".join(COLUMNS) + " | s/molecule |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 2))
    for name, row in EDM_ROWS.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" if c in row else "-" for c in COLUMNS) + " | - |")
    ours = " | ".join("-" if result.get(c) is None else f"{100 * result[c]:.1f}" for c in COLUMNS)
    print(
        f"| moldiff {args.model}, {args.sampler} {steps} steps, {args.num} samples | {ours} | "
        f"{result['seconds_per_molecule_wall']:.3f} |"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
