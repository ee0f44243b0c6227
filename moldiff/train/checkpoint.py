"""Checkpoints: one file per training state, written atomically, with the last K and the best kept.

A checkpoint is a single ``torch.save`` dictionary::

    {"format": "moldiff-checkpoint", "version": 1,
     "step": int, "task": str, "config": dict (the whole experiment config),
     "model": state_dict, "ema": {"module": state_dict, "num_updates": int, ...},
     "optimizer": state_dict, "lr_scheduler": dict, "clipper": dict,
     "rng": [per-rank dict of python / numpy / torch / cuda / noise-generator states],
     "sampler": {"batches_consumed": int, ...}, "dataset_stats": dict, "sampling_state": dict,
     "best_metric": float | None, "skipped_steps": int, "world_size": int}

It holds only tensors and plain Python values, so :func:`load_checkpoint` reads it with
``torch.load(weights_only=True)``. Files are written to a temporary file beside them and renamed with
``os.replace``, so a crash while writing never damages the previous file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import random
import re
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from moldiff.errors import CheckpointError, ConfigError
from moldiff.files import atomic_write

from .config import from_dict
from .tasks import get_task

__all__ = [
    "CHECKPOINT_FORMAT",
    "WEIGHTS_FORMAT",
    "CheckpointError",
    "atomic_write",
    "atomic_save",
    "save_npz_atomic",
    "build_model",
    "load_checkpoint",
    "CheckpointManager",
    "capture_rng_state",
    "restore_rng_state",
    "export_ema",
    "load_trained_model",
    "model_from_checkpoint",
    "trained_weights",
    "run_lock",
]

CHECKPOINT_FORMAT = "moldiff-checkpoint"
WEIGHTS_FORMAT = "moldiff-weights"
CHECKPOINT_VERSION = 1


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`: a crash while writing never damages ``path``.

    Args:
        obj: anything ``torch.save`` accepts.
        path: destination file.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)

    return atomic_write(path, write)


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Save arrays as an uncompressed ``.npz`` (fast to load) through :func:`atomic_write`."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)


def _atomic_copy(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


#: The file format of image classifiers saved before they trained through the engine (moldiff 0.1.0's
#: ``save_classifier``): ``{"format", "config" (architecture), "info" (data facts), "model" (weights)}``.
_LEGACY_CLASSIFIER_FORMAT = "moldiff-image-classifier"


def _from_legacy_classifier(blob: dict) -> dict:
    """An old image-classifier file as the exported weights file of task ``image_classifier`` it now is."""
    return {
        "format": WEIGHTS_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": "image_classifier",
        "step": int(blob.get("info", {}).get("steps", 0)),
        "config": {"model": dict(blob["config"])},
        "dataset_stats": dict(blob.get("info", {})),
        "sampling_state": {},
        "model": blob["model"],
        "aliases": {},
    }


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint (or exported weights) written by this module.

    Args:
        path: file to read.
        map_location: where tensors go (default: CPU).

    Raises:
        CheckpointError: if the file is not a moldiff checkpoint or its version is newer than this code.
    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated file, foreign pickle, ...
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {_load_failure(err)}") from err
    if isinstance(state, dict) and state.get("format") == _LEGACY_CLASSIFIER_FORMAT:
        state = _from_legacy_classifier(state)
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT):
        raise CheckpointError(f"{str(path)!r} is not a moldiff checkpoint (no 'format' entry)")
    if not isinstance(state.get("version", 0), int):
        raise CheckpointError(f"{str(path)!r} has a malformed checkpoint version {state.get('version')!r}")
    if int(state.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint version {state['version']}; this moldiff reads "
            f"up to version {CHECKPOINT_VERSION}"
        )
    return state


def _load_failure(err: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file (torch's own text spans
    several lines, and it suggests ``weights_only=False``, which would run the file's code)."""
    text = str(err)
    if "Weights only load failed" in text or isinstance(err, pickle.UnpicklingError):
        detail = next((line.strip() for line in text.splitlines() if "GLOBAL" in line or "Unsupported" in line), "")
        return "it holds Python objects other than tensors and plain values, refused unread" + (
            f" ({detail.rstrip('.')})" if detail else ""
        )
    if "zip archive" in text or "central directory" in text:
        return "truncated or corrupt (its zip archive is incomplete)"
    if isinstance(err, IsADirectoryError):
        return "a folder, not a file"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if isinstance(err, (KeyError, EOFError)) or not first or first.isdigit():
        return "not a torch file (truncated, or some other format)"
    return f"{type(err).__name__}: {first}"


# ------------------------------------------------------------------------------------------------
# Random states
# ------------------------------------------------------------------------------------------------


def capture_rng_state(generator: torch.Generator | None = None) -> dict:
    """This process's random states: Python, NumPy, torch CPU, every CUDA device, and ``generator``.

    Everything is stored as tensors or plain Python values (safe for ``weights_only`` loading).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    if generator is not None:
        state["noise"] = generator.get_state()
    return state


def restore_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "noise" in state:
        generator.set_state(state["noise"])


def _as_tuple(obj):
    """``random.setstate`` needs tuples where serialisation may have produced lists."""
    if isinstance(obj, (list, tuple)):
        return tuple(_as_tuple(v) for v in obj)
    return obj


# ------------------------------------------------------------------------------------------------
# A run's checkpoint folder
# ------------------------------------------------------------------------------------------------

_STEP_FILE = re.compile(r"^step_(\d+)\.ckpt$")


class CheckpointManager:
    """The ``checkpoints/`` folder of a run: ``step_XXXXXXXX.ckpt`` files and ``best.ckpt``.

    Args:
        directory: folder holding the checkpoints (created on first save).
        keep_last: number of periodic checkpoints kept; older ones are deleted after each save.
    """

    def __init__(self, directory: str | Path, keep_last: int = 3) -> None:
        self.directory = Path(directory)
        self.keep_last = int(keep_last)
        self._verified: dict[tuple, bool] = {}

    @property
    def best_path(self) -> Path:
        return self.directory / "best.ckpt"

    def path_for(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.ckpt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Periodic checkpoints on disk, ``(step, path)`` in increasing step order."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = _STEP_FILE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        """Path of the newest periodic checkpoint, or ``None``."""
        found = self.checkpoints()
        return found[-1][1] if found else None

    def load_latest(
        self, map_location: str | torch.device = "cpu", *, or_best: bool = False
    ) -> tuple[Path, dict] | None:
        """Load the newest readable checkpoint, skipping (with a warning) any that cannot be read.

        Args:
            map_location: where tensors go.
            or_best: with no periodic checkpoint at all, load ``best.ckpt`` (a run that crashed after
                writing its first best checkpoint and before its first periodic one).

        Returns:
            ``(path, checkpoint)``, or ``None`` when the folder holds no checkpoint to load.

        Raises:
            CheckpointError: the folder holds checkpoints but none of them can be read (the message
                names each file and why), so a resumed run never silently starts again from step 0.
        """
        if or_best and not self.checkpoints() and self.best_path.is_file():
            try:
                return self.best_path, load_checkpoint(self.best_path, map_location)
            except CheckpointError as err:
                raise CheckpointError(
                    f"{self.best_path.name}, the only checkpoint in {self.directory}, cannot be read "
                    f"({_short(err)}); nothing was changed"
                ) from None
        problems = []
        for _, path in reversed(self.checkpoints()):
            try:
                return path, load_checkpoint(path, map_location)
            except CheckpointError as err:
                warnings.warn(f"skipping unreadable checkpoint: {err}")
                problems.append(f"{path.name} ({_short(err)})")
        if problems:
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be read: {'; '.join(problems)}; nothing was changed "
                "(resume from another file with --resume-from, or move the folder away to start afresh)"
            )
        return None

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files a writer killed mid-write left behind (``step_*.ckpt.*.tmp``);
        call it only while holding the run's lock (:func:`run_lock`), when no writer can be active."""
        if not self.directory.is_dir():
            return []
        stale = [p for p in self.directory.iterdir() if p.name.endswith(".tmp") and ".ckpt." in p.name]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def readable(self, path: Path) -> bool:
        """Whether ``path`` loads as a checkpoint; remembered per (size, mtime), so each file is read once."""
        try:
            info = path.stat()
        except OSError:
            return False
        key = (str(path), info.st_size, info.st_mtime_ns)
        if key not in self._verified:
            try:
                load_checkpoint(path)
                self._verified[key] = True
            except (CheckpointError, OSError):
                self._verified[key] = False
        return self._verified[key]

    def save(self, state: dict, step: int, best: bool = False) -> Path:
        """Write ``state`` as the checkpoint of ``step`` (atomically), update ``best.ckpt``, prune.

        ``best.ckpt`` is replaced before the periodic file appears, so a crash between the two never
        leaves a run whose newest checkpoint promises a best file that is not there. Pruning keeps
        the newest ``keep_last`` checkpoints that read back; an unreadable one is never counted
        among them (it is renamed ``*.unreadable``, with a warning), and nothing is deleted unless
        the file just written reads back.

        Args:
            state: the checkpoint dictionary.
            step: its step (names the file).
            best: also make it ``best.ckpt``.

        Returns:
            The path written.
        """

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                torch.save(state, fh)
            if best:
                _atomic_copy(tmp, self.best_path)

        path = atomic_write(self.path_for(step), write)
        self.prune(path)
        return path

    def prune(self, newest: Path | None = None) -> None:
        """Delete periodic checkpoints beyond the newest ``keep_last`` readable ones (see :meth:`save`)."""
        if newest is not None and not self.readable(newest):
            warnings.warn(f"checkpoint {newest} does not read back; no older checkpoint is deleted")
            return
        kept = 0
        for _, path in reversed(self.checkpoints()):
            if kept >= self.keep_last:
                path.unlink(missing_ok=True)
            elif self.readable(path):
                kept += 1
            else:
                aside = path.with_name(path.name + ".unreadable")
                os.replace(path, aside)
                warnings.warn(f"checkpoint {path} cannot be read: moved aside to {aside.name}, not counted as kept")


def _short(err: Exception) -> str:
    """The reason of a :class:`CheckpointError` without the file name it starts with."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.split(": ", 1)[1] if text.startswith("cannot read checkpoint") and ": " in text else text


# ------------------------------------------------------------------------------------------------
# Shipping trained weights
# ------------------------------------------------------------------------------------------------


def export_ema(
    checkpoint_path: str | Path,
    out_path: str | Path,
    dtype: torch.dtype | None = torch.float16,
    sampling: dict | None = None,
) -> Path:
    """Write the EMA weights of a checkpoint, with its config and dataset statistics, to a small file.

    Args:
        checkpoint_path: a training checkpoint.
        out_path: destination (``.pt``).
        dtype: floating-point tensors are cast to this dtype (default: ``torch.float16``; ``None``
            keeps float32). Integer buffers are kept as they are.
        sampling: new sampling defaults of the exported model, ``{field: value}`` for model config
            fields named ``sampler`` or ``sample_*`` (e.g. ``{"sample_eta": 10.0}``, chosen after
            training by a sampler ablation); the training recipe in the config is left as it was.

    Raises:
        CheckpointError: the checkpoint is already an exported file.
        ValueError: a ``sampling`` key that is not a sampling field of the model's config.

    Returns:
        ``out_path``. The file is a ``{"format": "moldiff-weights", "model": ..., "config": ...,
        "dataset_stats": ..., "sampling_state": ..., "task": ..., "step": ...}`` dictionary that
        :func:`load_checkpoint` and :func:`load_trained_model` read.
    """
    ckpt = load_checkpoint(checkpoint_path)
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(checkpoint_path)!r} is already an exported weights file")
    config, sampling_state = ckpt["config"], ckpt.get("sampling_state", {})
    if sampling:
        model_config = dict(config.get("model", {}))
        fields = set(model_config)
        if ckpt.get("task"):  # fields the model's config class has gained since the run was started count too
            fields |= {f.name for f in dataclasses.fields(get_task(ckpt["task"]).model_config_cls)}
        known = sorted(k for k in fields if k == "sampler" or k.startswith("sample_"))
        bad = sorted(set(sampling) - set(known))
        if bad:
            raise ValueError(f"sampling: {', '.join(map(repr, bad))} not a sampling field of the model; known: {known}")
        model_config.update(sampling)
        config = {**config, "model": model_config}
        if isinstance(sampling_state.get("config"), dict):
            sampling_state = {**sampling_state, "config": {**sampling_state["config"], **sampling}}
    weights, aliases = _unique_tensors(ckpt["ema"]["module"] if ckpt.get("ema") else ckpt["model"])
    if dtype is not None:
        weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    out = {
        "format": WEIGHTS_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": ckpt["task"],
        "step": ckpt["step"],
        "config": config,
        "dataset_stats": ckpt.get("dataset_stats", {}),
        "sampling_state": sampling_state,
        "model": weights,
        "aliases": aliases,
    }
    return atomic_save(out, out_path)


def _unique_tensors(state: dict) -> tuple[dict, dict]:
    """Split a state dict into its distinct tensors and ``{key: key it shares its tensor with}``.

    A module reachable under two names (a model's ``network`` is also its ``denoiser.network``)
    appears twice in ``state_dict()``; ``torch.save`` stores the shared storage once, but a dtype
    cast would make two copies. Exported files keep one and record the other as an alias.
    """
    unique, aliases, seen = {}, {}, {}
    for key, value in state.items():
        ident = (value.data_ptr(), value.dtype, tuple(value.shape), value.stride()) if value.numel() else None
        if ident is not None and ident in seen:
            aliases[key] = seen[ident]
            continue
        if ident is not None:
            seen[ident] = key
        unique[key] = value
    return unique, aliases


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
    spec = get_task(task)
    if spec.model_fn is None:
        raise NotImplementedError(f"task {task!r} registered no model_fn, so its model cannot be rebuilt without data")
    if isinstance(model_config, dict):
        model_config = from_dict(spec.model_config_cls, model_config, "model")
    return spec.model_fn(model_config, dataset_stats)


def load_trained_model(path: str | Path, ema: bool = True, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a task's model from a checkpoint or an exported weights file, without its data.

    Args:
        path: training checkpoint or :func:`export_ema` output.
        ema: load the EMA weights of a training checkpoint (default: true).
        device: where the model goes (default: CPU).

    Returns:
        The model in eval mode, in float32.
    """
    return model_from_checkpoint(load_checkpoint(path), ema=ema, device=device, source=path)


def model_from_checkpoint(
    ckpt: dict, ema: bool = True, device: str | torch.device = "cpu", source: str | os.PathLike | None = None
) -> torch.nn.Module:
    """:func:`load_trained_model` for a checkpoint already read with :func:`load_checkpoint` (for
    callers that also need its config or statistics).

    Args:
        ckpt: what :func:`load_checkpoint` returned.
        ema: see :func:`trained_weights`.
        device: where the model goes.
        source: the file it came from, named in errors.

    Raises:
        CheckpointError: the checkpoint lacks its task, config or weights, or its weights do not fit
            the model its config describes.
    """
    where = f"{str(source)!r}" if source is not None else "the checkpoint"
    config = ckpt.get("config")
    if (
        not isinstance(ckpt.get("task"), str)
        or not isinstance(config, dict)
        or not isinstance(config.get("model"), dict)
    ):
        raise CheckpointError(f"{where} is incomplete: it records no task or no model config")
    if not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{where} is incomplete: it holds no model weights")
    try:
        model = build_model(ckpt["task"], config["model"], ckpt.get("dataset_stats", {}))
    except ConfigError as err:
        raise CheckpointError(f"{where}: its config cannot be used: {err}") from None
    except NotImplementedError as err:
        raise CheckpointError(f"{where}: {err}") from None
    except (KeyError, TypeError, ValueError) as err:  # statistics the model needs are missing or malformed
        raise CheckpointError(f"{where}: its dataset statistics cannot be used ({type(err).__name__}: {err})") from None
    try:
        model.load_state_dict(trained_weights(ckpt, ema=ema))
    except (RuntimeError, KeyError, AttributeError) as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines()[:3] if line.strip())
        raise CheckpointError(f"{where}: its weights do not fit the model its config describes ({detail})") from None
    return model.to(device).eval()


def trained_weights(ckpt: dict, ema: bool = True) -> dict[str, torch.Tensor]:
    """The model state dict held by a loaded checkpoint or exported weights file, in float32.

    Args:
        ckpt: what :func:`load_checkpoint` returned.
        ema: take a training checkpoint's EMA weights when it has them (default: true); an exported
            file holds EMA weights only.
    """
    if ckpt["format"] == WEIGHTS_FORMAT:
        weights = dict(ckpt["model"])
        weights.update({key: weights[source] for key, source in ckpt.get("aliases", {}).items()})
    else:
        weights = ckpt["ema"]["module"] if ema and ckpt.get("ema") else ckpt["model"]
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def _boot_id() -> str:
    """This machine's boot id (Linux), which tells two machines of one host name apart; ``""`` elsewhere."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


#: A lock file still empty after this many seconds was left by a process that died while taking it.
_EMPTY_LOCK_GRACE_S = 60.0


def _lock_holder(path: Path) -> tuple[str, str, str]:
    """``(host, pid, boot id)`` written in a lock file (``""`` for what is missing)."""
    try:
        fields = path.read_text().split()
    except (OSError, UnicodeDecodeError):
        fields = []
    fields += [""] * (3 - len(fields))
    return fields[0], fields[1], fields[2]


def _stale(path: Path) -> tuple[bool, str]:
    """Whether the lock at ``path`` is certainly not held by a live process, and who holds it if it may be.

    Only a lock taken on this very machine (same host name and, when recorded, same boot id) by a
    process that no longer runs is stale. A lock that names another host, or this host name with
    another boot id (a second machine of the same name on a shared file system, or this one
    before a reboot), may be live: no process here can tell, so it is never taken over.
    """
    host, pid, boot = _lock_holder(path)
    if not host:
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return True, ""
        return age > _EMPTY_LOCK_GRACE_S, "a process that is taking the lock now"
    if host != socket.gethostname() or (boot and _boot_id() and boot != _boot_id()):
        where = f"host {host}" if host != socket.gethostname() else f"another boot of {host} (boot id {boot[:8]})"
        return False, f"pid {pid or '?'} on {where}"
    if pid.isdigit() and _alive(int(pid)):
        return False, f"pid {pid}"
    return True, ""


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``out_dir/run.lock`` while a run writes there, so two runs cannot interleave their
    checkpoints and logs in one folder (say, a relaunch while the old process is still saving).

    The lock records ``host pid boot-id``. It is taken over only when it is certainly stale: taken
    on this machine by a process that has exited. A lock that names another machine is never taken
    over, since that process may still run there (two trainers in one folder on a shared file system
    would train the same steps twice and corrupt each other's files); if you know it is dead, delete
    ``run.lock`` by hand.

    Raises:
        FileExistsError: another process holds the lock, or may hold it (the message says which).
    """
    path = Path(out_dir) / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()} {_boot_id()}".strip()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            stale, holder = _stale(path)
            if not stale:
                local = holder.startswith("pid ") and " on " not in holder
                advice = (
                    "stop it (it checkpoints on SIGTERM) before resuming"
                    if local
                    else f"if you are sure it no longer runs, delete {path} and try again"
                )
                raise FileExistsError(f"{out_dir} is in use by another training process ({holder}); {advice}") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    else:
        raise FileExistsError(f"{out_dir}: could not take {path} (another process keeps taking it)")
    try:
        yield path
    finally:
        if path.exists() and path.read_text().strip() == me:
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
