"""Progress of long work: a transient bar on a terminal, plain lines on stderr anywhere else.

A 55 s replay piped into a log or CI printed nothing until it ended: off a terminal, a line is
printed at each tenth of the work, and between those at most every PLAIN_EVERY seconds, e.g.
`replay: 120/359 sessions (33%) 2013-06-14`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

Update = Callable[[int, int, str], None]
PLAIN_EVERY = 5.0  # seconds between plain lines when a tenth of the work takes longer
STEPS = 10


class PlainProgress:
    """One plain line per tenth of the work (and every PLAIN_EVERY seconds between) on `console`."""

    def __init__(self, console: Console, label: str, unit: str, every: float = PLAIN_EVERY) -> None:
        self.console, self.label, self.unit, self.every = console, label, unit, every
        self.step = 0
        self.last = time.monotonic()

    def __call__(self, done: int, total: int, what: str = "") -> None:
        step = done * STEPS // total if total > 0 else 0
        now = time.monotonic()
        if step <= self.step and now - self.last < self.every:
            return
        self.step, self.last = max(step, self.step), now
        percent = f" ({done * 100 // total}%)" if total > 0 else ""
        detail = f" {what}" if what else ""
        self.console.print(escape(f"{self.label}: {done}/{total} {self.unit}{percent}{detail}"), highlight=False)


@contextmanager
def progress(console: Console, label: str, unit: str) -> Iterator[Update]:
    """Yield `update(done, total, what)`: a transient bar on a terminal, else PlainProgress lines."""
    if not console.is_terminal:
        yield PlainProgress(console, label, unit)
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, what: str = "") -> None:
            bar.update(task, completed=done, total=total, description=f"{label} {what}".strip())

        yield update
