"""Worker for the distributed test, launched by ``torchrun --nproc_per_node=2`` on CPU (gloo).

Usage: ``python -m torch.distributed.run ... train_dist_worker.py OUT_DIR BATCH_SIZE STEPS``. Trains the
deterministic regression task and saves each rank's final weights to ``OUT_DIR/rank{r}.pt``.
"""

from __future__ import annotations

import sys

import torch
from train_regression_task import regression_config

from moldiff.train.distributed import cleanup_distributed, init_distributed
from moldiff.train.loop import Trainer


def main(out_dir: str, batch_size: int, steps: int) -> None:
    torch.set_num_threads(1)
    cfg = regression_config(batch_size=batch_size, steps=steps)
    info = init_distributed("cpu")
    try:
        assert info.world_size == 2 and info.backend == "gloo", info
        trainer = Trainer(cfg, dist_info=info, out_dir=out_dir)
        trainer.fit()
        torch.save(
            {
                "model": trainer.model.state_dict(),
                "ema": trainer.ema.module.state_dict(),
                "rank": info.rank,
                "step": trainer.step,
            },
            f"{out_dir}/rank{info.rank}.pt",
        )
        del trainer  # its DDP wrapper holds the process group: free it before the group goes
    finally:
        cleanup_distributed(info)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
