"""Shared pytest fixtures.

Real data for tests lives outside the project, in ``../shared/data`` beside the checkout (or
wherever ``MOLDIFF_DATA_DIR`` points). Tests that need it use the ``shared_data`` fixture, which
skips with the reason when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("MOLDIFF_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(
            f"shared data folder {path} not found (set MOLDIFF_DATA_DIR to the folder holding qm9/, molecules/, ...)"
        )
    return path


@pytest.fixture
def benchmark_script(monkeypatch):
    """``benchmark_script(name)``: ``benchmarks/<name>.py`` imported as a module, its helpers beside it
    on the path as when it is run."""
    import importlib.util

    def load(name: str):
        monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
        spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO_ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch thread for every test: the test tensors are small, where one thread is faster
    than two, and an OpenMP region stalls on its slowest thread when CI's two cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
