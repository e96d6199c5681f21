"""`minitrade plan --format markdown`: the plan as a pull-request comment, from the same ChangeSet."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.cli.app import USAGE
from tests.conftest import TradingRepo

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def change_three_plans(repo: TradingRepo) -> None:
    """Add a plan, change a param of another, remove a third."""
    repo.write("plans/sma-msft.yaml", repo.read("plans/sma-aapl.yaml").replace("name: sma-aapl", "name: sma-msft")
               .replace("universe: [AAPL]", "universe: [MSFT]"))
    repo.edit("plans/sma-aapl.yaml", "fast: 20", "fast: 25")
    repo.remove("plans/equal-weight.yaml")
    repo.commit("add msft, faster aapl, drop equal-weight")


def diff_block(markdown: str) -> list[str]:
    return markdown.split("```diff\n", 1)[1].split("\n```", 1)[0].splitlines()


def test_markdown_shows_added_changed_and_removed_plans_against_the_applied_state(trading_repo: TradingRepo) -> None:
    repo = str(trading_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    applied = trading_repo.head
    change_three_plans(trading_repo)
    result = cli("plan", "--format", "markdown", "--repo", repo)
    assert result.exit_code == 2, result.output
    md = result.output
    assert md.startswith(f"### minitrade plan for `main` @ `{trading_repo.head[:8]}`\n")
    assert f"Compared with: commit {applied[:8]} at " in md
    assert "**Plan: 1 to add, 1 to change, 0 to replace, 2 to remove.**" in md
    lines = diff_block(md)
    headers = [line for line in lines if not line.startswith(("+     ", "-     "))]
    assert headers == ["- strategy strategies/equal_weight.py", "- plan equal-weight", "~ plan sma-aapl",
                       "+ plan sma-msft"]    # its strategy goes with the only plan that used it
    i = lines.index("~ plan sma-aapl")
    assert lines[i + 1:i + 3] == ["-     params.fast: 20", "+     params.fast: 25"]
    assert "+     universe.MSFT: {}" in lines
    assert all(line.startswith("-") for line in lines[:lines.index("~ plan sma-aapl")])
    # The same ChangeSet as --json: one change per header, same summary.
    doc = json.loads(cli("plan", "--json", "--repo", repo).output)
    assert doc["summary"] == {"create": 1, "update": 1, "replace": 0, "delete": 2}
    assert [f"{c['symbol']} {c['kind']} {c['name']}" for c in doc["changes"]] == headers


def test_markdown_carries_the_plan_warnings_and_next_runs(trading_repo: TradingRepo) -> None:
    md = cli("plan", "--format", "markdown", "--repo", str(trading_repo.path)).output
    text = cli("plan", "--repo", str(trading_repo.path)).output
    warnings = [line.removeprefix("warning: ") for line in text.splitlines() if line.startswith("warning: ")]
    assert warnings, text       # the shipped sample data ends in 2013: every plan warns of stale data
    section = md.split("**Warnings**\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section == [f"- :warning: {w}" for w in warnings]
    assert "<details><summary>Next runs</summary>" in md and "| sma-aapl | " in md


def test_markdown_against_a_base_commit_needs_no_state(trading_repo: TradingRepo) -> None:
    base = trading_repo.head
    trading_repo.git("checkout", "-q", "-b", "faster")
    change_three_plans(trading_repo)
    result = cli("plan", "--format", "markdown", "--base", "main", "--repo", str(trading_repo.path))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"### minitrade plan for `faster` @ `{trading_repo.head[:8]}`")
    assert f"Compared with: main (commit {base[:8]})" in result.output
    assert "**Plan: 1 to add, 1 to change, 0 to replace, 2 to remove.**" in result.output
    assert not (trading_repo.path / "state").exists()
    same = cli("plan", "--format", "markdown", "--base", "HEAD", "--repo", str(trading_repo.path))
    assert same.exit_code == 0 and "**No changes**" in same.output and "```diff" not in same.output


def test_markdown_against_an_invalid_base_compares_with_nothing_and_says_so(trading_repo: TradingRepo) -> None:
    trading_repo.edit("plans/sma-aapl.yaml", "cash: 10000", "cash: -10")
    broken = trading_repo.commit("broken")
    trading_repo.edit("plans/sma-aapl.yaml", "cash: -10", "cash: 10000")
    trading_repo.commit("fixed")
    result = cli("plan", "--format", "markdown", "--base", broken, "--repo", str(trading_repo.path))
    assert result.exit_code == 2, result.output
    assert f"- :warning: base {broken} does not validate (1 issue(s)): compared with nothing" in result.output
    assert "+ plan sma-aapl" in result.output


def test_a_backtick_fence_in_a_value_cannot_close_the_diff_block(trading_repo: TradingRepo) -> None:
    # a param the strategy declares (validate checks plan params against the strategy's own), declared before
    trading_repo.edit("strategies/sma_crossover.py", '("invest", 0.95))', '("invest", 0.95), ("note", ""))')
    trading_repo.commit("declare note")
    trading_repo.edit("plans/sma-aapl.yaml", "params: {fast: 20, slow: 50}",
                      "params: {fast: 20, slow: 50, note: \"```\"}")
    trading_repo.commit("note")
    md = cli("plan", "--format", "markdown", "--base", "HEAD~1", "--repo", str(trading_repo.path)).output
    assert "````diff\n~ plan sma-aapl" in md and md.count("````") == 2


def test_format_json_is_json_and_json_disagreeing_with_format_is_a_usage_error(trading_repo: TradingRepo) -> None:
    repo = str(trading_repo.path)
    assert json.loads(cli("plan", "--format", "json", "--repo", repo).output)["kind"] == "plan"
    assert cli("plan", "--json", "--format", "json", "--repo", repo).exit_code == 2
    assert cli("plan", "--json", "--format", "markdown", "--repo", repo).exit_code == USAGE
    assert cli("plan", "--format", "yaml", "--repo", repo).exit_code == USAGE
