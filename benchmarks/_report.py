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
