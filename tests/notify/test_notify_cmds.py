"""`minitrade notify test NAME` and `minitrade notify log` against a real trading repo folder and sink."""

from __future__ import annotations

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.testing.apprise_sink import closed_port_url


def trading_repo(tmp_path, notifiers: str):
    (tmp_path / "minitrade.yaml").write_text(
        "timezone: America/New_York\nstate_dir: state\nbrokers:\n  manual: {type: manual}\n"
        f"notifiers:\n{notifiers}")
    return tmp_path


def test_notify_test_sends_through_the_named_notifier_and_logs_it(tmp_path, sink):
    repo = trading_repo(tmp_path, f"  phone:\n    urls: ['{sink.url('phone')}']\n    events: [run.failed]\n")
    runner = CliRunner()

    sent = runner.invoke(app, ["notify", "test", "phone", "--repo", str(repo)])
    log = runner.invoke(app, ["notify", "log", "--repo", str(repo)])

    assert sent.exit_code == 0, sent.output
    assert "sent a test message through notifier phone" in sent.output
    assert [p.title for p in sink.posts] == ["minitrade test: phone"]
    assert log.exit_code == 0 and "notify.test" in log.output and "sent" in log.output


def test_notify_test_exits_1_when_delivery_fails(tmp_path):
    repo = trading_repo(tmp_path, f"  dead:\n    urls: ['{closed_port_url()}']\n")

    result = CliRunner().invoke(app, ["notify", "test", "dead", "--repo", str(repo)])

    assert result.exit_code == 1
    assert "failed" in result.output and "dead" in result.output


def test_notify_test_of_unknown_notifier_names_the_known_ones(tmp_path, sink):
    repo = trading_repo(tmp_path, f"  phone:\n    urls: ['{sink.url()}']\n")

    result = CliRunner().invoke(app, ["notify", "test", "tablet", "--repo", str(repo)])

    assert result.exit_code == 1
    assert "no notifier named 'tablet'" in result.output and "phone" in result.output
    assert sink.posts == []


def test_notify_test_names_apprises_real_complaint_once(tmp_path):
    import os
    import subprocess
    import sys

    repo = trading_repo(tmp_path, "  phone:\n    urls: ['tgram://${TELEGRAM_BOT_TOKEN}/${TELEGRAM_CHAT_ID}']\n")
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": "not-a-bot-token", "TELEGRAM_CHAT_ID": "12345"}
    done = subprocess.run([sys.executable, "-m", "minitrade", "notify", "test", "phone", "--repo", str(repo)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    # a malformed token, said in Apprise's words, once; not "Apprise does not understand scheme 'tgram'"
    assert done.stderr.count("Unparseable Telegram URL tgram://") == 1, done.stderr
    assert "does not understand" not in done.stderr and "not-a-bot-token" not in done.stderr
