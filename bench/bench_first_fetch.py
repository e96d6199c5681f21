"""A large first fetch (2,000 tickers from the fake Yahoo): batched vs one ticker at a time.

    python bench/bench_first_fetch.py [--tickers 2000] [--years 3] [--latency 0.0]

The fake Yahoo runs in a process of its own (its price walks built before any timing); each way
of fetching runs in a fresh child process against it, on an empty DuckDB file:
- per-ticker: what a run did before batching, `fresh_prices` asking the cache one ticker at a
  time (a few transactions and one request per ticker), keeping every frame (the run needs them);
- batched: `fresh_prices` through the cache's batches (concurrency 8, 100 tickers a transaction),
  keeping every frame: what a run's price step does now;
- warm: `minitrade data fetch` itself (batched, keeps no frame), as a whole process.
Printed for each: in-process wall time of the fetch and peak RSS growth during it, and the
whole process's wall time (start-up included) and peak RSS; then the ratios per-ticker/batched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def status_mib(field: str) -> float:
    """VmRSS or VmHWM of this process in MiB (VmHWM is reset by exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the child: one way of fetching, measured from inside -----------------------------------------
class OneByOne:
    """Not a PriceCache: `fresh_prices` asks it one ticker at a time, as runs did before batching."""

    def __init__(self, cache: object) -> None:
        self.cache = cache
        self.name = cache.name  # type: ignore[attr-defined]

    def daily(self, ticker: str, start: date, end: date | None = None):
        return self.cache.daily(ticker, start, end)  # type: ignore[attr-defined]


def child(mode: str, url: str, db: str, tickers: int, start: date, today: date) -> None:
    from minitrade.data.cache import PriceCache
    from minitrade.data.freshness import fresh_prices
    from minitrade.data.yahoo import YahooDataSource
    from minitrade.models import YahooSource
    from minitrade.store import Store

    names = [f"T{i:04d}" for i in range(tickers)]
    source = YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=url, timeout=60))
    cache = PriceCache(Store(db), source, today=lambda: today)
    before = status_mib("VmRSS")
    began = time.perf_counter()
    served = OneByOne(cache) if mode == "per-ticker" else cache
    frames = fresh_prices(served, names, start, today, needed=None,  # type: ignore[arg-type]
                          at=datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=22))
    seconds = time.perf_counter() - began
    bars = sum(len(f) for f in frames.values())
    print(json.dumps({"seconds": seconds, "rss_before": before, "rss_peak": status_mib("VmHWM"), "bars": bars,
                      "requests": cache.fetches}))


# -- the fake, in its own process ---------------------------------------------------------------------
def serve(tickers: int, years: int, latency: float) -> None:
    """Serve the fake Yahoo until stdin closes; print its URL once every walk is built."""
    from minitrade.testing.market import PriceBook, Session
    from minitrade.testing.yahoo import FakeYahoo

    today = datetime.now(UTC).date()
    start = today - timedelta(days=365 * years)
    book = PriceBook(now=datetime.now(UTC), walk_start=start - timedelta(days=7))
    for i in range(tickers):  # build every walk now: each child then finds the fake equally quick
        book.bars(f"T{i:04d}", start, today, Session())
    with FakeYahoo(book) as fake:
        fake.latency = latency
        print(fake.url, flush=True)
        sys.stdin.read()


# -- the parent: stdlib only (small), the children, the table ---------------------------------------
def spawn_measured(args: list[str]) -> tuple[float, float, str]:
    """Run a child; its wall time, its own peak RSS (MiB, from wait4) and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.posix_spawn(args[0], args, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:6])} failed ({os.waitstatus_to_exitcode(status)}):\n{text}\n{errors}")
    return wall, usage.ru_maxrss / 1024, text


def write_repo(root: Path, url: str, tickers: int, start: date) -> None:
    (root / "plans").mkdir(parents=True)
    (root / "strategies").mkdir()
    (root / "minitrade.yaml").write_text(
        f'timezone: America/New_York\nstate_dir: state\ndata_sources:\n'
        f'  yahoo: {{type: yahoo, base_url: "{url}", timeout: 60}}\n')
    (root / "strategies" / "hold.py").write_text(
        "import backtrader as bt\n\n\nclass Hold(bt.Strategy):\n    def next(self):\n        pass\n")
    names = ", ".join(f"T{i:04d}" for i in range(tickers))
    (root / "plans" / "all.yaml").write_text(
        f'strategy: strategies/hold.py\nuniverse: [{names}]\ndata_source: yahoo\n'
        f'backtest_start: {start}\nrun_at: "15:45"\ncash: 10000\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=2000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="Seconds the fake waits before each answer (a real round trip is 0.1-0.5).")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=6, metavar=("MODE", "URL", "DB", "TICKERS", "START", "TODAY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, url, db, tickers, start, today = args.child
        child(mode, url, db, int(tickers), date.fromisoformat(start), date.fromisoformat(today))
        return

    if args.serve:
        serve(args.tickers, args.years, args.latency)
        return
    today = datetime.now(UTC).date()
    start = today - timedelta(days=365 * args.years)
    results: dict[str, dict[str, float]] = {}
    with subprocess.Popen([sys.executable, __file__, "--serve", "--tickers", str(args.tickers), "--years",
                           str(args.years), "--latency", str(args.latency)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}) as fake, \
            tempfile.TemporaryDirectory() as tmp:
        assert fake.stdout is not None and fake.stdin is not None
        url = fake.stdout.readline().strip()
        for mode in ("per-ticker", "batched"):
            db = str(Path(tmp) / mode / "minitrade.duckdb")
            wall, peak, out = spawn_measured([sys.executable, __file__, "--child", mode, url, db,
                                              str(args.tickers), start.isoformat(), today.isoformat()])
            inside = json.loads(out.strip().splitlines()[-1])
            results[mode] = {**inside, "wall": wall, "peak": peak}
        repo = Path(tmp) / "repo"
        write_repo(repo, url, args.tickers, start)
        wall, peak, _ = spawn_measured([sys.executable, "-m", "minitrade", "data", "fetch", "--repo", str(repo)])
        results["warm"] = {"wall": wall, "peak": peak}
        fake.stdin.close()

    one, many, warm = results["per-ticker"], results["batched"], results["warm"]
    print(f"first fetch of {args.tickers} tickers x {args.years} years ({many['bars']:,.0f} bars) from the fake "
          f"Yahoo on 127.0.0.1 ({args.latency * 1000:.0f} ms added latency), empty DuckDB, {os.cpu_count()} cores")
    print("                         in-process             whole process")
    print("                         wall s   RSS growth MiB  wall s   peak RSS MiB")
    for label, r in (("per-ticker (old run)", one), ("batched (run now)", many)):
        print(f"  {label:22} {r['seconds']:7.1f}  {r['rss_peak'] - r['rss_before']:10.0f}  "
              f"{r['wall']:10.1f}  {r['peak']:10.0f}")
    print(f"  {'data fetch (warm only)':22} {'':7}  {'':10}  {warm['wall']:10.1f}  {warm['peak']:10.0f}")
    print(f"  ratio per-ticker/batched: wall {one['seconds'] / many['seconds']:.1f}x in-process, "
          f"{one['wall'] / many['wall']:.1f}x whole process; peak RSS {one['peak'] / many['peak']:.2f}x "
          f"(growth {(one['rss_peak'] - one['rss_before']) / max(1.0, many['rss_peak'] - many['rss_before']):.2f}x)")
    print(f"  requests: per-ticker {one['requests']:.0f}, batched {many['requests']:.0f}")


if __name__ == "__main__":
    main()
