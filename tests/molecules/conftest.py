"""Fixtures for the molecule tests: small real molecules as (atomic_numbers, positions) pairs."""

from __future__ import annotations

import numpy as np
import pytest

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
