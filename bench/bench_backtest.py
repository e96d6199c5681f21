"""Benchmark of the backtest engine against plain backtrader (not a test).

    python bench/bench_backtest.py            # (a) overhead 1x5000 and 20x2500, (b) bars/s, (c) memory 100x2500
    python bench/bench_backtest.py --quick    # smaller sizes, for a smoke run

(a) the same SMA-crossover strategy and synthetic random-walk data through `run_backtest` (which adds
price checks, fill recording, the rebuilt books and statistics) and through a Cerebro set up by hand
with the SAME data feed (minitrade's numpy ArrayFeed: backtrader's own PandasData is several times
slower, and comparing against it would hide our overhead behind its slowness); prints the overhead
ratio (target < 10 %) in one process, and beside it the whole-process figure: a fresh interpreter
per run, start-up and imports included (plain: backtrader, numpy, pandas and the feed; ours: the
run path). (b) asset-bars per second of our engine. (c) peak RSS of a fresh process running 100
assets x 2500 bars, ours and plain backtrader.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backtrader as bt
import numpy as np
import pandas as pd

# The feed both engines use; the rest of minitrade is imported by `ours` only, so that a fresh
# plain process pays for no more than plain backtrader needs.
from minitrade.runner.feed import ArrayFeed

STRATEGY = '''
import backtrader as bt


class SmaCrossAll(bt.Strategy):
    params = (("fast", 10), ("slow", 30), ("size", 10))

    def __init__(self):
        self.cross = [bt.ind.CrossOver(bt.ind.SMA(d.close, period=self.p.fast),
                                       bt.ind.SMA(d.close, period=self.p.slow)) for d in self.datas]

    def next(self):
        for data, cross in zip(self.datas, self.cross):
            held = self.getposition(data).size
            if cross[0] > 0 and not held:
                self.buy(data=data, size=self.p.size)
            elif cross[0] < 0 and held:
                self.close(data=data)
'''
COMMISSION = 0.001
CASH = 1_000_000


def random_walks(assets: int, bars: int, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2000-01-03", periods=bars)
    frames = {}
    for i in range(assets):
        close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, bars)))
        open_ = close * np.exp(rng.normal(0, 0.004, bars))
        frames[f"T{i:03d}"] = pd.DataFrame({
            "open": open_, "high": np.maximum(open_, close) * 1.003, "low": np.minimum(open_, close) * 0.997,
            "close": close, "volume": 1e5}, index=index)
    return frames


def plan_for(frames: dict[str, pd.DataFrame]) -> Any:
    from minitrade.models import Plan

    return Plan.model_validate({"name": "bench", "strategy": "bench.py", "universe": list(frames),
                                "data_source": "synthetic", "backtest_start": date(2000, 1, 1),
                                "run_at": ["15:45"], "order_type": "TOC", "cash": CASH})


LAST_CEREBRO_RUN = [0.0]
_cerebro_run = bt.Cerebro.run


def _timed_cerebro_run(self: bt.Cerebro, *args: object, **kwargs: object) -> object:
    start = time.perf_counter()
    try:
        return _cerebro_run(self, *args, **kwargs)
    finally:
        LAST_CEREBRO_RUN[0] = time.perf_counter() - start


bt.Cerebro.run = _timed_cerebro_run  # to split our own work from backtrader's


def run_ours(frames: dict[str, pd.DataFrame], cls: type) -> float:
    from minitrade.runner.backtest import run_backtest

    return run_backtest(plan_for(frames), frames, cls, commission=COMMISSION).final_equity


def run_plain(frames: dict[str, pd.DataFrame], cls: type) -> float:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.broker.set_coc(True)
    for name, frame in frames.items():
        cerebro.adddata(ArrayFeed(frame=frame, name=name))
    cerebro.addstrategy(cls)
    cerebro.run()
    return float(cerebro.broker.getvalue())


def strategy_for(engine: str) -> type:
    """Ours: loaded as minitrade loads strategy files. Plain: the same source, executed as is."""
    if engine == "ours":
        from minitrade.runner.strategy import load_strategy

        return load_strategy(STRATEGY, "bench_strategy.py")
    namespace: dict[str, Any] = {}
    exec(compile(STRATEGY, "bench_strategy.py", "exec"), namespace)
    return namespace["SmaCrossAll"]  # type: ignore[no-any-return]


def overhead(assets: int, bars: int, cls: type, repeat: int) -> None:
    """Alternate the two engines and keep each one's best time: other load on the box hits both alike."""
    frames = random_walks(assets, bars)
    run_plain(frames, cls)  # warm caches (imports, indicator classes)
    best = {"plain": float("inf"), "ours": float("inf"), "own": float("inf")}
    values = {}
    for _ in range(repeat):
        for name, fn in (("plain", run_plain), ("ours", run_ours)):
            start = time.perf_counter()
            values[name] = fn(frames, cls)
            best[name] = min(best[name], time.perf_counter() - start)
        best["own"] = min(best["own"], time.perf_counter() - start - LAST_CEREBRO_RUN[0])
    plain, ours = best["plain"], best["ours"]
    same = "same" if round(values["plain"], 2) == round(values["ours"], 2) else f"DIFFERENT {values}"
    print(f"{assets:>3} x {bars:<5} plain {plain:6.2f} s  ours {ours:6.2f} s  overhead {100 * (ours / plain - 1):+5.1f} %"
          f"  ours {assets * bars / ours:8,.0f} bars/s  plain {assets * bars / plain:8,.0f} bars/s  final equity {same}")
    print(f"{'':13}our own work outside cerebro.run {best['own']:.3f} s = {100 * best['own'] / plain:.1f} % of plain "
          "(load-independent part of the overhead)")
    whole = {"plain": float("inf"), "ours": float("inf")}
    for _ in range(repeat):
        for engine in ("plain", "ours"):
            whole[engine] = min(whole[engine], child(engine, assets, bars)[0])
    print(f"{'':13}whole process (fresh interpreter, imports included): plain {whole['plain']:6.2f} s  "
          f"ours {whole['ours']:6.2f} s  overhead {100 * (whole['ours'] / whole['plain'] - 1):+5.1f} %  "
          f"(in-process above: {100 * (ours / plain - 1):+5.1f} %)")


def child(engine: str, assets: int, bars: int) -> tuple[float, float, float]:
    """A fresh process runs one engine: (wall seconds, peak RSS in MB, seconds of the run alone)."""
    began = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--memory-child", engine, str(assets), str(bars)],
                         capture_output=True, text=True, check=True).stdout.split()
    return time.perf_counter() - began, float(out[0]), float(out[1])


def memory_child(engine: str, assets: int, bars: int) -> None:
    import resource

    cls = strategy_for(engine)
    frames = random_walks(assets, bars)
    start = time.perf_counter()
    (run_ours if engine == "ours" else run_plain)(frames, cls)
    seconds = time.perf_counter() - start
    print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} {seconds:.2f}")


def memory(assets: int, bars: int) -> None:
    for engine in ("plain", "ours"):
        wall, rss, seconds = child(engine, assets, bars)
        print(f"{assets:>3} x {bars:<5} {engine:5} peak RSS {rss:5.0f} MB  ({seconds:.1f} s run, "
              f"{assets * bars / seconds:,.0f} bars/s; whole process {wall:.1f} s)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    quick = "--quick" in sys.argv
    cls = strategy_for("ours")
    print("(a, b) run_backtest vs plain backtrader on the same ArrayFeed, SMA 10/30 crossover, TOC, commission 0.1 %, "
          "best of alternated runs")
    overhead(1, 1000 if quick else 5000, cls, repeat=3 if quick else 5)
    overhead(5 if quick else 20, 500 if quick else 2500, cls, repeat=1 if quick else 3)
    print("(c) peak memory, fresh process each")
    memory(10 if quick else 100, 500 if quick else 2500)


if __name__ == "__main__":
    main()
