"""`apply` tries every new or changed data source, and `validate` asks csv folders for the tickers."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.loader import load_commit
from minitrade.reconciler import apply, strategy_compile_check
from minitrade.testing.yahoo import FakeYahoo


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released without listening)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_source(trading_repo, text: str) -> None:
    trading_repo.edit("minitrade.yaml", "data_sources:\n", f"data_sources:\n  {text}\n")
    trading_repo.commit("a new data source")


def test_apply_refuses_a_new_unused_yahoo_source_that_does_not_answer(trading_repo) -> None:
    first = load_commit(trading_repo.path)
    store = first.store()
    assert apply(first, store, checks=[("strategy code", strategy_compile_check)]).outcome == "applied"
    add_source(trading_repo, f'yahoo: {{type: yahoo, base_url: "http://127.0.0.1:{closed_port()}", timeout: 2}}')

    result = apply(load_commit(trading_repo.path), store)  # the default checks, as `minitrade apply` runs them

    assert result.outcome == "rejected"
    [error] = result.errors
    assert re.match(r"data source yahoo: no plan uses it yet, and trying SPY failed: gave up after \d+ attempts: "
                    r"connection failed", error), error
    assert error.endswith("fix its settings (base_url, proxy) or remove it")


def test_apply_accepts_a_new_unused_yahoo_source_that_answers(trading_repo) -> None:
    first = load_commit(trading_repo.path)
    store = first.store()
    assert apply(first, store, checks=[("strategy code", strategy_compile_check)]).outcome == "applied"
    with FakeYahoo() as fake:
        fake.book.now = datetime.now(UTC)
        add_source(trading_repo, f'yahoo: {{type: yahoo, base_url: "{fake.url}", timeout: 5}}')
        result = apply(load_commit(trading_repo.path), store)
        assert result.outcome == "applied", result.errors
        assert [r.ticker for r in fake.requests] == ["SPY"]  # it was really asked


def test_apply_refuses_a_csv_ticker_with_the_line_of_the_universe_entry(trading_repo) -> None:
    first = load_commit(trading_repo.path)
    store = first.store()
    assert apply(first, store, checks=[("strategy code", strategy_compile_check)]).outcome == "applied"
    trading_repo.edit("plans/equal-weight.yaml", "universe: [AAPL, IBM, MSFT]", "universe: [AAPL, IBM, TSLA]")
    trading_repo.commit("TSLA")

    result = apply(load_commit(trading_repo.path), store)

    assert result.outcome == "rejected"
    assert result.errors[0] == ("plans/equal-weight.yaml:5: universe: data source samples has no TSLA.csv in "
                                "package:sample_data (add TSLA.csv to that folder or remove TSLA; tickers it "
                                "has: AAPL, GOOG, IBM, MSFT)")


def test_validate_names_the_csv_ticker_and_the_unknown_param_with_their_lines(trading_repo) -> None:
    trading_repo.edit("plans/equal-weight.yaml", "universe: [AAPL, IBM, MSFT]", "universe: [AAPL, IBM, MSFTT]")
    result = CliRunner().invoke(app, ["validate", "--repo", str(trading_repo.path)])
    assert result.exit_code == 1
    assert "plans/equal-weight.yaml:5: universe: data source samples has no MSFTT.csv" in result.output
    assert "did you mean 'MSFT'?" in result.output

    trading_repo.edit("plans/equal-weight.yaml", "MSFTT", "MSFT")
    trading_repo.edit("plans/sma-aapl.yaml", "slow: 50", "slowe: 50")
    result = CliRunner().invoke(app, ["validate", "--repo", str(trading_repo.path)])
    assert result.exit_code == 1
    assert ("plans/sma-aapl.yaml:15: params.slowe: unknown param 'slowe' of strategy SmaCrossover "
            "(strategies/sma_crossover.py) (did you mean 'slow'?)") in result.output
