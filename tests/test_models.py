"""Desired-state models: run_at, universe forms, positions bounds, secret references, spec round trip."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from minitrade.models import MAX_SHARES, IBBroker, Mode, NotifierSpec, OrderType, Plan, Settings, parse_run_at


def plan(**overrides: Any) -> Plan:
    spec: dict[str, Any] = dict(name="p", strategy="strategies/s.py", universe=["SPY"], data_source="d",
                                backtest_start="2020-01-01", run_at="15:45", cash=1000)
    spec.update(overrides)
    return Plan.model_validate(spec)


def error_of(**overrides: Any) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as err:
        plan(**overrides)
    first = err.value.errors(include_url=False)[0]
    return tuple(first["loc"]), str(first["msg"])


# ---------------------------------------------------------------------------------------------
# run_at

@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("0:00", ["00:00:00"], id="midnight"),
    pytest.param("23:59:59", ["23:59:59"], id="last-second"),
    pytest.param("  15:45  ", ["15:45:00"], id="surrounding-spaces"),
    pytest.param("10:00-10:00/5min", ["10:00:00"], id="empty-range-is-its-start"),
    pytest.param("10:00-11:00/2h", ["10:00:00"], id="step-longer-than-range"),
    pytest.param("10:00-11:00/30m", ["10:00:00", "10:30:00", "11:00:00"], id="m-suffix"),
    pytest.param("10:00-11:00/30 min", ["10:00:00", "10:30:00", "11:00:00"], id="space-before-unit"),
    pytest.param("23:00-23:59:59/30min", ["23:00:00", "23:30:00"], id="never-past-midnight"),
    pytest.param("09:30:15-09:31/15min", ["09:30:15"], id="seconds-kept-on-start"),
])
def test_run_at_accepts(spec: str, expected: list[str]) -> None:
    assert [t.isoformat() for t in parse_run_at(spec)] == expected


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("24:00", "24:00 is not a time of day", id="hour-24"),
    pytest.param("9:60", "9:60 is not a time of day", id="minute-60"),
    pytest.param("15:45:60", "15:45:60 is not a time of day", id="second-60"),
    pytest.param("1545", "is not a run time", id="no-colon"),
    pytest.param("3pm", "is not a run time", id="words"),
    pytest.param("10:00 - 11:00/30min", "is not a run time", id="spaces-around-dash"),
    pytest.param("10:00-11:00", "is not a run time", id="range-without-step"),
    pytest.param("10:00-11:00/30s", "is not a run time", id="seconds-step"),
    pytest.param("16:00-09:30/30min", "the range ends before it starts", id="backwards"),
    pytest.param("10:00-11:00/0min", "the interval must be positive", id="zero-step"),
    pytest.param("10:00-25:00/1h", "25:00 is not a time of day", id="bad-end"),
])
def test_run_at_rejects_with_a_message_saying_why(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_run_at(spec)
    loc, msg = error_of(run_at=spec)
    assert loc[0] == "run_at" and message in msg


def test_run_at_string_with_commas_is_several_specs_sorted_and_unique() -> None:
    p = plan(run_at="15:45, 09:30-10:30/30min,10:00")
    assert p.run_at == ["15:45", "09:30-10:30/30min", "10:00"]
    assert [t.isoformat() for t in p.run_times()] == ["09:30:00", "10:00:00", "10:30:00", "15:45:00"]


@pytest.mark.parametrize("value", [pytest.param([], id="empty-list"), pytest.param("", id="empty-string"),
                                   pytest.param(" , ", id="only-commas")])
def test_run_at_needs_at_least_one_time(value: Any) -> None:
    loc, _ = error_of(run_at=value)
    assert loc == ("run_at",)


def test_run_at_in_a_list_points_at_the_bad_entry() -> None:
    loc, msg = error_of(run_at=["15:45", "25:00"])
    assert loc[:2] == ("run_at", 1) and "25:00" in msg


# ---------------------------------------------------------------------------------------------
# universe

@pytest.mark.parametrize(("universe", "expected"), [
    pytest.param(["SPY", "QQQ"], {"SPY": None, "QQQ": None}, id="list"),
    pytest.param("SPY QQQ", {"SPY": None, "QQQ": None}, id="spaces"),
    pytest.param("SPY, QQQ", {"SPY": None, "QQQ": None}, id="commas"),
    pytest.param({"SPY": 756733, "QQQ": None}, {"SPY": 756733, "QQQ": None}, id="map-of-conids"),
    pytest.param({"SPY": {"conid": 756733}, "QQQ": {}}, {"SPY": 756733, "QQQ": None}, id="map-of-maps"),
    pytest.param(["SPY", {"QQQ": {"conid": 320227571}}], {"SPY": None, "QQQ": 320227571}, id="list-with-pins"),
    pytest.param(["^GSPC", "BRK.B", "600519.SS", "EURUSD=X"], {"^GSPC": None, "BRK.B": None, "600519.SS": None,
                                                             "EURUSD=X": None}, id="index-class-exchange-fx"),
])
def test_universe_forms(universe: Any, expected: dict[str, int | None]) -> None:
    p = plan(universe=universe)
    assert {t: i.conid for t, i in p.universe.items()} == expected
    assert p.tickers == list(expected)


@pytest.mark.parametrize(("universe", "message"), [
    pytest.param([], "needs at least one ticker", id="empty-list"),
    pytest.param("", "needs at least one ticker", id="empty-string"),
    pytest.param({"SP Y": {}}, "is not a ticker symbol", id="space-in-ticker"),
    pytest.param(["SPY;DROP"], "is not a ticker symbol", id="punctuation"),
    pytest.param({"SPY": {"conid": 0}}, "greater than 0", id="conid-zero"),
    pytest.param({"SPY": -5}, "greater than 0", id="conid-negative"),
    pytest.param({"SPY": {"conid": 2**63}}, "less than", id="conid-too-big"),
    pytest.param({"SPY": True}, "not true", id="conid-yes"),
    pytest.param({"SPY": {"conid": True}}, "not true", id="conid-true"),
    pytest.param({"SPY": {"conid": 1, "exchange": "ARCA"}}, "Extra inputs", id="unknown-pin-key"),
    pytest.param({"SPY": "ARCA"}, "valid dictionary", id="pin-is-text"),
])
def test_universe_rejects(universe: Any, message: str) -> None:
    loc, msg = error_of(universe=universe)
    assert loc[0] == "universe" and message in msg


# ---------------------------------------------------------------------------------------------
# positions and amounts

@pytest.mark.parametrize("shares", [MAX_SHARES, -MAX_SHARES, 0, 100, -100])
def test_positions_within_bounds_including_shorts(shares: int) -> None:
    assert plan(positions={"SPY": shares}).positions == {"SPY": shares}


@pytest.mark.parametrize(("shares", "message"), [
    pytest.param(MAX_SHARES + 1, "less than or equal", id="too-many"),
    pytest.param(-MAX_SHARES - 1, "greater than or equal", id="too-short"),
    pytest.param(1.5, "fractional part", id="fractional"),
    pytest.param(True, "not true", id="yes-is-not-one-share"),
    pytest.param("lots", "valid integer", id="text"),
])
def test_positions_out_of_bounds(shares: Any, message: str) -> None:
    loc, msg = error_of(positions={"SPY": shares})
    assert loc == ("positions", "SPY") and message in msg


def test_positions_outside_the_universe_are_named() -> None:
    loc, msg = error_of(universe=["SPY"], positions={"QQQ": 1, "IWM": 2})
    assert loc == ("positions",) and "IWM, QQQ" in msg


@pytest.mark.parametrize("cash", [0, -1, 1e14, float("nan"), float("inf")])
def test_cash_must_be_positive_and_sane(cash: float) -> None:
    loc, _ = error_of(cash=cash)
    assert loc == ("cash",)


def test_trade_start_before_backtest_start_is_rejected() -> None:
    loc, msg = error_of(backtest_start="2020-01-01", trade_start="2019-12-31")
    assert loc == ("trade_start",) and "move trade_start" in msg


def test_strict_mode_refuses_trg_but_incremental_allows_it() -> None:
    loc, msg = error_of(mode="strict", order_type="TRG")
    assert loc == ("order_type",) and "strict mode allows only TOO or TOC" in msg
    assert plan(mode="incremental", order_type="TRG").order_type is OrderType.TRG


def test_unknown_plan_key_is_rejected() -> None:
    loc, msg = error_of(schedule="15:45")
    assert loc == ("schedule",) and "Extra inputs" in msg


# ---------------------------------------------------------------------------------------------
# secrets are references

@pytest.mark.parametrize("ref", ["${IB_PASSWORD}", "${file:~/.ib-pass}", "${file:/run/secrets/ib}"])
def test_ib_credentials_accept_references(ref: str) -> None:
    broker = IBBroker.model_validate({"type": "ib", "username": "${IB_USERNAME}", "password": ref})
    assert broker.password == ref


@pytest.mark.parametrize(("field", "value"), [
    pytest.param("password", "hunter2", id="literal-password"),
    pytest.param("username", "jdoe", id="literal-username"),
    pytest.param("password", "pre-${IB_PASSWORD}", id="partly-literal"),
    pytest.param("password", "$IB_PASSWORD", id="shell-style"),
    pytest.param("password", "${1BAD}", id="bad-variable-name"),
])
def test_ib_credentials_refuse_literals(field: str, value: str) -> None:
    spec = {"type": "ib", "username": "${IB_USERNAME}", "password": "${IB_PASSWORD}", field: value}
    with pytest.raises(ValidationError) as err:
        IBBroker.model_validate(spec)
    (error,) = err.value.errors(include_url=False)
    assert error["loc"] == (field,) and "never the secret itself" in error["msg"]
    assert value not in str(error["msg"])  # the message does not echo a would-be secret


@pytest.mark.parametrize("missing", ["username", "password"])
def test_ib_credentials_are_required(missing: str) -> None:
    spec = {"type": "ib", "username": "${IB_USERNAME}", "password": "${IB_PASSWORD}"}
    del spec[missing]
    with pytest.raises(ValidationError) as err:
        IBBroker.model_validate(spec)
    assert err.value.errors(include_url=False)[0]["loc"] == (missing,)


def test_settings_default_to_the_manual_broker_and_check_names() -> None:
    assert list(Settings().brokers) == ["manual"]
    with pytest.raises(ValidationError, match="must be letters"):
        Settings.model_validate({"notifiers": {"my phone": {"urls": ["json://x"]}}})
    with pytest.raises(ValidationError):
        NotifierSpec.model_validate({"urls": ["json://x"], "events": ["run.exploded"]})


# ---------------------------------------------------------------------------------------------
# spec round trip (what is stored in DuckDB comes back as the same plan)

def test_plan_spec_round_trips_through_model_validate() -> None:
    full = plan(name="rot", **{"class": "Rotation"}, universe={"SPY": 756733, "QQQ": None}, calendar="XNYS",
                timezone="America/Chicago", backtest_start="2015-01-02", trade_start="2020-06-01",
                run_at=["09:30:01-16:00/30min", "15:45"], mode="incremental", order_type="TRG", broker="ib",
                cash=12345.5, positions={"SPY": -3}, params={"lookback": 20, "weights": [0.5, 0.5],
                                                             "nested": {"a": None}},
                backtest="enabled", trading="enabled", commission=0.0005)
    spec = full.spec()
    assert spec["class"] == "Rotation" and "class_name" not in spec
    assert spec["universe"] == {"SPY": {"conid": 756733}, "QQQ": {}}
    assert spec["backtest_start"] == "2015-01-02" and spec["mode"] == "incremental"
    again = Plan.model_validate(spec)
    assert again == full and again.spec() == spec
    assert again.mode is Mode.INCREMENTAL and again.trade_start == date(2020, 6, 1)


def test_minimal_plan_spec_round_trips_without_none_fields() -> None:
    p = plan()
    spec = p.spec()
    assert "trade_start" not in spec and "class" not in spec and "timezone" not in spec
    assert Plan.model_validate(spec) == p
