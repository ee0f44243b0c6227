"""What a CPU core-hour of training buys: molecule stability under both protocols against training cost.

Each model is sampled the same way (``--num`` molecules, sizes from the training histogram, seed 0,
``--steps`` sampler steps: the EDM-style models with EDM's ancestral sampler, the bond-aware ones
with their joint Euler sampler) and scored twice:

* **own bonds**: the molecule's bonds and formal charges as the model gives them (MiDi / EQGAT-diff
  / SemlaFlow protocol, :func:`moldiff.molecules.bond_metrics.evaluate_bonded_molecules`); an
  EDM-style model has no bonds of its own, so its bonds are those EDM's distance tables perceive
  (formal charges 0);
* **EDM's distances**: atoms and coordinates only, EDM's protocol (:func:`moldiff.molecules.metrics.evaluate_molecules`).

Models are given as ``LABEL=PATH:CORE_HOURS`` (a checkpoint or exported file and the CPU core-hours
of training that produced it). The EDM-style ``qm9_small`` stages shipped earlier are in the git
history of ``moldiff/pretrained/qm9.pt``, with the cost of their recipe in ``configs/qm9_small.yaml``
(~0.165 s per step of batch 64 on one core; stage 3 on two processes, ~0.185 s per step: 1.1, 3.1,
7.0 and 9.0 core-hours at 24,000, 67,531, 105,000 and 141,000 steps); extract them once (``runs/``
is not committed)::

    mkdir -p runs/history
    for c in 407dbac 52dba1f 0f9ea32 8471eea 8c83eff fef5164; do git show $c:moldiff/pretrained/qm9.pt > runs/history/qm9_$c.pt; done
    python benchmarks/time_to_quality.py --num 500 --flow-eta 10 --flow-rho 2 \
        edm_24k=runs/history/qm9_407dbac.pt:1.1 edm_67k=runs/history/qm9_52dba1f.pt:3.1 \
        edm_105k=runs/history/qm9_0f9ea32.pt:7.0 edm_141k=runs/history/qm9_8471eea.pt:9.0 \
        flow_7.5k=runs/history/qm9_8c83eff.pt:3.3 flow_12.5k=runs/history/qm9_fef5164.pt:5.7 \
        flow_19.5k=moldiff/pretrained/qm9.pt:8.1

(the last three are the bond-aware ``qm9`` at 7,500, 12,500 and 19,500 steps, ``configs/qm9_flow.yaml``;
``--log runs/NAME/log.jsonl`` adds a bond-aware run's own evaluations.)

The last line of output is one JSON object with every row (also written to ``--out``).
"""

from __future__ import annotations

import argparse

from _report import print_record  # benchmarks/_report.py, beside this script


def parse_model(spec: str) -> tuple[str, str, float]:
    """``LABEL=PATH:CORE_HOURS`` -> ``(label, path, core_hours)``."""
    label, sep, rest = spec.partition("=")
    path, colon, hours = rest.rpartition(":")
    if not sep or not colon:
        raise SystemExit(f"time_to_quality.py: expected LABEL=PATH:CORE_HOURS, got {spec!r}")
    return label, path, float(hours)


def score(path: str, num: int, steps: int, seed: int, flow_options: dict | None = None) -> dict:
    """Both protocols on ``num`` samples of one model (``flow_options``: ``eta``, ``rho`` of a bond-aware one)."""
    from moldiff.hub import load_pretrained
    from moldiff.molecules.bond_metrics import evaluate_bonded_molecules
    from moldiff.molecules.generator import FlowMoleculeGenerator
    from moldiff.molecules.metrics import evaluate_molecules
    from moldiff.molecules.rdkit_io import build_molecule

    gen = load_pretrained(path)
    if isinstance(gen, FlowMoleculeGenerator):
        records = gen.sample_arrays(num, seed=seed, steps=steps, progress=True, **(flow_options or {}))
        pairs = [(r["atomic_numbers"], r["positions"]) for r in records]
        own = evaluate_bonded_molecules(records, sdf=False)
        family = "bond-aware (joint flow)"
    else:
        pairs = gen.sample_arrays(num, seed=seed, sampler="ddpm", steps=steps, progress=True)
        own = evaluate_bonded_molecules([build_molecule(z, p, bonds="edm") for z, p in pairs], sdf=False)
        family = "EDM-style (bonds from distances)"
    edm = evaluate_molecules(pairs)
    return {
        "family": family,
        "own_molecule_stability": own["molecule_stability"],
        "own_atom_stability": own["atom_stability"],
        "own_connected_validity": own["connected_validity"],
        "edm_molecule_stability": edm["molecule_stability"],
        "edm_atom_stability": edm["atom_stability"],
        "edm_validity": edm["validity"],
    }


def rows_from_log(path: str, processes: int) -> list[dict]:
    """Rows of a bond-aware run's own evaluations (``kind=eval`` lines of its ``log.jsonl``: ``data.eval_samples``
    molecules with fixed seeds, both protocols), at the CPU core-hours spent up to each: the wall time of
    every logged window (``log_every`` steps x items per step / ``items_per_s``) times ``processes``."""
    from moldiff.train.logs import read_log

    train = read_log(path, kind="train")
    events = [e for e in read_log(path, kind="event") if "items_per_step" in e]
    per_step = events[0]["items_per_step"] if events else 64 * processes
    rows, seconds, previous = [], 0.0, 0
    evaluations = {e["step"]: e for e in read_log(path, kind="eval") if "molecule_stability" in e}
    for line in train:
        seconds += (line["step"] - previous) * per_step / line["items_per_s"]
        previous = line["step"]
        if line["step"] in evaluations:
            e = evaluations[line["step"]]
            rows.append(
                {
                    "label": f"flow_{line['step'] / 1000:g}k",
                    "path": path,
                    "core_hours": seconds * processes / 3600,
                    "family": "bond-aware (joint flow)",
                    "own_molecule_stability": e["molecule_stability"],
                    "own_atom_stability": e["atom_stability"],
                    "own_connected_validity": e["connected_validity"],
                    "edm_molecule_stability": e["edm_molecule_stability"],
                    "edm_atom_stability": e["edm_atom_stability"],
                    "edm_validity": e["edm_validity"],
                    "num": int(e["num_molecules"]),
                }
            )
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", metavar="LABEL=PATH:CORE_HOURS")
    parser.add_argument(
        "--log", default=None, help="also the evaluations logged by a bond-aware training run (log.jsonl)"
    )
    parser.add_argument("--log-processes", type=int, default=2, help="processes of that run (default: 2)")
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100, help="sampler steps for every model (default: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--flow-eta", type=float, default=None, help="eta of the bond-aware models (default: each file's)"
    )
    parser.add_argument(
        "--flow-rho", type=float, default=None, help="rho of the bond-aware models (default: each file's)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    flow_options = {k: v for k, v in (("eta", args.flow_eta), ("rho", args.flow_rho)) if v is not None}
    rows = []
    print(
        "| model | family | training (CPU core-hours) | mol. stab., own bonds % | mol. stab., EDM's distances % "
        "| connected valid, own bonds % |"
    )
    print("|---|---|---|---|---|---|")
    for spec in args.models:
        label, path, hours = parse_model(spec)
        row = {
            "label": label,
            "path": path,
            "core_hours": hours,
            **score(path, args.num, args.steps, args.seed, flow_options),
        }
        rows.append(row)
        print(
            f"| {label} | {row['family']} | {hours:.1f} | {100 * row['own_molecule_stability']:.1f} | "
            f"{100 * row['edm_molecule_stability']:.1f} | {100 * row['own_connected_validity']:.1f} |",
            flush=True,
        )
    if args.log:
        for row in rows_from_log(args.log, args.log_processes):
            rows.append(row)
            print(
                f"| {row['label']} (training evaluation, {row['num']} samples) | {row['family']} | {row['core_hours']:.1f} | "
                f"{100 * row['own_molecule_stability']:.1f} | {100 * row['edm_molecule_stability']:.1f} | "
                f"{100 * row['own_connected_validity']:.1f} |"
            )
    record = {"num": args.num, "steps": args.steps, "seed": args.seed, "flow_options": flow_options, "rows": rows}
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
