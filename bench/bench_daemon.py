"""The daemon's costs: an idle pass over 500 plans, idle CPU, and 50 plans due at one minute.

    python bench/bench_daemon.py [--quick] [--plans 500] [--passes 20] [--idle-seconds 60] [--due-only]
                                 [--due 50] [--workload small|typical|both] [--profile]

1. Pass over N applied plans with nothing due (target < 200 ms): a generated trading repo
   (git init + commit) of N plans, applied once without dry-run checks, one warm pass, then
   the best and mean of --passes `reconcile_once` calls at a fixed clock (Monday 2013-01-07
   12:00 New York; every plan runs after 12:00, and the day before is a Sunday, so the one-day
   look-back holds no tick either; on a Thursday every run_at falls in that look-back day).
   Baseline: `load_commit` alone, which every pass used to do (twice); a ratio below 1 shows the
   pass now reuses the applied commit's Snapshot instead of re-reading it through git.
2. Idle CPU of `python -m minitrade daemon --poll 5` on that repo as a real subprocess over
   --idle-seconds (target < 1%): utime+stime from /proc/<pid>/stat (and the reaped children's,
   i.e. git) before and after, divided by wall time. The daemon uses the real clock, whose
   plans run at or after 12:30 New York; a tick crossed during the window would show up.
3. --due plans due at 15:45 (tickers rotate AAPL/IBM/MSFT/GOOG) on at most 2 cores, two workloads:
   small (1 ticker from 2012-06-01, a ~50 ms backtest: the fixed costs show) and typical (4 tickers
   from 2008-01-02). Applied, price cache warmed, then one `reconcile_once` whose clock starts at
   2013-01-03 15:45:30 New York and advances with real time, so the 3-minute grace applies as it
   would live (3a: each plan's first live tick), then the same a session later (3b: one new bar,
   the daemon's every day). The report site is written after the pass, as the daemon does, and
   counted apart. Prints the makespan, per-run cost, how many ran and how many were SKIPPED.
   Baseline: the very units the pass computed (caught as the daemon fed them to its workers), each
   as a plain `run_backtest` call with the same arguments (cash, positions, trade_start, end,
   frozen_before), serially in this process after the pass: no store, no orders, no worker. (Until
   2026-11-28 it ran research backtests, which trade from backtest_start where a live run trades
   from trade_start only: 2-2.5x the work the workers do, which flattered every ratio to it.)
   Beside it, the same units on the executor alone (no prepare, no commit, best of 2): the most
   these cores give, so the distance from it is the daemon's own cost.
`--profile` prints the top functions of one idle pass and of the due pass.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitrade.loader import Snapshot, load_commit
from minitrade.reconcile_pass import cached_prices, publish, reconcile_once
from minitrade.reconciler import apply
from minitrade.runner.backtest import run_backtest
from minitrade.runner.compute import RunInput, plan_strategy
from minitrade.runner.executor import ProcessExecutor, UnitFeed, executor_for
from minitrade.runner.research import research_input
from minitrade.runner.run import signal_day
from minitrade.store import Store

NY = ZoneInfo("America/New_York")
IDLE_CLOCK = datetime(2013, 1, 7, 12, 0, tzinfo=NY)        # a Monday: nothing in the look-back day
DUE_CLOCK = datetime(2013, 1, 3, 15, 45, 30, tzinfo=NY)
PASS_TARGET_S = 0.200
CPU_TARGET = 0.01
IDLE_RUN_AT = ['"15:45"', '"12:30"', '["13:00", "15:00"]', '"13:30-16:00/30min"']
TICKERS = ["AAPL", "IBM", "MSFT", "GOOG"]
GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
SETTINGS = """timezone: America/New_York
state_dir: state
commission: 0.001
data_sources:
  samples: {type: csv, path: "package:sample_data"}
brokers:
  manual: {type: manual}
notifiers: {}
"""
ALTERNATE = '''import backtrader as bt


class Alternate(bt.Strategy):
    """Holds `size` shares on odd bars and none on even ones: an order every session."""

    params = (("size", 10),)

    def next(self):
        self.order_target_size(target=self.p.size if len(self) % 2 else 0)
'''
PLAN = """name: {name}
strategy: strategies/alternate.py
universe: [{tickers}]
data_source: samples
calendar: XNYS
backtest_start: {start}
trade_start: 2013-01-02
run_at: {run_at}
order_type: TOC
mode: strict
broker: manual
cash: 100000
trading: enabled
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **GIT_ENV})
    return done.stdout.strip()


def make_repo(root: Path, plans: list[str]) -> str:
    """A committed trading repo holding `plans` (YAML texts); returns the commit sha."""
    (root / "plans").mkdir(parents=True)
    (root / "strategies").mkdir()
    (root / "minitrade.yaml").write_text(SETTINGS)
    (root / ".gitignore").write_text("state/\n__pycache__/\n")
    (root / "strategies" / "alternate.py").write_text(ALTERNATE)
    for i, text in enumerate(plans):
        (root / "plans" / f"p{i:04d}.yaml").write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bench plans")
    return git(root, "rev-parse", "HEAD")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def line(label: str, seconds: float, target: float | None = None) -> None:
    extra = f"   target {target * 1000:.0f} ms  ({seconds / target:.2f}x target)" if target else ""
    print(f"  {label:<38} {seconds * 1000:9.1f} ms{extra}")


# ---------------------------------------------------------------------------------------------

def idle_pass(base: Path, n: int, passes: int, profile: bool) -> Path:
    print(f"1. reconcile pass over {n} applied plans, nothing due (clock {IDLE_CLOCK:%a %Y-%m-%d %H:%M} NY)")
    root = base / "idle"
    root.mkdir()
    t0 = time.perf_counter()
    texts = [PLAN.format(name=f"plan-{i:04d}", tickers=TICKERS[i % 4], start="2012-11-01",
                         run_at=IDLE_RUN_AT[i % len(IDLE_RUN_AT)]) for i in range(n)]
    sha = make_repo(root, texts)
    snap = load_commit(root, sha)
    store = snap.store()
    outcome = apply(snap, store, checks=[])
    assert outcome.outcome == "applied", outcome
    print(f"  setup (generate, commit, apply)        {time.perf_counter() - t0:9.1f} s")

    def one_pass() -> None:
        result = reconcile_once(root, store, now=lambda: IDLE_CLOCK)
        assert not result.runs and not result.skipped, (len(result.runs), len(result.skipped))

    one_pass()  # warm: calendars, imports, caches
    baseline = timed(lambda: load_commit(root, sha), passes)
    times = timed(one_pass, passes)
    best, mean = min(times), statistics.mean(times)
    base_best = min(baseline)
    line("baseline: load_commit alone (best)", base_best)
    line(f"pass (best of {passes})", best, PASS_TARGET_S)
    line(f"pass (mean of {passes})", mean, PASS_TARGET_S)
    print(f"  {'per plan (best)':<38} {best / n * 1e6:9.1f} us")
    print(f"  {'pass / baseline':<38} {best / base_best:9.2f} x")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        one_pass()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    return root


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick      # utime, stime (fields 14, 15)
    children = (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime (fields 16, 17)
    return own, children


def idle_cpu(root: Path, seconds: float) -> None:
    print(f"2. idle CPU of `minitrade daemon --poll 5` over {seconds:.0f} s (real subprocess, real clock)")
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--poll", "5", "--repo", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        assert proc.stdout is not None
        t0 = time.perf_counter()
        first = proc.stdout.readline()  # "minitrade daemon on ..." once the CLI has loaded the repo
        settle = 8.0  # the first pass, watchdog's initial scan
        time.sleep(settle)
        if proc.poll() is not None:
            print(f"  daemon exited early ({proc.returncode}): {first}{proc.stdout.read()}")
            return
        startup_own, _ = proc_cpu(proc.pid)
        print(f"  startup (CLI, first pass, {time.perf_counter() - t0:.0f} s wall) {startup_own:9.2f} s cpu")
        own0, kids0 = proc_cpu(proc.pid)
        w0 = time.perf_counter()
        time.sleep(seconds)
        own1, kids1 = proc_cpu(proc.pid)
        wall = time.perf_counter() - w0
        own, kids = own1 - own0, kids1 - kids0
        for label, cpu in (("daemon process", own), ("daemon + its git children", own + kids)):
            pct = cpu / wall
            print(f"  {label:<38} {pct * 100:8.2f} %   ({cpu:.2f} s cpu / {wall:.1f} s)   "
                  f"target {CPU_TARGET * 100:.0f} %  ({pct / CPU_TARGET:.2f}x target)")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        passes = [ln for ln in out.splitlines() if ln.strip()]
        print(f"  daemon printed {len(passes)} more line(s) and exited {proc.returncode}; last: "
              f"{passes[-1] if passes else '-'}")


def count_opens() -> Callable[[], int]:
    """Count DuckDB opens of the state file from here on (each costs ~20-40 ms of CPU)."""
    calls = [0]
    connect = Store._connect

    def counting(self: Store) -> object:
        calls[0] += 1
        return connect(self)

    Store._connect = counting  # type: ignore[assignment,method-assign]

    def done() -> int:
        Store._connect = connect  # type: ignore[method-assign]
        return calls[0]

    return done


# the due workloads: (label, first bar of the backtest, tickers per plan)
SMALL = ("small: 1 ticker from 2012-06-01 (~150 bars)", "2012-06-01", 1)
TYPICAL = ("typical: 4 tickers from 2008-01-02 (~1,260 bars each)", "2008-01-02", 4)


def due_minute(base: Path, n: int, workload: tuple[str, str, int], profile: bool = False) -> None:
    cores = os.sched_getaffinity(0)
    if len(cores) > 2:
        os.sched_setaffinity(0, sorted(cores)[:2])
    label, start, width = workload
    print(f"3. {n} plans due at 15:45 on {len(os.sched_getaffinity(0))} cores, cached prices, {label} "
          f"(clock starts {DUE_CLOCK:%Y-%m-%d %H:%M:%S} NY and advances in real time)")
    root = base / f"due-{width}"
    root.mkdir()
    texts = [PLAN.format(name=f"due-{i:03d}", start=start, run_at='"15:45"',
                         tickers=", ".join(TICKERS[(i + k) % 4] for k in range(width))) for i in range(n)]
    sha = make_repo(root, texts)
    snap = load_commit(root, sha)
    store = snap.store()
    assert apply(snap, store, checks=[]).outcome == "applied"
    # the daemon keeps one pool for its life: start it (and its forkserver) before measuring
    executor = executor_for(snap.settings.executor)
    list(executor.run([]))
    warm = next(iter(snap.plans.values()))
    list(executor.run([research_input(snap, warm.name, run_id="warm-up")]))
    try:
        for part, what in (("a", "each plan's first live tick: its whole history is recorded"),
                           ("b", "the next session: one new bar (what the daemon does every day)")):
            at = DUE_CLOCK if part == "a" else DUE_CLOCK + timedelta(days=1)
            print(f"  3{part}. {at:%a %Y-%m-%d %H:%M} NY, {what}")
            due_pass(snap, store, executor, at, n, profile)
    finally:
        executor.close()


def due_pass(snap: Snapshot, store: Store, executor: ProcessExecutor, at: datetime, n: int, profile: bool) -> None:
    """One measured pass at `at` with every price cached; its baseline the very units it computed,
    each as a plain `run_backtest` call with the same arguments, serially in this process."""
    root = snap.root
    prices_of = cached_prices(snap, store)
    day = signal_day(next(iter(snap.plans.values())), at)
    for plan in snap.plans.values():  # warm the price cache
        prices_of(plan).daily_many(plan.tickers, plan.backtest_start, day)
    units: list[RunInput] = []  # as the daemon feeds them to its workers
    feed_put = UnitFeed.put

    def recorded(feed: UnitFeed, unit: RunInput) -> None:
        units.append(unit)
        feed_put(feed, unit)

    def direct() -> None:  # compute() without the worker, the result boxing or the captured output
        for unit in units:
            strategy = plan_strategy(unit.plan, unit.strategy_source)
            run_backtest(unit.plan, unit.prices, strategy, cash=unit.cash, positions=unit.positions,
                         trade_start=unit.trade_start, commission=unit.commission,
                         storage=dict(unit.storage) if unit.storage is not None else None, end=unit.end,
                         frozen_before=unit.frozen_before)

    UnitFeed.put = recorded  # type: ignore[method-assign]
    worker_cpu: list[float] = []  # each worker reports its own CPU: forkserver's children are not ours
    run_units = executor.run

    def observed(inputs, **kwargs):  # type: ignore[no-untyped-def]
        for result in run_units(inputs, **kwargs):
            worker_cpu.append(result.cpu_seconds)
            yield result

    executor.run = observed  # type: ignore[method-assign]
    opens = count_opens()
    os.environ["MINITRADE_NOW"] = at.isoformat()  # the live path: these ticks are the present
    prof = cProfile.Profile() if profile else None
    start, cpu0 = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    result = reconcile_once(root, store, executor=executor, publish_site=False,
                            now=lambda: at + timedelta(seconds=time.perf_counter() - start))
    makespan, daemon_cpu = time.perf_counter() - start, time.process_time() - cpu0
    if prof:  # the pass alone; the report site is timed apart below
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(r"minitrade", 60)
        print(out.getvalue())
    site_start, site_cpu0 = time.perf_counter(), time.process_time()
    publish(snap, store, [r.plan for r in result.runs])  # what the daemon does after such a pass
    site_wall, site_cpu = time.perf_counter() - site_start, time.process_time() - site_cpu0
    workers_cpu = sum(worker_cpu)
    del os.environ["MINITRADE_NOW"]
    del executor.run
    UnitFeed.put = feed_put  # type: ignore[method-assign]
    opened = opens()
    base_s = min(timed(direct, 2))
    per_backtest = base_s / max(len(units), 1)
    alone_s = min(timed(lambda: list(executor.run(units)), 2))  # what the workers give with no daemon work
    ran = len(result.runs)
    finished = sum(r.status == "FINISHED" for r in result.runs)
    orders = sum(len(r.orders) for r in result.runs)
    line(f"baseline: {len(units)} run_backtest calls (serial, best of 2)", base_s)
    line("baseline per backtest", per_backtest)
    line("makespan of the pass (ticks closed)", makespan)
    print(f"  {'makespan / serial backtests':<38} {makespan / base_s:9.2f} x   (target <= 0.6)")
    line("the same units on the executor alone (best of 2)", alone_s)
    print(f"  {'executor alone / serial backtests':<38} {alone_s / base_s:9.2f} x   "
          "(no prepare, no commit: the ceiling on these cores)")
    if ran:
        line("daemon CPU per run (prepare+commit)", daemon_cpu / ran)
        line("worker CPU per run (its unit, in the worker)", workers_cpu / ran)
        # the workers' own CPU (unpickling, result boxing and each other's company included):
        # 2 cores fully used by them would give 0.5 of it
        print(f"  {'makespan / workers CPU summed':<38} {makespan / workers_cpu:9.2f} x   (0.5 is both cores busy)")
        print(f"  {'daemon CPU per run / backtest':<38} {(daemon_cpu / ran) / per_backtest:9.2f} x   "
              "(target <= 1.3; was 6.5 with runs inside the daemon)")
        line("report site after the pass, per plan page", site_cpu / ran)
        print(f"  {'daemon CPU per run incl. its page':<38} {(daemon_cpu + site_cpu) / ran / per_backtest:9.2f} x   "
              f"(site written in {site_wall:.1f} s after the runs' ticks closed)")
    print(f"  ran {ran} (finished {finished}, orders {orders}), SKIPPED {len(result.skipped)} "
          f"of {n} (grace 3 min)")
    print(f"  state-file opens in the pass: {opened} ({opened / max(ran, 1):.1f} per run)")
    if result.skipped:
        print("  finding: ticks that could not start within 3 minutes were skipped, not run late")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--plans", type=int, default=None)
    parser.add_argument("--passes", type=int, default=None)
    parser.add_argument("--idle-seconds", type=float, default=None)
    parser.add_argument("--due", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--due-only", action="store_true", help="only part 3 (plans due at one minute)")
    parser.add_argument("--workload", choices=["small", "typical", "both"], default="both",
                        help="part 3's plans: 1 ticker over 7 months, 4 tickers over 5 years, or both")
    args = parser.parse_args()
    plans = args.plans or (50 if args.quick else 500)
    passes = args.passes or (3 if args.quick else 20)
    idle_s = args.idle_seconds or (6.0 if args.quick else 60.0)
    due = args.due or (4 if args.quick else 50)
    print(f"minitrade daemon bench ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        base = Path(tmp)
        if not args.due_only:
            root = idle_pass(base, plans, passes, args.profile)
            idle_cpu(root, idle_s)
        for workload in (SMALL, TYPICAL) if args.workload == "both" else \
                ((SMALL,) if args.workload == "small" else (TYPICAL,)):
            due_minute(base, due, workload, args.profile)


if __name__ == "__main__":
    main()
