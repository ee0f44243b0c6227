"""Examples and benchmarks that read the shared data folder say in one line what is missing and what to
do (set MOLDIFF_DATA_DIR, or pass a path), and exit non-zero without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_shared_data(tmp_path, monkeypatch):
    """An empty shared data folder, and a working directory where no relative data path resolves."""
    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("MOLDIFF_DATA_DIR", str(empty))
    monkeypatch.chdir(tmp_path)
    return empty


def _one_line_and_the_fixes(message: str, option: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message
    assert "not found" in message and "MOLDIFF_DATA_DIR" in message and f"pass {option} PATH" in message


def test_train_on_your_sdf_without_the_shared_data(no_shared_data):
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "train_on_your_sdf.py"), "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode != 0
    _one_line_and_the_fixes(proc.stderr, "--sdf")
    assert proc.stderr.startswith(f"train_on_your_sdf.py: {no_shared_data / 'molecules' / 'drug_like_3d.sdf.gz'}")
    assert not (no_shared_data.parent / "runs").exists()  # stopped before anything was written


@pytest.mark.parametrize(
    "name, args",
    [
        ("backbones", ["--model", "untrained", "--num", "1", "--lengths", "5"]),
        ("backbone_denoising", ["--model", "untrained", "--num", "1"]),
        ("backbone_scaffolding", ["--model", "untrained", "--motifs", "1", "--num", "1"]),
        ("images", ["--model", "fashion_mnist", "--num", "2"]),
    ],
)
def test_benchmarks_without_the_shared_data(no_shared_data, benchmark_script, name, args):
    bench = benchmark_script(name)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(args)
    message = str(exit_info.value.code)
    assert message.startswith(f"benchmarks/{name}.py: ")
    _one_line_and_the_fixes(message, "--reference" if name.startswith("backbone") else "--data")
    with pytest.raises(SystemExit, match="no such file or folder"):
        bench.main([*args, "--reference" if name.startswith("backbone") else "--data", "missing"])
