"""EDM's Table 3: conditional generation on QM9, judged by a property predictor, beside EDM's rows.

Protocol (Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule Generation in 3D", Sec. 5.3 and
App.; ../shared/reference.md, "QM9 conditional generation"): the QM9 training split is halved with
EDM's fixed permutation (:func:`moldiff.molecules.training_data.training_half_rows`); the property
predictor (``configs/qm9_predictor_alpha.yaml``) trained on the first half, the conditional generator
(``configs/qm9_alpha.yaml``) on the second. For each of ``--num`` molecules, ``N`` is drawn from
``p(N)``, the target ``c`` from ``p(c | N)`` (histogram over the generator's half, stored in the
generator), then the molecule; the score is the MAE between ``c`` and the predictor's output on the
sample. Rows:

* Naive (upper bound): the predictor on real molecules of the generator's half, against shuffled labels;
* #Atoms: a model that sees only the atom count (per-size median over the predictor's half, stored in
  the predictor; see :class:`moldiff.molecules.predictor.AtomCountBaseline`), on the same molecules;
* ours: without guidance, with classifier-free guidance of scale ``s`` (``--guidance-scale``, repeatable),
  and with gradient guidance by a predictor of scale ``s`` (``--predictor-scale``, repeatable). Guiding with the *evaluation*
  predictor flatters the score (the sample is optimised against its judge); pass an independently
  trained ``--guide-predictor`` for a fair figure (the shipped ``qm9_alpha_guide``). Gradient guidance
  acts for noise levels up to ``--predictor-sigma-max`` with each molecule's step bounded to an RMS of
  ``--predictor-max-step`` times sigma (both 1 by default);
* the predictor on real molecules of the generator's half, against their labels (lower bound).

A second table says how much of the target *beyond the atom count* each generated row follows, and
what the molecules are worth (EDM's atom stability, validity and connected validity: guidance that
breaks molecules shows here): with
``b(N)`` the #Atoms prediction for the sample's size, the least-squares slope and the correlation of
``predicted - b(N)`` against ``target - b(N)`` (slope 1 and correlation 1: the property hit exactly;
0: only the atom count is used). An MAE near the #Atoms row with a clearly positive slope means the
condition is used but too loosely.

Gap, HOMO and LUMO are reported in meV (QM9 stores Hartree), as EDM.

    python benchmarks/qm9_conditional.py --generator runs/qm9_alpha/checkpoints/best.ckpt \\
        --predictor runs/qm9_predictor_alpha/checkpoints/best.ckpt --num 1000 --sampler ddpm --guidance-scale 2
    python benchmarks/qm9_conditional.py --generator G --predictor P --num 4 --steps 4 --num-real 32   # smoke test
    python benchmarks/qm9_conditional.py --generator G --predictor P --processes 2     # the same molecules on 2 cores
    python benchmarks/qm9_conditional.py --generator qm9_alpha --predictor qm9_alpha_predictor --processes 2 \
        --sampler dpmpp_2m --steps 50 --predictor-scale 1 --predictor-scale 2 --predictor-scale 4 --guide-predictor qm9_alpha_guide

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

#: EDM's Table 3 and later papers' rows (MAE, reported units), from ../shared/reference.md.
PUBLISHED = {
    "Naive (shuffled labels)": {"alpha": 9.01, "gap": 1470, "homo": 645, "lumo": 1457, "mu": 1.616, "Cv": 6.857},
    "#Atoms": {"alpha": 3.86, "gap": 866, "homo": 426, "lumo": 813, "mu": 1.053, "Cv": 1.971},
    "EDM": {"alpha": 2.76, "gap": 655, "homo": 356, "lumo": 584, "mu": 1.111, "Cv": 1.101},
    "GeoLDM": {"alpha": 2.37, "gap": 587, "homo": 340, "lumo": 522, "mu": 1.108, "Cv": 1.025},
    "GeoBFN": {"alpha": 2.34, "gap": 577, "homo": 328, "lumo": 516, "mu": 0.998, "Cv": 0.949},
    "predictor on real molecules": {"alpha": 0.10, "gap": 64, "homo": 39, "lumo": 36, "mu": 0.043, "Cv": 0.040},
}


def report_unit(name: str) -> tuple[str, float]:
    """``(unit, factor)``: the unit EDM reports a property in and the factor from QM9's stored unit."""
    from moldiff.molecules.qm9 import HARTREE_TO_MEV, QM9_PROPERTIES

    unit = QM9_PROPERTIES[name][0]
    return ("meV", HARTREE_TO_MEV) if unit == "Ha" else (unit, 1.0)


def real_molecules(source: str, name: str, num: int | None, seed: int):
    """``(molecules, labels [M], num_atoms [M])`` of the generator's half (a random ``num`` of them)."""
    from moldiff.molecules.qm9 import QM9Dataset
    from moldiff.molecules.training_data import training_half_rows

    train = QM9Dataset("train", source, properties=[name])
    rows = training_half_rows(len(train), "generator")
    if num is not None and num < len(rows):
        rows = np.sort(np.random.default_rng(seed).permutation(rows)[:num])
    molecules = [train.molecule(int(i)) for i in rows]
    return molecules, np.asarray(train.property(name), dtype=np.float64)[rows], np.asarray(train.num_atoms)[rows]


def main(argv=None) -> dict:
    from moldiff.molecules.predictor import GUIDANCE_MAX_STEP, GUIDANCE_SIGMA_MAX

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", required=True, help="conditional generator checkpoint (configs/qm9_alpha.yaml)")
    parser.add_argument("--predictor", required=True, help="property predictor checkpoint (the judge)")
    parser.add_argument("--property", default=None, help="property to evaluate (default: the predictor's first)")
    parser.add_argument("--num", type=int, default=1000, help="generated molecules per row (default: 1000)")
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--steps", type=int, default=None, help="default: 1000 for ddpm, 50 otherwise")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        action="append",
        default=None,
        help="add a classifier-free guidance row with this scale (repeatable)",
    )
    parser.add_argument(
        "--predictor-scale",
        type=float,
        action="append",
        default=None,
        help="add a gradient-guidance row with this scale (repeatable; default: none)",
    )
    parser.add_argument(
        "--predictor-tau", type=float, default=1.0, help="width of the guidance likelihood (normalised)"
    )
    parser.add_argument(
        "--predictor-sigma-max",
        type=float,
        default=GUIDANCE_SIGMA_MAX,
        help=f"guide only at noise levels up to this (default: {GUIDANCE_SIGMA_MAX})",
    )
    parser.add_argument(
        "--predictor-max-step",
        type=float,
        default=GUIDANCE_MAX_STEP,
        help=f"trust region of the guidance step: RMS at most this times sigma, 0 for none "
        f"(default: {GUIDANCE_MAX_STEP})",
    )
    parser.add_argument("--guide-predictor", default=None, help="predictor for gradient guidance (default: the judge)")
    parser.add_argument(
        "--num-real",
        type=int,
        default=None,
        help="real molecules of the generator's half for the baselines (default: all 50,000)",
    )
    parser.add_argument("--source", default="qm9pack", help="QM9 source (default: qm9pack)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="sample each row in this many one-thread CPU processes (the same molecules as one process)",
    )
    args = parser.parse_args(argv)

    from moldiff.hub import load_model, load_pretrained
    from moldiff.molecules.generator import sample_in_processes
    from moldiff.molecules.metrics import evaluate_molecules

    predictor = load_model(args.predictor, device=args.device)
    generator = load_pretrained(args.generator, device=args.device)
    name = args.property or predictor.properties[0]
    if name not in predictor.properties:
        raise SystemExit(f"the predictor predicts {predictor.properties}, not {name!r}")
    if name not in generator.model.config.context:
        raise SystemExit(f"the generator is conditioned on {generator.model.config.context}, not {name!r}")
    column = predictor.properties.index(name)
    unit, factor = report_unit(name)
    rows: dict[str, float] = {}
    timings: dict[str, float] = {}

    # baselines on real molecules of the generator's half
    molecules, labels, num_atoms = real_molecules(args.source, name, args.num_real, args.seed)
    tick = time.perf_counter()
    predicted = predictor.predict_molecules(molecules)[:, column]
    timings["predict_real_s"] = time.perf_counter() - tick
    shuffled = labels[np.random.default_rng(args.seed).permutation(len(labels))]
    rows["Naive (shuffled labels)"] = float(np.abs(predicted - shuffled).mean())
    rows["#Atoms"] = float(np.abs(predictor.atom_count_baseline.predict(num_atoms)[name] - labels).mean())

    # our generator: N ~ p(N), c ~ p(c | N), then the molecule
    sizes = generator.plan(args.num, args.seed)
    targets = generator.plan_condition(sizes, args.seed)
    goal = targets[name].double().numpy()
    atom_count_goal = predictor.atom_count_baseline.predict(sizes.numpy())[name]
    follow, quality = {}, {}
    settings = {"ours, no guidance": {}}
    for s in args.guidance_scale or []:
        settings[f"ours, CFG s={s:g}"] = {"guidance_scale": s}
    judge = " (guided by the judge)" if args.guide_predictor is None else ""
    for s in args.predictor_scale or []:
        settings[f"ours, predictor guidance {s:g}{judge}"] = {
            "predictor": args.guide_predictor or args.predictor,
            "predictor_scale": s,
            "predictor_tau": args.predictor_tau,
            "predictor_sigma_max": args.predictor_sigma_max,
            "predictor_max_step": args.predictor_max_step or None,
        }
    job = dict(batch_size=args.batch_size, targets=targets, sampler=args.sampler, steps=args.steps)
    for label, options in settings.items():
        tick = time.perf_counter()
        if args.processes > 1:
            samples, _ = sample_in_processes(
                args.generator, sizes, args.seed, processes=args.processes, **job, **options
            )
        else:
            if "predictor" in options:
                options = {**options, "predictor": load_model(options["predictor"], device=args.device)}
            chunks = generator.sample_chunks(
                sizes, args.seed, generator.chunks_for(args.num, args.batch_size), **job, **options
            )
            samples = [mol for k in sorted(chunks) for mol in chunks[k]]
        timings[f"{label}_s"] = time.perf_counter() - tick
        quality[label] = {
            k: evaluate_molecules(samples)[k] for k in ("atom_stability", "validity", "connected_validity")
        }
        achieved = predictor.predict_molecules(samples)[:, column]
        rows[label] = float(np.abs(achieved - goal).mean())
        beyond_goal, beyond_achieved = goal - atom_count_goal, achieved - atom_count_goal
        follow[label] = {"slope": float("nan"), "correlation": float("nan")}
        if len(goal) > 1:
            follow[label] = {
                "slope": float(np.polyfit(beyond_goal, beyond_achieved, 1)[0]),
                "correlation": float(np.corrcoef(beyond_goal, beyond_achieved)[0, 1]),
            }
    rows["predictor on real molecules"] = float(np.abs(predicted - labels).mean())

    rows = {k: v * factor for k, v in rows.items()}
    print(
        f"QM9 conditional generation on {name}: MAE ({unit}); {args.num} samples ({args.sampler}, "
        f"steps {args.steps or 'default'}), {len(labels)} real molecules of the generator's half"
    )
    print(f"{'row':<52} {'ours':>10} {'EDM paper':>10}")
    for label, value in rows.items():
        key = next((k for k in PUBLISHED if label.startswith(k)), "EDM" if label.startswith("ours") else None)
        paper = PUBLISHED[key][name] if key and name in PUBLISHED[key] else float("nan")
        print(f"{label:<52} {value:>10.4g} {paper:>10.4g}")
    for key in ("GeoLDM", "GeoBFN"):
        if name in PUBLISHED[key]:
            print(f"{key + ' (published)':<52} {'':>10} {PUBLISHED[key][name]:>10.4g}")
    print("\ntarget beyond the atom count: predicted - b(N) against target - b(N)")
    print(f"{'row':<52} {'slope':>10} {'corr.':>10} {'atom st.':>9} {'valid':>7} {'conn. v.':>9}")
    for label, values in follow.items():
        q = quality[label]
        print(
            f"{label:<52} {values['slope']:>10.3f} {values['correlation']:>10.3f} {q['atom_stability']:>9.3f} "
            f"{q['validity']:>7.3f} {q['connected_validity']:>9.3f}"
        )
    result = {
        "property": name,
        "unit": unit,
        "num": args.num,
        "num_real": len(labels),
        "sampler": args.sampler,
        "steps": args.steps,
        "mae": rows,
        "beyond_atom_count": follow,
        "quality": quality,
        "published": {k: v[name] for k, v in PUBLISHED.items() if name in v},
        "timings": timings,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
