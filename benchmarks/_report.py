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
    """``--potential NAME=WEIGHT`` (repeatable, or ``none``) of the backbone benchmarks."""
    parser.add_argument(
        "--potential",
        action="append",
        default=None,
        metavar="NAME=WEIGHT",
        help="guiding potential of an angle model (rg, clash; repeat), or 'none' (default: the model's own)",
    )


def potential_options(items: list[str] | None) -> dict:
    """The ``potentials=`` keyword of a backbone model's ``sample`` / ``scaffold`` for ``--potential``
    values (nothing when none were given: the model's own; ``none``: no potentials). Exits with one
    line for a malformed value."""
    from moldiff.proteins.angles import parse_potentials

    try:
        potentials = parse_potentials(items)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    return {} if potentials is None else {"potentials": potentials}
