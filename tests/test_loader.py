"""The loader: every broken input gives exact file:line errors; valid repos load from tree or commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from minitrade.errors import ConfigError
from minitrade.loader import Snapshot, load_commit, load_worktree, ticker_issues

BROKEN = Path(__file__).parent / "fixtures" / "broken"
CASES = [json.loads(line) for line in (BROKEN / "expected.jsonl").read_text().splitlines() if line.strip()]
SETTINGS = ('timezone: UTC\ndata_sources:\n  samples: {type: csv, path: "package:sample_data"}\n'
            "brokers:\n  manual: {type: manual}\n")
OK_PLAN = ("name: ok\nstrategy: strategies/sma.py\nuniverse: [AAPL]\ndata_source: samples\n"
           'backtest_start: 2010-01-04\nrun_at: "15:45"\ncash: 10000\n')


def _repo_with(tmp_path: Path, case: str) -> Path:
    kind, name = case.split("/")
    (tmp_path / "plans").mkdir()
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "sma.py").write_text("import backtrader as bt\n")
    for strategy in (BROKEN / "strategies").glob("*.py"):
        shutil.copyfile(strategy, tmp_path / "strategies" / strategy.name)
    if kind == "plans":
        (tmp_path / "minitrade.yaml").write_text(SETTINGS)
        shutil.copyfile(BROKEN / case, tmp_path / "plans" / name)
    else:
        shutil.copyfile(BROKEN / case, tmp_path / "minitrade.yaml")
        (tmp_path / "plans" / "ok.yaml").write_text(OK_PLAN)
    return tmp_path


def _validate(root: Path) -> Snapshot:
    """What `minitrade validate` checks: the load, then tickers against csv folders (offline)."""
    snapshot = load_worktree(root)
    issues = ticker_issues(snapshot)
    if issues:
        raise ConfigError(issues)
    return snapshot


def test_corpus_has_at_least_forty_broken_inputs() -> None:
    assert len(CASES) >= 40
    assert all(c["issues"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_broken_input_reports_exact_file_line_and_message(tmp_path: Path, case: dict[str, object]) -> None:
    root = _repo_with(tmp_path, str(case["case"]))
    with pytest.raises(ConfigError) as raised:
        _validate(root)
    assert [str(i) for i in raised.value.issues] == case["issues"]


def test_all_problems_across_files_are_listed_together(tmp_path: Path) -> None:
    root = _repo_with(tmp_path, "plans/typo_key.yaml")
    shutil.copyfile(BROKEN / "plans" / "cash_zero.yaml", root / "plans" / "cash_zero.yaml")
    shutil.copyfile(BROKEN / "plans" / "unknown_broker.yaml", root / "plans" / "unknown_broker.yaml")
    with pytest.raises(ConfigError) as raised:
        load_worktree(root)
    files = sorted({i.file for i in raised.value.issues})
    assert files == ["plans/cash_zero.yaml", "plans/typo_key.yaml", "plans/unknown_broker.yaml"]
    assert str(raised.value).startswith("3 problems in the trading repo:")


def test_plan_with_schema_errors_still_gets_its_references_checked(tmp_path: Path) -> None:
    root = _repo_with(tmp_path, "plans/cash_zero.yaml")
    (root / "plans" / "cash_zero.yaml").write_text(
        (root / "plans" / "cash_zero.yaml").read_text().replace("broker: manual", "broker: ib"))
    with pytest.raises(ConfigError) as raised:
        load_worktree(root)
    fields = sorted(i.field for i in raised.value.issues)
    assert fields == ["broker", "cash"]


def test_duplicate_plan_names_are_refused(tmp_path: Path) -> None:
    root = _repo_with(tmp_path, "settings/unknown_top_key.yaml")
    (root / "minitrade.yaml").write_text(SETTINGS)
    (root / "plans" / "copy.yaml").write_text(OK_PLAN)
    with pytest.raises(ConfigError) as raised:
        load_worktree(root)
    (issue,) = raised.value.issues
    assert issue.file == "plans/ok.yaml" and issue.line == 1
    assert "already used by plans/copy.yaml" in issue.message


def test_missing_settings_file_says_how_to_start(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    with pytest.raises(ConfigError, match=r"minitrade.yaml: not found.*minitrade init"):
        load_worktree(tmp_path)


def test_embedded_default_repo_loads_with_its_plans(trading_repo) -> None:
    snap = load_worktree(trading_repo.path)
    assert len(snap.plans) >= 3
    assert snap.commit == trading_repo.head and snap.dirty is False
    for plan in snap.plans.values():
        assert plan.strategy in snap.strategies


def test_commit_snapshot_ignores_working_tree_edits(trading_repo) -> None:
    name, path = "sma-aapl", "plans/sma-aapl.yaml"
    before = trading_repo.head
    trading_repo.edit(path, "cash: 10000", "cash: 12345")
    tree = load_worktree(trading_repo.path)
    assert tree.dirty is True and tree.plans[name].cash == 12345
    committed = load_commit(trading_repo.path, "HEAD")
    assert committed.commit == before and committed.plans[name].cash == 10000


def test_invalid_commit_is_reported_by_revision(trading_repo) -> None:
    trading_repo.write("plans/bad.yaml", "name: bad\ncash: -1\n")
    trading_repo.commit("bad plan")
    with pytest.raises(ConfigError, match=r"plans/bad.yaml:2: cash"):
        load_commit(trading_repo.path, "HEAD")
    assert load_commit(trading_repo.path, "HEAD~1").plans


def test_universe_accepts_list_string_and_pinned_conids(tmp_path: Path) -> None:
    root = _repo_with(tmp_path, "settings/unknown_top_key.yaml")
    (root / "minitrade.yaml").write_text(SETTINGS)
    (root / "plans" / "ok.yaml").write_text(OK_PLAN.replace("[AAPL]", "{AAPL: {conid: 265598}, MSFT: null}"))
    plan = load_worktree(root).plans["ok"]
    assert plan.universe["AAPL"].conid == 265598 and plan.universe["MSFT"].conid is None
    assert plan.tickers == ["AAPL", "MSFT"]


def test_plan_name_defaults_to_file_name(tmp_path: Path) -> None:
    root = _repo_with(tmp_path, "settings/unknown_top_key.yaml")
    (root / "minitrade.yaml").write_text(SETTINGS)
    (root / "plans" / "ok.yaml").unlink()
    (root / "plans" / "my-plan.yaml").write_text(OK_PLAN.replace("name: ok\n", ""))
    assert list(load_worktree(root).plans) == ["my-plan"]


LINK_HINT = ("keep the strategy as a regular file in strategies/ and write its path from the repo root, "
             "e.g. strategies/sma.py")


def _strategy_issue(root: Path, rev: str | None) -> str:
    with pytest.raises(ConfigError) as raised:
        load_commit(root, rev) if rev else load_worktree(root)
    (issue,) = raised.value.issues
    return str(issue)


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_a_symlinked_strategy_is_refused_alike_in_the_working_tree_and_in_a_commit(
        trading_repo, tmp_path: Path, linked: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "token.py").write_text("hunter2-secret-token\n")
    if linked == "file":
        (trading_repo.path / "strategies" / "leak.py").symlink_to(outside / "token.py")
        target = "strategies/leak.py"
    else:
        (trading_repo.path / "strategies" / "shared").symlink_to(outside, target_is_directory=True)
        target = "strategies/shared/token.py"
    trading_repo.edit("plans/sma-aapl.yaml", "strategies/sma_crossover.py", target)
    trading_repo.commit("a strategy through a link")
    refused = f"plans/sma-aapl.yaml:4: strategy: strategy file {target!r} is a symbolic link ({LINK_HINT})"
    assert _strategy_issue(trading_repo.path, None) == refused
    assert _strategy_issue(trading_repo.path, "HEAD") == refused


def test_a_symlinked_plan_file_is_refused_alike_in_the_working_tree_and_in_a_commit(
        trading_repo, tmp_path: Path) -> None:
    secret = tmp_path / "ib-pass"
    secret.write_text("name: hunter2-secret\n")
    (trading_repo.path / "plans" / "leak.yaml").symlink_to(secret)
    trading_repo.commit("a plan through a link")
    for rev in (None, "HEAD"):
        issue = _strategy_issue(trading_repo.path, rev)
        assert issue.startswith("plans/leak.yaml: is a symbolic link") and "hunter2" not in issue
