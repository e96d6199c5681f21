"""plan / apply / status / validate / init / schema through the real CLI on real git repos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.loader import load_worktree
from minitrade.store.applied import applied_resources, last_applied, last_attempt

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_plan_apply_plan_round_trip(trading_repo) -> None:
    repo = str(trading_repo.path)
    first = cli("plan", "--repo", repo)
    assert first.exit_code == 2, first.output
    assert "+ plan sma-aapl" in first.output and "Next runs:" in first.output
    applied = cli("apply", "--yes", "--repo", repo)
    assert applied.exit_code == 0, applied.output
    assert f"Applied commit {trading_repo.head[:8]}" in applied.output
    again = cli("plan", "--repo", repo)
    assert again.exit_code == 0 and "No changes" in again.output
    idempotent = cli("apply", "--yes", "--repo", repo)
    assert idempotent.exit_code == 0 and "Already applied" in idempotent.output


def test_editing_one_field_shows_exactly_that_field(trading_repo) -> None:
    repo = str(trading_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    trading_repo.edit("plans/sma-aapl.yaml", "fast: 20", "fast: 25")
    trading_repo.commit("faster")
    result = cli("plan", "--repo", repo)
    assert result.exit_code == 2
    changed = [line.strip() for line in result.output.splitlines() if line.startswith(("  ~", "  +", "  -", "      "))]
    assert changed == ["~ plan sma-aapl", "params.fast: 20 -> 25"]


def test_deleting_a_plan_shows_minus_and_removes_it_on_apply(trading_repo) -> None:
    repo = str(trading_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    trading_repo.remove("plans/sma-aapl.yaml")
    trading_repo.commit("drop sma")
    result = cli("plan", "--repo", repo)
    assert result.exit_code == 2 and "- plan sma-aapl" in result.output
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    snap = load_worktree(trading_repo.path)
    with snap.store().transaction() as con:
        assert ("plan", "sma-aapl") not in applied_resources(con)


def test_invalid_commit_is_rejected_and_applied_state_kept(trading_repo) -> None:
    repo = str(trading_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    good = trading_repo.head
    trading_repo.edit("plans/sma-aapl.yaml", "cash: 10000", "cash: -10")
    trading_repo.commit("broken cash")
    result = cli("apply", "--yes", "--repo", repo)
    assert result.exit_code == 1
    assert "plans/sma-aapl.yaml:" in result.output and "cash" in result.output
    with _store(trading_repo) as con:
        assert last_applied(con).commit_sha == good  # type: ignore[union-attr]
        attempt = last_attempt(con)
        assert attempt is not None and attempt.outcome == "rejected" and attempt.commit_sha == trading_repo.head
        assert applied_resources(con)[("plan", "sma-aapl")].spec["cash"] == 10000
    status = cli("status", "--repo", repo)
    assert status.exit_code == 0
    assert f"Applied: commit {good[:8]}" in status.output
    assert "Last attempt rejected" in status.output and "plans/sma-aapl.yaml:" in status.output


def _store(trading_repo):
    from minitrade.store import Store

    return Store(trading_repo.path / "state" / "minitrade.duckdb").transaction()


def test_apply_refuses_dirty_tree_unless_allowed(trading_repo) -> None:
    repo = str(trading_repo.path)
    trading_repo.edit("plans/sma-aapl.yaml", "fast: 20", "fast: 21")
    refused = cli("apply", "--yes", "--repo", repo)
    assert refused.exit_code == 1 and "uncommitted changes in plans/sma-aapl.yaml" in refused.output
    allowed = cli("apply", "--yes", "--allow-dirty", "--repo", repo)
    assert allowed.exit_code == 0 and "(dirty)" in allowed.output
    with _store(trading_repo) as con:
        applied = last_applied(con)
        assert applied is not None and applied.dirty is True
        assert applied_resources(con)[("plan", "sma-aapl")].spec["params"]["fast"] == 21


def test_validate_and_plan_read_the_working_tree_and_say_it_differs(trading_repo) -> None:
    trading_repo.edit("plans/sma-aapl.yaml", "fast: 20", "fast: 22")
    result = cli("validate", "--repo", str(trading_repo.path))
    assert result.exit_code == 0
    assert "differs from HEAD" in result.output and "plans/sma-aapl.yaml" in result.output
    at_head = cli("plan", "--json", "--rev", "HEAD", "--repo", str(trading_repo.path))
    doc = json.loads(at_head.output)
    plan = next(c for c in doc["changes"] if c["name"] == "sma-aapl")
    assert {f["path"]: f["after"] for f in plan["fields"]}["params.fast"] == 20


def test_plan_json_is_versioned_and_lists_next_runs(trading_repo) -> None:
    result = cli("plan", "--json", "--repo", str(trading_repo.path))
    assert result.exit_code == 2
    doc = json.loads(result.output)
    assert doc["format_version"] == 1
    assert doc["summary"]["create"] == len(doc["changes"]) > 0
    assert all(len(times) == 5 for times in doc["next_runs"].values())


def test_validate_reports_errors_with_exit_one(trading_repo) -> None:
    trading_repo.edit("plans/sma-aapl.yaml", "broker: manual", "broker: manaul")
    result = cli("validate", "--repo", str(trading_repo.path))
    assert result.exit_code == 1
    assert "plans/sma-aapl.yaml:13: broker: unknown broker 'manaul' (did you mean 'manual'?)" in result.output


def test_init_scaffolds_a_repo_that_plans_and_applies(tmp_path: Path) -> None:
    target = tmp_path / "new"
    assert cli("init", str(target)).exit_code == 0
    assert (target / ".git").is_dir() and (target / "schemas" / "plan.schema.json").is_file()
    assert (target / "plans" / "example.yaml").read_text().startswith("# yaml-language-server: $schema=")
    assert cli("validate", "--repo", str(target)).exit_code == 0
    assert cli("plan", "--repo", str(target)).exit_code == 2
    assert cli("apply", "--yes", "--repo", str(target)).exit_code == 0
    assert cli("plan", "--repo", str(target)).exit_code == 0
    refused = cli("init", str(target))
    assert refused.exit_code == 1 and "already has" in refused.output


def test_schema_is_derived_from_the_models(tmp_path: Path) -> None:
    assert cli("schema", "--out", str(tmp_path)).exit_code == 0
    plan = json.loads((tmp_path / "plan.schema.json").read_text())
    assert plan["additionalProperties"] is False
    assert {"strategy", "universe", "run_at", "cash"} <= set(plan["required"])
    assert "class" in plan["properties"]


def test_real_subprocess_exit_codes(trading_repo) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-m", "minitrade", "plan", "--repo", str(trading_repo.path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Plan: " in run.stdout
    bad = subprocess.run([sys.executable, "-m", "minitrade", "plan", "--repo", str(trading_repo.path / "nope")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "minitrade.yaml: not found" in bad.stderr
    helped = subprocess.run([sys.executable, "-m", "minitrade", "plan", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "2 = changes" in helped.stdout


def test_the_telegram_section_is_planned_and_applied_like_any_resource(trading_repo, monkeypatch) -> None:
    repo = str(trading_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    monkeypatch.setenv("TG_TOKEN", "123456:AAE-secret-bot-token-value")
    trading_repo.write("minitrade.yaml", trading_repo.read("minitrade.yaml")
                       + "telegram:\n  bot_token: ${TG_TOKEN}\n  allowed_chats: [12345]\n")
    trading_repo.commit("control from the phone")
    planned = cli("plan", "--json", "--repo", repo)
    assert planned.exit_code == 2, planned.output
    doc = json.loads(planned.output)
    assert [(c["action"], c["kind"], c["name"]) for c in doc["changes"]] == [("create", "telegram", "bot")]
    assert "${TG_TOKEN}" in planned.output and "AAE-secret" not in planned.output
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    assert cli("plan", "--repo", repo).exit_code == 0, "applied: nothing left to change"
