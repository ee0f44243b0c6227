"""Where processed datasets are cached, safe writes to the cache, and where the shared data lives.

The cache folder is, in order of precedence: an explicit ``cache_dir`` argument, the environment
variable ``MOLDIFF_CACHE_DIR``, or ``~/.cache/moldiff``. Files are written to a temporary name and
renamed, so an interrupted run never leaves a half-written cache behind and concurrent processes
never read one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["cache_dir", "shared_data_dir", "atomic_write", "save_npz_atomic"]


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder (created if missing).

    Args:
        explicit: a folder that overrides ``MOLDIFF_CACHE_DIR`` and the default ``~/.cache/moldiff``.
    """
    if explicit is not None:
        path = Path(explicit)
    elif os.environ.get("MOLDIFF_CACHE_DIR"):
        path = Path(os.environ["MOLDIFF_CACHE_DIR"])
    else:
        path = Path.home() / ".cache" / "moldiff"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """The shared real-data folder (``qm9/``, ``proteins/``, ``images/``, ...): ``$MOLDIFF_DATA_DIR``
    when set, else ``../shared/data`` relative to the working directory (a checkout's root)."""
    return Path(os.environ.get("MOLDIFF_DATA_DIR") or "../shared/data")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    Args:
        path: the final file.
        write: a function that writes the whole file at the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cache files are ordinary shared files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Save arrays as an uncompressed ``.npz`` (fast to load) through :func:`atomic_write`."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)
