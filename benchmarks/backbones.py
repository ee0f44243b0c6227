"""Quality and cost of a C-alpha backbone model, beside held-out real CATH domains.

Samples ``--num`` backbones at each of ``--lengths`` (default: 50 at 50, 100 and 150 residues) with a
fixed seed, writes them as PDB files (``--pdb-dir``) and runs the suite of ``moldiff
evaluate-backbones`` (:mod:`moldiff.proteins.evaluate`) per length and over all samples, against the
fixed held-out split of the CATH archive, with the real-vs-real baseline beside every distribution
distance. Designability (ProteinMPNN + ESMFold) is not measured.

``--novelty N`` also measures novelty: every sample is TM-aligned (``tmtools``) with the first ``N``
domains of the archive's training split (``-1``: all, about 900 for the shared archive), and the
highest TM-score per sample (normalised by the sample's length) gives ``tm_novelty_mean`` (lower:
more novel) and ``fraction_novel`` (highest TM below 0.5), per length and over all samples. It costs
``samples x N`` alignments, about 15-25 ms each at 100-150 residues on one core (150 samples x 900
domains: about an hour), and the time it took is printed; default ``0``: not measured. Exploded
samples (radius of gyration over 20 times the natural one, e.g. ``--model untrained``) are skipped
(``novelty_skipped``): TM-align takes seconds per pair on them.

    python benchmarks/backbones.py --model runs/cath_ca/checkpoints/best.ckpt
    python benchmarks/backbones.py --model M.ckpt --sampler euler_maruyama --steps 200 --temperature 0.8
    python benchmarks/backbones.py --model M.ckpt --novelty 100   # + novelty against 100 training domains
    python benchmarks/backbones.py --model untrained --num 2 --lengths 20 --steps 2 --max-reference 10   # smoke test

``--model untrained`` samples a tiny randomly initialised model (a smoke test of the pipeline). The
last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _report import add_potential_argument, potential_options, print_record  # benchmarks/_report.py, beside this script


def _load(model: str):
    if model == "untrained":
        import torch

        from moldiff.proteins.model import BackboneDiffusion, BackboneModelConfig

        torch.manual_seed(0)
        return BackboneDiffusion(BackboneModelConfig(hidden=16, layers=2), {"length_histogram": {50: 1}})
    from moldiff.hub import load_model

    return load_model(model)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint of a backbone model, or 'untrained'")
    parser.add_argument("--num", type=int, default=50, help="backbones per length (default: 50)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 150], help="(default: 50 100 150)")
    parser.add_argument("--sampler", default=None, help="(default: the model's)")
    parser.add_argument("--steps", type=int, default=None, help="(default: the model's)")
    parser.add_argument("--temperature", type=float, default=1.0, help="(default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    add_potential_argument(parser)
    parser.add_argument("--reference", default=None, help="CATH archive or folder (default: the shared archive)")
    parser.add_argument("--max-reference", type=int, default=200, help="held-out domains used at most (default: 200)")
    parser.add_argument(
        "--novelty",
        type=int,
        default=0,
        metavar="N",
        help="max TM-score of each sample to the first N training domains (-1: all; default: 0, not measured)",
    )
    parser.add_argument("--pdb-dir", default=None, help="write the samples here (default: not written)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    if args.novelty < -1:
        parser.error("--novelty N needs N >= 0, or -1 for all training domains")
    if args.novelty:
        try:
            import tmtools  # noqa: F401
        except ImportError:
            raise SystemExit("benchmarks/backbones.py: --novelty needs tmtools (pip install tmtools)") from None
    from moldiff.hub import data_path

    try:  # before anything slow: a missing archive is one line, not a traceback minutes later
        args.reference = data_path(args.reference, "proteins/cath_domains_1000.tar.gz", option="--reference")
    except FileNotFoundError as err:
        raise SystemExit(f"benchmarks/backbones.py: {err}") from None

    import numpy as np
    import torch

    from moldiff.proteins.dataset import BackboneDataset
    from moldiff.proteins.evaluate import (
        evaluate_backbones,
        format_report,
        novelty_summary,
        novelty_tm_scores,
        novelty_training_domains,
    )
    from moldiff.proteins.model import save_designs

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load(args.model)
    potentials = potential_options(args)
    reference = [b.ca for b in BackboneDataset(args.reference, "holdout", limit=args.max_reference)]
    training = novelty_training_domains(args.reference, args.novelty) or []
    if args.novelty:
        print(f"novelty: against {len(training)} training domains of {args.reference}")
    results, everything, novelty_all, novelty_s = {}, [], [], 0.0
    for length in args.lengths:
        wall, cpu = time.perf_counter(), time.process_time()
        designs = model.sample(
            length,
            num=args.num,
            seed=args.seed,
            sampler=args.sampler,
            steps=args.steps,
            temperature=args.temperature,
            **potentials,
        )
        timing = {
            "wall_s_per_backbone": (time.perf_counter() - wall) / args.num,
            "cpu_s_per_backbone": (time.process_time() - cpu) / args.num,
        }
        if args.pdb_dir:
            save_designs(designs, Path(args.pdb_dir) / f"L{length}", metadata={"model": args.model, "length": length})
        cas = [d.ca for d in designs]
        everything += cas
        result = evaluate_backbones(cas, reference)
        if training:
            start = time.perf_counter()
            max_tm = novelty_tm_scores(cas, training)
            seconds = time.perf_counter() - start
            novelty_s += seconds
            novelty_all.append(max_tm)
            result["summary"].update(novelty_summary(max_tm, len(training)))
            timing["novelty_s"] = seconds
            aligned = int(np.isfinite(max_tm).sum())  # exploded samples are skipped, not aligned
            timing["novelty_ms_per_tm_align"] = 1e3 * seconds / (aligned * len(training)) if aligned else None
        print(f"== length {length}: {args.num} samples ==")
        print(format_report(result))
        if training:
            print(f"novelty: {len(cas)} samples x {len(training)} training domains in {timing['novelty_s']:.1f} s")
        results[str(length)] = {**result["summary"], **timing}
    overall = evaluate_backbones(everything, reference)
    if training:  # from the per-length maxima: no second round of alignments
        overall["summary"].update(novelty_summary(np.concatenate(novelty_all), len(training)))
        overall["summary"]["novelty_s"] = novelty_s
        pairs = overall["summary"]["novelty_num_samples"] * len(training)
        each = f" ({1e3 * novelty_s / pairs:.1f} ms each)" if pairs else ""
        print(f"novelty: {pairs} TM-aligns in {novelty_s:.1f} s{each}")
    print(f"== all lengths: {len(everything)} samples ==")
    print(format_report(overall))
    summary = {
        "model": args.model,
        "num_per_length": args.num,
        "lengths": args.lengths,
        "sampler": args.sampler or model.config.sampler,
        "steps": args.steps or model.config.sample_steps,
        "temperature": args.temperature,
        "potentials": args.potential or "the model's",
        "potential_sigma_max": args.potential_sigma_max or "the model's",
        "particles": args.particles or "the model's",
        "steering": args.steer or "the model's",
        "seed": args.seed,
        "novelty_train_domains": len(training),
        "per_length": results,
        "all": overall["summary"],
        "real_heldout": overall["reference"],
        "real_vs_real_baseline": overall["baseline"],
        "notes": overall["notes"],
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print_record(summary, args.out)
    return summary


if __name__ == "__main__":
    main()
