"""``invkit``: list plugins, run (train + evaluate + plot), sample, evaluate, baseline.

Errors meant for users (``InvkitError``) are printed as one paragraph with exit code 2;
an interrupted training run exits with 130 after saving its checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from invkit.errors import InvkitError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from invkit.cli import commands

    parser = argparse.ArgumentParser(
        prog="invkit",
        description="Bayesian inverse problems with invertible neural networks.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_list(sub)
    commands.add_run(sub)
    commands.add_sample(sub)
    commands.add_evaluate(sub)
    commands.add_baseline(sub)
    return parser


def _version() -> str:
    import invkit

    return f"invkit {invkit.__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(stderr=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InvkitError as exc:
        from invkit.training.trainer import TrainingInterrupted

        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED if isinstance(exc, TrainingInterrupted) else EXIT_USER_ERROR
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return EXIT_INTERRUPTED
    except OSError as exc:
        # disk full, read-only folder, ...: the user's environment, not a bug of invkit
        console.print(f"[bold red]error:[/] {exc.strerror or exc} ({exc.filename or ''}). "
                      f"Free some space or choose a writable --out.", highlight=False)
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
