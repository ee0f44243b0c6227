"""Growing molecules back from fragments of held-out QM9 molecules.

For ``--num`` molecules of the QM9 test split (EDM's split, with the bonds and charges of
:mod:`moldiff.molecules.bond_data`; a fixed random subset), a random connected fragment of 40-70 %
of the heavy atoms (with the hydrogens attached to them) is cut, and ``--per-fragment`` molecules
are grown from it back to the original number of atoms (``sample(fragment=..., num_atoms=N)``).
Reported per model, over all grown molecules:

* **valid with fragment**: the molecule sanitizes, is one connected molecule and contains the
  fragment as a substructure (:func:`moldiff.molecules.fragments.fragment_match`, formal charges
  equal): with bond orders for the bond-aware model, whose bonds are generated; by elements and
  connectivity for the EDM-style model, whose bonds are perceived from distances afterwards (EDM's
  tables), with bond orders in a second column;
* **unique**: distinct canonical SMILES among those, per fragment, averaged over the fragments;
* **recovered**: the fraction of grown molecules whose canonical SMILES (hydrogens removed, no
  stereochemistry) is the original molecule's, and the fraction of fragments with at least one;
* **fragment RMSD**: the mean RMSD (A) of the fragment atoms to the fragment after superposition.

    python benchmarks/qm9_fragments.py --num 100                        # both models
    python benchmarks/qm9_fragments.py --num 10 --model qm9 --steps 50  # a quick look

The table is printed in Markdown; the last line of output is one JSON object with every figure
(also written to ``--out``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _report import print_record  # benchmarks/_report.py, beside this script

MODELS = ("qm9", "qm9_edm")


def cut_fragment(mol, rng: np.random.Generator, low: float = 0.4, high: float = 0.7):
    """A random connected fragment of ``mol``: ``round(u * heavy)`` heavy atoms, ``u ~ U(low, high)``,
    grown from a random heavy atom by adding random heavy neighbours, with their hydrogens; atoms in
    ``mol``'s order, bonds and charges as in ``mol``, its conformer kept. ``None`` when the molecule
    has fewer than 2 heavy atoms."""
    from rdkit import Chem

    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    if len(heavy) < 2:
        return None
    want = min(len(heavy) - 1, max(1, int(round(rng.uniform(low, high) * len(heavy)))))
    chosen = {int(rng.choice(heavy))}
    while len(chosen) < want:
        frontier = sorted(
            {n.GetIdx() for i in chosen for n in mol.GetAtomWithIdx(i).GetNeighbors() if n.GetAtomicNum() > 1} - chosen
        )
        chosen.add(int(rng.choice(frontier)))
    keep = chosen | {n.GetIdx() for i in chosen for n in mol.GetAtomWithIdx(i).GetNeighbors() if n.GetAtomicNum() == 1}
    frag = Chem.RWMol(mol)
    for idx in sorted(set(range(mol.GetNumAtoms())) - keep, reverse=True):
        frag.RemoveAtom(idx)
    frag = frag.GetMol()
    frag.UpdatePropertyCache(strict=False)
    return frag


def test_molecules(num: int, seed: int):
    """``num`` molecules of the bonded QM9 test split (a fixed random subset), as RDKit molecules.

    Molecules with formal charges (QM9's few zwitterions) are passed over: the EDM-style model has no
    charges, and both models are given the same fragments."""
    from moldiff.molecules.bond_data import BondedQM9Dataset
    from moldiff.molecules.bond_metrics import bonded_molecule

    test = BondedQM9Dataset("test")
    out = []
    for i in np.random.default_rng([seed, 22]).permutation(len(test)).tolist():
        if len(out) == num:
            break
        m = test[i]
        if bool(m.charges.ne(0).any()):
            continue
        bonds = np.concatenate([m.bond_index.t().numpy(), m.bond_types[:, None].numpy()], 1)
        mol = bonded_molecule(m.atomic_numbers.numpy(), m.charges.numpy(), m.pos.numpy(), bonds, sanitize=True)
        mol.SetProp("_Name", f"QM9 gdb {m.index}")
        out.append(mol)
    return out


def smiles(mol) -> str | None:
    """Canonical SMILES of a valid, connected molecule (hydrogens removed, no stereo), else ``None``."""
    from rdkit import Chem, rdBase

    try:
        with rdBase.BlockLogs():
            m = Chem.Mol(mol)
            Chem.SanitizeMol(m)
            if len(Chem.GetMolFrags(m)) != 1:
                return None
            return Chem.MolToSmiles(Chem.RemoveHs(m), isomericSmiles=False)
    except Exception:  # noqa: BLE001 - an invalid molecule has no SMILES
        return None


def evaluate(model: str, originals, fragments, per_fragment: int, steps, seed: int, batch_size: int) -> dict:
    """Grow ``per_fragment`` molecules from every fragment with ``model``; the figures of the module docstring."""
    from rdkit import Chem

    import moldiff
    from moldiff.molecules.fragments import fragment_match, load_fragment
    from moldiff.molecules.generator import FlowMoleculeGenerator

    gen = moldiff.load_pretrained(model)
    bond_aware = isinstance(gen, FlowMoleculeGenerator)  # its bonds are generated, not perceived
    sampler_steps = {"steps": steps} if steps else {}
    n = valid_frag = valid_frag_orders = recovered = 0
    rmsds, unique, fragments_recovered = [], [], 0
    tick = time.process_time()
    for k, (orig, frag) in enumerate(zip(originals, fragments)):
        target = Chem.MolToSmiles(Chem.RemoveHs(orig), isomericSmiles=False)
        mols = gen.sample(
            per_fragment,
            fragment=load_fragment(frag),
            num_atoms=orig.GetNumAtoms(),
            seed=seed + k,
            batch_size=batch_size,
            sanitize=True,
            skip_diverged=True,
            **sampler_steps,
        )
        found = set()
        hit = False
        for mol in mols:
            n += 1
            rmsds.append(float(mol.GetProp("moldiff_fragment_rmsd")))
            smi = smiles(mol)
            if smi is None:
                continue
            contains = bool(fragment_match(mol, frag, bond_orders=bond_aware))
            if contains:
                valid_frag += 1
                found.add(smi)
                if not bond_aware and fragment_match(mol, frag, bond_orders=True):
                    valid_frag_orders += 1
            if smi == target:
                recovered += 1
                hit = True
        unique.append(len(found) / max(1, len(mols)))
        fragments_recovered += hit
    cpu = time.process_time() - tick
    record = {
        "model": model,
        "molecules": n,
        "fragments": len(fragments),
        "valid_with_fragment": valid_frag / max(1, n),
        "unique_per_fragment": float(np.mean(unique)) if unique else None,
        "recovered": recovered / max(1, n),
        "fragments_recovered": fragments_recovered / max(1, len(fragments)),
        "mean_fragment_rmsd": float(np.mean(rmsds)) if rmsds else None,
        "max_fragment_rmsd": float(np.max(rmsds)) if rmsds else None,
        "cpu_seconds_per_molecule": cpu / max(1, n),
    }
    if not bond_aware:
        record["valid_with_fragment_bond_orders"] = valid_frag_orders / max(1, n)
    return record


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=100, help="QM9 test molecules cut into fragments (default: 100)")
    parser.add_argument("--per-fragment", type=int, default=10, help="molecules grown from each fragment (default: 10)")
    parser.add_argument(
        "--model", action="append", default=None, help=f"a model to run (repeatable; default: {', '.join(MODELS)})"
    )
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: each model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the molecules, the cuts and the samples")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--out", default=None, help="also write the JSON record here")
    args = parser.parse_args(argv)
    if args.num < 1 or args.per_fragment < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--num, --per-fragment and --steps must be at least 1")

    originals = test_molecules(args.num, args.seed)
    rng = np.random.default_rng([args.seed, 23])
    pairs = [(m, cut_fragment(m, rng)) for m in originals]
    pairs = [(m, f) for m, f in pairs if f is not None]
    originals, fragments = [m for m, _ in pairs], [f for _, f in pairs]
    heavy = [
        sum(a.GetAtomicNum() > 1 for a in f.GetAtoms()) / sum(a.GetAtomicNum() > 1 for a in m.GetAtoms())
        for m, f in pairs
    ]
    rows = [
        evaluate(model, originals, fragments, args.per_fragment, args.steps, args.seed, args.batch_size)
        for model in args.model or MODELS
    ]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    print(
        f"{len(fragments)} QM9 test molecules, fragments of {100 * min(heavy):.0f}-{100 * max(heavy):.0f} % "
        f"of the heavy atoms (mean {100 * np.mean(heavy):.0f} %), {args.per_fragment} molecules grown from each, "
        f"steps: {args.steps or 'the model default'}\n"
    )
    print(
        "| model | valid with fragment % | unique per fragment % | original recovered % | "
        "fragments with the original recovered % | mean fragment RMSD (A) | CPU s / molecule |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        extra = (
            f" ({pct(r['valid_with_fragment_bond_orders'])} with EDM-perceived bond orders)"
            if "valid_with_fragment_bond_orders" in r
            else ""
        )
        print(
            f"| `{r['model']}` | {pct(r['valid_with_fragment'])}{extra} | {pct(r['unique_per_fragment'])} | "
            f"{pct(r['recovered'])} | {pct(r['fragments_recovered'])} | {r['mean_fragment_rmsd']:.1e} | "
            f"{r['cpu_seconds_per_molecule']:.3f} |"
        )
    record = {
        "num": len(fragments),
        "per_fragment": args.per_fragment,
        "steps": args.steps,
        "seed": args.seed,
        "fragment_heavy_fraction_mean": float(np.mean(heavy)),
        "models": rows,
    }
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
