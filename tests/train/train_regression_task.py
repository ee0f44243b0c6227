"""A deterministic task for exactness tests: an MLP regressing fixed targets, no randomness in the loss.

With no noise in ``training_loss``, one step on a batch of ``2b`` items must equal two accumulated
micro-batches of ``b``, or two DDP ranks with ``b`` each (up to float rounding). Imported by the tests
and by ``train_dist_worker.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moldiff.train.config import ExperimentConfig, TrainConfig
from moldiff.train.tasks import TaskBundle, register_task

TASK = "test_regression"


@dataclass
class RegressionModelConfig:
    hidden: int = 16


@dataclass
class RegressionDataConfig:
    num_items: int = 256
    dim: int = 4
    seed: int = 0


class RegressionDataset(torch.utils.data.Dataset):
    def __init__(self, cfg: RegressionDataConfig) -> None:
        g = torch.Generator().manual_seed(cfg.seed)
        self.x = torch.randn(cfg.num_items, cfg.dim, generator=g)
        self.y = torch.sin(self.x.sum(1, keepdim=True)) + 0.1 * torch.randn(cfg.num_items, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


class RegressionModel(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def training_loss(self, batch: dict, generator=None):
        err = self.mlp(batch["x"]) - batch["y"]
        return (err**2).mean(), {"abs_err": err.detach().abs().mean()}


def build(model_cfg, data_cfg, *, rank=0, world_size=1, seed=0) -> TaskBundle:
    return TaskBundle(
        model=RegressionModel(data_cfg.dim, model_cfg.hidden),
        train_dataset=RegressionDataset(data_cfg),
        dataset_stats={"dim": data_cfg.dim},
    )


def register() -> None:
    register_task(TASK, RegressionModelConfig, RegressionDataConfig, build)


def regression_config(**train) -> ExperimentConfig:
    register()
    defaults = dict(
        steps=4,
        batch_size=8,
        lr=1e-2,
        warmup_steps=0,
        ema_decay=0.9,
        clip="norm",
        clip_value=0.5,
        log_every=1,
        ckpt_every=2,
        eval_every=0,
        best_metric=None,
        device="cpu",
        progress=False,
        seed=0,
    )
    defaults.update(train)
    return ExperimentConfig(TASK, RegressionModelConfig(), RegressionDataConfig(), TrainConfig(**defaults))
