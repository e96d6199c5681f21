"""Secrets: references resolved late into SecretStr; values never in repr, DuckDB, state files or output."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.credentials import MASK, literal_secret, redact, references, resolve_secret, secret_values
from minitrade.errors import ConfigError
from minitrade.loader import load_commit, load_worktree
from minitrade.reconciler import apply, strategy_compile_check

PASSWORD = "pw-Zq8unique4711"
USERNAME = "trader-Xv93user"
TOKEN = "tok-Kp2distinct0815"

IB_AND_NOTIFIER = """
  ib-paper:
    type: ib
    username: ${IB_USERNAME}
    password: ${IB_PASSWORD}
notifiers:
  phone:
    urls: ["json://127.0.0.1:9/${TOKEN}"]
    events: [run.failed]
"""


def test_env_reference_resolves_into_a_secret_str() -> None:
    secret = resolve_secret("${IB_PASSWORD}", env={"IB_PASSWORD": PASSWORD})
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() == PASSWORD


def test_references_inside_a_url_are_all_resolved() -> None:
    secret = resolve_secret("tgram://${BOT}/${CHAT}?x=1", env={"BOT": "b0t", "CHAT": "c4at"})
    assert secret.get_secret_value() == "tgram://b0t/c4at?x=1"
    assert references("tgram://${BOT}/${CHAT}") == ["${BOT}", "${CHAT}"]


def test_file_reference_reads_the_file_without_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "ib-pass"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    assert resolve_secret(f"${{file:{path}}}", env={}).get_secret_value() == PASSWORD


def test_file_reference_expands_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ib-pass").write_text(PASSWORD, encoding="utf-8")
    assert resolve_secret("${file:~/.ib-pass}", env={}).get_secret_value() == PASSWORD


def test_missing_secrets_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as err:
        resolve_secret(f"${{file:{missing}}}", env={})
    assert str(missing) in str(err.value) and "cannot read secrets file" in str(err.value)


@pytest.mark.parametrize("env", [pytest.param({}, id="unset"), pytest.param({"IB_PASSWORD": ""}, id="empty")])
def test_unset_variable_is_a_config_error_naming_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_secret("${IB_PASSWORD}", env=env, field="brokers.ib.password")
    (issue,) = err.value.issues
    assert "${IB_PASSWORD}" in issue.message and "not set" in issue.message
    assert issue.field == "brokers.ib.password" and "export IB_PASSWORD" in issue.hint


def test_every_unset_variable_is_listed_and_no_resolved_value_leaks() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_secret("${A}:${B}@${C}", env={"B": PASSWORD})
    text = str(err.value)
    assert "${A}" in text and "${C}" in text and len(err.value.issues) == 2
    assert PASSWORD not in text


def test_resolve_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MT_TEST_SECRET", TOKEN)
    assert resolve_secret("${MT_TEST_SECRET}").get_secret_value() == TOKEN


def test_secret_str_never_shows_its_value() -> None:
    secret = resolve_secret("${IB_PASSWORD}", env={"IB_PASSWORD": PASSWORD})
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret) and PASSWORD not in f"{secret}"


def test_secret_values_skips_unresolvable_and_too_short_values() -> None:
    values = secret_values(["json://h/${TOKEN}", "${UNSET_VAR}", "${SHORT}"], env={"TOKEN": TOKEN, "SHORT": "ab"})
    assert values == [TOKEN]


def test_redact_replaces_longest_first() -> None:
    # A shorter secret inside a longer one must not leave the longer one's tail visible.
    text = f"login {PASSWORD} and {PASSWORD[:6]}"
    out = redact(text, [PASSWORD[:6], SecretStr(PASSWORD)])
    assert out == f"login {MASK} and {MASK}"
    assert "Zq8" not in out and "4711" not in out


def test_redact_ignores_empty_secrets() -> None:
    assert redact("nothing secret", ["", SecretStr("")]) == "nothing secret"


def _add_secrets(trading_repo) -> None:
    trading_repo.edit("minitrade.yaml", "notifiers: {}\n", "")
    trading_repo.edit("minitrade.yaml", "  manual: {type: manual}\n", "  manual: {type: manual}" + IB_AND_NOTIFIER)
    trading_repo.commit("ib and a notifier")


def test_models_keep_references_never_values(trading_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("IB_PASSWORD", PASSWORD), ("IB_USERNAME", USERNAME), ("TOKEN", TOKEN)):
        monkeypatch.setenv(name, value)
    _add_secrets(trading_repo)
    snap = load_commit(trading_repo.path)
    broker = snap.settings.brokers["ib-paper"]
    for text in (repr(snap.settings), str(snap.settings), repr(broker), str(broker),
                 repr(snap.resources()), snap.settings.model_dump_json()):
        for value in (PASSWORD, USERNAME, TOKEN):
            assert value not in text
    assert "${IB_PASSWORD}" in repr(broker)


def test_secrets_never_reach_duckdb_state_files_or_plan_output(
        trading_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("IB_PASSWORD", PASSWORD), ("IB_USERNAME", USERNAME), ("TOKEN", TOKEN)):
        monkeypatch.setenv(name, value)
    _add_secrets(trading_repo)
    snap = load_commit(trading_repo.path)
    store = snap.store()
    # No IB gateway runs here, so only the strategy check; the record path is the production one.
    applied = apply(snap, store, checks=[("strategy code", strategy_compile_check)])
    assert applied.outcome == "applied", applied.errors

    with store.transaction() as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        dump = {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    assert {"applied_resources", "reconciliations"} <= set(tables)
    assert any(row[:2] == ("broker", "ib-paper") for row in dump["applied_resources"])
    everything = repr(dump)
    assert "${IB_PASSWORD}" in everything and "${TOKEN}" in everything  # references are recorded
    files = [p for p in snap.state_dir.rglob("*") if p.is_file()]
    assert files
    for value in (PASSWORD, USERNAME, TOKEN):
        assert value not in everything
        for path in files:
            assert value.encode() not in path.read_bytes(), path

    out = CliRunner().invoke(app, ["plan", "--json", "--repo", str(trading_repo.path)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["format_version"] == 1
    shown = [out.output]
    for command in ("plan", "validate", "status"):
        result = CliRunner().invoke(app, [command, "--repo", str(trading_repo.path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        shown.append(result.output)
    for value in (PASSWORD, USERNAME, TOKEN):
        assert all(value not in text for text in shown)
    # The file itself could also be read by anyone with duckdb: check it raw, outside Store.
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        specs = con.execute("SELECT spec FROM applied_resources WHERE kind = 'broker'").fetchall()
    finally:
        con.close()
    assert all(PASSWORD not in s[0] for s in specs)


@pytest.mark.parametrize(("url", "masked"), [
    pytest.param("tgram://123456789:AAEhBOweik6ad9r/987654321", "tgram://***/987654321", id="telegram-token"),
    pytest.param("discord://4174216298/JHMHI8qBe7bk2Zw", "discord://***/***", id="discord-webhook"),
    pytest.param("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXr/#general", "slack://***/***/***/#general",
                 id="slack-tokens-not-channel"),
    pytest.param("pover://uQiRzpo4DXgh@azGDORePK8gM", "pover://***@***", id="pushover-user-and-token"),
    pytest.param("gotify://push.example.com/AqvtDbQxrsSmH6t/", "gotify://push.example.com/***/", id="gotify"),
    pytest.param("json://me:s3cret@hooks.example.com/x", "json://me:***@hooks.example.com/x", id="any-password"),
    pytest.param("ntfy://ntfy.sh/topic?token=tk_abc&priority=high", "ntfy://ntfy.sh/topic?token=***&priority=high",
                 id="query-token"),
    pytest.param("tgram://${TG_TOKEN}/987654321", None, id="telegram-reference"),
    pytest.param("tgram://123456:${TG_SECRET}/chat", None, id="reference-inside-the-part"),
    pytest.param("mailtos://me:${file:/run/secrets/mail pass}@gmail.com?to=a@b.c", None, id="file-reference"),
    pytest.param("json://hooks.example.com/x", None, id="no-secret-part"),
    pytest.param("${NOTIFY_URL}", None, id="whole-url-reference"),
])
def test_literal_secret_masks_every_literal_secret_part(url: str, masked: str | None) -> None:
    assert literal_secret(url) == masked


def test_a_literal_token_in_a_notifier_url_is_refused_without_being_echoed(trading_repo) -> None:
    literal = "123456789:AAE" + TOKEN
    trading_repo.edit("minitrade.yaml", "notifiers: {}\n",
                      f'notifiers:\n  phone:\n    urls: ["tgram://{literal}/987654321"]\n')
    trading_repo.commit("a token written in the URL")
    line = trading_repo.read("minitrade.yaml").splitlines().index("  phone:") + 2
    for command in ("validate", "plan", "apply"):
        result = CliRunner().invoke(app, [command, "--repo", str(trading_repo.path)], catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert (f"minitrade.yaml:{line}: notifiers.phone.urls[0]: tgram://***/987654321: a secret is written "
                "literally in the URL") in result.output
        assert TOKEN not in result.output


def test_notifier_urls_whose_secrets_are_references_validate(trading_repo) -> None:
    trading_repo.edit("minitrade.yaml", "notifiers: {}\n",
                      'notifiers:\n  phone:\n    urls: ["${NOTIFY_URL}", "tgram://${TG_TOKEN}/987654321",\n'
                      '           "json://me:${file:/run/secrets/hook}@hooks.example.com/x"]\n')
    snap = load_worktree(trading_repo.path)
    assert snap.settings.notifiers["phone"].urls[0] == "${NOTIFY_URL}"
