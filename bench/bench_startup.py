"""What a person waits for: whole `minitrade` processes against the least any program could do.

    python bench/bench_startup.py [--plans 500] [--repeat 5]

(a) `minitrade --help` as a whole process (interpreter start, imports, help) against `python -c pass`
    (target: at most 10x).
(b) `minitrade plan` as a whole process over a generated trading repo of --plans plans (the repo of
    bench_plan.py, git init + commit, nothing applied: every plan is a create) against reading and
    parsing the same plan files in this process: read each file and parse it with PyYAML's C loader,
    the fastest parse there is (target: at most 4x). The state database is created by an untimed
    first run; every timed run starts a fresh interpreter, so calendars and caches are built again,
    as they are for a person typing the command.

Each figure is the best of --repeat runs; the ratios are printed side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import generate  # noqa: E402  (the same 500-plan repo as bench_plan.py)

HELP_TARGET, PLAN_TARGET = 10.0, 4.0


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def process(args: Sequence[str], expect: int = 0) -> Callable[[], object]:
    # PYTHONPATH: this checkout's code, also when minitrade is installed from elsewhere.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}

    def run() -> object:
        done = subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert done.returncode == expect, (args, done.returncode, done.stderr[-2000:])
        return done
    return run


def read_and_parse(files: list[Path]) -> Callable[[], object]:
    def run() -> object:
        return [yaml.load(f.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) for f in files]
    return run


def line(label: str, seconds: float, base_label: str, base: float, target: float) -> None:
    ratio = seconds / base
    verdict = "ok" if ratio <= target else "over target"
    print(f"{label:<44} {seconds:7.3f} s   {base_label:<34} {base:7.3f} s   "
          f"ratio {ratio:5.1f}x (target <= {target:g}x: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    empty = best(process(["-c", "pass"]), args.repeat)
    helped = best(process(["-m", "minitrade", "--help"]), args.repeat)
    line("minitrade --help (whole process)", helped, "python -c pass", empty, HELP_TARGET)

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp) / "trading"
        generate(root, args.plans)
        files = sorted((root / "plans").glob("*.yaml"))
        plan = process(["-m", "minitrade", "plan", "--repo", str(root)], expect=2)
        plan()      # creates the state database; not timed
        parsed = best(read_and_parse(files), args.repeat)
        whole = best(plan, args.repeat)
        line(f"minitrade plan, {len(files)} plans (whole process)", whole,
             f"read + parse {len(files)} files (in-process)", parsed, PLAN_TARGET)


if __name__ == "__main__":
    main()
