"""Train a small EDM-style model on your own SDF molecules (by default: the drug-like set in the shared
data folder, ../shared/data or $MOLDIFF_DATA_DIR).

The atom-type vocabulary comes from the data; bad records are skipped and counted. A few hundred
steps on a CPU show the loss falling; real models need far longer (see configs/qm9_small.yaml).

    python examples/train_on_your_sdf.py --sdf ../shared/data/molecules/drug_like_3d.sdf.gz --steps 200
"""

import argparse
from pathlib import Path

from moldiff.hub import data_path
from moldiff.train.config import load_config
from moldiff.train.loop import train

parser = argparse.ArgumentParser()
parser.add_argument(
    "--sdf", default=None, help="SDF file or folder (default: molecules/drug_like_3d.sdf.gz in the shared data folder)"
)
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--out", default="runs/my_sdf")
args = parser.parse_args()
try:
    sdf = data_path(args.sdf, "molecules/drug_like_3d.sdf.gz", option="--sdf")
except FileNotFoundError as err:
    raise SystemExit(f"train_on_your_sdf.py: {err}") from None

config = load_config(
    Path(__file__).resolve().parents[1] / "configs" / "qm9_small.yaml",
    [
        "data.dataset=sdf",
        f"data.source={sdf}",
        "data.on_error=skip",
        "data.valid_split=null",
        "data.eval_samples=0",
        f"train.steps={args.steps}",
        "train.batch_size=16",
        "train.log_every=20",
        "train.ckpt_every=100",
        "train.best_metric=null",
        "train.warmup_steps=50",
        "train.lr=2e-4",
        "model.normalization_factor=40",  # drug-like molecules have up to ~75 atoms: average, don't sum, over neighbours
    ],
)
result = train(config, out_dir=args.out, resume=True)  # a second call trains on from the last checkpoint
if result.last_log:  # empty when the run in --out was already at --steps
    print(f"step {result.step}: loss {result.last_log.get('loss'):.3f}; checkpoint {result.last_checkpoint}")
print(f"sample from it: moldiff sample --model {result.last_checkpoint} --num 10 --sampler dpmpp_2m --steps 50")
