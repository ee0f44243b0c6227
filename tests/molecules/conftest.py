"""Fixtures for the molecule tests: small real molecules as (atomic_numbers, positions) pairs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from moldiff.core import edge_permutation
from moldiff.testing import random_permutation_within_graphs
from moldiff.train.checkpoint import CHECKPOINT_VERSION, WEIGHTS_FORMAT, atomic_save

# QM9 molecule 11 (acetaldehyde, CC=O), B3LYP coordinates in Å from the QM9 release.
ACETALDEHYDE_Z = np.array([6, 6, 8, 1, 1, 1, 1])
ACETALDEHYDE_POS = np.array(
    [
        [-0.002945, 1.509914, 0.008673],
        [0.026083, 0.003276, -0.037459],
        [0.942288, -0.65507, -0.456826],
        [0.922788, 1.926342, -0.391466],
        [-0.862015, 1.878525, -0.564795],
        [-0.150506, 1.843934, 1.042891],
        [-0.89443, -0.486434, 0.357749],
    ]
)


@pytest.fixture
def acetaldehyde() -> tuple[np.ndarray, np.ndarray]:
    return ACETALDEHYDE_Z.copy(), ACETALDEHYDE_POS.copy()


def write_weights(model, task: str, path: Path) -> Path:
    """Save an untrained ``model`` as a moldiff weights file of ``task`` (what ``export_ema`` writes)."""
    return atomic_save(
        {
            "format": WEIGHTS_FORMAT,
            "version": CHECKPOINT_VERSION,
            "task": task,
            "step": 0,
            "config": {"model": asdict(model.config)},
            "dataset_stats": model.stats,
            "sampling_state": {},
            "model": model.state_dict(),
        },
        path,
    )


def permute_atoms(state: dict, batch, generator):
    """A bond-aware state with its atoms permuted within each molecule: ``(permuted, perm, pair_perm)``,
    ``perm`` ``[N]`` over the atoms and ``pair_perm`` ``[E]`` the matching permutation of the atom pairs."""
    perm = random_permutation_within_graphs(batch.batch, generator)
    pair_perm = edge_permutation(perm, batch.batch, batch.num_graphs)
    permuted = {
        "pos": state["pos"][perm],
        "type": state["type"][perm],
        "charge": state["charge"][perm],
        "bond": state["bond"][pair_perm],
    }
    return permuted, perm, pair_perm
