"""The fetch pool: a few at a time, every answer reported once, and a stop that a hung request
cannot hold up (queued names dropped, requests on the wire abandoned after the grace)."""

from __future__ import annotations

import threading

import pytest

from minitrade.data import fetch_pool
from minitrade.data.fetch_pool import fetch_all
from minitrade.errors import DataError


def test_every_name_is_fetched_once_and_errors_are_their_answers() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def fetch(name: str) -> None:
        with lock:
            seen.append(name)
        if name == "BAD":
            raise DataError("no such ticker", ticker=name)

    answers: list[tuple[str, bool]] = []
    out = fetch_all(["A", "BAD", "C", "D"], fetch, workers=3, on_answer=lambda n, e: answers.append((n, e is None)))
    assert sorted(seen) == ["A", "BAD", "C", "D"]
    assert sorted(answers) == [("A", True), ("BAD", False), ("C", True), ("D", True)]
    assert list(out.errors) == ["BAD"] and isinstance(out.errors["BAD"], DataError)
    assert out.unanswered == []


def test_at_most_workers_fetches_run_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=30)

    def fetch(name: str) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        gate.wait()  # two at a time meet here: a third would have to wait for a pair
        with lock:
            running[0] -= 1

    out = fetch_all([f"T{i}" for i in range(6)], fetch, workers=2)
    assert most[0] == 2 and not out.errors and not out.unanswered


def test_a_stop_drops_the_queue_and_abandons_requests_hung_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_pool, "STOP_GRACE", 0.5)
    never = threading.Event()  # the hung requests' answer; set at the end to free their threads
    started = threading.Semaphore(0)

    def fetch(name: str) -> None:
        started.release()
        if name.startswith("HANG"):
            never.wait(600)

    try:
        names = ["HANG1", "HANG2", *(f"Q{i}" for i in range(10))]
        stop = threading.Event()

        def should_stop() -> bool:
            if not stop.is_set() and started.acquire(blocking=False) and started.acquire(blocking=False):
                stop.set()  # both workers are on the wire with a hung request
            return stop.is_set()

        out = fetch_all(names, fetch, workers=2, should_stop=should_stop)
    finally:
        never.set()
    assert stop.is_set()
    assert sorted(out.unanswered) == sorted(names)  # none answered: 10 dropped, 2 abandoned
    assert not out.errors
