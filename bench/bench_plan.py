"""`minitrade plan` over a generated trading repo of 500 plans (target: under 2 s, calendars cached).

    python bench/bench_plan.py [--plans 500] [--repeat 3] [--profile]

Generates the repo in a temporary folder (git init + commit), warms the exchange calendars
once, then times the real `plan --json` command in this process (loader, changeset against the
DuckDB file, next 5 run times and warnings per plan, rendering), as --json and as text, first
with nothing applied (500 creates, every field shown) and then after an apply (no changes).
Prints the best of --repeat runs, the per-plan cost and the ratio against the 2 s target, plus
a breakdown by phase. Baseline: reading the plan files and parsing them with PyYAML's C loader, in
this process (the least any tool must do); each figure is also printed as a ratio to it, and so is
the whole process (`python -m minitrade plan --json` in a fresh interpreter: start-up, imports and
calendars included, as a person waits for it). `--profile` prints the top functions of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.loader import load_worktree
from minitrade.reconciler import apply, changeset, strategy_compile_check
from minitrade.scheduler import next_run_times, warnings_for
from minitrade.trading_calendar import get_calendar

TARGET_SECONDS = 2.0
CALENDARS = ["XNYS", "XNYS", "XNYS", "XLON", "XTKS", "XSHG"]
RUN_AT = ['"15:45"', '"09:30:01-16:00/30min"', '["10:00", "14:00"]', '"08:00"', '"11:00-12:00/15min"']
STRATEGY = '''import backtrader as bt


class Hold{n}(bt.Strategy):
    params = dict(fast=10, slow=50)

    def next(self) -> None:
        if not self.position:
            self.buy()
'''


def generate(root: Path, plans: int) -> None:
    """A trading repo with `plans` plans over 20 strategies, several calendars and run_at forms."""
    (root / "plans").mkdir(parents=True)
    (root / "strategies").mkdir()
    (root / "minitrade.yaml").write_text(
        "timezone: America/New_York\nstate_dir: state\n"
        "data_sources:\n  samples: {type: csv, path: \"package:sample_data\"}\n  yahoo: {type: yahoo}\n"
        "brokers:\n  manual: {type: manual}\n"
        "  ib-paper: {type: ib, username: '${IB_USERNAME}', password: '${IB_PASSWORD}'}\n"
        "notifiers:\n  phone: {urls: ['json://127.0.0.1:9/${TOKEN}'], events: [run.failed]}\n")
    for n in range(20):
        (root / "strategies" / f"s{n:02d}.py").write_text(STRATEGY.format(n=n))
    for i in range(plans):
        cal = CALENDARS[i % len(CALENDARS)]
        mode, order = ("incremental", "TRG") if i % 7 == 0 else ("strict", "TOC" if i % 2 else "TOO")
        universe = ", ".join(f"T{(i + k) % 97:02d}" for k in range(1 + i % 5))
        (root / "plans" / f"plan-{i:03d}.yaml").write_text(
            f"name: plan-{i:03d}\nstrategy: strategies/s{i % 20:02d}.py\nuniverse: [{universe}]\n"
            f"data_source: {'samples' if i % 3 else 'yahoo'}\ncalendar: {cal}\nbacktest_start: 2015-01-02\n"
            f"trade_start: 2020-01-02\nrun_at: {RUN_AT[i % len(RUN_AT)]}\norder_type: {order}\nmode: {mode}\n"
            f"broker: {'ib-paper' if i % 4 == 0 else 'manual'}\ncash: {10000 + i}\n"
            f"params: {{fast: {5 + i % 30}, slow: 50}}\n")
    (root / ".gitignore").write_text("state/\n")
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "500 plans"], check=True)


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def plan_command(root: Path, expect: int, as_json: bool = True) -> Callable[[], object]:
    runner = CliRunner()
    args = ["plan", "--json", "--repo", str(root)] if as_json else ["plan", "--repo", str(root)]

    def run() -> object:
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == expect, result.output[-2000:]
        return json.loads(result.output) if as_json else result.output
    return run


def phases(root: Path, repeat: int) -> dict[str, float]:
    snap = load_worktree(root)
    store = snap.store()
    now = datetime.now(UTC)

    def schedule() -> None:
        for plan in snap.plans.values():
            next_run_times(plan, now, 5)
            warnings_for(plan, now.date())

    return {"load": timed(lambda: load_worktree(root), repeat),
            "digests": timed(snap.digests, repeat),
            "changeset": timed(lambda: changeset(snap, store), repeat),
            "next runs": timed(schedule, repeat)}


def read_and_parse(root: Path) -> Callable[[], object]:
    files = sorted((root / "plans").glob("*.yaml"))

    def run() -> object:
        return [yaml.load(f.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) for f in files]
    return run


def whole_process(root: Path, expect: int) -> Callable[[], object]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONWARNINGS": "ignore"}

    def run() -> object:
        done = subprocess.run([sys.executable, "-m", "minitrade", "plan", "--json", "--repo", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert done.returncode == expect, done.stderr[-2000:]
        return done
    return run


BASELINE = [0.0]  # seconds to read and parse the plan files, set by main()


def report(label: str, seconds: float, plans: int) -> None:
    print(f"{label:<40} {seconds:7.3f} s  {seconds / plans * 1000:6.2f} ms/plan  "
          f"ratio to {TARGET_SECONDS:.0f} s target: {seconds / TARGET_SECONDS:.2f}  "
          f"to read+parse: {seconds / BASELINE[0]:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="Print the top functions of one plan run.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = Path(tmp) / "trading"
        generate(root, args.plans)
        began = time.perf_counter()
        for code in sorted(set(CALENDARS)):
            get_calendar(code)
        plan_command(root, 2)()  # warms the loader's calendar-name and timezone caches too
        print(f"calendars warmed and first run in {time.perf_counter() - began:.2f} s "
              f"({len(set(CALENDARS))} calendars)")

        BASELINE[0] = timed(read_and_parse(root), args.repeat)
        print(f"{'baseline: read + parse the plan files':<40} {BASELINE[0]:7.3f} s  (PyYAML C loader, in-process)")
        cold_state = timed(plan_command(root, 2), args.repeat)
        report(f"plan --json, {args.plans} creates", cold_state, args.plans)
        report(f"plan (text), {args.plans} creates", timed(plan_command(root, 2, False), args.repeat), args.plans)
        report(f"plan --json, {args.plans} creates, whole process", timed(whole_process(root, 2), args.repeat),
               args.plans)
        for name, seconds in phases(root, args.repeat).items():
            print(f"  {name:<38} {seconds:7.3f} s")

        snap = load_worktree(root)
        result = apply(snap, snap.store(), checks=[("strategy code", strategy_compile_check)])
        assert result.outcome == "applied", result.errors
        steady = timed(plan_command(root, 0), args.repeat)
        report("plan --json, after apply (no changes)", steady, args.plans)
        report("plan (text), after apply", timed(plan_command(root, 0, False), args.repeat), args.plans)
        report("plan --json, after apply, whole process", timed(whole_process(root, 0), args.repeat), args.plans)

        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(plan_command(root, 0))
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            print(out.getvalue())


if __name__ == "__main__":
    main()
