"""Output files that are whole or absent: atomic writes, and destinations checked before the work.

Every file moldiff writes for a user (samples, designs, grids, checkpoints, logs) goes through
:func:`atomic_write`: the content is written to a temporary file beside the destination, flushed to
disk and renamed onto it, so a crash or a full disk never leaves a truncated file and never damages
the file that was there before. The commands check their destination *before* they sample
(:func:`check_output_file`, :func:`check_output_folder`): a folder given where a file is expected,
a parent that is a file, or a folder that cannot be written stops at once, and an existing output is
replaced only when the user asks (``--overwrite``). :func:`header_text` makes user text (file names,
model paths) safe for one header line of a text format (SDF titles, PDB ``REMARK`` lines).

This module imports nothing but :mod:`moldiff.errors` (no torch), so the chemistry I/O can use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import Callable, Sequence

from moldiff.errors import InputError

__all__ = [
    "atomic_write",
    "check_output_file",
    "check_output_folder",
    "header_text",
    "replace_folder_files",
]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, flush the file to disk, then rename it onto ``path``.

    The temporary file has a unique name in the same folder, so concurrent writers never share one;
    if anything fails before the rename it is removed and ``path`` keeps its old content. An
    ``OSError`` (a full disk, say) is raised again with a message naming ``path``.

    Args:
        path: the final file.
        write: a function that writes the whole file at the path it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary shared files
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None:
            raise
        # OSError(errno, text) is the subclass of the errno (PermissionError, ...), as the original
        kept = "it keeps its earlier content" if path.exists() else "nothing was written"
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err} ({kept})") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _check_writable_folder(folder: Path, option: str, target: Path) -> None:
    """Stop unless files can be created in ``folder``, or, when it does not exist yet, in the nearest
    folder above it (where it will be created); nothing is left behind."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(f"{option} {target}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".moldiff-write-test.")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise InputError(f"{option} {target}: cannot write in {existing} ({err.strerror or err})") from None


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False, option: str = "--out") -> bool:
    """Check an output file before the work that fills it: stop early instead of after it.

    Args:
        path: the file to be written.
        overwrite: replace an existing file (default: refuse).
        option: the command-line option that named it, for the message.

    Returns:
        Whether an existing file will be replaced.

    Raises:
        InputError: ``path`` is a folder, lies below a file, sits in a folder that cannot be
            written, or exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file name")
    exists = path.exists()
    if exists and not overwrite:
        raise InputError(f"{option} {path} exists; pass --overwrite to replace it, or choose another name")
    _check_writable_folder(path.parent if str(path.parent) else Path("."), option, path)
    return exists


def check_output_folder(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    option: str = "--out",
    earlier: Callable[[Path], bool] | None = None,
) -> list[Path]:
    """Check an output folder before the work that fills it.

    A folder that holds files already would mix earlier outputs with new ones (and an evaluation of
    the folder would score the mix), so it is refused unless ``overwrite``; then the earlier files
    ``earlier`` selects are returned, to be replaced once the new ones are written
    (:func:`replace_folder_files`).

    Args:
        path: the folder.
        overwrite: accept a folder that holds files.
        option: the command-line option that named it.
        earlier: which files count as earlier outputs (default: every file).

    Returns:
        The earlier output files (empty for a new or empty folder).

    Raises:
        InputError: ``path`` is a file, cannot be written, or holds files and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file; give a folder")
    found = sorted(p for p in path.iterdir() if not p.name.startswith(".")) if path.is_dir() else []
    if found and not overwrite:
        shown = ", ".join(p.name for p in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise InputError(
            f"{option} {path} already holds {len(found)} file(s) ({shown}); pass --overwrite to replace "
            "earlier outputs, or choose an empty folder"
        )
    _check_writable_folder(path, option, path)
    return [p for p in found if p.is_file() and (earlier is None or earlier(p))]


def replace_folder_files(
    folder: str | os.PathLike, write: Callable[[Path], Sequence[Path]], remove: Sequence[Path]
) -> list[Path]:
    """Write a set of files into ``folder`` all at once: into a hidden folder beside them first,
    then, when every file is written, remove the files of ``remove`` and move the new ones in.

    A failure while writing (a full disk, a bad value) leaves ``folder`` as it was.

    Args:
        folder: the output folder (created).
        write: ``write(staging_folder) -> paths written there``.
        remove: earlier files of ``folder`` to remove once the new ones are complete.

    Returns:
        The new files' paths in ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".moldiff-staging."))
    try:
        written = [Path(p) for p in write(staging)]
        for p in written:
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
        for old in remove:
            Path(old).unlink(missing_ok=True)
        final = []
        for p in written:
            target = folder / p.relative_to(staging)
            os.replace(p, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def header_text(text: object, limit: int | None = None, *, ascii_only: bool = False) -> str:
    """``text`` made safe for one header line of a text file format.

    Line breaks, tabs and every other control character become spaces (a file name holding a newline
    can otherwise end an SDF title early or add a fake ``ATOM`` record to a PDB file); with
    ``ascii_only`` (PDB) other non-ASCII characters become ``?``; a line that would read as an SDF
    record separator (``$$$$``) is prefixed; the result is cut to ``limit`` characters.
    """
    out = "".join(" " if unicodedata.category(c).startswith("C") else c for c in str(text))
    if ascii_only:
        out = out.encode("ascii", "replace").decode("ascii")
    if out.strip().startswith("$$$$"):
        out = "_" + out
    return out if limit is None else out[:limit]
