"""Deadlines and retries for the web data sources (Yahoo, EastMoney).

Why a worker thread: HTTP client timeouts bound single reads, not a whole fetch; a dead network
or a server that trickles bytes can hold a call for minutes (yfinance was measured hanging 130 s
with timeout=5). `with_deadline` runs the fetch in a daemon thread and abandons it when the
deadline passes, so the caller always gets an answer in time; the abandoned thread ends on its
own client timeout.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from minitrade.errors import DataError

T = TypeVar("T")
log = logging.getLogger("minitrade.data")


def with_deadline(fetch: Callable[[], T], seconds: float, *, source: str, ticker: str) -> T:
    """Return `fetch()` or raise a retryable DataError once `seconds` have passed."""
    box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            box.put((True, fetch()))
        except BaseException as e:  # handed to the caller's thread, re-raised there
            box.put((False, e))

    worker = threading.Thread(target=work, name=f"fetch {source}/{ticker}", daemon=True)
    worker.start()
    try:
        ok, value = box.get(timeout=seconds)
    except queue.Empty:
        raise DataError(f"no complete answer within {seconds:g} s (hard deadline); "
                        "the network or the server is stuck, try again later",
                        source=source, ticker=ticker, retryable=True) from None
    if ok:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    raise value


def retrying(attempt: Callable[[float], T], *, deadline: float, retries: int, backoff: float,
             source: str, ticker: str) -> T:
    """Call `attempt(seconds_left)` until it succeeds, retrying retryable DataErrors with backoff.

    `deadline` is a `time.monotonic()` instant; no retry starts that could not finish before it.
    """
    failures: list[str] = []
    for number in range(retries + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            return attempt(left)
        except DataError as e:
            if not e.retryable:
                raise
            failures.append(str(e).split(": ", 1)[-1])
            if number == retries:
                break
            pause = backoff * (2**number) * (0.75 + random.random() / 2)
            if time.monotonic() + pause >= deadline:
                break
            log.info("%s %s: attempt %d failed (%s); retrying in %.1f s", source, ticker, number + 1, e, pause)
            time.sleep(pause)
    tries = len(failures)
    last = failures[-1] if failures else "no time left"
    raise DataError(f"gave up after {tries} attempt{'s' if tries != 1 else ''}: {last}",
                    source=source, ticker=ticker, retryable=True)

