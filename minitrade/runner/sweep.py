"""`minitrade optimize`'s orchestration: trials as compute units on an executor, recorded here.

The plan's prices are read once (`research_input`) and shared by every trial; each trial is the
same `RunInput` with the plan's params overridden and its own period. One sweep is one batch on
the executor (a Dask executor scatters the prices once), and walk-forward is two batches: every
window's train trials, then each window's best on its test window next to the plan's own params.
DuckDB is written only here, in the coordinating process, in small batches as results arrive.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from minitrade.runner.compute import RunInput, RunResult
from minitrade.runner.executor import Executor, ready_batches
from minitrade.runner.optimize import Constraint, Param, Window, better, grid, random_sample, ranked, score
from minitrade.runner.research import research_input
from minitrade.store import optimizations as store_opt

if TYPE_CHECKING:
    from minitrade.loader import Snapshot

log = logging.getLogger("minitrade.optimize")
# Trials are written at most this often: a flush opens the state file and commits a transaction, which
# at 1 s was 6 % of a serial sweep; the command shows each trial as it arrives, DuckDB has it within 5 s.
FLUSH_SECONDS = 5.0
SWEEP, BASELINE, TRAIN, TEST = "sweep", "baseline", "train", "test"


@dataclass(frozen=True)
class Request:
    """What to optimise: the plan, the space, how to sample it, what to rank by, over which period."""

    plan: str
    params: list[Param]
    constraints: list[Constraint] = field(default_factory=list)
    method: str = "grid"
    samples: int = 50
    seed: int = 0
    metric: str = "sharpe"
    start: date | None = None
    end: date | None = None
    walk_forward: tuple[str, list[Window]] | None = None  # its text and windows (resolved by the caller)


@dataclass(frozen=True)
class Trial:
    """One backtest of the search: parameters, phase and period."""

    trial_id: str
    number: int
    phase: str
    params: dict[str, Any]
    window: Window | None = None

    @property
    def period(self) -> tuple[date | None, date | None]:
        if self.window is None:
            return None, None
        if self.phase == TRAIN:
            return self.window.train_start, self.window.train_end
        return self.window.test_start, self.window.test_end


@dataclass
class Outcome:
    """A trial's result: statistics or the error, its score, time and worker (equity only for the best)."""

    trial: Trial
    stats: dict[str, Any] | None
    error: str | None
    score: float | None
    seconds: float
    worker: str
    equity: pd.Series | None = None


@dataclass
class Report:
    """Everything the command prints and the report page shows."""

    optimization_id: str
    plan: str
    metric: str
    names: list[str]
    outcomes: list[Outcome]
    best: Outcome | None
    baseline: Outcome | None
    windows: list[tuple[Window, Outcome | None, Outcome | None, Outcome | None]]  # window, train best, test, base
    status: str
    period: tuple[date, date]


# (outcome, done, total, best so far)
OnOutcome = Callable[[Outcome, int, int, Outcome | None], None]


def sample(request: Request) -> list[dict[str, Any]]:
    """The parameter combinations the request asks for."""
    if request.method == "random":
        return random_sample(request.params, request.samples, request.seed, request.constraints)
    return grid(request.params, request.constraints)


def new_id(plan: str) -> str:
    return f"opt-{plan}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def base_input(snapshot: Snapshot, request: Request, optimization_id: str) -> RunInput:
    """The plan's compute unit with its prices read once, shared by every trial."""
    return research_input(snapshot, request.plan, run_id=optimization_id, start=request.start, end=request.end)


def period_of(base: RunInput) -> tuple[date, date]:
    """The first and last day the base unit's prices cover (within the plan's start and end)."""
    first = base.plan.backtest_start
    last = max(pd.Timestamp(f.index[-1]) for f in base.prices.values()).date()
    return first, min(last, base.end) if base.end else last


def trial_input(base: RunInput, trial: Trial) -> RunInput:
    """The base unit with the trial's params over the plan's own and the trial's period."""
    start, end = trial.period
    update: dict[str, Any] = {"params": {**base.plan.params, **trial.params}}
    if start is not None:
        update["backtest_start"] = start
    return replace(base, run_id=trial.trial_id, plan=base.plan.model_copy(update=update),
                   end=end if end is not None else base.end)


def optimize(snapshot: Snapshot, request: Request, executor: Executor, *, executor_name: str,
             optimization_id: str | None = None, on_outcome: OnOutcome | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> Report:
    """Run the search on `executor`, recording every trial; the ranked report."""
    oid = optimization_id or new_id(request.plan)
    combos = sample(request)
    base = base_input(snapshot, request, oid)
    period = period_of(base)
    recorder = Recorder(snapshot, oid)
    recorder.start(request, base, period, combos, executor_name)
    names = [p.name for p in request.params]
    plan_params = {n: base.plan.params[n] for n in names if n in base.plan.params}  # the plan as it is
    try:
        if request.walk_forward is None:
            report = _sweep(base, request, combos, plan_params, executor, recorder, on_outcome, should_stop)
        else:
            report = _walk_forward(base, request, combos, plan_params, executor, recorder, on_outcome,
                                   should_stop)
    except BaseException:
        recorder.finish("INTERRUPTED", None)
        raise
    report = replace(report, optimization_id=oid, plan=request.plan, names=names, period=period)
    best_params = report.best.trial.params if report.best is not None else None
    recorder.finish(report.status, best_params)
    return report


def _sweep(base: RunInput, request: Request, combos: list[dict[str, Any]], plan_params: dict[str, Any],
           executor: Executor, recorder: Recorder, on_outcome: OnOutcome | None,
           should_stop: Callable[[], bool]) -> Report:
    trials = [Trial(f"{base.run_id}-baseline", 0, BASELINE, plan_params)]
    trials += [Trial(f"{base.run_id}-{n:05d}", n, SWEEP, combo) for n, combo in enumerate(combos, start=1)]
    outcomes = run_trials(base, trials, executor, request.metric, recorder, on_outcome, should_stop)
    swept = [o for o in outcomes if o.trial.phase == SWEEP]
    baseline = next((o for o in outcomes if o.trial.phase == BASELINE), None)
    best = swept[ranked([o.score for o in swept], request.metric)[0]] if swept else None
    if best is not None and best.score is None and best.stats is None:
        best = None
    return Report("", "", request.metric, [], swept, best, baseline, [], _status(swept, should_stop),
                  (date.min, date.max))


def _walk_forward(base: RunInput, request: Request, combos: list[dict[str, Any]], plan_params: dict[str, Any],
                  executor: Executor, recorder: Recorder, on_outcome: OnOutcome | None,
                  should_stop: Callable[[], bool]) -> Report:
    assert request.walk_forward is not None
    _, wins = request.walk_forward
    train = [Trial(f"{base.run_id}-w{w.number}-train-{n:05d}", n, TRAIN, combo, w)
             for w in wins for n, combo in enumerate(combos, start=1)]
    trained = run_trials(base, train, executor, request.metric, recorder, on_outcome, should_stop)
    best_of: dict[int, Outcome] = {}
    for w in wins:
        mine = [o for o in trained if o.trial.window == w and o.stats is not None]
        if mine:
            best_of[w.number] = mine[ranked([o.score for o in mine], request.metric)[0]]
    tests = []
    for w in wins:
        if w.number in best_of:
            tests.append(Trial(f"{base.run_id}-w{w.number}-test", 1, TEST, best_of[w.number].trial.params, w))
        tests.append(Trial(f"{base.run_id}-w{w.number}-baseline", 0, BASELINE, plan_params, w))
    tested = [] if should_stop() else run_trials(base, tests, executor, request.metric, recorder, None,
                                                 should_stop)
    rows = []
    for w in wins:
        test = next((o for o in tested if o.trial.window == w and o.trial.phase == TEST), None)
        own = next((o for o in tested if o.trial.window == w and o.trial.phase == BASELINE), None)
        rows.append((w, best_of.get(w.number), test, own))
    latest = best_of.get(wins[-1].number)  # the parameters to trade next: trained on the latest data
    return Report("", "", request.metric, [], trained, latest, None, rows,
                  _status(trained, should_stop), (date.min, date.max))


def _status(outcomes: Sequence[Outcome], should_stop: Callable[[], bool]) -> str:
    if should_stop():
        return "INTERRUPTED"
    return "FINISHED" if any(o.stats is not None for o in outcomes) else "FAILED"


def run_trials(base: RunInput, trials: list[Trial], executor: Executor, metric: str, recorder: Recorder,
               on_outcome: OnOutcome | None, should_stop: Callable[[], bool]) -> list[Outcome]:
    """Compute `trials` on `executor` as one batch, recording each once as it arrives."""
    by_id = {t.trial_id: t for t in trials}
    done: dict[str, Outcome] = {}
    best: Outcome | None = None
    # fed by a thread: the workers start the next trials while this process records the last ones
    batches = ready_batches(executor, [trial_input(base, t) for t in trials], should_stop=should_stop)
    try:
        for result in (r for batch in batches for r in batch):
            trial = by_id.get(result.run_id)
            if trial is None or trial.trial_id in done:  # not ours, or a repeat: counted once
                continue
            outcome = _outcome(trial, result, metric)
            done[trial.trial_id] = outcome
            recorder.add(outcome)
            if trial.phase != BASELINE and _beats(outcome, best, metric):
                if best is not None:
                    best.equity = None
                best = outcome
            elif trial.phase != BASELINE:
                outcome.equity = None
            if on_outcome is not None:
                on_outcome(outcome, len(done), len(trials), best)
    finally:
        batches.close()  # an early exit stops what still computes
        recorder.flush()
    return [done[t.trial_id] for t in trials if t.trial_id in done]


def _beats(outcome: Outcome, best: Outcome | None, metric: str) -> bool:
    """Whether `outcome` ranks above `best` as `ranked` orders them (ties: the earlier trial)."""
    if best is None:
        return True
    if outcome.score == best.score:
        return outcome.trial.number < best.trial.number and (outcome.stats is not None or best.stats is None)
    return better(outcome.score, best.score, metric)


def _outcome(trial: Trial, result: RunResult, metric: str) -> Outcome:
    if result.backtest is None or result.error_kind is not None:
        return Outcome(trial, None, result.error or f"no result ({result.error_kind})", None, result.seconds,
                       result.worker)
    stats = result.backtest.stats
    return Outcome(trial, stats, None, score(stats, metric), result.seconds, result.worker,
                   result.backtest.equity["equity"])


class Recorder:
    """Writes the optimisation and its trials to DuckDB from the coordinating process, in batches."""

    def __init__(self, snapshot: Snapshot, optimization_id: str) -> None:
        self.store, self.commit, self.dirty = snapshot.store(), snapshot.commit, snapshot.dirty
        self.optimization_id = optimization_id
        self.pending: list[store_opt.TrialRow] = []
        self.flushed_at = time.monotonic()
        self.written = 0

    def start(self, request: Request, base: RunInput, period: tuple[date, date], combos: list[dict[str, Any]],
              executor: str) -> None:
        space = {p.name: list(p.values) for p in request.params}
        row = store_opt.OptimizationRow(
            self.optimization_id, request.plan, self.commit, self.dirty, datetime.now(UTC), None, "RUNNING",
            request.method, request.metric, space, [c.text for c in request.constraints],
            request.walk_forward[0] if request.walk_forward else None, period[0], period[1], executor, None)
        with self.store.transaction() as con:
            store_opt.start_optimization(con, row)

    def add(self, outcome: Outcome) -> None:
        t = outcome.trial
        start, end = t.period
        self.pending.append(store_opt.TrialRow(
            self.optimization_id, t.trial_id, t.number, t.phase, t.window.number if t.window else None, start, end,
            t.params, outcome.stats, outcome.score, outcome.error, outcome.seconds, outcome.worker))
        if time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            with self.store.transaction() as con:
                self.written += store_opt.record_trials(con, self.pending)
            self.pending = []
        self.flushed_at = time.monotonic()

    def finish(self, status: str, best_params: dict[str, Any] | None) -> None:
        self.flush()
        with self.store.transaction() as con:
            store_opt.finish_optimization(con, self.optimization_id, status=status, best_params=best_params)
