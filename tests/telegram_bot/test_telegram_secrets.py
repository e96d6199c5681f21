"""The bot token never shows: not in the CLI's output when the API refuses it, not in the daemon's
log file, not in DuckDB; and a token written literally in minitrade.yaml is refused without echo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import duckdb
import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.errors import ConfigError
from minitrade.loader import load_worktree
from tests.conftest import ROOT
from tests.telegram_bot.conftest import DAY3, ME, TOKEN, TOKEN_ENV, add_telegram, daemon_pass

runner = CliRunner()


def test_a_refused_token_is_reported_masked(live_repo, bot_api, monkeypatch) -> None:
    wrong = "7000000001:AAF-some-other-secret-token"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    add_telegram(live_repo, bot_api)
    daemon_pass(live_repo, DAY3 - timedelta(minutes=5))
    done = runner.invoke(app, ["telegram", "run", "--repo", str(live_repo.path)])
    assert done.exit_code == 1
    assert "refused the bot token" in done.output and "***" in done.output
    assert wrong not in done.output and "AAF-some" not in done.output


def test_a_literal_token_in_minitrade_yaml_is_refused_without_echo(live_repo, bot_api) -> None:
    live_repo.write("minitrade.yaml", live_repo.read("minitrade.yaml")
                    + f"telegram: {{bot_token: '{TOKEN}', allowed_chats: [{ME}]}}\n")
    with pytest.raises(ConfigError) as refused:
        load_worktree(live_repo.path)
    assert "telegram.bot_token: must be a secret reference like ${TELEGRAM_BOT_TOKEN}" in str(refused.value)
    assert TOKEN not in str(refused.value)


@pytest.mark.slow
def test_the_daemon_runs_the_bot_and_its_log_and_database_never_hold_the_token(live_repo, bot_api) -> None:
    """A real `minitrade daemon` process at debug level: the bot answers, SIGTERM stops both."""
    add_telegram(live_repo, bot_api)
    env = {**os.environ, TOKEN_ENV: TOKEN, "PYTHONPATH": str(ROOT), "MINITRADE_NOW": DAY3.isoformat()}
    applied = subprocess.run([sys.executable, "-m", "minitrade", "apply", "--yes", "--repo", str(live_repo.path)],
                             env=env, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr
    daemon = subprocess.Popen([sys.executable, "-m", "minitrade", "--log-level", "debug", "daemon", "--repo",
                               str(live_repo.path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        bot_api.send_text(ME, "/status")
        reply = bot_api.wait_for(ME, "minitrade status", timeout=120)
        assert "Daemon: running" in reply["text"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, err
    log = (live_repo.path / "state" / "logs" / "daemon.log").read_text()
    assert "telegram bot @minitrade_fake_bot answers chats 4242" in log and "telegram bot stopped" in log
    assert TOKEN not in log + out + err and TOKEN.split(":")[1] not in log + out + err
    con = duckdb.connect(str(live_repo.path / "state" / "minitrade.duckdb"), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for table in tables:
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            assert TOKEN not in json.dumps(rows, default=str), table
    finally:
        con.close()
