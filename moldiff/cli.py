"""The ``moldiff`` command.

Each subcommand is two small functions, registered once in :data:`COMMANDS`:

* ``add_arguments(parser)`` declares its arguments;
* ``run(args) -> int`` does the work, importing heavy modules *inside* the function so that
  ``moldiff --help`` stays instant.

To add a subcommand, write those two functions and add one :class:`Command` line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Command", "COMMANDS", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument declaration and implementation."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------------------------
# moldiff train
# ------------------------------------------------------------------------------------------------

def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML file (sections task, model, data, train)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override any config field, e.g. train.lr=3e-4 train.steps=2000 model.hidden=256")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="run folder for logs and checkpoints (default: train.out_dir, else runs/<config name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the run folder (starts fresh if there is none)")
    parser.add_argument("--resume-from", metavar="CKPT", default=None,
                        help="continue from this checkpoint file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _train(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from moldiff.train.config import load_config
    from moldiff.train.loop import train

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("train.progress=false")
    config = load_config(args.config, overrides)
    out_dir = args.out or config.train.out_dir or str(Path("runs") / Path(args.config).stem)
    resume = args.resume_from if args.resume_from else bool(args.resume)
    result = train(config, out_dir=out_dir, resume=resume)
    if result.last_log and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        state = "stopped by signal (continue with --resume)" if result.stopped else "done"
        print(f"{state}: step {result.step}, loss {result.last_log.get('loss')}, "
              f"checkpoint {result.last_checkpoint}, skipped steps {result.skipped_steps}", file=sys.stderr)
    return 0


COMMANDS: list[Command] = [
    Command("train", "train a model from a YAML config (use torchrun for several GPUs or machines)",
            _train_arguments, _train),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="moldiff", description="Diffusion models of molecules, proteins and images.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moldiff`` console script.

    Configuration mistakes (unknown keys, wrong types, missing files) and a fresh run aimed at a
    folder holding another run's checkpoints print one line naming the problem and exit with
    status 2 instead of a traceback.
    """
    args = build_parser().parse_args(argv)
    from moldiff.train.config import ConfigError

    try:
        return int(args._run(args) or 0)
    except ConfigError as err:
        print(f"moldiff {args.command}: config error: {err}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"moldiff {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
