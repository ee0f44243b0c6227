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
    """The ``potentials=``, ``potentials_sigma_max=``, ``particles=`` and ``steering=`` keywords of a backbone model's ``sample`` /
    ``scaffold`` for ``--potential``, ``--particles`` and ``--steer`` (each left out when not given: the
    model's own; ``none``: no potentials). Exits with one line for a malformed value."""
    from moldiff.proteins.angles import parse_potentials

    if args.particles is not None and args.particles < 1:
        raise SystemExit(f"--particles must be at least 1, got {args.particles}")
    try:
        potentials = parse_potentials(args.potential)
        steering = parse_potentials(args.steer, "--steer")
    except ValueError as err:
        raise SystemExit(str(err)) from None
    options = {} if potentials is None else {"potentials": potentials}
    if steering is not None:
        options["steering"] = steering
    if args.particles is not None:
        options["particles"] = args.particles
    if args.potential_sigma_max is not None:
        if not args.potential_sigma_max > 0:
            raise SystemExit(f"--potential-sigma-max must be positive, got {args.potential_sigma_max}")
        options["potentials_sigma_max"] = args.potential_sigma_max
    return options
