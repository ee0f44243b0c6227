"""Plain-dataclass configurations read from YAML, with checked types and ``key=value`` overrides.

A configuration is a tree of dataclasses. :func:`from_dict` builds one from the plain dictionaries
that ``yaml.safe_load`` returns and checks every value against the field's annotation
(``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``Optional[...]``/``X | None``,
``list[T]``, ``tuple[T, ...]``, ``tuple[A, B]``, ``dict[str, T]``, nested dataclasses, ``Any``).
Every error is a :class:`ConfigError` that names the dotted key::

    ConfigError: unknown key 'train.lrr' (did you mean 'lr'?)
    ConfigError: train.steps: expected int, got '10k' (str)

An experiment file has four top-level sections::

    task: gaussian_mixture      # a name registered in moldiff.train.tasks
    model: {...}                # the task's model config dataclass
    data: {...}                 # the task's data config dataclass
    train: {...}                # TrainConfig, shared by every task

The module is generic: other packages reuse :func:`from_dict`, :func:`to_dict`,
:func:`apply_overrides` and :func:`load_yaml` for their own configurations.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from moldiff.errors import ConfigError
from moldiff.files import atomic_write

from .tasks import get_task

__all__ = [
    "ConfigError",
    "TrainConfig",
    "ExperimentConfig",
    "from_dict",
    "to_dict",
    "parse_overrides",
    "apply_overrides",
    "load_yaml",
    "save_yaml",
    "load_config",
    "experiment_from_dict",
    "ConfigNote",
]


# ------------------------------------------------------------------------------------------------
# The engine's own configuration
# ------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Settings of the training engine, shared by every task (the ``train:`` section).

    Sizes count optimiser *steps*, never epochs. ``batch_size`` is per process: one optimiser step
    consumes ``batch_size * grad_accum * world_size`` items.

    Attributes:
        steps: number of optimiser steps of the whole run (default: 10000).
        batch_size: items per micro-batch and per process (default: 64).
        lr: peak learning rate of AdamW (default: 1e-4).
        weight_decay: AdamW's decoupled weight decay (default: 0.0).
        betas: AdamW's ``(beta1, beta2)`` (default: ``(0.9, 0.999)``).
        eps: AdamW's epsilon (default: 1e-8).
        warmup_steps: linear learning-rate warm-up from ``lr / warmup_steps`` to ``lr`` (default: 0).
        lr_decay: ``"none"``, ``"cosine"`` or ``"linear"`` decay from the end of warm-up to
            ``lr * lr_min_ratio`` at ``steps`` (default: ``"none"``).
        lr_min_ratio: final learning rate as a fraction of ``lr`` (default: 0.0).
        grad_accum: micro-batches accumulated per optimiser step (default: 1).
        ema_decay: decay of the exponential moving average of the weights; 0 disables it and the
            "EMA" model is then the raw model (default: 0.999).
        ema_warmup: use ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` updates (TF/timm warm-up)
            so that early averages are not dominated by the random initialisation (default: true).
        precision: ``"fp32"``, ``"bf16"`` (bf16 autocast of the model's forward, on CUDA or CPU;
            weights, optimiser and EMA stay fp32) or ``"auto"`` (bf16 where the device multiplies
            bf16 matrices natively: CUDA with bf16 support, a CPU with ``avx512_bf16`` or
            ``amx_bf16``; fp32 elsewhere); the log's start event records the choice
            (default: ``"fp32"``).
        clip: gradient clipping, ``"none"``, ``"norm"`` (clip the global norm at ``clip_value``) or
            ``"adaptive"`` (EDM, Hoogeboom et al. 2022: clip at ``1.5 mean + 2 std`` of the last
            ``clip_history`` gradient norms; the history starts filled with ``clip_value``)
            (default: ``"norm"``).
        clip_value: the norm threshold, or the adaptive history's initial value (default: 1.0).
        clip_history: length of the adaptive clipping history (default: 50).
        compile: ``torch.compile`` the model's network (default: false).
        num_workers: DataLoader worker processes per rank (default: 0).
        log_every: steps between JSON log lines (default: 100).
        ckpt_every: steps between checkpoints; the last step is always saved (default: 1000).
        keep_last: number of periodic checkpoints kept, besides ``best.ckpt`` (default: 3).
        eval_every: steps between evaluations of the EMA model; 0 evaluates only at the end
            (default: 1000).
        eval_batches: validation batches per evaluation, when the task has a validation set
            (default: 8).
        best_metric: evaluation metric that selects ``best.ckpt`` (``"valid_loss"``, or any key the
            task's ``eval_fn`` returns); ``None`` keeps no best checkpoint (default: ``"valid_loss"``).
        best_mode: ``"min"`` or ``"max"``: whether a smaller or a larger ``best_metric`` is better.
        seed: seed of the model initialisation, data order and training noise (default: 0).
        init_from: start a fresh run from trained weights instead of a random initialisation
            (fine-tuning, or training a shipped model on): a pretrained name (``"qm9"``) or a
            checkpoint / exported weights file of the same task and architecture. The model and its
            EMA start from those weights (a training checkpoint's EMA weights); optimiser, learning
            rate schedule, step count and data order start fresh. A resumed run ignores it, since its
            checkpoint holds the weights (default: ``None``).
        init_partial: with ``init_from``, accept weights that fit the model only in part, for a model
            grown from a trained one (a conditional model from the unconditional one): a tensor of the
            same shape is copied; a tensor that grew (same rank, no dimension smaller, e.g. an input
            layer with new input columns appended) gets the file's values in its leading block and
            zeros elsewhere, so new inputs start with no effect; a tensor the file lacks keeps this
            model's initialisation (a model meant to be grown this way initialises its new layers so
            that they change nothing, e.g. zero FiLM weights). A tensor of the file that the model
            lacks, or that shrank, is still an error. The run's start event lists what was grown or
            new (default: false).
        new_lr_scale: with ``init_partial``, the learning rate of the parameters the trained weights
            lacked (the start event's ``new`` tensors) as a multiple of ``lr``: layers added to a
            trained network at zero (FiLM of a new condition, a recycling bias) then move that much
            faster than the trained body, under the same warm-up and decay. A resumed run keeps the
            checkpoint's set of such tensors at this config's scale (default: 1, one rate for all).
        out_dir: run folder; ``None`` means ``runs/<config file name>`` (default: ``None``).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"`` (default: ``"auto"``).
        progress: show a progress bar on rank 0 when stderr is a terminal (default: true).
    """

    steps: int = 10000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    lr_decay: Literal["none", "cosine", "linear"] = "none"
    lr_min_ratio: float = 0.0
    grad_accum: int = 1
    ema_decay: float = 0.999
    ema_warmup: bool = True
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    clip: Literal["none", "norm", "adaptive"] = "norm"
    clip_value: float = 1.0
    clip_history: int = 50
    compile: bool = False
    num_workers: int = 0
    log_every: int = 100
    ckpt_every: int = 1000
    keep_last: int = 3
    eval_every: int = 1000
    eval_batches: int = 8
    best_metric: Optional[str] = "valid_loss"
    best_mode: Literal["min", "max"] = "min"
    seed: int = 0
    init_from: Optional[str] = None
    init_partial: bool = False
    new_lr_scale: float = 1.0
    out_dir: Optional[str] = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "log_every", "ckpt_every", "keep_last", "clip_history")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be at least 1, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "num_workers", "eval_every", "eval_batches"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}: must be non-negative, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr: must be positive, got {self.lr!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay: must lie in [0, 1), got {self.ema_decay!r}")
        if not (self.new_lr_scale > 0 and math.isfinite(self.new_lr_scale)):
            raise ConfigError(f"train.new_lr_scale: must be a positive number, got {self.new_lr_scale!r}")
        if self.new_lr_scale != 1.0 and not (self.init_partial and self.init_from):
            raise ConfigError(
                "train.new_lr_scale: scales the tensors that train.init_partial adds to trained weights; "
                "set train.init_from and train.init_partial=true, or leave it at 1"
            )
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ConfigError(f"train.lr_min_ratio: must lie in [0, 1], got {self.lr_min_ratio!r}")
        if self.clip != "none" and self.clip_value <= 0:
            raise ConfigError(f"train.clip_value: must be positive with clip={self.clip!r}, got {self.clip_value!r}")


@dataclass
class ExperimentConfig:
    """A whole experiment: the task name, its model and data configs, and the engine's settings.

    Attributes:
        task: name of a task registered in :mod:`moldiff.train.tasks`.
        model: instance of the task's model config dataclass.
        data: instance of the task's data config dataclass.
        train: the engine's :class:`TrainConfig`.
    """

    task: str
    model: Any
    data: Any
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        """Plain nested dictionary (lists for tuples), ready for YAML or a checkpoint."""
        return to_dict(self)


# ------------------------------------------------------------------------------------------------
# Generic dataclass <-> dict conversion
# ------------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    """Readable name of an annotation, e.g. ``tuple[float, float]`` or ``'cosine' | 'linear'``."""
    if tp is type(None):
        return "None"
    if tp is Any:
        return "any"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = typing.get_args(tp)
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if args else origin.__name__
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert containers; raise ConfigError naming ``path``."""
    label = path or "<root>"
    if isinstance(value, float) and not math.isfinite(value):
        # YAML reads .inf and .nan as floats: a non-finite setting (train.lr=.inf) trains to NaN weights
        raise ConfigError(f"{label}: must be a finite number, got {value!r}")
    if tp is Any:
        return _check_finite(value, label)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise ConfigError(f"{label}: expected one of {', '.join(repr(a) for a in args)}, got {_describe(value)}")
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{label}: expected {_type_name(tp)}, got None")
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{label}: expected {_type_name(tp)}, got {_describe(value)}")
    if origin in (list, typing.List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{label}: expected {_type_name(tp)}, got {_describe(value)}")
        item_tp = args[0] if args else Any
        return [_convert(v, item_tp, f"{label}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{label}: expected {_type_name(tp)}, got {_describe(value)}")
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{label}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{label}: expected {_type_name(tp)} ({len(args)} values), got {_describe(value)}")
        return tuple(_convert(v, a, f"{label}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{label}: expected {_type_name(tp)}, got {_describe(value)}")
        key_tp, val_tp = args if args else (Any, Any)
        return {_convert(k, key_tp, f"{label}"): _convert(v, val_tp, _join(path, str(k))) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept any text Python reads as a float.
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if not math.isfinite(number):
                    raise ConfigError(f"{label}: must be a finite number, got {value!r}")
                return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        raise ConfigError(f"{label}: unsupported annotation {tp!r} in a config dataclass")
    raise ConfigError(f"{label}: expected {_type_name(tp)}, got {_describe(value)}")


def _check_finite(value: Any, label: str) -> Any:
    """``value`` (of an ``Any`` field: plain YAML data), checked to hold no NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{label}: must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, _join(label, str(k)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{label}[{i}]")
    return value


def from_dict(cls: type, data: dict | None, path: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dictionary, checking names and types recursively.

    Args:
        cls: a dataclass type; field annotations may be strings (``from __future__ import annotations``).
        data: mapping of field names to values (``None`` means all defaults).
        path: dotted prefix used in error messages, e.g. ``"train"`` (default: ``""``).

    Returns:
        An instance of ``cls``. Missing fields take their defaults. A class with an ``upgrade_legacy(data)
        -> data`` classmethod first rewrites older spellings of its keys.

    Raises:
        ConfigError: for an unknown key (with the closest valid name), a missing required field,
            a value of the wrong type, or a value rejected by the dataclass's ``__post_init__``.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping of {cls.__name__} fields, got {_describe(data)}")
    if hasattr(cls, "upgrade_legacy"):  # a config class that renamed keys reads its older files too
        data = cls.upgrade_legacy(dict(data))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(fields)})"
            raise ConfigError(f"unknown key '{_join(path, str(key))}'{hint}")
        kwargs[key] = _convert(value, hints[key], _join(path, key))
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{_join(path, name)}'")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if path and not str(err).startswith(path):
            key, sep, rest = str(err).partition(": ")
            if sep and key in fields:  # "sampler: expected ..." from the class names its own field
                raise ConfigError(f"{path}.{key}: {rest}") from None
            raise ConfigError(f"{path}: {err}") from None
        raise


def to_dict(obj: Any) -> Any:
    """Convert a (nested) dataclass to plain Python containers: dicts, lists (for tuples too), scalars."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# ------------------------------------------------------------------------------------------------
# Overrides and files
# ------------------------------------------------------------------------------------------------


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """Parse ``["train.lr=3e-4", "model.hidden=[64, 64]"]`` into ``(dotted key, value)`` pairs.

    Values are read with ``yaml.safe_load``, so ``true``, ``null``, ``[1, 2]`` and ``{a: 1}`` work;
    an empty value (``key=``) is the empty string.
    """
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=3e-4)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: cannot parse the value as YAML ({err})") from None
        parsed.append((key, value))
    return parsed


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of the raw config dictionary with ``key=value`` overrides applied.

    Intermediate sections are created when absent; names and types are checked later by
    :func:`from_dict`, so ``train.lrr=1`` fails there with a suggestion.

    Args:
        data: the raw dictionary read from YAML.
        overrides: strings ``"dotted.key=value"``.
    """
    import copy

    out = copy.deepcopy(data) if data else {}
    for key, value in parse_overrides(overrides):
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set '{key}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise ConfigError(
                    f"key {key!r} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "YAML would silently keep the last"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _one_line(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what went wrong and where."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping from ``path`` (an empty file is ``{}``).

    Raises:
        ConfigError: a missing or unreadable file, invalid YAML, a key given twice in one mapping,
            or a top level that is not a mapping (each message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects are built
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {_one_line(err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def save_yaml(obj: Any, path: str | Path) -> None:
    """Write a dataclass or plain dictionary as YAML (keys in field order), atomically."""
    text = yaml.safe_dump(to_dict(obj), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


_SECTIONS = ("task", "model", "data", "train")


def experiment_from_dict(data: dict) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a raw dictionary, looking up the task's config classes.

    Raises:
        ConfigError: for an unknown section, a missing or unknown task, or any error in a section.
    """

    if not isinstance(data, dict):
        raise ConfigError(f"an experiment config must be a mapping, got {_describe(data)}")
    for key in data:
        if key not in _SECTIONS:
            close = difflib.get_close_matches(str(key), _SECTIONS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (valid sections: {', '.join(_SECTIONS)})"
            raise ConfigError(f"unknown key '{key}'{hint}")
    if "task" not in data:
        raise ConfigError("missing required key 'task' (the name of a registered task, e.g. 'gaussian_mixture')")
    task_name = data["task"]
    if not isinstance(task_name, str):
        raise ConfigError(f"task: expected str, got {_describe(task_name)}")
    spec = get_task(task_name)
    return ExperimentConfig(
        task=task_name,
        model=from_dict(spec.model_config_cls, data.get("model"), "model"),
        data=from_dict(spec.data_config_cls, data.get("data"), "data"),
        train=from_dict(TrainConfig, data.get("train"), "train"),
    )


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read an experiment YAML file, apply ``key=value`` overrides and check everything.

    Args:
        path: YAML file with sections ``task``, ``model``, ``data``, ``train``.
        overrides: e.g. ``["train.lr=3e-4", "train.steps=2000"]``.

    Returns:
        The checked :class:`ExperimentConfig`.

    Example::

        cfg = load_config("configs/toy_gaussian_mixture.yaml", ["train.steps=100"])
        cfg.train.steps   # 100
    """
    data = apply_overrides(load_yaml(path), overrides)
    missing = [s for s in ("model", "data", "train") if s not in data]
    if missing and isinstance(data.get("task"), str):
        warnings.warn(
            f"{path} has no {', '.join(s + ':' for s in missing)} section: "
            f"{'its' if len(missing) == 1 else 'their'} defaults are used",
            ConfigNote,
            stacklevel=2,
        )
    return experiment_from_dict(data)


class ConfigNote(UserWarning):
    """A config that is valid but probably not what was meant (a section left out, so its defaults apply)."""
