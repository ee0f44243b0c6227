"""The training loop: one engine for every task.

A task's model only has to give a loss for a batch (see :mod:`moldiff.train.tasks`); the
:class:`Trainer` does the rest:

* counts optimiser steps (not epochs), drawing endless seeded batches from
  :class:`~moldiff.train.distributed.ShardedBatchSampler`;
* AdamW with linear warm-up and cosine / linear decay, gradient accumulation;
* bf16 autocast of the model's forward on CUDA or CPU (``train.precision = "bf16"``, or ``"auto"``:
  bf16 where the device multiplies bf16 matrices natively, :mod:`moldiff.train.precision`; the log's
  start event records the choice; weights, optimiser and EMA stay fp32, and the diffusion
  schedule maths in :mod:`moldiff.core` runs in float64, untouched by autocast);
* global-norm clipping, fixed or EDM's adaptive rule, behind a guard that *skips and counts* a
  step whose loss or gradient is not finite, leaving weights, optimiser moments and EMA unchanged;
* an fp32 EMA of the weights with warm-up; evaluation of the EMA model under fixed seeds;
* one checkpoint file with everything needed to continue bit for bit (model, EMA, optimiser,
  schedule, step, every rank's random states, the data stream's position, config, dataset
  statistics), written atomically, the last ``keep_last`` and the best kept;
* JSON-lines logs and a progress bar; DDP under ``torchrun`` with only rank 0 writing.

``moldiff train CONFIG [KEY=VALUE ...] --resume`` continues the saved run's config (the run folder's
``config.yaml``) with only the overrides given now, and prints one line for each key where the
config file and the saved run differ, saying which value is used (:func:`plan_resume`; the log
records it as a ``resume_config`` event). A run already at ``train.steps`` says so and trains
nothing.

Typical use is the command line (``moldiff train CONFIG``) or::

    from moldiff.train import load_config, train
    result = train(load_config("configs/toy_gaussian_mixture.yaml", ["train.steps=500"]))
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import random
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from moldiff.errors import CheckpointError, ConfigError
from moldiff.files import atomic_write
from moldiff.pretrained import pretrained_path

from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointManager,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    run_lock,
    trained_weights,
)
from .config import (
    ExperimentConfig,
    TrainConfig,
    apply_overrides,
    experiment_from_dict,
    load_config,
    load_yaml,
    parse_overrides,
    save_yaml,
    to_dict,
)
from .distributed import (
    DistInfo,
    ShardedBatchSampler,
    all_reduce_max,
    all_reduce_sum,
    barrier,
    broadcast_object,
    cleanup_distributed,
    gather_objects,
    init_distributed,
)
from .ema import EMA
from .logs import JsonlLogger, ProgressBar, peak_memory_mb
from .optim import GradClipper, LRSchedule, build_optimizer, grad_norm
from .precision import resolve_precision
from .tasks import TaskBundle, get_task

__all__ = [
    "Trainer",
    "TrainResult",
    "StepResult",
    "train",
    "derive_seed",
    "seed_everything",
    "move_to_device",
    "ResumePlan",
    "ResumeSetting",
    "LAUNCH_KEYS",
    "plan_resume",
]


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


def derive_seed(*keys: Any) -> int:
    """A 63-bit seed that depends on ``keys`` (e.g. ``(seed, "noise", rank)``), stable across runs."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor inside ``batch`` to ``device``.

    Handles tensors, mappings, lists, tuples (named ones too), dataclasses, and any object with a
    ``.to(device)`` method (e.g. a torch_geometric ``Batch``).
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return type(batch)({k: move_to_device(v, device, non_blocking) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(
            batch,
            **{
                f.name: move_to_device(getattr(batch, f.name), device, non_blocking)
                for f in dataclasses.fields(batch)
                if f.init
            },
        )
    if hasattr(batch, "to") and callable(batch.to):
        try:
            return batch.to(device, non_blocking=non_blocking)
        except TypeError:
            return batch.to(device)
    return batch


@contextlib.contextmanager
def isolated_rng(seed: int):
    """Run a block under fixed seeds, then restore every global random state as it was.

    Evaluation draws samples reproducibly and leaves the training stream untouched.
    """
    saved = capture_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        restore_rng_state(saved)


def grow_weights(
    weights: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """The weights of ``train.init_partial``: a trained state dict fitted to a grown model's.

    Tensors of the same shape are taken as they are; a tensor that grew (same rank, every dimension at
    least as large: e.g. an input layer ``[H, F]`` of a model whose inputs gained columns at the end)
    gets the trained values in its leading block and zeros elsewhere (new inputs start with no effect);
    a tensor the trained weights lack keeps the model's own value. Anything else (a tensor the model
    lacks, one that shrank or changed rank) is passed through unchanged, for the caller's fit check to
    name.

    Returns:
        ``(weights, {"grown": [names], "new": [names]})``.
    """
    out, grown, new = dict(weights), [], []
    for name, value in own.items():
        if name not in weights:
            out[name] = value.detach().clone()
            new.append(name)
            continue
        old = weights[name]
        if old.shape == value.shape or old.dim() != value.dim() or any(a > b for a, b in zip(old.shape, value.shape)):
            continue
        grew = torch.zeros_like(value)
        grew[tuple(slice(0, n) for n in old.shape)] = old.to(value.dtype)
        out[name] = grew
        grown.append(name)
    return out, ({"grown": grown, "new": new} if grown or new else {})


def init_report_line(report: dict[str, list[str]]) -> str:
    """One line naming what :func:`grow_weights` grew and added."""

    def names(items: list[str]) -> str:
        return ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")

    parts = []
    if report.get("adapted"):
        parts.append(f"adapted by the model: {names(report['adapted'])}")
    if report.get("grown"):
        parts.append(f"grown (trained block kept, zeros elsewhere): {names(report['grown'])}")
    if report.get("new"):
        parts.append(f"new (this model's initialisation): {names(report['new'])}")
    return "; ".join(parts)


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: torch seeds ``torch`` and ``random``; seed NumPy from it too."""
    np.random.seed(torch.initial_seed() % 2**32)


class _LossModule(nn.Module):
    """Routes ``forward`` to ``model.training_loss`` so DDP sees the call and synchronises gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, generator: torch.Generator | None):
        return self.model.training_loss(batch, generator)


@dataclass
class StepResult:
    """Outcome of one optimiser step.

    Attributes:
        loss: mean loss of the step's micro-batches on this rank (a 0-d tensor; NaN possible).
        grad_norm: global gradient norm before clipping (a 0-d tensor).
        metrics: the model's extra metrics averaged over the micro-batches (0-d tensors).
        skipped: the step had a non-finite loss or gradient on some rank and changed nothing.
        lr: learning rate of the step.
        ema_decay: EMA decay applied (``None`` when the step was skipped).
    """

    loss: torch.Tensor
    grad_norm: torch.Tensor
    metrics: dict
    skipped: bool
    lr: float
    ema_decay: float | None


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        step: steps done.
        skipped_steps: steps skipped by the non-finite guard.
        out_dir: the run folder.
        last_checkpoint: path of the newest checkpoint (``None`` if none was written).
        best_metric: best value of ``train.best_metric`` seen (``None`` if never evaluated).
        last_log: the last training log record.
        stopped: the run ended early on SIGTERM / SIGUSR1 (after writing a checkpoint).
        nothing_to_do: a resumed run was already at ``train.steps`` (or beyond) and trained nothing.
    """

    step: int
    skipped_steps: int
    out_dir: Path
    last_checkpoint: Path | None
    best_metric: float | None
    last_log: dict
    stopped: bool = False
    nothing_to_do: bool = False


# ------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------


class Trainer:
    """Builds a task and trains it; see the module docstring for what it does.

    Args:
        config: the experiment configuration.
        dist_info: this process's place in the job (default: :func:`init_distributed` from the
            environment; the caller then owns the process group's cleanup).
        out_dir: run folder (default: ``config.train.out_dir``, else ``runs/default``).
        bundle: an already built :class:`TaskBundle` (default: built from ``config.task``).

    Attributes:
        model: the raw model (not wrapped by DDP or compile).
        ema: its :class:`~moldiff.train.ema.EMA`; ``ema.module`` is the averaged model.
        step: optimiser steps done (skipped ones included).
        skipped_steps: steps skipped by the non-finite guard.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        dist_info: DistInfo | None = None,
        out_dir: str | Path | None = None,
        bundle: TaskBundle | None = None,
    ) -> None:
        self.config = config
        tc: TrainConfig = config.train
        self.tc = tc
        self.dist = dist_info or init_distributed(tc.device)
        self.device = self.dist.device
        self.out_dir = Path(out_dir or tc.out_dir or "runs/default")
        self.is_main = self.dist.is_main

        # Build the task with the same seed on every rank (identical initial weights). Rank 0
        # builds first so that it alone downloads or caches data.
        seed_everything(tc.seed)
        if bundle is None:
            spec = get_task(config.task)
            if not self.is_main:
                barrier(self.dist)
            bundle = spec.build_fn(
                config.model, config.data, rank=self.dist.rank, world_size=self.dist.world_size, seed=tc.seed
            )
            if self.is_main:
                barrier(self.dist)
        if not callable(getattr(bundle.model, "training_loss", None)):
            raise TypeError(
                f"the model of task {config.task!r} ({type(bundle.model).__name__}) has no "
                "training_loss(batch, generator) method"
            )
        empty = [(name, tuple(p.shape)) for name, p in bundle.model.named_parameters() if p.numel() == 0]
        if empty:
            raise ConfigError(
                f"model: the network of task {config.task!r} has {len(empty)} empty weight tensor(s) (first "
                f"{empty[0][0]}, shape {empty[0][1]}): a width or depth in the model section is 0"
            )
        self.bundle = bundle
        self.init_report: dict[str, list[str]] = {}
        self.lr_scaled: list[str] = []  # parameters trained at train.new_lr_scale x lr
        self.model = bundle.model.to(self.device)
        self.ema = EMA(self.model, tc.ema_decay, tc.ema_warmup).to(self.device)
        self._build_optimizer()
        self.lr_schedule = LRSchedule(tc.steps, tc.warmup_steps, tc.lr_decay, tc.lr_min_ratio)
        self.clipper = GradClipper(tc.clip, tc.clip_value, tc.clip_history)
        self.params = [p for p in self.model.parameters() if p.requires_grad]

        # From here on each rank has its own random streams (dropout, diffusion noise).
        seed_everything(derive_seed(tc.seed, "global", self.dist.rank))
        self.noise_generator = torch.Generator(self.device)
        self.noise_generator.manual_seed(derive_seed(tc.seed, "noise", self.dist.rank))

        self.precision = resolve_precision(tc.precision, self.device)  # "fp32" or "bf16"
        self.use_bf16 = self.precision == "bf16"
        self.loss_module: nn.Module = _LossModule(self.model)
        if tc.compile:
            target = getattr(self.model, "network", None)
            (target if isinstance(target, nn.Module) else self.loss_module).compile()
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.loss_module = DistributedDataParallel(
                self.loss_module, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

        self.step = 0
        self.skipped_steps = 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self._resume_notes: list[str] = []
        self.last_metrics: dict = {}
        self.resumed_from: Path | None = None
        self.checkpoints = CheckpointManager(self.out_dir / "checkpoints", tc.keep_last)
        self.logger = JsonlLogger(self.out_dir / "log.jsonl" if self.is_main else None)
        self._last_checkpoint: Path | None = None
        self._stop_requested = False  # set by SIGTERM / SIGUSR1
        self.stop_agreed = False  # some rank was asked to stop: all save and stop after this step

    # --------------------------------------------------------------------------------------------
    # One optimiser step
    # --------------------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def train_step(self, batches: list) -> StepResult:
        """One optimiser step over ``len(batches)`` accumulated micro-batches.

        The gradient is the mean over micro-batches (and, under DDP, over ranks) of each
        micro-batch's loss gradient. If the loss or the gradient norm is not finite on any rank the
        step is skipped: gradients are dropped, weights, optimiser and EMA are left unchanged, and
        :attr:`skipped_steps` grows by one. :attr:`step` grows by one either way.

        Args:
            batches: collated micro-batches (moved to the device here).

        Returns:
            A :class:`StepResult`.
        """
        self.loss_module.train()
        lr = self.lr_schedule.apply(self.optimizer, self.tc.lr, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        n = len(batches)
        loss_sum = torch.zeros((), device=self.device)
        metric_sums: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(batches):
            batch = move_to_device(batch, self.device, non_blocking=True)
            last = i == n - 1
            no_sync = getattr(self.loss_module, "no_sync", None)
            sync_ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
            with sync_ctx:
                with self._autocast():
                    loss, metrics = self.loss_module(batch, self.noise_generator)
                if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                    raise TypeError(
                        "training_loss must return (scalar loss tensor, metrics dict), got a loss of "
                        f"shape {tuple(getattr(loss, 'shape', ()))}"
                    )
                loss = loss.float()
                (loss / n).backward()
            loss_sum += loss.detach() / n
            for key, value in (metrics or {}).items():
                value = torch.as_tensor(
                    value.detach() if isinstance(value, torch.Tensor) else value,
                    device=self.device,
                    dtype=torch.float32,
                )
                metric_sums[key] = metric_sums.get(key, 0.0) + value / n
        norm = grad_norm(self.params).to(self.device)
        bad = (~torch.isfinite(norm) | ~torch.isfinite(loss_sum)).float()
        stop = torch.full((), float(self._stop_requested), device=self.device)
        # One small collective and one host sync per step: every rank must take the same decisions.
        flags = all_reduce_max(torch.stack([bad, stop])).tolist()
        skipped = flags[0] > 0
        self.stop_agreed = flags[1] > 0
        ema_decay = None
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
        else:
            self.clipper.clip_(self.params, norm)
            self.optimizer.step()
            ema_decay = self.ema.update(self.model)
        self.step += 1
        return StepResult(loss_sum, norm, metric_sums, skipped, lr, ema_decay)

    # --------------------------------------------------------------------------------------------
    # Data
    # --------------------------------------------------------------------------------------------
    def _batches_consumed(self) -> int:
        return self.step * self.tc.grad_accum

    def make_loader(self, start_batch: int = 0) -> Iterator:
        """Endless iterator over collated training batches, starting after ``start_batch`` batches."""
        tc = self.tc
        dataset = self.bundle.train_dataset
        sampler = ShardedBatchSampler(
            len(dataset),
            tc.batch_size,
            self.dist.rank,
            self.dist.world_size,
            seed=derive_seed(tc.seed, "data"),
            start_batch=start_batch,
        )
        self.sampler = sampler
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.bundle.collate_fn,
            num_workers=tc.num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker if tc.num_workers else None,
            prefetch_factor=4 if tc.num_workers else None,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(derive_seed(tc.seed, "workers", self.dist.rank, start_batch)),
        )
        return iter(loader)

    # --------------------------------------------------------------------------------------------
    # Evaluation
    # --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """Mean ``training_loss`` of the EMA model over ``train.eval_batches`` validation batches,
        with a fixed noise seed (``None`` without a validation set).

        The batches are a fixed random subset of the validation set (the same at every evaluation
        and on resume), not its first items: datasets stored in an order (QM9 by GDB-9 index, small
        molecules first) would otherwise give a biased loss."""
        dataset = self.bundle.valid_dataset
        if dataset is None or self.tc.eval_batches == 0:
            return None
        order = torch.randperm(
            len(dataset), generator=torch.Generator().manual_seed(derive_seed(self.tc.seed, "valid-order"))
        )
        subset = torch.utils.data.Subset(dataset, order[: self.tc.eval_batches * self.tc.batch_size].tolist())
        loader = torch.utils.data.DataLoader(
            subset, batch_size=self.tc.batch_size, shuffle=False, collate_fn=self.bundle.collate_fn
        )
        generator = torch.Generator(self.device).manual_seed(derive_seed(self.tc.seed, "valid"))
        total, count = 0.0, 0
        for i, batch in enumerate(loader):
            if i >= self.tc.eval_batches:
                break
            with self._autocast():
                loss, _ = self.ema.module.training_loss(move_to_device(batch, self.device), generator)
            total += float(loss)
            count += 1
        return total / max(count, 1)

    def evaluate(self) -> dict:
        """Evaluate the EMA model on rank 0 (validation loss, then the task's ``eval_fn``) under
        fixed seeds, log the results, and share them with every rank."""
        results: dict = {}
        if self.is_main:
            with isolated_rng(derive_seed(self.tc.seed, "eval")):
                valid = self.validation_loss()
                if valid is not None:
                    results["valid_loss"] = valid
                if self.bundle.eval_fn is not None:
                    eval_dir = self.out_dir / "eval"
                    eval_dir.mkdir(parents=True, exist_ok=True)
                    extra = self.bundle.eval_fn(self.ema.module, self.step, str(eval_dir)) or {}
                    results.update(
                        {k: (float(v) if isinstance(v, (int, float, torch.Tensor)) else v) for k, v in extra.items()}
                    )
            if results:
                self.logger.log({"kind": "eval", "step": self.step, **results})
        results = broadcast_object(results)
        self.last_metrics = results
        return results

    def _improved(self, results: dict) -> bool:
        key = self.tc.best_metric
        if key is None or key not in results:
            return False
        value = float(results[key])
        if not math.isfinite(value):
            return False
        better = self.best_metric is None or (
            value < self.best_metric if self.tc.best_mode == "min" else value > self.best_metric
        )
        if better:
            self.best_metric = value
            self.best_step = self.step
        return better

    # --------------------------------------------------------------------------------------------
    # Checkpoints
    # --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict | None:
        """The checkpoint dictionary (on rank 0; ``None`` on other ranks). Collective: every rank
        must call it, since each contributes its random states."""
        rng = gather_objects(capture_rng_state(self.noise_generator))
        if not self.is_main:
            return None
        tc = self.tc
        sampling_state = self.model.state_for_sampling() if hasattr(self.model, "state_for_sampling") else {}
        consumed = self._batches_consumed()
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "task": self.config.task,
            "config": to_dict(self.config),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scaled": list(self.lr_scaled),
            "lr_scheduler": self.lr_schedule.state_dict(),
            "clipper": self.clipper.state_dict(),
            "rng": rng,
            "sampler": {
                "batches_consumed": consumed,
                "items_consumed": consumed * tc.batch_size * self.dist.world_size,
            },
            "dataset_stats": self.bundle.dataset_stats,
            "sampling_state": sampling_state,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "skipped_steps": self.skipped_steps,
            "world_size": self.dist.world_size,
        }

    def save_checkpoint(self, periodic: bool = True, best: bool = False) -> Path | None:
        """Write the current state: as ``step_XXXXXXXX.ckpt`` (``periodic``) and/or ``best.ckpt``.

        Collective under DDP; only rank 0 writes, and every rank waits until the file exists.
        """
        state = self.state_dict()
        path = None
        if self.is_main:
            if periodic:
                path = self.checkpoints.save(state, self.step, best=best)
                self._last_checkpoint = path
            elif best:
                path = atomic_save(state, self.checkpoints.best_path)
        barrier(self.dist)
        return path

    def load_state_dict(self, ckpt: dict) -> None:
        """Restore a checkpoint written by :meth:`state_dict` (the current config's schedule is kept)."""
        if ckpt.get("task") != self.config.task:
            raise ConfigError(f"checkpoint is of task {ckpt.get('task')!r}, this run's task is {self.config.task!r}")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:  # a model.* setting changed since the checkpoint was written
            detail = "; ".join(line.strip() for line in str(err).splitlines()[1:3])
            raise CheckpointError(
                f"the checkpoint's weights do not fit the model of this run's config (did a "
                f"model.* setting change since it was written?): {detail}"
            ) from None
        self.ema.load_state_dict(ckpt["ema"])
        self.lr_scaled = list(ckpt.get("lr_scaled") or [])
        if self.lr_scaled:  # the optimiser's groups as the checkpoint's run built them
            self._build_optimizer()
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.lr_scaled:  # this config's scale (the checkpoint's groups carry the one they had)
            names = set(self.lr_scaled)
            scaled = {id(p) for name, p in self.model.named_parameters() if name in names}
            for group in self.optimizer.param_groups:
                if all(id(p) in scaled for p in group["params"]):
                    group["lr_scale"] = self.tc.new_lr_scale
        self.clipper.load_state_dict(ckpt["clipper"])
        self.step = int(ckpt["step"])
        self.skipped_steps = int(ckpt.get("skipped_steps", 0))
        self.best_metric = ckpt.get("best_metric")
        self.best_step = ckpt.get("best_step")
        rng = ckpt.get("rng") or []
        if len(rng) == self.dist.world_size:
            restore_rng_state(rng[self.dist.rank], self.noise_generator)
        else:
            warnings.warn(
                f"checkpoint was written by {len(rng)} process(es), this run has {self.dist.world_size}: "
                "random streams are reseeded, so the run continues but not bit for bit"
            )
            seed_everything(derive_seed(self.tc.seed, "global", self.dist.rank, self.step))
            self.noise_generator.manual_seed(derive_seed(self.tc.seed, "noise", self.dist.rank, self.step))
        old = to_dict(self.config)
        saved = ckpt.get("config", {})
        changed = [
            f"{section}.{k}"
            for section in ("model", "data", "train")
            for k in set(old.get(section, {})) | set(saved.get(section, {}))
            if old.get(section, {}).get(k) != saved.get(section, {}).get(k)
        ]
        if changed and self.is_main:
            self.logger.log(
                {"kind": "event", "step": self.step, "event": "config_changed_on_resume", "keys": sorted(changed)}
            )

    def _start_batch_from(self, ckpt: dict) -> int:
        sampler = ckpt.get("sampler", {})
        global_batch = self.tc.batch_size * self.dist.world_size
        items = sampler.get("items_consumed")
        if items is not None and items % global_batch == 0:
            return items // global_batch
        return int(sampler.get("batches_consumed", self.step * self.tc.grad_accum))

    def resume(self, checkpoint: str | Path | None = None) -> bool:
        """Load ``checkpoint``, or the newest readable one of this run; ``False`` when there is none."""
        if checkpoint is not None:
            path, ckpt = Path(checkpoint), load_checkpoint(checkpoint, map_location="cpu")
        else:
            found = self.checkpoints.load_latest(map_location="cpu", or_best=True)
            if found is None:
                return False
            path, ckpt = found
            if path == self.checkpoints.best_path and self.is_main:
                print(
                    f"moldiff train: no periodic checkpoint in {self.checkpoints.directory}: resuming from {path.name}",
                    file=sys.stderr,
                    flush=True,
                )
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{str(path)!r} holds exported weights (EMA only, no optimiser or random states), which cannot be "
                f"resumed; start a fresh run from them with train.init_from={path}"
            )
        self.load_state_dict(ckpt)
        self._start_batch = self._start_batch_from(ckpt)
        self.resumed_from = path
        self._last_checkpoint = path
        self._restore_best(path, ckpt)
        return True

    def _refuse_earlier_run(self) -> None:
        """A fresh start never writes over an earlier run's checkpoints (its log is kept aside)."""
        if self.checkpoints.checkpoints():
            raise FileExistsError(
                f"{self.out_dir} already holds checkpoints of an earlier run: continue it with "
                "--resume (resume=True) or choose another output folder"
            )
        if self.checkpoints.best_path.exists():
            raise FileExistsError(
                f"{self.out_dir} holds {self.checkpoints.best_path.name} of an earlier run (and no periodic "
                f"checkpoint): continue from it with --resume-from {self.checkpoints.best_path}, or choose "
                "another output folder"
            )

    def _restore_best(self, path: Path, ckpt: dict) -> None:
        """A resumed run whose checkpoint records a best evaluation has a ``best.ckpt``.

        Files of this version write ``best.ckpt`` before the periodic checkpoint, so it can only be
        missing after a crash of an older version (or by hand): it is rebuilt from the resumed file
        when that is the best one, otherwise the best value is forgotten, so that the next
        evaluation writes a best checkpoint again."""
        if self.best_metric is None:
            return
        decision = None  # (restored, message), decided on rank 0 and shared
        if self.is_main and not self.checkpoints.best_path.exists():
            best = self.checkpoints.best_path
            if ckpt.get("best_step") == self.step:
                atomic_write(best, lambda tmp: shutil.copyfile(path, tmp))
                decision = (True, f"{best} was missing: restored from {path.name}, the best checkpoint")
            else:
                decision = (
                    False,
                    f"{best} was missing and {path.name} is not the best checkpoint: the next evaluation writes one",
                )
        decision = broadcast_object(decision)
        if decision is None:
            return
        restored, message = decision
        if not restored:
            self.best_metric = None
            self.best_step = None
        if self.is_main:
            print(f"moldiff train: {message}", file=sys.stderr, flush=True)
            self._resume_notes.append(message)

    def _build_optimizer(self) -> None:
        """AdamW over the model (:func:`build_optimizer`), :attr:`lr_scaled` in groups of their own at
        ``train.new_lr_scale`` x the rate."""
        tc = self.tc
        scales = {name: tc.new_lr_scale for name in self.lr_scaled}
        self.optimizer = build_optimizer(self.model, tc.lr, tc.weight_decay, tc.betas, tc.eps, lr_scales=scales)

    def init_weights(self, source: str | Path, partial: bool = False) -> Path:
        """Set the model and its EMA to trained weights (``train.init_from``) before a fresh run.

        Args:
            source: a pretrained name (see :mod:`moldiff.pretrained`) or a checkpoint /
                exported weights file of this run's task whose weights fit this model exactly.
            partial: accept weights that fit in part (``train.init_partial``): a model with an
                ``adapt_trained_weights(weights, source_config) -> (weights, [names])`` method maps
                them first (e.g. :meth:`moldiff.molecules.flow_model.MoleculeFlow.adapt_trained_weights`,
                a conditional model reduced to a subset of its properties); then tensors that grew get
                the file's values in their leading block and zeros elsewhere, tensors the file lacks
                keep the model's initialisation (all listed in :attr:`init_report`).

        Returns:
            The file the weights came from.

        Raises:
            ConfigError: the file belongs to another task, or its weights do not fit the model
                (the message names the missing, unexpected or reshaped entries).
        """
        path = pretrained_path(source)
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("task") != self.config.task:
            raise ConfigError(
                f"train.init_from: {str(path)!r} holds a model of task {ckpt.get('task')!r}, "
                f"this run's task is {self.config.task!r}"
            )
        weights = trained_weights(ckpt)
        own = self.model.state_dict()
        if partial:
            adapted = []
            adapt = getattr(self.model, "adapt_trained_weights", None)
            if adapt is not None:  # a model that knows how its weights map from a related config's
                weights, adapted = adapt(weights, ckpt.get("config") or {})
            weights, self.init_report = grow_weights(weights, own)
            if adapted:
                self.init_report = {**self.init_report, "adapted": adapted}
        problems = [f"missing {k}" for k in own if k not in weights]
        problems += [f"unexpected {k}" for k in weights if k not in own]
        problems += [
            f"{k}: shape {tuple(weights[k].shape)} in the file, {tuple(v.shape)} in the model"
            for k, v in own.items()
            if k in weights and weights[k].shape != v.shape
        ]
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise ConfigError(
                f"train.init_from: the weights in {str(path)!r} do not fit this run's model "
                f"(compare the model sections of the two configs): {shown}"
            )
        self.model.load_state_dict(weights)
        self.ema.module.load_state_dict(weights)
        return path

    # --------------------------------------------------------------------------------------------
    # The loop
    # --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stop_signals(self):
        """While training, SIGTERM and SIGUSR1 (sent by schedulers before pre-emption) ask every rank
        to finish the current step, write a checkpoint and return."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        names = [n for n in ("SIGTERM", "SIGUSR1") if hasattr(signal, n)]
        previous = {}

        def request_stop(signum, frame):
            self._stop_requested = True

        for name in names:
            previous[name] = signal.signal(getattr(signal, name), request_stop)
        try:
            yield
        finally:
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler)

    def fit(
        self, resume: bool | str | Path = False, stop_at: int | None = None, resume_plan: "ResumePlan | None" = None
    ) -> TrainResult:
        """Train until ``train.steps``.

        Args:
            resume: ``True`` continues from this run's newest readable checkpoint (``best.ckpt``
                when there is no periodic one; starting fresh when there is no checkpoint at all, with
                an earlier ``log.jsonl`` kept as ``log.jsonl.1``), a path continues from that
                checkpoint, ``False`` starts fresh. The run
                trains with this trainer's config; :func:`plan_resume` makes the one the command
                line uses (the saved run's, with the overrides given now).
            stop_at: stop once ``step == stop_at`` without a final checkpoint or evaluation, as if
                the job were killed there (tests of resumption use it).
            resume_plan: how the config was chosen (:func:`plan_resume`), recorded in the log as a
                ``resume_config`` event when the run resumes.

        Returns:
            A :class:`TrainResult`. A run stopped by SIGTERM or SIGUSR1 writes a checkpoint of the
            step it was in and returns with ``stopped=True``; ``resume=True`` continues it. A run
            resumed at or beyond ``train.steps`` says so on stderr, trains nothing, writes nothing
            but a ``nothing_to_do`` log event and returns with ``nothing_to_do=True``.

        Raises:
            FileExistsError: when starting fresh in a folder that already holds checkpoints (periodic
                or ``best.ckpt``), or when another process holds the folder's lock (or may hold it:
                a lock taken on another machine is never taken over, see
                :func:`~moldiff.train.checkpoint.run_lock`).
            CheckpointError: ``resume=True`` in a folder whose checkpoints are all unreadable (the
                message names each; nothing is changed), or a checkpoint that holds exported weights.
        """
        with run_lock(self.out_dir) if self.is_main else contextlib.nullcontext():
            return self._fit(resume, stop_at, resume_plan)

    def _fit(self, resume: bool | str | Path, stop_at: int | None, resume_plan: "ResumePlan | None") -> TrainResult:
        tc = self.tc
        self._start_batch = self._batches_consumed()
        if self.is_main:  # under the lock: what a killed writer left half-written goes
            self.checkpoints.remove_stale_temporaries()
        if resume:
            self.resume(None if resume is True else resume)
        if self.resumed_from is None:
            self._refuse_earlier_run()
        if self.resumed_from is not None and self.step >= tc.steps:
            if self.is_main:
                self.logger.log(
                    {
                        "kind": "event",
                        "step": self.step,
                        "event": "nothing_to_do",
                        "steps": tc.steps,
                        "checkpoint": str(self.resumed_from),
                    }
                )
                print(
                    f"run already at step {self.step} of {tc.steps}: nothing to do; raise train.steps=N to train on",
                    file=sys.stderr,
                    flush=True,
                )
            return TrainResult(
                self.step,
                self.skipped_steps,
                self.out_dir,
                self._last_checkpoint,
                self.best_metric,
                {},
                nothing_to_do=True,
            )
        if self.resumed_from is None and tc.init_from is not None:
            self.init_weights(tc.init_from, partial=tc.init_partial)
            if self.is_main and self.init_report:
                print(
                    f"moldiff train: train.init_partial: {init_report_line(self.init_report)}",
                    file=sys.stderr,
                    flush=True,
                )
            if tc.new_lr_scale != 1.0:  # the optimiser has no state yet: regroup it
                trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
                self.lr_scaled = [name for name in self.init_report.get("new", []) if name in trainable]
                self._build_optimizer()
                if self.is_main:
                    print(
                        f"moldiff train: train.new_lr_scale: {len(self.lr_scaled)} new parameter tensor(s) at "
                        f"{tc.new_lr_scale:g} x lr",
                        file=sys.stderr,
                        flush=True,
                    )
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(self.config, self.out_dir / "config.yaml")
            if self.resumed_from is not None:
                self.logger.truncate_after(self.step)
            else:
                self.logger.reset()
            n_params = sum(p.numel() for p in self.params)
            if self.resumed_from is not None and resume_plan is not None:
                self.logger.log({"kind": "event", "step": self.step, **resume_plan.event()})
            self.logger.log(
                {
                    "kind": "event",
                    "step": self.step,
                    "event": "resume" if self.resumed_from else "start",
                    "checkpoint": str(self.resumed_from) if self.resumed_from else None,
                    "init_from": None if self.resumed_from else tc.init_from,
                    **({"init_partial": self.init_report} if self.init_report and not self.resumed_from else {}),
                    **({"lr_scaled": self.lr_scaled, "new_lr_scale": tc.new_lr_scale} if self.lr_scaled else {}),
                    "task": self.config.task,
                    "device": str(self.device),
                    "world_size": self.dist.world_size,
                    "parameters": n_params,
                    "precision": self.precision,
                    "precision_requested": tc.precision,
                    "items_per_step": tc.batch_size * tc.grad_accum * self.dist.world_size,
                }
            )
            for note in [*self.logger.repairs, *self._resume_notes]:
                self.logger.log({"kind": "event", "step": self.step, "event": "recovered", "note": note})
            if self.bundle.data_report:
                self.logger.log({"kind": "event", "step": self.step, "event": "data", **self.bundle.data_report})
                if self.bundle.data_report.get("message"):
                    print(f"moldiff train: {self.bundle.data_report['message']}", file=sys.stderr, flush=True)

        end = tc.steps if stop_at is None else min(tc.steps, stop_at)
        data = self.make_loader(self._start_batch)
        bar = ProgressBar(tc.steps, self.step, enabled=tc.progress and self.is_main)
        window = _Window(self.device)
        last_log: dict = {}
        stopped = False
        try:
            with self._stop_signals():
                stopped = self._loop(end, data, bar, window, last_log)
        finally:
            bar.close()
            del data
        return TrainResult(
            self.step, self.skipped_steps, self.out_dir, self._last_checkpoint, self.best_metric, last_log, stopped
        )

    def _loop(self, end: int, data: Iterator, bar: ProgressBar, window: "_Window", last_log: dict) -> bool:
        """Steps until ``end``; returns whether a stop signal ended the run early."""
        tc = self.tc
        while self.step < end:
            batches = [next(data) for _ in range(tc.grad_accum)]
            result = self.train_step(batches)
            window.add(result)
            bar.update(1)
            done = self.step == tc.steps
            if self.step % tc.log_every == 0 or done:
                last_log.clear()
                last_log.update(self._log_window(window))
                bar.update(0, {"loss": last_log.get("loss"), "lr": last_log.get("lr")})
            due_eval = (tc.eval_every > 0 and self.step % tc.eval_every == 0) or done
            improved = self._improved(self.evaluate()) if due_eval else False
            stop = self.stop_agreed and not done
            due_ckpt = self.step % tc.ckpt_every == 0 or done or stop
            if due_ckpt or improved:
                self.save_checkpoint(periodic=due_ckpt, best=improved)
            if stop:
                self.logger.log(
                    {
                        "kind": "event",
                        "step": self.step,
                        "event": "stopped_by_signal",
                        "checkpoint": str(self._last_checkpoint),
                    }
                )
                if self.is_main:
                    bar.write(f"stop requested: checkpoint written at step {self.step}; continue with --resume")
                return True
        return False

    def _log_window(self, window: "_Window") -> dict:
        record = window.reduce(self.dist.world_size)
        tc = self.tc
        items = window.steps * tc.batch_size * tc.grad_accum * self.dist.world_size
        record.update(
            {
                "kind": "train",
                "step": self.step,
                "lr": window.last_lr,
                "ema_decay": window.last_ema_decay,
                "items_per_s": items / max(window.elapsed(), 1e-9),
                "peak_mem_mb": peak_memory_mb(self.device),
                "skipped_steps": self.skipped_steps,
            }
        )
        self.logger.log(record)
        window.reset()
        return record


class _Window:
    """Sums over the steps between two log lines, reduced over ranks when logged."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.finite_steps = 0
        self.loss = torch.zeros((), device=self.device)
        self.grad_norm = torch.zeros((), device=self.device)
        self.metrics: dict[str, torch.Tensor] = {}
        self.last_lr = float("nan")
        self.last_ema_decay = float("nan")
        self.start = time.perf_counter()

    def add(self, result: StepResult) -> None:
        self.steps += 1
        self.last_lr = result.lr
        if result.skipped:
            return
        self.finite_steps += 1
        self.last_ema_decay = result.ema_decay
        self.loss += result.loss
        self.grad_norm += result.grad_norm
        for key, value in result.metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + value

    def elapsed(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.start

    def reduce(self, world_size: int) -> dict:
        """Means over the window's finite steps, averaged over ranks (a collective under DDP)."""
        keys = sorted(self.metrics)
        packed = torch.stack([self.loss, *[self.metrics[k] for k in keys]]).float()
        all_reduce_sum(packed)
        denom = max(self.finite_steps, 1) * world_size
        nan = float("nan")
        values = (packed / denom).tolist() if self.finite_steps else [nan] * len(packed)
        record = {
            "loss": values[0],
            "grad_norm": float(self.grad_norm) / max(self.finite_steps, 1) if self.finite_steps else nan,
        }
        record.update({k: v for k, v in zip(keys, values[1:])})
        return record


# ------------------------------------------------------------------------------------------------
# The config of a resumed run
# ------------------------------------------------------------------------------------------------

#: Keys that describe this launch rather than the run, and change no number it computes (the progress
#: bar, data-loading processes, the folder): on resume they follow this launch's config file and
#: overrides, without a note.
LAUNCH_KEYS = ("train.progress", "train.num_workers", "train.out_dir")

_UNSET = object()  # a key one of the configs does not have


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}`` (lists are values, dicts are sections)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _show(value: Any) -> str:
    """A config value as one writes it in an override (``true``, ``null``, ``[0.9, 0.999]``, ``1e-05``)."""
    if value is _UNSET:
        return "(unset)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return repr(value)


@dataclass(frozen=True)
class ResumeSetting:
    """A key whose value on resume is not both the saved run's and this launch's config file's.

    Attributes:
        key: the dotted key, e.g. ``"train.lr"``.
        saved: its value in the saved run's config.
        given: its value in this launch's config file with the overrides given now.
        used: the value the resumed run trains with.
        source: ``"override"`` (given now on the command line; used) or ``"saved"`` (the saved
            run's value, kept although the config file now says otherwise).
    """

    key: str
    saved: Any
    given: Any
    used: Any
    source: str

    def describe(self, config_file: str) -> str:
        """One line for people: the value used, and why."""
        if self.source == "override":
            return f"{self.key} = {_show(self.used)}, given now (the saved run had {_show(self.saved)})"
        return (
            f"{self.key} = {_show(self.used)}, as in the saved run ({config_file} says {_show(self.given)}; "
            f"give {self.key}={_show(self.given)} to use that)"
        )

    def record(self) -> dict:
        """The setting as plain data for the log."""

        def plain(v):
            return None if v is _UNSET else v

        return {
            "key": self.key,
            "saved": plain(self.saved),
            "given": plain(self.given),
            "used": plain(self.used),
            "source": self.source,
        }


@dataclass
class ResumePlan:
    """The config a resumed run trains with, and how it was chosen (see :func:`plan_resume`).

    Attributes:
        config: the config to train with.
        settings: one :class:`ResumeSetting` per key where the saved run, this launch's config file
            and the value used do not all agree, in config order.
        saved_from: the file the saved run's config was read from (``config.yaml`` in the run
            folder, else the checkpoint); ``None`` when there is nothing to resume and the run
            starts fresh with this launch's config.
        config_file: this launch's config file.
    """

    config: ExperimentConfig
    settings: list[ResumeSetting]
    saved_from: Path | None
    config_file: str

    def messages(self) -> list[str]:
        """One line per setting (none when everything agrees)."""
        return [f"resuming with {s.describe(self.config_file)}" for s in self.settings]

    def event(self) -> dict:
        """The decision as a log event (``"event": "resume_config"``)."""
        return {
            "event": "resume_config",
            "saved_config": str(self.saved_from),
            "config_file": self.config_file,
            "settings": [s.record() for s in self.settings],
        }


def plan_resume(
    config_file: str | Path,
    overrides: list[str] | tuple[str, ...],
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
) -> ResumePlan:
    """The config ``moldiff train CONFIG [KEY=VALUE ...] --resume`` trains with.

    A resumed run continues the run it resumes: it starts from the saved run's config (the run
    folder's ``config.yaml``, else the config inside the checkpoint) and applies only the
    overrides given now. Values the config file holds but the saved run does not (the file was
    edited, or the first launch overrode them) are not applied silently: each such key is listed
    in :attr:`ResumePlan.settings`, with the value kept and the override that would change it.
    :data:`LAUNCH_KEYS` follow this launch.

    Args:
        config_file: the experiment YAML given now.
        overrides: the ``key=value`` overrides given now.
        out_dir: the run folder.
        checkpoint: the checkpoint to resume (``--resume-from``); default: the run folder's newest.

    Returns:
        A :class:`ResumePlan`; with no checkpoint to resume, this launch's config and no settings.

    Raises:
        ConfigError: the config file, an override, or the saved config (named) is invalid.
        FileNotFoundError: ``checkpoint`` does not exist.
    """
    given = load_config(config_file, overrides)  # checked as a fresh launch would check them
    out_dir = Path(out_dir)
    saved_file = out_dir / "config.yaml"
    manager = CheckpointManager(out_dir / "checkpoints")
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {str(checkpoint)!r} not found")
        has_checkpoint = True
    else:
        has_checkpoint = bool(manager.checkpoints()) or manager.best_path.is_file()
    if not has_checkpoint:
        return ResumePlan(given, [], None, str(config_file))
    if saved_file.is_file():
        source, saved_raw = saved_file, load_yaml(saved_file)
    else:
        found = (
            (Path(checkpoint), load_checkpoint(checkpoint))
            if checkpoint is not None
            else manager.load_latest(or_best=True)
        )
        if found is None:
            return ResumePlan(given, [], None, str(config_file))
        if found[1].get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{str(found[0])!r} holds exported weights, which cannot be resumed; start a fresh run from "
                f"them with train.init_from={found[0]}"
            )
        source, saved_raw = found[0], found[1].get("config") or {}
    try:
        saved = experiment_from_dict(saved_raw)
    except ConfigError as err:
        raise ConfigError(f"the saved run config {source}: {err}") from None
    merged = to_dict(saved)
    launch = to_dict(given)
    for key in LAUNCH_KEYS:
        section, name = key.split(".")
        merged.setdefault(section, {})[name] = launch[section][name]
    used = experiment_from_dict(apply_overrides(merged, overrides))

    overridden = [key for key, _ in parse_overrides(overrides)]
    flat_saved, flat_given, flat_used = (_flatten(to_dict(c)) for c in (saved, given, used))
    settings = []
    for key in dict.fromkeys([*flat_used, *flat_given, *flat_saved]):
        if key in LAUNCH_KEYS:
            continue
        was, says, uses = (flat.get(key, _UNSET) for flat in (flat_saved, flat_given, flat_used))
        if any(key == o or key.startswith(o + ".") for o in overridden):
            if uses != was:
                settings.append(ResumeSetting(key, was, says, uses, "override"))
        elif says != was:
            settings.append(ResumeSetting(key, was, says, uses, "saved"))
    return ResumePlan(used, settings, source, str(config_file))


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def train(
    config: ExperimentConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    stop_at: int | None = None,
    resume_plan: ResumePlan | None = None,
) -> TrainResult:
    """Train ``config`` in this process (joining the torchrun job when launched by torchrun).

    Args:
        config: the experiment.
        out_dir: run folder (default: ``config.train.out_dir``, else ``runs/default``).
        resume: see :meth:`Trainer.fit`.
        stop_at: see :meth:`Trainer.fit`.
        resume_plan: see :meth:`Trainer.fit`.

    Returns:
        The :class:`TrainResult` (identical on every rank apart from logging details).
    """
    info = init_distributed(config.train.device)
    try:
        return Trainer(config, dist_info=info, out_dir=out_dir).fit(
            resume=resume, stop_at=stop_at, resume_plan=resume_plan
        )
    finally:
        cleanup_distributed(info)
