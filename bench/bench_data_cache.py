"""Price cache: cost of a plan's second run vs its first, 20 tickers x 10 years from the fake Yahoo.

    python bench/bench_data_cache.py [--tickers 20] [--years 10] [--latency 0.1]

Everything runs in this process against the fake on 127.0.0.1 (the production Yahoo client and
cache, a real DuckDB file). Prints:
- first run (empty cache) vs second run after the close (target: >= 20x less time, 0 requests),
- second run while the exchange is open (one small request per ticker for today's bar),
- cache read throughput in rows/s (reads that need no request).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitrade.data.cache import PriceCache
from minitrade.data.yahoo import YahooDataSource
from minitrade.models import YahooSource
from minitrade.store import Store
from minitrade.testing.yahoo import FakeYahoo

AFTER_CLOSE = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
OPEN = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def one_run(cache: PriceCache, tickers: list[str], start: date) -> tuple[float, int]:
    began = time.perf_counter()
    frames = cache.daily_many(tickers, start)
    return time.perf_counter() - began, sum(len(f) for f in frames.values())


def scenario(fake: FakeYahoo, folder: Path, tickers: list[str], start: date, first_at: datetime,
             second_at: datetime) -> dict[str, float]:
    fake.clear()
    fake.book.now = first_at
    source = YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=fake.url, timeout=30))
    cache = PriceCache(Store(folder / "minitrade.duckdb"), source, today=lambda: fake.book.now.date())
    first, rows = one_run(cache, tickers, start)
    first_requests = len(fake.requests)
    fake.book.now = second_at
    second, _ = one_run(cache, tickers, start)
    return {"first": first, "second": second, "rows": rows, "first_requests": first_requests,
            "second_requests": len(fake.requests) - first_requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="Seconds the fake waits before each answer (a real round trip is 0.1-0.5).")
    args = parser.parse_args()
    tickers = [f"T{i:02d}" for i in range(args.tickers)]
    start = AFTER_CLOSE.date() - timedelta(days=365 * args.years)
    with FakeYahoo() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.latency = args.latency
        closed = scenario(fake, Path(tmp) / "closed", tickers, start, AFTER_CLOSE, AFTER_CLOSE)
        live = scenario(fake, Path(tmp) / "open", tickers, start, OPEN, OPEN + timedelta(minutes=30))

        store = Store(Path(tmp) / "closed" / "minitrade.duckdb")
        cache = PriceCache(store, YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=fake.url, timeout=30)),
                           today=lambda: AFTER_CLOSE.date())
        fake.clear()
        repeats, rows, began = 3, 0, time.perf_counter()
        for _ in range(repeats):
            rows += sum(len(f) for f in cache.daily_many(tickers, start).values())
        read_seconds = time.perf_counter() - began
        assert not fake.requests, "cache reads must not reach the network"

    n = len(tickers)
    print(f"price cache, {n} tickers x {args.years} years ({closed['rows']:,.0f} bars), fake Yahoo on 127.0.0.1, "
          f"{args.latency * 1000:.0f} ms added latency")
    print(f"  first run (empty cache):      {closed['first']:7.3f} s  {closed['first_requests'] / n:.2f} requests/ticker")
    print(f"  second run after the close:   {closed['second']:7.3f} s  {closed['second_requests'] / n:.2f} requests/ticker"
          f"  -> {closed['first'] / closed['second']:.1f}x less time (target >= 20x)")
    print(f"  first run while open:         {live['first']:7.3f} s  {live['first_requests'] / n:.2f} requests/ticker")
    print(f"  second run while open:        {live['second']:7.3f} s  {live['second_requests'] / n:.2f} requests/ticker"
          f"  -> {live['first'] / live['second']:.1f}x less time (today's bar + overlap only)")
    print(f"  cache read throughput:        {rows / read_seconds:,.0f} rows/s "
          f"({repeats} x {n} tickers, one DuckDB transaction per call)")


if __name__ == "__main__":
    main()
