"""Every `--json` output: one document on stdout with format_version and kind (README: JSON output)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.loader import load_worktree
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.testing.apprise_sink import AppriseSink
from minitrade.testing.ib_gateway import FakeGateway
from tests.conftest import present_env
from tests.orders.conftest import make_order

runner = CliRunner()
# The sample prices end on 2013-03-01: `data check` looks back from a present they cover.
SAMPLES_PRESENT = present_env("2013-02-28T16:00:00-05:00")


@pytest.fixture
def applied_repo(trading_repo: Any) -> Iterator[Any]:
    """The embedded default plus an IB account on the fake gateway and a notifier, applied, with an
    order, a fill and a run in its store."""
    with FakeGateway(two_factor="none", state="authenticated") as gw, AppriseSink() as sink:
        trading_repo.edit("minitrade.yaml", "  manual: {type: manual}\n",
                          "  manual: {type: manual}\n  ib-paper:\n    type: ib\n    username: ${IB_USERNAME}\n"
                          "    password: ${IB_PASSWORD}\n"
                          f"    gateway: {{url: '{gw.url}', verify_tls: true, ca_cert: '{gw.ca_pem}'}}\n")
        trading_repo.edit("minitrade.yaml", "notifiers: {}\n",
                          f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n    events: [run.failed]\n")
        trading_repo.commit("ib and a phone")
        repo = str(trading_repo.path)
        applied = runner.invoke(app, ["apply", "--yes", "--repo", repo])
        assert applied.exit_code == 0, applied.output
        assert runner.invoke(app, ["notify", "test", "phone", "--repo", repo]).exit_code == 0
        order = make_order("AAPL", 10, plan="sma-aapl")
        store = load_worktree(trading_repo.path).store()
        with store.transaction() as con:
            order_sql.insert_orders(con, [order])
            run_sql.start_run(con, run_id="run-json", plan="sma-aapl", kind="tick")
            run_sql.finish_run(con, "run-json", notes=["seeded"])
        filled = runner.invoke(app, ["fill", order.client_id, "--price", "230.5", "--repo", repo])
        assert filled.exit_code == 0, filled.output
        trading_repo.order = order
        yield trading_repo


def _order_id(repo: Any) -> str:
    return str(repo.order.client_id)


CASES: list[tuple[list[str], str, Callable[[dict[str, Any], Any], bool]]] = [
    (["status"], "status",
     lambda doc, repo: doc["applied"]["commit_sha"] == repo.head and "sma-aapl" in {p["name"] for p in doc["plans"]}),
    (["validate"], "validate", lambda doc, repo: doc["ok"] is True and doc["counts"]["brokers"] == 2),
    (["plan"], "plan", lambda doc, repo: doc["summary"] is not None and doc["changes"] == []),
    (["notify", "log"], "notifications",
     lambda doc, repo: "minitrade test: phone" in {n["title"] for n in doc["notifications"]}),
    (["ib", "status"], "ib_status",
     lambda doc, repo: doc["accounts"] == [{"account": "ib-paper", "url": doc["accounts"][0]["url"],
                                            "pid": None, "session": "authenticated"}]),
    (["data", "check", "samples", "AAPL", "--days", "3"], "data_check",
     lambda doc, repo: doc["ok"] and [len(t["bars"]) for t in doc["tickers"]] == [3]),
    (["orders", "--all"], "orders",
     lambda doc, repo: [(o["client_id"], o["status"]) for o in doc["orders"]] == [(_order_id(repo), "FILLED")]),
    (["trades"], "trades",
     lambda doc, repo: [(t["client_id"], t["price"]) for t in doc["trades"]] == [(_order_id(repo), 230.5)]),
    (["runs"], "runs", lambda doc, repo: "run-json" in {r["run_id"] for r in doc["runs"]}),
    (["positions", "sma-aapl"], "positions",
     lambda doc, repo: [(t["ticker"], t["quantity"], t["avg_cost"]) for t in doc["plans"][0]["positions"]]
     == [("AAPL", 10.0, 230.5)]),
    (["suspend", "sma-aapl"], "suspend", lambda doc, repo: doc["suspension"]["plan"] == "sma-aapl"
     and doc["already"] is False),
    (["resume", "sma-aapl"], "resume", lambda doc, repo: doc["plan"] == "sma-aapl" and doc["ended"] is None),
]


@pytest.mark.parametrize(("args", "kind", "meaningful"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_json_output_is_one_versioned_document_on_stdout(applied_repo: Any, args: list[str], kind: str,
                                                         meaningful: Callable[[dict[str, Any], Any], bool]) -> None:
    result = runner.invoke(app, [*args, "--json", "--repo", str(applied_repo.path)],
                           env=SAMPLES_PRESENT if args[0] == "data" else None)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # the whole of stdout: nothing else is printed there
    assert (doc["format_version"], doc["kind"]) == (1, kind)
    assert meaningful(doc, applied_repo), doc


def test_validate_json_carries_the_errors_with_their_file_and_line(trading_repo: Any) -> None:
    trading_repo.edit("plans/sma-aapl.yaml", "fast: 20", "fast: [20")
    result = runner.invoke(app, ["validate", "--json", "--repo", str(trading_repo.path)])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert (doc["format_version"], doc["ok"]) == (1, False)
    assert any(e.startswith("plans/sma-aapl.yaml:") for e in doc["errors"]), doc
    assert "plans/sma-aapl.yaml" in result.stderr  # people still read it on stderr


def test_data_check_json_reports_a_failed_ticker_and_exits_1(trading_repo: Any) -> None:
    result = runner.invoke(app, ["data", "check", "samples", "AAPL", "NOPE", "--json", "--repo",
                                 str(trading_repo.path)], env=SAMPLES_PRESENT)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and [t["error"] is None for t in doc["tickers"]] == [True, False]
