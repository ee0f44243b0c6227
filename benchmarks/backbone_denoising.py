"""Where a C-alpha backbone model fails: its one-step denoising error against the noise level.

Takes held-out real CATH domains, adds zero-CoM Gaussian noise of standard deviation ``sigma`` (in A,
per coordinate) and denoises once with the model's denoiser ``D(x; sigma)`` (the posterior-mean
estimate of EDM, Karras et al. 2022, Eq. 2). For every noise level it prints the error of the noisy
input and of the denoised output against the real chain: coordinate RMSD (A) and the mean absolute
error of consecutive CA-CA distances (A), plus the mean and spread of the denoised CA-CA distances.
A well-trained model pulls CA-CA distances back towards 3.8 A at every level, most strongly at small
noise where the chain constraint pins them; an output error close to the input error means the
network has not learned that level yet. This tells apart a sampler problem (good one-step denoising,
bad samples) from an undertrained network.

    python benchmarks/backbone_denoising.py --model cath_ca
    python benchmarks/backbone_denoising.py --model untrained --num 2 --sigmas 0.1 1   # smoke test

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse

from _report import print_record  # benchmarks/_report.py, beside this script
from backbones import _load


def denoising_profile(model, chains, sigmas_angstrom, seed: int = 0) -> list[dict]:
    """One-step denoising errors of ``model`` on the chains of a packed batch.

    Args:
        model: a :class:`moldiff.proteins.model.BackboneDiffusion`.
        chains: a :class:`moldiff.proteins.dataset.BackboneBatch` of real chains.
        sigmas_angstrom: noise levels in A.
        seed: seed of the noise.

    Returns:
        One dict per level: ``sigma_A``, ``rmsd_in``, ``rmsd_out``, ``ca_ca_abs_err_in``,
        ``ca_ca_abs_err_out``, ``ca_ca_out_mean``, ``ca_ca_out_std`` (all in A).
    """
    import torch

    from moldiff.core import zero_com_space

    scale = model.config.coord_scale
    x0 = model.encode(chains.ca.float(), chains.batch, chains.num_graphs)
    space = zero_com_space(chains.batch, chains.num_graphs, dtype=x0.dtype)
    bonded = chains.batch[1:] == chains.batch[:-1]
    generator = torch.Generator().manual_seed(seed)

    def ca_ca(x):
        return (x[1:] - x[:-1]).norm(dim=-1)[bonded] * scale

    def rmsd(x):
        return float((x - x0).pow(2).sum(-1).mean().sqrt() * scale)

    real = ca_ca(x0)
    rows = []
    for sigma_a in sigmas_angstrom:
        sigma = sigma_a / scale
        noisy = x0 + sigma * space.randn(generator)
        with torch.no_grad():
            out = model.denoiser(
                noisy, torch.full((chains.num_graphs,), sigma), batch=chains.batch, num_graphs=chains.num_graphs
            )
        rows.append(
            {
                "sigma_A": float(sigma_a),
                "rmsd_in": rmsd(noisy),
                "rmsd_out": rmsd(out),
                "ca_ca_abs_err_in": float((ca_ca(noisy) - real).abs().mean()),
                "ca_ca_abs_err_out": float((ca_ca(out) - real).abs().mean()),
                "ca_ca_out_mean": float(ca_ca(out).mean()),
                "ca_ca_out_std": float(ca_ca(out).std()),
            }
        )
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a backbone model (cath_ca, a checkpoint) or 'untrained'")
    parser.add_argument("--num", type=int, default=16, help="held-out domains (default: 16)")
    parser.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=[0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
        help="noise levels in A (default: 0.05 0.1 0.2 0.5 1 2 5 10)",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--reference", default=None, help="CATH archive or folder (default: the shared archive)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    from moldiff.hub import data_path

    try:  # before anything slow: a missing archive is one line, not a traceback minutes later
        args.reference = data_path(args.reference, "proteins/cath_domains_1000.tar.gz", option="--reference")
    except FileNotFoundError as err:
        raise SystemExit(f"benchmarks/backbone_denoising.py: {err}") from None

    import torch

    from moldiff.proteins.dataset import BackboneDataset, collate_backbones

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load(args.model).eval()
    held_out = BackboneDataset(args.reference, "holdout")
    chains = collate_backbones([held_out[i] for i in range(min(args.num, len(held_out)))])
    rows = denoising_profile(model, chains, args.sigmas, seed=args.seed)

    print(f"one-step denoising of {chains.num_graphs} held-out domains, model {args.model}")
    print("| sigma (A) | RMSD in | RMSD out | abs. CA-CA error in | abs. CA-CA error out | CA-CA out mean +- std |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['sigma_A']:g} | {r['rmsd_in']:.3f} | {r['rmsd_out']:.3f} | {r['ca_ca_abs_err_in']:.3f} | "
            f"{r['ca_ca_abs_err_out']:.3f} | {r['ca_ca_out_mean']:.2f} +- {r['ca_ca_out_std']:.2f} |"
        )
    summary = {"model": args.model, "num_domains": chains.num_graphs, "seed": args.seed, "levels": rows}
    print_record(summary, args.out)
    return summary


if __name__ == "__main__":
    main()
