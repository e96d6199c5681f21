"""Report generation time: one plan with 10 years of daily equity, and 100 such plans.

Synthetic runs are written into a temporary DuckDB file (tests/reports/synthetic.py), then the
site is generated exactly as `minitrade report` does (read the store, render, write files).
Times are printed with a ratio against a baseline measured in the same process: dumping the same
equity rows to CSV with pandas, i.e. the cost of merely writing the data out once.

    python bench/bench_reports.py            # 1 plan and 100 plans
    python bench/bench_reports.py --plans 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitrade.runner.publish import write_site
from minitrade.store import Store
from tests.reports.synthetic import seed_plan, seed_reconciliation

DAYS = 2520  # 10 years of sessions


def baseline(store: Store, out: Path) -> float:
    """Read every equity row and write it as CSV with pandas: the floor for any report."""
    start = time.perf_counter()
    with store.transaction() as con:
        frame = con.execute("SELECT * FROM equity ORDER BY run_id, date").df()
    frame.to_csv(out / "baseline.csv", index=False)
    return time.perf_counter() - start


def measure(plans: int, root: Path) -> None:
    store = Store(root / f"bench-{plans}.duckdb")
    t0 = time.perf_counter()
    for i in range(plans):
        seed_plan(store, f"plan-{i:03d}", days=DAYS, seed=i)
    seed_reconciliation(store)
    seeded = time.perf_counter() - t0
    base = min(baseline(store, root) for _ in range(3))
    out = root / f"reports-{plans}"
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    write_site(store, out, now=now)  # warm: imports, templates, calendars
    runs = []
    for _ in range(3 if plans == 1 else 1):
        start = time.perf_counter()
        write_site(store, out, now=now)
        runs.append(time.perf_counter() - start)
    best = min(runs)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{plans:>4} plan(s) x {DAYS} days: report {best:7.3f} s ({best / plans * 1000:6.1f} ms/plan), "
          f"baseline CSV dump {base:6.3f} s, ratio {best / base:6.1f}x, site {size / 1e6:5.1f} MB "
          f"(seeding took {seeded:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=100, help="plans in the large case (default 100)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # third-party deprecations are not what is measured here
    with tempfile.TemporaryDirectory(prefix="mt-bench-reports-") as tmp:
        for count in (1, args.plans):
            measure(count, Path(tmp))


if __name__ == "__main__":
    main()
