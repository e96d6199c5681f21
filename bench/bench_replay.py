"""Strict-mode replay's bookkeeping: does a tick's cost or the peak memory grow with the length replayed?

    python bench/bench_replay.py [--months 24] [--quick]
    python bench/bench_replay.py --opens     # item 4 only

Each replay runs in its own fresh process on a temp copy of the embedded default repo (three strict
plans on the shipped sample prices, which end 2013-03-01), so its peak RSS is its own.

1. Per-tick cost, month N over month 1 (target <= 1.2x): a replay of the N months ending
   2013-02-28 (default 24: 2011-03-01 .. 2013-02-28) records the wall time of each session; the
   mean seconds per run of its first and of its last month are compared. A strict run backtests
   from backtest_start, so its backtest alone grows with the date (about 10 vs 8 years of bars); the
   bare backtests of the same plans on the same days are timed here too, and the cost beyond them
   (store, orders, history, equity) is compared as well: that part must not grow with history.
2. Peak memory of the N-month replay over the 1-month one (README's February 2013) (target <= 1.2x):
   ru_maxrss of each child process.
3. README's replay, `python -m minitrade replay --from 2013-02-01 --to 2013-02-28` as a whole
   process (start-up, apply, report site included) beside the in-process replay() time, over the
   sum of its bare backtests (target <= 3x, or <= 20 s).
4. An open of an already-migrated state file: `Store.transaction()` (an ATTACH of the file to the
   process's DuckDB instance, a schema check of one `max(version)` query, there to migrate a file
   deleted under a running process again, BEGIN/COMMIT, DETACH) against a bare duckdb
   connect/BEGIN/COMMIT/close of the same file, best of alternated rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minitrade.data.registry import source_for  # noqa: E402
from minitrade.loader import Snapshot, load_worktree  # noqa: E402
from minitrade.models import Plan  # noqa: E402
from minitrade.runner.backtest import run_backtest  # noqa: E402
from minitrade.runner.research import load_plan_strategy  # noqa: E402
from minitrade.trading_calendar import get_calendar  # noqa: E402

END = date(2013, 2, 28)
README_FROM = date(2013, 2, 1)
TICK_TARGET, MEMORY_TARGET, README_RATIO_TARGET, README_SECONDS_TARGET = 1.2, 1.2, 3.0, 20.0


def default_repo(into: Path) -> Path:
    """A copy of the embedded default trading repo (its prices ship inside the package)."""
    for name in ("minitrade.yaml", "plans", "strategies"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, into / name)
    return into


def months_back(end: date, months: int) -> date:
    """The first day of the month `months - 1` months before `end`'s."""
    index = end.year * 12 + end.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


# -- the child: one replay in this process, timings and peak RSS as JSON on stdout ----------------

def child(repo: Path, start: date, end: date) -> None:
    from minitrade.replay import replay
    from minitrade.runner.publish import write_site

    snapshot = load_worktree(repo)
    marks: list[tuple[str, float, float, float]] = []
    books = _time_bookkeeping()

    def progress(done: int, total: int, what: str) -> None:
        marks.append((what, time.perf_counter(), time.process_time(), books[0]))

    began = time.perf_counter()
    summary = replay(snapshot, start=start, end=end, progress=progress)
    replayed = time.perf_counter() - began
    write_site(summary.store, summary.state_dir / "reports")
    # the first session's mark also covers replay()'s apply: left out
    sessions = [(day, wall - marks[i - 1][1], cpu - marks[i - 1][2], book - marks[i - 1][3])
                for i, (day, wall, cpu, book) in enumerate(marks) if i]
    print(json.dumps({"sessions": sessions, "runs": len(summary.runs), "failed": len(summary.failed),
                      "replay_s": replayed, "total_s": time.perf_counter() - began,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "db_mb": summary.store.path.stat().st_size / 2**20}))


def _time_bookkeeping() -> list[float]:
    """Sum the CPU seconds of the strict bookkeeping calls a run makes (the bench's own wrappers, as
    bench_backtest times cerebro.run): the history check and record, and the results write."""
    from minitrade.data import changes
    from minitrade.store import runs

    spent = [0.0]

    def timed(module: Any, name: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - began
        setattr(module, name, wrapper)

    for module, name in ((changes, "check_unchanged"), (changes, "record_histories"), (runs, "write_many")):
        timed(module, name)
    return spent


def run_child(repo: Path, start: date, end: date) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(repo), start.isoformat(), end.isoformat()],
                         capture_output=True, text=True, check=True, cwd=repo).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- bare backtests: what each run computes, without store, orders or history ---------------------

def bare_backtests(snapshot: Snapshot, days: list[date]) -> dict[date, float]:
    """Seconds of the plans' backtests per session, as a strict run of that day computes them."""
    frames: dict[tuple[str, str], object] = {}
    out: dict[date, float] = {}
    for day in days:
        total = 0.0
        for plan in snapshot.plans.values():
            if not plan.backtest_enabled or not get_calendar(plan.calendar).is_session(day):
                continue
            total += _bare(snapshot, plan, day, frames)
        out[day] = total
    return out


def _bare(snapshot: Snapshot, plan: Plan, day: date, frames: dict[tuple[str, str], object]) -> float:
    import pandas as pd

    source = source_for(plan.data_source, snapshot.settings.data_sources[plan.data_source], root=snapshot.root)
    prices = {}
    for ticker in plan.tickers:
        if (plan.data_source, ticker) not in frames:
            frames[(plan.data_source, ticker)] = source.daily(ticker, date(1900, 1, 1), None)
        frame = frames[(plan.data_source, ticker)]
        assert isinstance(frame, pd.DataFrame)
        prices[ticker] = frame.loc[pd.Timestamp(plan.backtest_start):pd.Timestamp(day)]
    commission = plan.commission if plan.commission is not None else snapshot.settings.commission
    began = time.process_time()
    strategy = load_plan_strategy(snapshot, plan)
    run_backtest(plan, prices, strategy, cash=plan.cash, positions={t: float(q) for t, q in plan.positions.items()},
                 trade_start=plan.trade_start, commission=commission, storage=None, end=day,
                 frozen_before=plan.trade_start)
    return time.process_time() - began


# -- the report -----------------------------------------------------------------------------------

def per_run(sessions: list[tuple[str, float, float, float]], month: str, runs_per_session: float
            ) -> tuple[float, float, float, list[date]]:
    """Mean wall, CPU and bookkeeping CPU seconds per run over the sessions of `month` (YYYY-MM)."""
    chosen = [(date.fromisoformat(d), w, c, b) for d, w, c, b in sessions if d.startswith(month)]
    return (statistics.mean(w for _, w, _, _ in chosen) / runs_per_session,
            statistics.mean(c for _, _, c, _ in chosen) / runs_per_session,
            statistics.mean(b for _, _, _, b in chosen) / runs_per_session, [d for d, _, _, _ in chosen])


def tick_cost(long: dict[str, Any], snapshot: Snapshot, start: date) -> None:
    """Item 1; CPU time is compared (the box is shared: wall time moves with the others' load)."""
    sessions = [(str(d), float(w), float(c), float(b)) for d, w, c, b in long["sessions"]]
    runs_per_session = int(long["runs"]) / (len(sessions) + 1)
    first_month, last_month = f"{start:%Y-%m}", f"{END:%Y-%m}"
    wall_first, first, book_first, first_days = per_run(sessions, first_month, runs_per_session)
    wall_last, last, book_last, last_days = per_run(sessions, last_month, runs_per_session)
    bare = bare_backtests(snapshot, first_days + last_days)
    bare_first = sum(bare[d] for d in first_days) / (len(first_days) * runs_per_session)
    bare_last = sum(bare[d] for d in last_days) / (len(last_days) * runs_per_session)
    ratio = last / first
    extra_first, extra_last = first - bare_first, last - bare_last
    print(f"1. CPU per run: {first_month} {first * 1000:6.1f} ms, {last_month} {last * 1000:6.1f} ms: "
          f"{ratio:.2f}x (target <= {TICK_TARGET}x) {'OK' if ratio <= TICK_TARGET else 'OVER'}"
          f"   [wall {wall_first * 1000:.0f} -> {wall_last * 1000:.0f} ms: {wall_last / wall_first:.2f}x]")
    print(f"   bare backtest (CPU): {first_month} {bare_first * 1000:6.1f} ms, {last_month} {bare_last * 1000:6.1f} ms:"
          f" {bare_last / bare_first:.2f}x (strict runs backtest from backtest_start: more bars each month)")
    print(f"   beyond the backtest (store, orders, history, equity): {first_month} {extra_first * 1000:6.1f} ms, "
          f"{last_month} {extra_last * 1000:6.1f} ms: {extra_last / extra_first:.2f}x")
    print(f"   of which the strict bookkeeping (check_unchanged, record_histories, write_many): {first_month} "
          f"{book_first * 1000:6.1f} ms, {last_month} {book_last * 1000:6.1f} ms: {book_last / book_first:.2f}x")
    print(f"   whole replay: {len(sessions) + 1} sessions, {long['runs']} runs, {long['failed']} failed, "
          f"replay() {float(long['replay_s']):.1f} s wall")


def readme(repo: Path, snapshot: Snapshot, short: dict[str, Any]) -> None:
    """Item 3: README's command as a whole process, against the sum of its bare backtests."""
    cpu_before = _children_cpu()
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minitrade", "replay", "--from", README_FROM.isoformat(),
                    "--to", END.isoformat(), "--repo", str(repo)], check=True, capture_output=True, cwd=repo,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout, installed or not
    whole, cpu = time.perf_counter() - began, _children_cpu() - cpu_before
    days = [s.day for s in get_calendar("XNYS").sessions(README_FROM, END)]
    bare = sum(bare_backtests(snapshot, days).values())
    ok = whole / bare <= README_RATIO_TARGET or whole <= README_SECONDS_TARGET
    print(f"3. README replay {README_FROM}..{END}, {short['runs']} runs: whole process {whole:.1f} s wall, "
          f"{cpu:.1f} s CPU (its runs compute in worker processes, not all counted here); in-process "
          f"replay() {float(short['replay_s']):.1f} s wall "
          f"({float(short['total_s']):.1f} s with the report site)")
    print(f"   sum of its bare backtests {bare:.1f} s CPU: whole process {whole / bare:.2f}x wall "
          f"(target <= {README_RATIO_TARGET}x or <= {README_SECONDS_TARGET:.0f} s) "
          f"{'OK' if ok else 'OVER'}")


def opens(rounds: int = 5, per_round: int = 40) -> None:
    """Item 4: what the schema check adds to each open of a migrated file."""
    import duckdb

    from minitrade.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
        store = Store(Path(tmp) / "minitrade.duckdb")
        store.schema_version()

        def ours() -> None:
            with store.transaction():
                pass

        def bare() -> None:
            con = duckdb.connect(str(store.path))
            con.execute("BEGIN TRANSACTION")
            con.execute("COMMIT")
            con.close()

        con = duckdb.connect(str(store.path))
        check = min(_best(lambda: store._at_latest(con), per_round) for _ in range(rounds))
        con.close()
        best = {"ours": float("inf"), "bare": float("inf")}
        for _ in range(rounds):
            for name, fn in (("bare", bare), ("ours", ours)):
                best[name] = min(best[name], _best(fn, per_round))
    print(f"4. open of a migrated file: Store.transaction() {best['ours'] * 1000:.2f} ms, bare duckdb "
          f"{best['bare'] * 1000:.2f} ms ({best['ours'] / best['bare']:.2f}x); the schema check query alone "
          f"{check * 1000:.3f} ms = {100 * check / best['ours']:.1f} % of ours")


def _best(fn: Callable[[], object], times: int) -> float:
    began = time.process_time()
    for _ in range(times):
        fn()
    return (time.process_time() - began) / times


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--opens":
        opens()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), date.fromisoformat(sys.argv[3]), date.fromisoformat(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="3 months instead of --months")
    args = parser.parse_args()
    months = 3 if args.quick else args.months
    start = months_back(END, months)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        repo = default_repo(Path(tmp))
        snapshot = load_worktree(repo)
        print(f"strict-mode replay of the default repo ({', '.join(snapshot.plans)}), fresh process each")
        short = run_child(repo, README_FROM, END)
        long = run_child(repo, start, END)
        tick_cost(long, snapshot, start)
        short_rss, long_rss = float(short["rss_mb"]), float(long["rss_mb"])
        ratio = long_rss / short_rss
        print(f"2. peak RSS: 1 month {short_rss:.0f} MB, {months} months {long_rss:.0f} MB: {ratio:.2f}x "
              f"(target <= {MEMORY_TARGET}x) {'OK' if ratio <= MEMORY_TARGET else 'OVER'}; state file "
              f"{float(short['db_mb']):.0f} MB and {float(long['db_mb']):.0f} MB")
        readme(repo, snapshot, short)
    opens()


if __name__ == "__main__":
    main()
