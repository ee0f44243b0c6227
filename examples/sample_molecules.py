"""Sample molecules from the shipped QM9 model, write them to SDF and score them with EDM's metrics.

python examples/sample_molecules.py --num 50 --sampler dpmpp_2m --steps 50
"""

import argparse

import moldiff
from moldiff.molecules.metrics import evaluate_molecules
from moldiff.molecules.rdkit_io import write_sdf

parser = argparse.ArgumentParser()
parser.add_argument("--num", type=int, default=50)
parser.add_argument("--sampler", default="dpmpp_2m")
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--out", default="samples.sdf")
args = parser.parse_args()

model = moldiff.load_pretrained("qm9")
mols = model.sample(args.num, seed=0, sampler=args.sampler, steps=args.steps, progress=True)
write_sdf(mols, args.out)
metrics = evaluate_molecules(mols)
print(f"wrote {len(mols)} molecules to {args.out}")
for key in ("atom_stability", "molecule_stability", "validity", "connected_validity"):
    print(f"  {key:20s} {100 * metrics[key]:.1f} %")
