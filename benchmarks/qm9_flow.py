"""Quality of a bond-aware QM9 model under both protocols, and its geometry checked against physics.

Samples ``--num`` molecules (sizes from the training histogram, fixed seed) from a model that
generates bonds and formal charges with the atoms (task ``molecule_flow``), then reports

* the **bonded protocol** (MiDi / EQGAT-diff / SemlaFlow): stability and validity of each molecule
  as generated, its own bonds and formal charges (:func:`moldiff.molecules.bond_metrics.evaluate_bonded_molecules`),
  uniqueness, novelty against the bonded QM9 training split, RDKit's default SDF read-back;
* **EDM's distance protocol** on the same samples (atoms and coordinates only, bonds perceived from
  distances with EDM's tables: :func:`moldiff.molecules.metrics.evaluate_molecules`), beside EDM's row;
* **MMFF relaxation** (RDKit's MMFF94) of every valid sample that MMFF can type: the median
  heavy-atom RMSD between the generated and the relaxed geometry and the median energy drop, with
  the same figures for ``--real`` QM9 test molecules (DFT geometries) beside them;
* the cost: network evaluations and CPU seconds per molecule.

    python benchmarks/qm9_flow.py --model runs/qm9_flow/checkpoints/best.ckpt --num 1000 --processes 2
    python benchmarks/qm9_flow.py --model qm9 --steps 50 --num 200

The last line of output is one JSON object with every figure (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _report import print_record  # benchmarks/_report.py, beside this script

PUBLISHED = {  # ../shared/reference.md; each row's protocol named (molecule stability %, where given)
    "EDM (distance protocol)": {"atom_stability": 98.7, "molecule_stability": 82.0, "validity": 91.9},
    "GeoLDM (distance protocol)": {"atom_stability": 98.9, "molecule_stability": 89.4, "validity": 93.8},
    "GeoBFN, 100 steps (distance protocol)": {"atom_stability": 98.6, "molecule_stability": 87.2, "validity": 93.0},
    "GeoBFN, 2000 steps (distance protocol)": {"atom_stability": 99.3, "molecule_stability": 93.3, "validity": 96.9},
    "MiDi (own bonds and charges)": {"molecule_stability": 97.5},
    "EQGAT-diff (own bonds and charges)": {"molecule_stability": 98.7},
    "FlowMol (own bonds and charges)": {"molecule_stability": 96.2},
}


def mmff_relaxation(mols) -> dict:
    """Median heavy-atom RMSD (A, after superposition) and energy drop (kcal/mol) of MMFF94 relaxation."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import AllChem, rdMolAlign

    rmsds, drops, failed = [], [], 0
    with rdBase.BlockLogs():
        for mol in mols:
            try:
                mol = Chem.Mol(mol)
                Chem.SanitizeMol(mol)
                if not AllChem.MMFFHasAllMoleculeParams(mol):
                    failed += 1
                    continue
                relaxed = Chem.Mol(mol)
                props = AllChem.MMFFGetMoleculeProperties(relaxed)
                ff = AllChem.MMFFGetMoleculeForceField(relaxed, props)
                before = ff.CalcEnergy()
                ff.Minimize(maxIts=2000)
                after = ff.CalcEnergy()
                heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
                rmsds.append(rdMolAlign.AlignMol(relaxed, mol, atomMap=list(zip(heavy, heavy))))
                drops.append(before - after)
            except Exception:  # noqa: BLE001 - a molecule MMFF cannot handle is counted, not fatal
                failed += 1
    return {
        "relaxed": len(rmsds),
        "not_relaxed": failed,
        "median_heavy_rmsd": float(np.median(rmsds)) if rmsds else None,
        "median_energy_drop": float(np.median(drops)) if drops else None,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qm9", help="a shipped name or checkpoint of a molecule_flow model")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default=None, help="a joint sampler (default: the model's)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--eta", type=float, default=None, help="categorical stochasticity (default: the model's)")
    parser.add_argument("--rho", type=float, default=None, help="time grid t_k = (1 - k/n)^rho (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--processes", type=int, default=1, help="one-thread sampling processes (same molecules)")
    parser.add_argument("--real", type=int, default=1000, help="QM9 test molecules relaxed for the reference row")
    parser.add_argument("--no-novelty", action="store_true")
    parser.add_argument("--no-mmff", action="store_true")
    parser.add_argument("--sdf", default=None, help="also write the samples to this SDF")
    parser.add_argument("--out", default=None, help="also write the JSON record here")
    args = parser.parse_args(argv)

    from moldiff.hub import load_pretrained
    from moldiff.molecules.bond_data import BondedQM9Dataset, training_bonded_smiles
    from moldiff.molecules.bond_metrics import bonded_molecule, evaluate_bonded_molecules
    from moldiff.molecules.metrics import evaluate_molecules

    generator = load_pretrained(args.model)
    sampler, steps, _ = generator.model.sampling_defaults(args.sampler, args.steps)
    options = {k: v for k, v in (("eta", args.eta), ("rho", args.rho)) if v is not None}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.processes > 1:
        from moldiff.molecules.generator import sample_in_processes

        sizes = generator.plan(args.num, args.seed)
        records, cpu = sample_in_processes(
            args.model,
            sizes,
            args.seed,
            processes=args.processes,
            batch_size=args.batch_size,
            sampler=sampler,
            steps=steps,
            **options,
        )
    else:
        records = generator.sample_arrays(
            args.num, seed=args.seed, sampler=sampler, steps=steps, batch_size=args.batch_size, progress=True, **options
        )
        cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0

    bonded = evaluate_bonded_molecules(records, None if args.no_novelty else training_bonded_smiles())
    edm_training = None
    if not args.no_novelty:
        from moldiff.molecules import QM9Dataset, training_smiles

        edm_training = training_smiles(QM9Dataset("train"))
    edm = evaluate_molecules([(r["atomic_numbers"], r["positions"]) for r in records], training_smiles=edm_training)
    mols = [bonded_molecule(r["atomic_numbers"], r["formal_charges"], r["positions"], r["bonds"]) for r in records]
    if args.sdf:
        from moldiff.molecules.rdkit_io import write_sdf

        write_sdf(mols, args.sdf)
    relax = real = None
    if not args.no_mmff:
        relax = mmff_relaxation(mols)
        test = BondedQM9Dataset("test")
        picks = np.random.default_rng(args.seed).choice(len(test), min(args.real, len(test)), replace=False)
        real_mols = []
        for i in sorted(picks.tolist()):
            m = test[i]
            real_mols.append(
                bonded_molecule(
                    m.atomic_numbers.numpy(),
                    m.charges.numpy(),
                    m.pos.numpy(),
                    np.concatenate([m.bond_index.t().numpy(), m.bond_types[:, None].numpy()], 1),
                )
            )
        real = mmff_relaxation(real_mols)

    record = {
        "model": args.model,
        "sampler": sampler,
        "steps": steps,
        "eta": args.eta,
        "rho": args.rho,
        "num_molecules": args.num,
        "seed": args.seed,
        "processes": args.processes,
        "threads": 1 if args.processes > 1 else torch.get_num_threads(),
        "seconds_per_molecule_wall": wall / args.num,
        "seconds_per_molecule_cpu": cpu / args.num,
        "cores": os.cpu_count(),
        "bonded": bonded,
        "edm_protocol": {k: v for k, v in edm.items()},
        "mmff_samples": relax,
        "mmff_real_test": real,
    }

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    print(
        "| protocol | atom stab. % | mol. stab. % | validity % | connected valid % | uniqueness % | novelty % | SDF read-back % |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| own bonds and charges | {pct(bonded['atom_stability'])} | {pct(bonded['molecule_stability'])} | "
        f"{pct(bonded['validity'])} | {pct(bonded['connected_validity'])} | {pct(bonded['uniqueness'])} | "
        f"{pct(bonded['novelty'])} | {pct(bonded.get('sdf_readback'))} |"
    )
    print(
        f"| EDM's distances | {pct(edm['atom_stability'])} | {pct(edm['molecule_stability'])} | {pct(edm['validity'])} | "
        f"{pct(edm.get('connected_validity'))} | {pct(edm.get('uniqueness'))} | {pct(edm.get('novelty'))} | - |"
    )
    for name, row in PUBLISHED.items():
        cells = " | ".join(
            f"{row[k]:.1f}" if k in row else "-" for k in ("atom_stability", "molecule_stability", "validity")
        )
        print(f"| {name} (paper) | {cells} | - | - | - | - |")
    if relax is not None:
        print(
            f"MMFF94 relaxation, median heavy-atom RMSD / energy drop: samples {relax['median_heavy_rmsd']} A / "
            f"{relax['median_energy_drop']} kcal/mol ({relax['relaxed']} relaxed, {relax['not_relaxed']} not); "
            f"real QM9 test {real['median_heavy_rmsd']} A / {real['median_energy_drop']} kcal/mol ({real['relaxed']})"
        )
    print(f"{sampler}, {steps} steps: {record['seconds_per_molecule_cpu']:.3f} CPU s per molecule")
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
