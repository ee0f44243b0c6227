"""Helpers for the training-engine tests: small configs of the engine's self-test task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from moldiff.train.config import ExperimentConfig, TrainConfig
from moldiff.train.toy_task import ToyDataConfig, ToyModelConfig

# The helper modules beside the tests (train_regression_task, train_dist_worker) import by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def small_toy_config(**train) -> ExperimentConfig:
    """A toy-task config that trains in well under a second per hundred steps on one CPU core."""
    defaults = dict(
        steps=100,
        batch_size=64,
        lr=2e-3,
        warmup_steps=10,
        lr_decay="cosine",
        ema_decay=0.99,
        clip="adaptive",
        clip_value=10.0,
        log_every=1,
        ckpt_every=50,
        keep_last=5,
        eval_every=0,
        eval_batches=2,
        device="cpu",
        progress=False,
        seed=0,
    )
    defaults.update(train)
    return ExperimentConfig(
        task="gaussian_mixture",
        model=ToyModelConfig(hidden=32, depth=2, time_features=16, sample_steps=8, eval_samples=256),
        data=ToyDataConfig(num_train=1024, num_valid=256),
        train=TrainConfig(**defaults),
    )


@pytest.fixture
def toy_config():
    return small_toy_config
