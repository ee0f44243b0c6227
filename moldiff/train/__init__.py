"""moldiff.train: one training engine for every model.

A task's model gives a loss for a batch; the engine does the rest: step-counted AdamW with warm-up
and decay, gradient accumulation, an fp32 EMA with warm-up, bf16 autocast on CUDA, gradient
clipping with a non-finite guard, atomic checkpoints that resume bit for bit, JSON-lines logs,
and DDP under ``torchrun``. See :mod:`moldiff.train.loop` and :mod:`moldiff.train.tasks`.

Names are imported lazily, so ``import moldiff.train`` is cheap.
"""

from __future__ import annotations

from moldiff._lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "config",
    "CheckpointError": "checkpoint",
    "TrainConfig": "config",
    "ExperimentConfig": "config",
    "from_dict": "config",
    "to_dict": "config",
    "apply_overrides": "config",
    "load_config": "config",
    "experiment_from_dict": "config",
    "TaskBundle": "tasks",
    "TaskSpec": "tasks",
    "ENTRY_POINT_GROUP": "tasks",
    "register_task": "tasks",
    "get_task": "tasks",
    "available_tasks": "tasks",
    "build_model": "checkpoint",
    "atomic_write": "checkpoint",
    "atomic_save": "checkpoint",
    "Trainer": "loop",
    "TrainResult": "loop",
    "train": "loop",
    "EMA": "ema",
    "ema_decay_at": "ema",
    "LRSchedule": "optim",
    "GradClipper": "optim",
    "load_checkpoint": "checkpoint",
    "export_ema": "checkpoint",
    "load_trained_model": "checkpoint",
    "CheckpointManager": "checkpoint",
    "read_log": "logs",
    "DistInfo": "distributed",
    "init_distributed": "distributed",
    "ShardedBatchSampler": "distributed",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
