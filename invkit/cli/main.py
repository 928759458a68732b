"""``invkit``: list plugins, run (train + evaluate + plot), sample, evaluate, baseline.

Errors meant for users (``InvkitError``) are printed as one paragraph with exit code 2;
an interrupted training run exits with 130 after saving its checkpoint.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape  # messages may contain [brackets]: print them as text

from invkit.errors import InvkitError, InvkitWarning, TrainingInterrupted, os_error_message

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
INTERRUPTED = {
    "run": "a run directory in which training started is kept: continue it with "
           "invkit run --resume RUN_DIR",
    "sample": "no samples were written",
    "evaluate": "metrics.json and plots/ are as they were before",
    "baseline": "nothing was written",
}
"""What Ctrl-C left behind, per command."""
OUT_OF_MEMORY = {
    "run": "Use a smaller train.batch_size, data.simulations or model.subnet_width (or a device "
           "with more memory).",
    "sample": "Ask for fewer samples per observation (-n) or fewer observations at once.",
    "evaluate": "Use smaller eval.n_targets, eval.n_samples or eval.calibration_targets "
                "(--set).",
    "baseline": "Use a smaller chunk_size (--set chunk_size=...) or fewer observations.",
    "list": "",
}
"""The way out of an out-of-memory error, per command."""


def build_parser() -> argparse.ArgumentParser:
    from invkit.cli import cmd_baseline, cmd_evaluate, cmd_list, cmd_run, cmd_sample

    parser = argparse.ArgumentParser(
        prog="invkit",
        description="Bayesian inverse problems with invertible neural networks.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd_list.add_list(sub)
    cmd_run.add_run(sub)
    cmd_sample.add_sample(sub)
    cmd_evaluate.add_evaluate(sub)
    cmd_baseline.add_baseline(sub)
    return parser


def _version() -> str:
    from invkit.version import __version__

    return f"invkit {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(stderr=True)
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    try:
        with warnings.catch_warnings(), _sigterm_as_interrupt():
            warnings.showwarning = _show_warning(console)
            warnings.simplefilter("default", InvkitWarning)
            return int(args.handler(args) or 0)
    except InvkitError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED if isinstance(exc, TrainingInterrupted) else EXIT_USER_ERROR
    except KeyboardInterrupt:
        hint = INTERRUPTED.get(args.command, "")
        console.print(f"[bold red]interrupted[/]{f' ({hint})' if hint else ''}",
                      highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    except OSError as exc:
        # disk full, read-only folder, ...: the user's environment, not a bug of invkit
        console.print(f"[bold red]error:[/] {escape(os_error_message(exc))}", highlight=False,
                      soft_wrap=True)
        return EXIT_USER_ERROR
    except MemoryError:
        console.print(f"[bold red]error:[/] out of memory. {OUT_OF_MEMORY[args.command]}",
                      highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) is a RuntimeError
        text = str(exc).lower()
        if "out of memory" not in text and "can't allocate memory" not in text:
            raise
        first = escape(str(exc).splitlines()[0])
        console.print(f"[bold red]error:[/] out of memory ({first}). "
                      f"{OUT_OF_MEMORY[args.command]}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM outside the training loop (which saves first) acts like Ctrl-C, so cleanup runs:
    the default action would kill the process and leave a half-made run directory."""
    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--y -1,0.5`` means ``--y=-1,0.5`` (argparse would take ``-1,0.5`` for an option)."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--y":
            value = next(it, None)
            if value is not None and len(value) > 1 and value[0] == "-" \
                    and value[1] in "0123456789.":
                out.append(f"--y={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


def _show_warning(console: Console):
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False,
                      soft_wrap=True)
    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
