"""The daemon as a real process keeps its plans apart: a strategy that loops forever, one that eats
memory and one that prints megabytes each fail (or are cut) alone, and the good plan beside them
trades on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.records import OrderStatus, TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.store.applied import last_attempt
from minitrade.testing.apprise_sink import AppriseSink
from tests.conftest import present_env
from tests.runner.test_executor import CHATTY

# Both behave while their gate file is absent (so `apply`'s dry run passes), and misbehave once it is there.
LOOPS = '''from pathlib import Path

import backtrader as bt


class Forever(bt.Strategy):
    params = (("gate", ""),)

    def next(self):
        while Path(self.p.gate).exists():
            pass
'''

HOG = '''from pathlib import Path

import backtrader as bt


class Hog(bt.Strategy):
    params = (("gate", ""),)

    def next(self):
        if Path(self.p.gate).exists():
            self.hoard = bytearray(3 * 1024 ** 3)
'''

TICK = "2013-01-03T15:45:30-05:00"


def plan(name: str, strategy: str, extra: str = "") -> str:
    return f"""name: {name}
strategy: strategies/{strategy}.py
universe: [AAPL]
data_source: samples
calendar: XNYS
backtest_start: 2012-11-01
trade_start: 2013-01-02
run_at: "15:45"
order_type: TOC
broker: manual
cash: 100000
trading: enabled
{extra}"""


def test_a_hung_a_hungry_and_a_chatty_strategy_fail_alone_and_the_good_plan_trades(live_repo, tmp_path) -> None:
    gate = tmp_path / "gate"
    with AppriseSink() as sink:
        live_repo.edit("minitrade.yaml", "notifiers: {}", f"executor: {{memory_limit_mb: 1024}}\nnotifiers:\n"
                                                           f"  phone:\n    urls: ['{sink.url('phone')}']\n")
        for name, source in (("forever", LOOPS), ("hog", HOG), ("chatty", CHATTY)):
            live_repo.write(f"strategies/{name}.py", source)
        live_repo.write("plans/forever.yaml", plan("forever", "forever", f"timeout: 5\nparams: {{gate: '{gate}'}}\n"))
        live_repo.write("plans/hog.yaml", plan("hog", "hog", f"params: {{gate: '{gate}'}}\n"))
        live_repo.write("plans/chatty.yaml", plan("chatty", "chatty"))
        live_repo.commit("three difficult plans beside alt")
        applied = CliRunner().invoke(app, ["apply", "--yes", "--repo", str(live_repo.path)])
        assert applied.exit_code == 0, applied.output
        gate.write_text("misbehave from now on")
        done = subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--once", "--at", TICK,
                               "--repo", str(live_repo.path)], capture_output=True, text=True, timeout=600,
                              env={**os.environ, **present_env(TICK)})
        failures = [p for p in sink.posts if "failed" in p.title.lower()]
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) + len(done.stderr) < 100_000, "a strategy's prints never reach the daemon's output"
    with Store(live_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        ticks = {t.plan: t for name in ("alt", "forever", "hog", "chatty") for t in order_sql.ticks_of(con, name)}
        (order,) = order_sql.orders_of(con, "alt")
        (chatty,) = run_sql.list_runs(con, plan="chatty")
        output, printed = run_sql.read_output(con, chatty.run_id)
    assert ticks["alt"].status is TickStatus.FINISHED and order.status is OrderStatus.SUBMITTED
    assert ticks["forever"].status is TickStatus.FAILED and "timed out after 5 s" in (ticks["forever"].error or "")
    assert ticks["hog"].status is TickStatus.FAILED and "memory limit 1 GiB" in (ticks["hog"].error or "")
    assert ticks["chatty"].status is TickStatus.FINISHED
    assert printed > 50 * 1024**2 and output is not None and len(output) < 200 * 1024
    assert {"forever", "hog"} <= {p.title.split(":")[0] for p in failures}, [p.title for p in failures]
    listed = CliRunner().invoke(app, ["runs", "chatty", "--json", "--repo", str(live_repo.path)])
    assert listed.exit_code == 0 and json.loads(listed.output)["runs"][0]["printed"] == printed
    shown = CliRunner().invoke(app, ["runs", "--output", chatty.run_id, "--repo", str(live_repo.path)])
    assert shown.exit_code == 0 and "characters left out" in shown.output
    page_dir = live_repo.path / "state" / "reports" / "plans" / "chatty"
    assert f'href="output/{chatty.run_id}.txt"' in (page_dir / "index.html").read_text()
    assert (page_dir / "output" / f"{chatty.run_id}.txt").read_text() == output, "the report links the output"


def test_a_pushed_strategy_that_loops_forever_is_a_rejected_commit_not_a_hung_daemon(live_repo) -> None:
    from tests.runner.test_executor import LOOPS as ALWAYS_LOOPS

    live_repo.write("strategies/forever.py", ALWAYS_LOOPS)
    live_repo.write("plans/forever.yaml", plan("forever", "forever", "timeout: 3\n"))
    live_repo.commit("a strategy that never returns")
    done = subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--once", "--at", TICK,
                           "--repo", str(live_repo.path)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **present_env(TICK)})
    assert done.returncode == 0, done.stderr
    assert "rejected" in done.stdout
    with Store(live_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        attempt = last_attempt(con)
    assert attempt is not None and attempt.outcome == "rejected" and "timed out after 3 s" in (attempt.error or "")
