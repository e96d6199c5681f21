"""`minitrade data fetch` as a real process: SIGTERM during a 2,000-ticker first fetch."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from minitrade.store import Store
from minitrade.testing.market import PriceBook
from minitrade.testing.yahoo import FakeYahoo

UNIVERSE = [f"T{i:04d}" for i in range(2000)]
BATCH_LINE = re.compile(r"^yahoo: batch (\d+)/(\d+) stored: (\d+)/2000 tickers done \((\d+) fetched, (\d+) failed\)")


def write_repo(root: Path, url: str, *, timeout: float = 30) -> None:
    (root / "plans").mkdir(parents=True)
    (root / "strategies").mkdir()
    (root / "minitrade.yaml").write_text(f"""\
timezone: America/New_York
state_dir: state
data_sources:
  yahoo: {{type: yahoo, base_url: "{url}", timeout: {timeout:g}, concurrency: 8}}
""")
    (root / "strategies" / "hold.py").write_text(
        "import backtrader as bt\n\n\nclass Hold(bt.Strategy):\n    def next(self):\n        pass\n")
    (root / "plans" / "everything.yaml").write_text(f"""\
strategy: strategies/hold.py
universe: [{", ".join(UNIVERSE)}]
data_source: yahoo
backtest_start: 2026-06-01
run_at: "15:45"
cash: 10000
""")


def lines_of(stream) -> queue.Queue[str | None]:
    """The process's output lines, read by a thread (a blocked read never hangs the test)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def data_fetch(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "minitrade", "data", "fetch", "--repo", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def until_a_batch_is_stored(out: queue.Queue[str | None]) -> list[str]:
    """The process's lines up to the first "batch stored" one (that batch is in DuckDB then)."""
    seen: list[str] = []
    while not any(BATCH_LINE.match(line) for line in seen):
        line = out.get(timeout=300)
        assert line is not None, f"exited before a batch was stored: {''.join(seen)}"
        seen.append(line)
    return seen


@pytest.mark.slow
def test_sigterm_during_a_first_fetch_exits_on_its_own_keeping_every_stored_batch(tmp_path):
    with FakeYahoo(PriceBook(now=datetime.now(UTC), walk_start=date(2026, 1, 5))) as fake:
        write_repo(tmp_path, fake.url)
        with data_fetch(tmp_path) as process:
            try:
                out = lines_of(process.stdout)
                seen = until_a_batch_is_stored(out)
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=300)
            finally:
                if process.poll() is None:
                    process.kill()
            while (line := out.get(timeout=60)) is not None:
                seen.append(line)
            errors = process.stderr.read() if process.stderr else ""

    assert code == 130, f"{''.join(seen)}\n{errors}"
    assert "SIGTERM: stopping after the fetches in flight" in errors
    assert "stopped on request with" in errors and "fetch again" in errors
    batches = [BATCH_LINE.match(line) for line in seen]
    last = [m for m in batches if m][-1]
    fetched = int(last.group(4))
    assert 100 <= fetched < 2000 and int(last.group(2)) == 20
    with Store(tmp_path / "state" / "minitrade.duckdb").transaction() as con:
        kept = [r[0] for r in con.execute("SELECT ticker FROM price_ranges").fetchall()]
        bars = con.execute("SELECT count(DISTINCT ticker) FROM prices").fetchone()
    assert len(kept) == fetched and bars == (fetched,)  # every batch it said it stored is there
    assert set(kept) <= set(UNIVERSE)


def test_sigterm_while_fetches_hang_on_the_wire_abandons_them_after_a_short_grace(tmp_path):
    """The source's own deadline (here 300 s) never holds up a stop: the fetches on the wire get
    a few seconds (fetch_pool.STOP_GRACE), then are abandoned; the stored batches stay."""
    with FakeYahoo(PriceBook(now=datetime.now(UTC), walk_start=date(2026, 1, 5))) as fake:
        write_repo(tmp_path, fake.url, timeout=300)
        with data_fetch(tmp_path) as process:
            try:
                seen = until_a_batch_is_stored(lines_of(process.stdout))
                fake.hold = 3600.0  # from now on no chart request is answered
                for _ in range(6000):  # until every worker waits on the wire (or the process is gone)
                    if fake.in_flight >= 8 or process.poll() is not None:
                        break
                    threading.Event().wait(0.05)
                assert fake.in_flight >= 8, f"the fetches never hung: exit {process.poll()}"
                process.send_signal(signal.SIGTERM)
                # waiting for the wire would take the source's 300 s; abandoning takes the grace
                code = process.wait(timeout=120)
            finally:
                fake.released.set()
                if process.poll() is None:
                    process.kill()
            errors = process.stderr.read() if process.stderr else ""

    assert code == 130, errors
    assert "stopped on request with" in errors
    with Store(tmp_path / "state" / "minitrade.duckdb").transaction() as con:
        kept = con.execute("SELECT count(*) FROM price_ranges").fetchone()
    last = [m for m in map(BATCH_LINE.match, seen) if m][-1]
    assert kept == (int(last.group(4)),)  # the batches it said it stored, and nothing half-written
