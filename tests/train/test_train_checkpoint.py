"""Checkpoints: atomic writes, keep-last-K and best, random states, loading."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from moldiff.train.checkpoint import (
    CheckpointError,
    CheckpointManager,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)


def _state(step: int) -> dict:
    return {
        "format": "moldiff-checkpoint",
        "version": 1,
        "step": step,
        "model": {"w": torch.full((1000,), float(step))},
    }


def _failing_save(obj, f, *args, **kwargs):
    f.write(b"half a checkpoint")
    raise OSError("disk full")


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    atomic_save(_state(1), path)
    monkeypatch.setattr(torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save(_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary file left behind


def test_keep_last_and_best(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in range(1, 6):
        manager.save(_state(step), step, best=step == 3)
    assert [s for s, _ in manager.checkpoints()] == [4, 5]
    assert load_checkpoint(manager.best_path)["step"] == 3
    assert manager.latest() == tmp_path / "step_00000005.ckpt"

    monkeypatch.setattr(torch, "save", _failing_save)
    with pytest.raises(OSError):
        manager.save(_state(6), 6, best=True)
    monkeypatch.undo()
    assert [s for s, _ in manager.checkpoints()] == [4, 5]  # nothing pruned, nothing half-written
    assert load_checkpoint(manager.best_path)["step"] == 3
    assert manager.load_latest()[1]["step"] == 5


def test_unreadable_latest_falls_back(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    manager.save(_state(1), 1)
    manager.path_for(2).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint"):
        path, state = manager.load_latest()
    assert state["step"] == 1
    with pytest.raises(CheckpointError, match="not a moldiff checkpoint"):
        torch.save({"a": 1}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")


def test_rng_state_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(3)
    state = capture_rng_state(gen)
    atomic_save({"format": "moldiff-checkpoint", "version": 1, "rng": [state]}, tmp_path / "r.ckpt")
    expected = (random.random(), np.random.rand(), torch.rand(1), torch.rand(1, generator=gen))
    random.seed(99), np.random.seed(99), torch.manual_seed(99), gen.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "r.ckpt")["rng"][0], gen)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2]) and torch.equal(torch.rand(1, generator=gen), expected[3])


def test_a_second_live_run_in_the_same_folder_is_refused(tmp_path):
    import os
    import subprocess
    import sys

    from moldiff.train.checkpoint import run_lock

    with run_lock(tmp_path):
        with pytest.raises(FileExistsError, match="in use by another training process"):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / "run.lock").exists()
    # a lock left by a process that has exited is stale and taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / "run.lock").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    with run_lock(tmp_path) as path:
        assert path.read_text().split()[:2] == [socket.gethostname(), str(os.getpid())]  # then this boot's id


def test_exported_weights_store_a_shared_module_once():
    """A model whose network is also reachable as ``denoiser.network`` lists its tensors twice."""
    from moldiff.train.checkpoint import _unique_tensors

    net = torch.nn.Linear(3, 2)
    holder = torch.nn.Module()
    holder.network, holder.denoiser = net, torch.nn.Module()
    holder.denoiser.network = net
    holder.register_buffer("empty", torch.zeros(0))
    unique, aliases = _unique_tensors(holder.state_dict())
    assert set(unique) == {"network.weight", "network.bias", "empty"}
    assert aliases == {"denoiser.network.weight": "network.weight", "denoiser.network.bias": "network.bias"}
