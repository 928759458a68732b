"""One progress bar for every long step (training, simulation, baselines), sized for 80 columns.

The bar shows what matters at any width: the step or simulation count, the time left and one
short status (the running loss, the acceptances): each column has a fixed or capped width,
so a narrow terminal truncates the status with an ellipsis instead of squeezing the counts.
Progress goes to stderr, so a command's own output (tables, JSON) stays clean on stdout.
"""

from __future__ import annotations

from typing import Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

Unit = Literal["steps", "sims"]


class _Count(ProgressColumn):
    """'3.2e+05/1e+06 sims' (counts too large to read digit by digit)."""

    def render(self, task: Task) -> Text:
        total = f"{task.total:.3g}" if task.total is not None else "?"
        return Text(f"{task.completed:.3g}/{total} sims", style="progress.download")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.3g}/s" if speed else "?/s", style="progress.data.speed")


def _columns(unit: Unit, description: str, total: float, width: int) -> list[ProgressColumn]:
    """Columns whose fixed parts fit ``width``; the status gets what is left (at least 8)."""
    def fixed(n: int) -> Column:
        return Column(no_wrap=True, min_width=n, max_width=n)

    desc = min(len(description), 22)
    if unit == "sims":
        count_w = len(f"9.99e+99/{total:.3g} sims")  # the widest count of this total
        counts: list[ProgressColumn] = [_Count(table_column=fixed(count_w)),
                                        _Rate(table_column=fixed(9))]
        used = desc + 8 + count_w + 9 + 7
        bar, times = 8, [TimeRemainingColumn(table_column=fixed(7))]
    else:
        count_w = 2 * len(str(int(total))) + 1
        counts = [MofNCompleteColumn(table_column=fixed(count_w))]
        used = desc + 12 + count_w + 7 + 7
        bar = 12
        times = [TimeElapsedColumn(table_column=fixed(7)),
                 TimeRemainingColumn(table_column=fixed(7))]
    gaps = 3 + len(counts) + len(times)
    status = max(8, width - used - gaps)
    return [
        TextColumn("[bold]{task.description}",
                   table_column=Column(no_wrap=True, overflow="ellipsis", max_width=desc)),
        BarColumn(bar_width=bar),
        *counts,
        *times,
        TextColumn("{task.fields[status]}",
                   table_column=Column(no_wrap=True, overflow="ellipsis", max_width=status)),
    ]


class ProgressBar:
    """``with ProgressBar("training gmm", total=4000) as bar: bar.update(completed=k, status=...)``.

    Disabled (``enabled=False``) it does nothing, so callers need no branches. ``share`` lets
    a caller that already shows a bar add this one as a second line of it.
    """

    def __init__(self, description: str, total: float, *, unit: Unit = "steps",
                 enabled: bool = True, start: float = 0,
                 share: ProgressBar | None = None) -> None:
        self.description, self.total, self.unit, self.start = description, total, unit, start
        self.enabled = enabled
        self._outer = share if share is not None and share._progress is not None else None
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        if self._outer is not None:
            self._progress = self._outer._progress
        else:
            console = Console(stderr=True)
            columns = _columns(self.unit, self.description, self.total, console.width)
            self._progress = Progress(*columns, console=console, speed_estimate_period=10.0)
            self._progress.start()
        assert self._progress is not None
        self._task = self._progress.add_task(self.description, total=self.total,
                                             completed=self.start, status="")
        return self

    def update(self, *, completed: float | None = None, advance: float | None = None,
               status: str | None = None) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {}
        if status is not None:
            fields["status"] = status
        self._progress.update(self._task, completed=completed, advance=advance, **fields)

    def __exit__(self, *exc: object) -> None:
        if self._progress is None:
            return
        if self._outer is not None:
            self._progress.remove_task(self._task)
        else:
            self._progress.stop()
        self._progress = None
