"""Hostile trading repos through the real CLI: they are refused with file:line, quickly, in little memory."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli import app

BROKEN = Path(__file__).parent / "fixtures" / "broken"

# Address space the `validate` child may map. A normal `validate` of the embedded default needs about
# 270 MiB here (python, numpy/pandas/pydantic imports and their shared libraries, one OpenBLAS thread);
# below that it dies importing. 512 MiB leaves that margin twice over, and is far below what the alias
# bomb needed before it was bounded (it grew past 9 GB), so an unbounded expansion fails the test with
# a MemoryError instead of the exact message below.
ADDRESS_SPACE = 512 * 1024 * 1024


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _validate_limited(repo: Path) -> tuple[int, str, float, int]:
    """Run `minitrade validate` under the address-space cap: exit code, output, seconds, peak RSS KiB."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # one thread: its buffers are part of the 270 MiB
    started = time.monotonic()
    with subprocess.Popen([sys.executable, "-m", "minitrade", "validate", "--repo", str(repo)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          preexec_fn=_limited) as child:
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # wait4: this child's own peak RSS
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, output, time.monotonic() - started, usage.ru_maxrss


def test_alias_bomb_is_refused_at_its_alias_under_a_memory_cap(trading_repo) -> None:
    shutil.copyfile(BROKEN / "plans" / "alias_bomb.yaml", trading_repo.path / "plans" / "alias_bomb.yaml")
    code, output, seconds, peak_kib = _validate_limited(trading_repo.path)
    print(f"alias bomb: validate took {seconds:.2f} s, peak RSS {peak_kib / 1024:.0f} MiB")
    assert code == 1, output
    assert output.strip().splitlines()[-1].strip() == (
        "plans/alias_bomb.yaml:13: invalid YAML: aliases expand to more than 10000 nodes "
        "(write the values out, or share smaller blocks through fewer aliases)")


def test_the_same_repo_without_the_bomb_validates_under_the_cap(trading_repo) -> None:
    code, output, seconds, peak_kib = _validate_limited(trading_repo.path)
    print(f"normal: validate took {seconds:.2f} s, peak RSS {peak_kib / 1024:.0f} MiB")
    assert code == 0, output


SECRET = "hunter2tokenAAE"  # the first token of a secrets file: what an import error used to print


@pytest.mark.parametrize("how", ["symlink", "dotdot", "absolute"])
def test_a_strategy_outside_the_repo_is_never_read_nor_echoed(trading_repo, tmp_path: Path,
                                                             how: str) -> None:
    secrets = tmp_path / "secrets.py"
    secrets.write_text(f"{SECRET} extra words\n")
    target = {"symlink": "strategies/linked.py", "dotdot": "strategies/../../secrets.py",
              "absolute": str(secrets)}[how]
    if how == "symlink":
        (trading_repo.path / "strategies" / "linked.py").symlink_to(secrets)
    trading_repo.edit("plans/sma-aapl.yaml", "strategies/sma_crossover.py", target)
    trading_repo.commit("strategy outside the repo")
    runner = CliRunner()
    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        result = runner.invoke(app, [*command, "--repo", str(trading_repo.path)], catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert "plans/sma-aapl.yaml:4: strategy: strategy " in result.output, result.output
        assert SECRET not in result.output
    state = trading_repo.path / "state"
    stored = [p.read_bytes() for p in state.rglob("*") if p.is_file()] if state.exists() else []
    assert not any(SECRET.encode() in blob for blob in stored)
