"""Small inputs the cases share, made once per session in a temporary folder (no shared data needed)."""

from __future__ import annotations

import atexit
import functools
import gzip
import shutil
import tempfile
from pathlib import Path

import numpy as np

#: QM9 molecule 11 (acetaldehyde, CC=O), B3LYP coordinates in A.
ACETALDEHYDE_Z = [6, 6, 8, 1, 1, 1, 1]
ACETALDEHYDE_POS = [
    [-0.002945, 1.509914, 0.008673],
    [0.026083, 0.003276, -0.037459],
    [0.942288, -0.65507, -0.456826],
    [0.922788, 1.926342, -0.391466],
    [-0.862015, 1.878525, -0.564795],
    [-0.150506, 1.843934, 1.042891],
    [-0.89443, -0.486434, 0.357749],
]

#: Sampling settings that take milliseconds: the EDM-style model with two DPM-Solver++ steps.
FAST_EDM = ("--model", "qm9_edm", "--sampler", "dpmpp_2m", "--steps", "2", "--num", "2", "--no-progress")
#: The bond-aware model with two joint Euler steps.
FAST_FLOW = ("--model", "qm9", "--steps", "2", "--num", "2", "--no-progress")
FAST_ALPHA = ("--model", "qm9_alpha_edm", "--sampler", "dpmpp_2m", "--steps", "2", "--num", "2", "--no-progress")
FAST_BACKBONE = (
    "--model",
    "cath_ca",
    "--sampler",
    "dpmpp_2m",
    "--steps",
    "2",
    "--num",
    "2",
    "--length",
    "12",
    "--no-progress",
)
FAST_IMAGE = ("--model", "fashion_mnist", "--steps", "2", "--num", "2", "--no-progress")


@functools.cache
def root() -> Path:
    path = Path(tempfile.mkdtemp(prefix="moldiff-robustness-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def molecules(n: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` copies of acetaldehyde, each shifted and slightly rotated (distinct coordinates)."""
    out = []
    for k in range(n):
        angle = 0.3 * k
        rot = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
        out.append((np.array(ACETALDEHYDE_Z), np.array(ACETALDEHYDE_POS) @ rot.T + k))
    return out


@functools.cache
def good_sdf() -> Path:
    from moldiff.molecules.rdkit_io import write_sdf

    path = root() / "good.sdf"
    write_sdf(molecules(3), path, titles=[f"mol {k}" for k in range(3)])
    return path


def good_sdf_text() -> str:
    return good_sdf().read_text()


def sdf_records() -> list[str]:
    """The good file's records, each ending in ``$$$$``."""
    text = good_sdf_text()
    return [part + "$$$$\n" for part in text.split("$$$$\n") if part.strip()]


def atom_line(x: str, y: str, z: str, symbol: str = "C") -> str:
    """A V2000 atom line with the given coordinate fields (10 columns each)."""
    return f"{x:>10}{y:>10}{z:>10} {symbol:<3} 0  0  0  0  0  0  0  0  0  0  0  0"


def replace_atom(record: str, index: int, line: str) -> str:
    lines = record.splitlines()
    lines[4 + index] = line
    return "\n".join(lines) + "\n"


def gzip_bytes(text: str) -> bytes:
    return gzip.compress(text.encode())


def helix(n: int, shift: float = 0.0) -> np.ndarray:
    """An ideal C-alpha alpha-helix of ``n`` residues (1.5 A rise, 100 deg per residue, radius 2.3 A)."""
    t = np.deg2rad(100.0) * np.arange(n)
    return np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * np.arange(n) + shift], axis=1)


def holdout_names(count: int) -> list[str]:
    """Structure names that fall in the fixed held-out split of :class:`moldiff.proteins.dataset.BackboneDataset`."""
    from moldiff.proteins.dataset import in_holdout

    names, k = [], 0
    while len(names) < count:
        name = f"ref{k:04d}"
        if in_holdout(name, 0.1):
            names.append(name)
        k += 1
    return names


@functools.cache
def reference_folder() -> Path:
    """Real-looking domains for ``evaluate-backbones --reference``: helices, all in the held-out split."""
    from moldiff.proteins.pdb_io import write_backbone_pdb

    folder = root() / "reference"
    for k, name in enumerate(holdout_names(4)):
        write_backbone_pdb(folder / f"{name}.pdb", helix(14 + k))
    return folder


@functools.cache
def motif_pdb() -> Path:
    """A 20-residue chain A for motif scaffolding (residues 1..20)."""
    from moldiff.proteins.pdb_io import write_backbone_pdb

    return write_backbone_pdb(root() / "motif.pdb", helix(20))


def backbone_folder(tmp: Path, count: int = 3) -> Path:
    from moldiff.proteins.pdb_io import write_backbone_pdb

    folder = tmp / "designs"
    for k in range(count):
        write_backbone_pdb(folder / f"design_{k:04d}.pdb", helix(12 + k))
    return folder


TOY_CONFIG = """task: gaussian_mixture
model: {hidden: 16, depth: 1, time_features: 8, sample_steps: 2, eval_samples: 16}
data: {num_train: 64, num_valid: 32}
train:
  steps: 4
  batch_size: 16
  lr: 1.0e-3
  log_every: 1
  ckpt_every: 2
  keep_last: 2
  eval_every: 0
  eval_batches: 1
  best_metric: valid_loss
  device: cpu
  progress: false
"""


def toy_config(tmp: Path, text: str = TOY_CONFIG, name: str = "toy.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def molecule_config(tmp: Path, source: Path, on_error: str = "raise") -> Path:
    """A tiny EDM-style molecule model trained on an SDF file (two steps)."""
    return toy_config(
        tmp,
        f"""task: molecules
model: {{hidden: 8, layers: 1, schedule_options: {{num_steps: 20}}}}
data: {{dataset: sdf, source: {source}, valid_split: null, on_error: {on_error}}}
train: {{steps: 2, batch_size: 2, log_every: 1, ckpt_every: 2, eval_every: 0, eval_batches: 0,
        best_metric: null, device: cpu, progress: false}}
""",
        "molecules.yaml",
    )
