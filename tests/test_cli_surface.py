"""The command line as a whole: every command and subcommand, walked from the typer application.

Exit codes follow the one table of README.md ("Exit codes"); a usage error never exits 2, the code
`plan` uses for pending changes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.cli.app import CHANGES, ERROR, INTERRUPTED, OK, USAGE
from tests.conftest import ROOT, TradingRepo

runner = CliRunner()


def command_tree(command: Any = None, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group below `command` (default: the whole CLI), with its path of names."""
    command = typer.main.get_command(app) if command is None else command
    found: list[tuple[tuple[str, ...], Any]] = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += command_tree(sub, (*path, name))
    return found


ALL = command_tree()
COMMANDS = [pytest.param(path, id=" ".join(path) or "minitrade") for path, _ in ALL]
GROUPS = [pytest.param(path, id=" ".join(path) or "minitrade") for path, c in ALL if hasattr(c, "commands")]


def test_the_walk_sees_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"plan", "apply", "validate", "run", "replay", "daemon", "fill", "ib login", "ib fake-gateway",
            "notify test", "data accept"} <= names
    assert len(names) >= 25


def test_the_readme_documents_exactly_these_exit_codes() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    assert documented == {OK, ERROR, CHANGES, USAGE, INTERRUPTED}
    assert USAGE not in (ERROR, CHANGES)


@pytest.mark.parametrize("path", COMMANDS)
def test_an_unknown_option_is_a_usage_error_everywhere(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--no-such-option"])
    assert result.exit_code == USAGE, result.output
    assert "No such option" in result.output


@pytest.mark.parametrize("path", COMMANDS)
def test_help_succeeds_everywhere(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == OK, result.output


@pytest.mark.parametrize("path", GROUPS)
def test_an_unknown_subcommand_or_none_is_a_usage_error(path: tuple[str, ...]) -> None:
    assert runner.invoke(app, [*path, "no-such-command"]).exit_code == USAGE
    assert runner.invoke(app, list(path)).exit_code == USAGE


@pytest.mark.parametrize("args", [
    pytest.param(["fill", "some-order"], id="missing required option"),
    pytest.param(["fill", "some-order", "--price", "abc"], id="value of the wrong type"),
    pytest.param(["run"], id="missing argument"),
    pytest.param(["ib", "contracts"], id="missing argument of a subcommand"),
])
def test_missing_and_invalid_arguments_are_usage_errors(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == USAGE


def test_json_and_csv_together_is_a_usage_error_raised_by_the_command(trading_repo: TradingRepo) -> None:
    result = runner.invoke(app, ["orders", "--json", "--csv", "--repo", str(trading_repo.path)])
    assert result.exit_code == USAGE and "choose one of --json and --csv" in result.output


def test_documented_success_and_error_codes(trading_repo: TradingRepo) -> None:
    repo = str(trading_repo.path)
    assert runner.invoke(app, ["validate", "--repo", repo]).exit_code == OK
    assert runner.invoke(app, ["plan", "--repo", repo]).exit_code == CHANGES
    trading_repo.edit("plans/sma-aapl.yaml", "cash:", "cahs:")
    assert runner.invoke(app, ["validate", "--repo", repo]).exit_code == ERROR
    assert runner.invoke(app, ["plan", "--repo", repo]).exit_code == ERROR


def test_the_console_script_exits_with_the_usage_code(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "minitrade", "plan", "--bogus", "--repo", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == USAGE, done.stderr
    assert "No such option: --bogus" in done.stderr


# ---- help: an example for every command, naming commands and plans that exist -----------------------

def default_plans() -> set[str]:
    return {p.stem for p in (ROOT / "plans").glob("*.yaml")}


def examples(help_text: str) -> list[list[str]]:
    """The `minitrade ...` command lines of the help's Example paragraphs (wrapping undone)."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", help_text)]
    found: list[list[str]] = []
    for paragraph in paragraphs:
        if not re.match(r"Examples?:", paragraph):
            continue
        text = paragraph.split(":", 1)[1].replace("`", "")
        for segment in re.split(r"&&|\||;|(?=\bminitrade\s)", text):
            words = shlex.split(segment)
            if words and words[0] == "minitrade":
                found.append(words[1:])
    return found


def resolve(words: list[str]) -> tuple[tuple[str, ...], Any, list[str]]:
    """Walk the words down the command tree: the command path, its click command, the remaining args."""
    command, path = typer.main.get_command(app), tuple[str, ...]()
    while words and hasattr(command, "commands"):
        assert words[0] in command.commands, f"no command {' '.join((*path, words[0]))!r}"
        path, command, words = (*path, words[0]), command.commands[words[0]], words[1:]
    return path, command, words


@pytest.mark.parametrize("path", COMMANDS)
def test_every_command_has_an_example_that_parses(path: tuple[str, ...]) -> None:
    help_text = runner.invoke(app, [*path, "--help"], terminal_width=80).output
    lines = examples(help_text)
    assert lines, f"`minitrade {' '.join(path)} --help` has no Example paragraph:\n{help_text}"
    for words in lines:
        command_path, command, args = resolve(words)
        if hasattr(command, "commands"):
            assert not args, words
            continue
        # The command's own parser accepts the example: its options exist and its values have the right type.
        with command.make_context(" ".join(command_path), list(args)) as ctx:
            params = ctx.params
        named = params.get("plan") or params.get("plans") or []
        for plan in [named] if isinstance(named, str) else named:
            assert plan in default_plans(), f"example `minitrade {' '.join(words)}` names plan {plan!r}, " \
                                            f"not one of the default repo's {sorted(default_plans())}"


def test_an_example_naming_a_command_that_does_not_exist_is_caught() -> None:
    assert resolve(["ib", "login", "ib-paper"])[0] == ("ib", "login")
    with pytest.raises(AssertionError, match="no command 'ib nosuch'"):
        resolve(["ib", "nosuch"])


@pytest.mark.parametrize("path", COMMANDS)
def test_flags_show_no_type_placeholder(path: tuple[str, ...]) -> None:
    help_text = runner.invoke(app, [*path, "--help"], terminal_width=200).output
    assert "<bool>" not in help_text and "--no-" not in help_text, help_text


# ---- start-up: help of every command loads none of the heavy libraries ---------------------------------

HEAVY = ["pandas", "numpy", "backtrader", "duckdb", "apprise", "jinja2", "exchange_calendars", "selenium",
         "curl_cffi", "requests"]
HELP_EVERYWHERE = """
import sys
import typer.main
from typer.testing import CliRunner
from minitrade.cli import app

def walk(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))

runner = CliRunner()
for path in walk(typer.main.get_command(app)):
    assert runner.invoke(app, [*path, "--help"]).exit_code == 0, path
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_help_of_every_command_imports_no_heavy_library() -> None:
    # A fresh interpreter: this test process has long imported everything.
    done = subprocess.run([sys.executable, "-c", HELP_EVERYWHERE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "minitrade" in loaded and "typer" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_console_script_help_imports_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "minitrade", "--help"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and "Commands:" in done.stdout, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "minitrade" in imported and imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_plan_on_csv_prices_with_cached_calendars_imports_neither_pandas_nor_exchange_calendars(
        trading_repo: TradingRepo, tmp_path: Path) -> None:
    """`plan` is the command run on every edit: its stale-price check reads csv files as text and its
    calendars and calendar names come from the cache (the first run builds them)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-X", "importtime", "-m", "minitrade", "plan", "--json", "--repo", str(trading_repo.path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == again.returncode == CHANGES, again.stderr[-2000:]
    assert '"next_runs"' in first.stdout and '"next_runs"' in again.stdout

    def imported(stderr: str) -> set[str]:
        return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in stderr.splitlines()
                if line.startswith("import time:")}

    assert "exchange_calendars" in imported(first.stderr)  # built once, then cached
    assert imported(again.stderr).isdisjoint({"pandas", "exchange_calendars", "backtrader"}), \
        sorted(imported(again.stderr) & {"pandas", "exchange_calendars", "backtrader"})
