"""moldiff's own errors: one base class, :class:`MoldiffError`, under every error moldiff raises on
purpose, so a caller (and the ``moldiff`` command, which prints one line for each) can tell a bad
input or config from a bug.

The subclasses keep the names users already catch (``ConfigError``, ``MoleculeRecordError``,
``StructureError``, ...); each also derives from the built-in error it used to be (``ValueError``,
``RuntimeError``), so ``except ValueError`` keeps working.

This module imports nothing: every layer, :mod:`moldiff.core` included, may raise these.
"""

from __future__ import annotations

__all__ = [
    "MoldiffError",
    "ConfigError",
    "CheckpointError",
    "InputError",
    "FragmentError",
    "UnknownNameError",
    "SamplingError",
    "MissingPackageError",
]


class MoldiffError(Exception):
    """Base class of every error moldiff raises on purpose. The message names the file, record or key."""


class ConfigError(MoldiffError, ValueError):
    """A configuration value is missing, unknown or of the wrong type. The message names the key."""


class CheckpointError(MoldiffError, RuntimeError):
    """A file is not a moldiff checkpoint, or is of an unsupported version."""


class InputError(MoldiffError, ValueError):
    """Bad input data or arguments: a malformed file or record, a value out of range, a wrong count."""


class FragmentError(InputError):
    """A fixed fragment (``--fragment``, ``sample(fragment=...)``) that cannot be grown into molecules:
    an empty file, no 3D coordinates, non-finite coordinates, an element, charge or bond the model
    cannot generate, a record in several pieces, more atoms than the molecules asked for. The
    message names the file and record (or the fragment's place in the list given)."""


class UnknownNameError(MoldiffError, ValueError):
    """A name (sampler, schedule, time grid, pretrained model, ...) that is not one of the known ones;
    the message lists them."""


class SamplingError(MoldiffError, FloatingPointError):
    """Sampling diverged: a sample turned non-finite (or exploded); the message names which samples
    and how to avoid it. Nothing of such a sample is written as a result."""


class MissingPackageError(MoldiffError, ImportError):
    """An optional package a feature needs is not installed; the message names it and the ``pip install``
    that brings it (:func:`moldiff._optional.require`)."""
