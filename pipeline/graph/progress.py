"""Progress reporting: rich bars on a terminal, silence otherwise.

Stages report through `task()` without knowing whether anyone is watching;
the CLI installs a rich reporter only when stderr is a TTY.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator


class _Task:
    def __init__(self, progress=None, task_id=None):
        self._progress, self._id = progress, task_id

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, amount)

    def update(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._id, description=description)


_current = None  # a rich.progress.Progress while a terminal is watching


@contextlib.contextmanager
def task(description: str, total: float | None = None) -> Iterator[_Task]:
    if _current is None:
        yield _Task()
        return
    task_id = _current.add_task(description, total=total)
    try:
        yield _Task(_current, task_id)
    finally:
        _current.remove_task(task_id)


@contextlib.contextmanager
def terminal(enabled: bool | None = None) -> Iterator[None]:
    """Show bars on stderr for the duration, if stderr is a terminal (or enabled says so)."""
    global _current
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or _current is not None:
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        _current = progress
        try:
            yield
        finally:
            _current = None
