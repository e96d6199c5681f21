"""A few fetches at a time, stoppable within a bound whatever the network does.

`fetch_all(names, fetch, workers=8, should_stop=...)` runs `fetch(name)` for every name on
`workers` daemon threads and reports each answer as it comes. Once `should_stop()` says yes,
queued names are dropped and the fetches already on the wire get `STOP_GRACE` seconds to answer;
after that they are abandoned (their threads are daemons: a source's own deadline, 30 s by
default, never holds up a stopping daemon, whose SIGTERM must end it within 10 s).

A pool of plain threads rather than `concurrent.futures`: its workers are joined at interpreter
exit, so an abandoned request would keep the process alive until its own timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

STOP_POLL = 0.2   # seconds between looks at `should_stop` while fetches run
STOP_GRACE = 3.0  # seconds the fetches on the wire get to answer after a stop request


@dataclass
class Fetched:
    """What became of a pool's names: errors by name (the answered ones), and the names left
    unanswered because of a stop request (dropped from the queue, or abandoned on the wire)."""

    errors: dict[str, Exception] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)


def fetch_all(names: Iterable[str], fetch: Callable[[str], None], *, workers: int,
              should_stop: Callable[[], bool] | None = None,
              on_answer: Callable[[str, Exception | None], None] | None = None,
              thread_name: str = "fetch") -> Fetched:
    """Run `fetch(name)` for each name, `workers` at a time; `on_answer(name, error)` as each answers.

    An exception of `fetch` is that name's answer; the caller decides what it means.
    """
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    waiting = set()
    for name in names:
        todo.put(name)
        waiting.add(name)
    answers: queue.SimpleQueue[tuple[str, Exception | None]] = queue.SimpleQueue()
    stopping = threading.Event()

    def work() -> None:
        while not stopping.is_set():
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            try:
                fetch(name)
            except Exception as e:  # the name's answer, handed to the caller's thread
                answers.put((name, e))
            else:
                answers.put((name, None))

    for number in range(min(workers, len(waiting))):
        threading.Thread(target=work, name=f"{thread_name}-{number}", daemon=True).start()
    out = Fetched()
    abandon_at: float | None = None
    while waiting:
        if abandon_at is not None and time.monotonic() >= abandon_at:
            break
        polling = should_stop is not None or abandon_at is not None
        try:
            name, error = answers.get(timeout=STOP_POLL if polling else None)
        except queue.Empty:
            pass
        else:
            waiting.discard(name)
            if error is not None:
                out.errors[name] = error
            if on_answer is not None:
                on_answer(name, error)
        if abandon_at is None and waiting and should_stop is not None and should_stop():
            stopping.set()  # no worker takes another name
            abandon_at = time.monotonic() + STOP_GRACE
            out.unanswered += _drain(todo)
            waiting.difference_update(out.unanswered)
    out.unanswered += sorted(waiting)  # on the wire past the grace: abandoned
    return out


def _drain(todo: queue.SimpleQueue[str]) -> list[str]:
    left = []
    while True:
        try:
            left.append(todo.get_nowait())
        except queue.Empty:
            return left
