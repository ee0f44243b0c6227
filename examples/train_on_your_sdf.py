"""Train a small EDM-style model on your own SDF molecules (here: the drug-like set in ../shared/data).

The atom-type vocabulary comes from the data; bad records are skipped and counted. A few hundred
steps on a CPU show the loss falling; real models need far longer (see configs/qm9_small.yaml).

    python examples/train_on_your_sdf.py --sdf ../shared/data/molecules/drug_like_3d.sdf.gz --steps 200
"""

import argparse

from moldiff.train.config import load_config
from moldiff.train.loop import train

parser = argparse.ArgumentParser()
parser.add_argument("--sdf", default="../shared/data/molecules/drug_like_3d.sdf.gz")
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--out", default="runs/my_sdf")
args = parser.parse_args()

config = load_config("configs/qm9_small.yaml", [
    "data.dataset=sdf", f"data.source={args.sdf}", "data.on_error=skip", "data.valid_split=null",
    "data.eval_samples=0", f"train.steps={args.steps}", "train.batch_size=16", "train.log_every=20",
    "train.ckpt_every=100", "train.best_metric=null", "train.warmup_steps=50", "train.lr=2e-4",
    "model.normalization_factor=40",  # drug-like molecules have up to ~75 atoms: average, don't sum, over neighbours
])
result = train(config, out_dir=args.out, resume=True)
print(f"step {result.step}: loss {result.last_log.get('loss'):.3f}; checkpoint {result.last_checkpoint}")
print(f"sample from it: moldiff sample --model {result.last_checkpoint} --num 10 --sampler dpmpp_2m --steps 50")
