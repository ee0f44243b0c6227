"""Every case of the suite, in one list (importing the case modules registers them)."""

from __future__ import annotations

from . import cases_fragments, cases_inputs, cases_sampling, cases_training  # noqa: F401 - registers the cases
from .harness import CASES

__all__ = ["CASES"]
