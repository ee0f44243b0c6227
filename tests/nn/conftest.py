"""The network tests use tiny graphs: one thread is faster than two and does not stall when the
two CI cores are shared (an OpenMP region waits for its slowest thread)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
