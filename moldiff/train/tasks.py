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

Tasks register with :func:`register_task`. So that ``import moldiff`` stays cheap and the engine
imports no modality, a task module is only imported when its name is first looked up: packages
declare ``name = "module.path:register"`` in the entry-point group :data:`ENTRY_POINT_GROUP`
(``[project.entry-points."moldiff.tasks"]`` in ``pyproject.toml``, where moldiff declares its own),
and that function calls :func:`register_task`. To add a task, write such a function and declare it
there (or call :func:`register_task` yourself before training).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from moldiff.errors import ConfigError

__all__ = [
    "TaskBundle",
    "TaskSpec",
    "ENTRY_POINT_GROUP",
    "register_task",
    "get_task",
    "available_tasks",
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
        data_report: facts about the data a user must hear of, as plain data (e.g. records skipped
            with ``data.on_error=skip``: ``{"skipped": {reason: count}, "message": "..."}``); the
            engine logs it as a ``data`` event and prints its ``message`` when the run starts.
    """

    model: torch.nn.Module
    train_dataset: Any
    collate_fn: Optional[Callable] = None
    dataset_stats: dict = dataclasses.field(default_factory=dict)
    eval_fn: Optional[Callable[[torch.nn.Module, int, str], dict]] = None
    valid_dataset: Any = None
    data_report: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """A registered task.

    Attributes:
        name: registry name (the ``task:`` line of a config).
        model_config_cls: dataclass of the ``model:`` section.
        data_config_cls: dataclass of the ``data:`` section.
        build_fn: ``build_fn(model_cfg, data_cfg, *, rank, world_size, seed) -> TaskBundle``.
        model_fn: optional ``model_fn(model_cfg, dataset_stats) -> nn.Module`` that rebuilds the model
            without any data, used to load trained checkpoints
            (:func:`moldiff.train.checkpoint.build_model`).
        generator_fn: optional ``generator_fn(model, source) -> generator`` wrapping a trained model
            into its modality's generator (the object :func:`moldiff.load_pretrained` returns, with
            ``sample(num, *, seed, sampler, steps, batch_size, progress, device, ...)`` and
            ``sample_command(args, dist_info) -> int`` for ``moldiff sample``); ``None`` for models that
            generate nothing (predictors, classifiers).
    """

    name: str
    model_config_cls: type
    data_config_cls: type
    build_fn: Callable[..., TaskBundle]
    model_fn: Optional[Callable[[Any, dict], torch.nn.Module]] = None
    generator_fn: Optional[Callable[[torch.nn.Module, str], Any]] = None


#: The entry-point group where packages declare their tasks: ``name = "module.path:register"`` in
#: ``[project.entry-points."moldiff.tasks"]`` of their ``pyproject.toml``; ``register()`` calls
#: :func:`register_task`. moldiff declares its own tasks there too, so the engine imports no modality.
ENTRY_POINT_GROUP = "moldiff.tasks"

_REGISTRY: dict[str, TaskSpec] = {}


def register_task(
    name: str,
    model_config_cls: type,
    data_config_cls: type,
    build_fn: Callable[..., TaskBundle],
    *,
    model_fn: Callable[[Any, dict], torch.nn.Module] | None = None,
    generator_fn: Callable[[torch.nn.Module, str], Any] | None = None,
    overwrite: bool = False,
) -> TaskSpec:
    """Register a task under ``name``.

    Args:
        name: registry name.
        model_config_cls: dataclass of the task's ``model:`` section.
        data_config_cls: dataclass of the task's ``data:`` section.
        build_fn: ``build_fn(model_cfg, data_cfg, *, rank, world_size, seed) -> TaskBundle``.
        model_fn: optional ``model_fn(model_cfg, dataset_stats) -> nn.Module`` (no data needed); a model
            class whose constructor takes ``(config, stats)`` serves as it is.
        generator_fn: optional ``generator_fn(model, source) -> generator`` (see :class:`TaskSpec`); a
            generator class whose constructor takes ``(model, source)`` serves as it is.
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
    spec = TaskSpec(name, model_config_cls, data_config_cls, build_fn, model_fn, generator_fn)
    _REGISTRY[name] = spec
    return spec


def _declared_tasks() -> dict[str, importlib.metadata.EntryPoint]:
    """Tasks declared in the :data:`ENTRY_POINT_GROUP` entry points of the installed packages."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_tasks() -> list[str]:
    """Names of all registered and declared tasks, sorted."""
    return sorted(set(_REGISTRY) | set(_declared_tasks()))


def get_task(name: str) -> TaskSpec:
    """Look up a task, importing its module first if it is only declared as an entry point.

    Raises:
        ConfigError: for an unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        declared = _declared_tasks()
        if name in declared:
            declared[name].load()()
            if name not in _REGISTRY:
                raise RuntimeError(f"{declared[name].value} did not register task {name!r}")
        else:
            known = sorted(set(_REGISTRY) | set(declared))
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            installed = (
                ""
                if declared
                else (
                    f"; no package declares '{ENTRY_POINT_GROUP}' entry points: is moldiff "
                    f"installed (pip install -e .)?"
                )
            )
            raise ConfigError(f"unknown task '{name}' ({hint}known tasks: {', '.join(known) or 'none'}){installed}")
    return _REGISTRY[name]
