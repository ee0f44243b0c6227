"""The one output convention of the benchmark scripts: the record as the last line of stdout, as JSON,
and the same line in ``--out`` when given (parent folders created)."""

from __future__ import annotations

import json
from pathlib import Path


def print_record(record: dict, out: str | None = None) -> None:
    """Print ``record`` as one JSON line; also write it to ``out`` when given."""
    line = json.dumps(record)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(line + "\n")
    print(line)


def add_potential_argument(parser) -> None:
    """``--potential NAME=WEIGHT`` (repeatable, or ``none``), ``--particles K`` and ``--steer NAME=WEIGHT``
    of the backbone benchmarks."""
    parser.add_argument(
        "--potential",
        action="append",
        default=None,
        metavar="NAME=WEIGHT",
        help="guiding potential of an angle model (rg, clash; repeat), or 'none' (default: the model's own)",
    )
    parser.add_argument(
        "--potential-sigma-max",
        type=float,
        default=None,
        metavar="SIGMA",
        help="the guiding potentials act only at noise levels up to this (default: the model's)",
    )
    parser.add_argument(
        "--particles",
        type=int,
        default=None,
        metavar="K",
        help="particle steering: K draws per backbone resampled by the --steer potentials (default: the model's)",
    )
    parser.add_argument(
        "--steer",
        action="append",
        default=None,
        metavar="NAME=WEIGHT",
        help="steering potential (rg, clash; repeat), or 'none' (default: the model's own)",
    )


def potential_options(args) -> dict:
    """The sampling keywords of a backbone model's ``sample`` / ``scaffold`` for ``--potential``,
    ``--steer``, ``--particles`` and ``--potential-sigma-max``
    (:func:`moldiff.proteins.angles.sampling_options`). Exits with one line for a malformed value."""
    from moldiff.proteins.angles import sampling_options

    try:
        return sampling_options(args.potential, args.steer, args.particles, args.potential_sigma_max)
    except ValueError as err:
        raise SystemExit(str(err)) from None
