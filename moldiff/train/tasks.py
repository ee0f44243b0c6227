"""The task registry: how the engine finds a model and its data by name.

The engine knows nothing about molecules, proteins or images. A *task* tells it how to build

* a **trainable model**: a ``torch.nn.Module`` with
  ``training_loss(batch, generator) -> (loss, metrics)`` where ``loss`` is a scalar tensor (the
  mean over the batch: the engine averages micro-batches and ranks, so per-process batches should
  have equal weight) and ``metrics`` a ``dict[str, Tensor | float]`` of extra values to log,
  averaged over the log window and the ranks (return the same keys at every step); ``generator``
  is a ``torch.Generator`` on the training device from which all training noise should be drawn;
  optionally ``state_for_sampling() -> dict`` (anything the sampler needs, saved in every
  checkpoint);
* a map-style training dataset and its ``collate_fn``;
* the dataset statistics needed to sample without the data (saved in every checkpoint);
* optionally a validation dataset and an evaluation hook ``eval_fn(model, step, out_dir) -> dict``
  that the engine calls with the EMA model.

Tasks register with :func:`register_task`. So that ``import moldiff`` stays cheap, a task module is
only imported when its name is first looked up: :data:`LAZY_TASKS` maps a name to
``"module.path:function"``, and that function calls :func:`register_task`. To add a task, write such
a function and add one line to :data:`LAZY_TASKS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

__all__ = [
    "TaskBundle",
    "TaskSpec",
    "LAZY_TASKS",
    "register_task",
    "get_task",
    "available_tasks",
    "build_model",
]


@dataclass
class TaskBundle:
    """Everything the engine needs from a task, as returned by its ``build_fn``.

    Attributes:
        model: the trainable ``nn.Module`` (see the module docstring for its contract).
        train_dataset: a map-style ``torch.utils.data.Dataset`` (``__len__`` and ``__getitem__``).
            Keep ``__getitem__`` deterministic: training randomness belongs in ``training_loss``
            with the generator the engine passes, which makes resumed runs exact.
        collate_fn: merges a list of items into a batch (``None``: torch's default collation).
        dataset_stats: plain data needed to sample from the model without the dataset (atom types,
            size distribution, normalisation, ...); saved into every checkpoint.
        eval_fn: optional ``eval_fn(model, step, out_dir) -> dict[str, float]``, called on rank 0
            with the EMA model in eval mode every ``train.eval_every`` steps; should draw its samples
            from fixed seeds. ``out_dir`` is a folder where it may write files (sample grids, SDFs).
        valid_dataset: optional validation dataset; the engine then logs ``valid_loss`` of the EMA
            model on ``train.eval_batches`` batches with a fixed noise seed.
    """

    model: torch.nn.Module
    train_dataset: Any
    collate_fn: Optional[Callable] = None
    dataset_stats: dict = dataclasses.field(default_factory=dict)
    eval_fn: Optional[Callable[[torch.nn.Module, int, str], dict]] = None
    valid_dataset: Any = None


@dataclass(frozen=True)
class TaskSpec:
    """A registered task.

    Attributes:
        name: registry name (the ``task:`` line of a config).
        model_config_cls: dataclass of the ``model:`` section.
        data_config_cls: dataclass of the ``data:`` section.
        build_fn: ``build_fn(model_cfg, data_cfg, *, rank, world_size, seed) -> TaskBundle``.
        model_fn: optional ``model_fn(model_cfg, dataset_stats) -> nn.Module`` that rebuilds the model
            without any data, used to load trained checkpoints (:func:`build_model`).
    """

    name: str
    model_config_cls: type
    data_config_cls: type
    build_fn: Callable[..., TaskBundle]
    model_fn: Optional[Callable[[Any, dict], torch.nn.Module]] = None


#: Tasks imported on first use: ``name -> "module.path:function"``; the function registers the task.
LAZY_TASKS: dict[str, str] = {
    "gaussian_mixture": "moldiff.train.toy_task:register",
    "molecules": "moldiff.models.molecule_task:register",
    "property_predictor": "moldiff.models.property_predictor:register",
    "images": "moldiff.images.task:register",
    "backbones": "moldiff.proteins.task:register",
}

_REGISTRY: dict[str, TaskSpec] = {}


def register_task(name: str, model_config_cls: type, data_config_cls: type, build_fn: Callable[..., TaskBundle],
                  *, model_fn: Callable[[Any, dict], torch.nn.Module] | None = None, overwrite: bool = False) -> TaskSpec:
    """Register a task under ``name``.

    Args:
        name: registry name.
        model_config_cls: dataclass of the task's ``model:`` section.
        data_config_cls: dataclass of the task's ``data:`` section.
        build_fn: ``build_fn(model_cfg, data_cfg, *, rank, world_size, seed) -> TaskBundle``.
        model_fn: optional ``model_fn(model_cfg, dataset_stats) -> nn.Module`` (no data needed); a model
            class whose constructor takes ``(config, stats)`` serves as it is.
        overwrite: replace an existing registration of the same name (default: false).

    Returns:
        The :class:`TaskSpec` stored in the registry.
    """
    for label, cls in (("model_config_cls", model_config_cls), ("data_config_cls", data_config_cls)):
        if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
            raise TypeError(f"register_task({name!r}): {label} must be a dataclass type, got {cls!r}")
    if name in _REGISTRY and not overwrite:
        existing = _REGISTRY[name]
        if existing.build_fn is build_fn:
            return existing
        raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    spec = TaskSpec(name, model_config_cls, data_config_cls, build_fn, model_fn)
    _REGISTRY[name] = spec
    return spec


def available_tasks() -> list[str]:
    """Names of all registered and lazily registrable tasks, sorted."""
    return sorted(set(_REGISTRY) | set(LAZY_TASKS))


def get_task(name: str) -> TaskSpec:
    """Look up a task, importing its module first if it is only listed in :data:`LAZY_TASKS`.

    Raises:
        ConfigError: for an unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY and name in LAZY_TASKS:
        target = LAZY_TASKS[name]
        module_name, _, func_name = target.partition(":")
        register = getattr(importlib.import_module(module_name), func_name or "register")
        register()
        if name not in _REGISTRY:
            raise RuntimeError(f"{target} did not register task {name!r}")
    if name not in _REGISTRY:
        from .config import ConfigError

        close = difflib.get_close_matches(name, available_tasks(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown task '{name}' ({hint}known tasks: {', '.join(available_tasks())})")
    return _REGISTRY[name]


def build_model(task: str, model_config: Any, dataset_stats: dict) -> torch.nn.Module:
    """Rebuild a task's model without its data (for loading a trained checkpoint).

    Args:
        task: registered task name.
        model_config: the task's model config (dataclass instance or plain dict, as stored in a
            checkpoint).
        dataset_stats: the statistics stored in the checkpoint.

    Raises:
        NotImplementedError: when the task registered no ``model_fn``.
    """
    from .config import from_dict

    spec = get_task(task)
    if spec.model_fn is None:
        raise NotImplementedError(f"task {task!r} registered no model_fn, so its model cannot be rebuilt without data")
    if isinstance(model_config, dict):
        model_config = from_dict(spec.model_config_cls, model_config, "model")
    return spec.model_fn(model_config, dataset_stats)
