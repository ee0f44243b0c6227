"""Optional packages: import one when a feature needs it, or fail with one line saying how to install it.

Example:
    >>> available("json")
    True
    >>> require("no_such_package", package="nosuch", extra="physics", purpose="the demo")
    Traceback (most recent call last):
    ...
    moldiff.errors.MissingPackageError: the demo needs nosuch, which is not installed: pip install 'moldiff[physics]' (or pip install nosuch)
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from moldiff.errors import MissingPackageError

__all__ = ["available", "require"]


def available(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken spec
        return False


def require(module: str, *, package: str | None = None, extra: str | None = None, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`~moldiff.errors.MissingPackageError` naming the install.

    Args:
        module: the module to import, e.g. ``"tblite.interface"``.
        package: its PyPI name (default: the module's top-level name).
        extra: moldiff's optional extra that installs it, e.g. ``"physics"``.
        purpose: what needs it, the start of the message (e.g. ``"moldiff evaluate --posebusters"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module.split(".")[0]
        how = f"pip install 'moldiff[{extra}]' (or pip install {name})" if extra else f"pip install {name}"
        raise MissingPackageError(f"{purpose} needs {name}, which is not installed: {how}") from err
