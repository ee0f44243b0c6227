"""DDP on CPU: two gloo processes launched with torchrun agree with each other and with one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_regression_task import regression_config

from moldiff.train.checkpoint import load_checkpoint
from moldiff.train.distributed import ShardedBatchSampler
from moldiff.train.logs import read_log
from moldiff.train.loop import Trainer

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sampler_shards_partition_the_global_batch():
    single = iter(ShardedBatchSampler(40, 8, seed=5))
    ranks = [iter(ShardedBatchSampler(40, 4, rank=r, world_size=2, seed=5)) for r in range(2)]
    for _ in range(12):  # crosses epoch boundaries (5 global batches per epoch)
        assert sorted(next(single)) == sorted(next(ranks[0]) + next(ranks[1]))
    resumed = iter(ShardedBatchSampler(40, 8, seed=5, start_batch=7))
    fresh = iter(ShardedBatchSampler(40, 8, seed=5))
    for _ in range(7):
        next(fresh)
    assert [next(resumed) for _ in range(4)] == [next(fresh) for _ in range(4)]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_ranks_match_one_process(tmp_path):
    steps, batch = 4, 8
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(HERE / "train_dist_worker.py"),
        str(tmp_path / "ddp"),
        str(batch),
        str(steps),
    ]
    (tmp_path / "ddp").mkdir()
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in range(2)]
    for key in ("model", "ema"):
        for name, value in ranks[0][key].items():
            assert torch.equal(value, ranks[1][key][name]), f"{key}.{name} differs between ranks"

    # Only rank 0 wrote: one log line per step, checkpoints from one writer.
    logs = read_log(tmp_path / "ddp" / "log.jsonl")
    assert [r["step"] for r in logs] == list(range(1, steps + 1))
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoints" / f"step_{steps:08d}.ckpt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2

    # One process with the combined batch takes the same steps.
    single = Trainer(regression_config(batch_size=2 * batch, steps=steps), out_dir=tmp_path / "single")
    single.fit()
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["model"][name], value, rtol=1e-5, atol=1e-6)
    for name, value in single.ema.module.state_dict().items():
        torch.testing.assert_close(ranks[0]["ema"][name], value, rtol=1e-5, atol=1e-6)
    single_losses = [r["loss"] for r in read_log(tmp_path / "single" / "log.jsonl")]
    assert [r["loss"] for r in logs] == pytest.approx(single_losses, rel=1e-5)
