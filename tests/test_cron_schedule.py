"""`run_at: {cron: ...}`: cron times on the exchange's sessions, in its timezone; holidays skipped."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.models import Plan
from minitrade.scheduler import due_ticks, early_close_ticks, next_run_times, ticks_on, warnings_for

NY = ZoneInfo("America/New_York")
SH = ZoneInfo("Asia/Shanghai")


def plan(**overrides: Any) -> Plan:
    spec: dict[str, Any] = dict(name="p", strategy="strategies/s.py", universe=["SPY"], data_source="d",
                                backtest_start="2020-01-01", run_at={"cron": "45 15 * * FRI"}, cash=1000)
    spec.update(overrides)
    return Plan.model_validate(spec)


def test_a_friday_cron_skips_good_friday_and_runs_the_next_friday() -> None:
    # 2026-04-03 is Good Friday: XNYS is closed; the run is skipped, not moved to Thursday or Monday
    p = plan()
    ticks = due_ticks(p, datetime(2026, 3, 29, tzinfo=NY), datetime(2026, 4, 11, tzinfo=NY))
    assert ticks == [datetime(2026, 4, 10, 15, 45, tzinfo=NY)]
    assert ticks_on(p, date(2026, 4, 2)) == []  # the Thursday before: a session, but not a Friday


def test_a_cron_over_the_thanksgiving_week_skips_the_holiday_and_shifts_for_the_early_close() -> None:
    # 2026-11-26 Thanksgiving (closed), 11-27 closes at 13:00: a 15:45 TOC run moves to 12:45 as a fixed 15:45 would
    p = plan(run_at=[{"cron": "45 15 * * MON-FRI"}])
    week = due_ticks(p, datetime(2026, 11, 22, tzinfo=NY), datetime(2026, 11, 28, tzinfo=NY))
    assert week == [datetime(2026, 11, d, 15, 45, tzinfo=NY) for d in (23, 24, 25)] + [
        datetime(2026, 11, 27, 12, 45, tzinfo=NY)]
    fixed = plan(run_at="15:45")
    assert week == due_ticks(fixed, datetime(2026, 11, 22, tzinfo=NY), datetime(2026, 11, 28, tzinfo=NY))


def test_a_cron_run_an_early_close_touches_is_skipped_with_its_reason_under_skip() -> None:
    p = plan(early_close="skip")
    assert ticks_on(p, date(2026, 11, 27)) == []
    [touched] = early_close_ticks(p, date(2026, 11, 27))
    assert touched.planned == datetime(2026, 11, 27, 15, 45, tzinfo=NY) and touched.moved_to is None


def test_first_monday_of_the_month_skips_labor_day_rather_than_shifting_it() -> None:
    # '0 9 1-7 * MON' is the first Monday (both day fields must match); 2026-09-07 is Labor Day
    p = plan(run_at={"cron": "0 10 1-7 * MON"}, order_type="TOO")
    runs = next_run_times(p, datetime(2026, 7, 15, tzinfo=NY), 3)
    assert runs == [datetime(2026, 8, 3, 10, 0, tzinfo=NY), datetime(2026, 10, 5, 10, 0, tzinfo=NY),
                    datetime(2026, 11, 2, 10, 0, tzinfo=NY)]


def test_cron_times_are_the_exchanges_wall_clock_across_dst() -> None:
    p = plan()
    before, after = ticks_on(p, date(2026, 3, 6)), ticks_on(p, date(2026, 3, 13))  # DST starts 2026-03-08
    assert [t.time() for t in before + after] == [time(15, 45), time(15, 45)]
    assert before[0].utcoffset() != after[0].utcoffset()


def test_cron_and_fixed_times_combine_and_a_shanghai_plan_reads_cron_in_shanghai_time() -> None:
    p = plan(run_at=["10:00", {"cron": "30 14 * * WED"}], calendar="XSHG", order_type="TOO")
    assert ticks_on(p, date(2026, 11, 18)) == [datetime(2026, 11, 18, 10, 0, tzinfo=SH),
                                               datetime(2026, 11, 18, 14, 30, tzinfo=SH)]  # a Wednesday
    assert ticks_on(p, date(2026, 11, 19)) == [datetime(2026, 11, 19, 10, 0, tzinfo=SH)]


def test_a_toc_cron_after_the_auction_cutoff_is_warned_about() -> None:
    [warning] = [w for w in warnings_for(plan(run_at={"cron": "55 15 * * FRI"}), date(2026, 6, 1))
                 if "cutoff" in w]
    assert warning.startswith("TOC run time 15:55:00 is after the XNYS closing-auction cutoff")


@pytest.mark.parametrize("cron", ["45 25 * * FRI", "45 15 * *", "0 0 15 * * FRI", "every friday"])
def test_a_bad_cron_expression_is_refused(cron: str) -> None:
    with pytest.raises(ValidationError, match="is not a cron expression"):
        plan(run_at={"cron": cron})


def test_plan_warns_ahead_about_a_cron_run_a_holiday_skips() -> None:
    warnings = warnings_for(plan(), date(2026, 3, 25))
    assert "cron run '45 15 * * FRI' on Fri 2026-04-03 is skipped: not a XNYS session" in warnings
    assert not [w for w in warnings_for(plan(), date(2026, 4, 6)) if "cron run" in w]


def test_a_daily_cron_is_not_warned_about_weekends() -> None:
    warnings = warnings_for(plan(run_at={"cron": "45 15 * * *"}), date(2026, 3, 25))
    assert [w for w in warnings if "cron run" in w] == [
        "cron run '45 15 * * *' on Fri 2026-04-03 is skipped: not a XNYS session"]


def test_plan_previews_the_next_cron_runs_past_good_friday_and_july_3rd(trading_repo) -> None:
    trading_repo.edit("plans/momentum-rotation.yaml", 'run_at: "15:45"', 'run_at: {cron: "45 15 1-7 * FRI"}')
    result = CliRunner().invoke(app, ["plan", "--json", "--repo", str(trading_repo.path)],
                                env={"MINITRADE_NOW": "2026-03-25T12:00:00-04:00"})
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    runs = doc["next_runs"]["momentum-rotation"]
    # first Fridays 2026-04-03 (Good Friday) and 2026-07-03 (Independence Day observed) are holidays
    assert [r[:10] for r in runs] == ["2026-05-01", "2026-06-05", "2026-08-07", "2026-09-04", "2026-10-02"]
    assert any("cron run '45 15 1-7 * FRI' on Fri 2026-04-03 is skipped" in w for w in doc["warnings"])


def test_the_plan_schema_takes_a_cron_entry_alone_or_in_a_list(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["schema", "--out", str(tmp_path)]).exit_code == 0
    doc = json.loads((tmp_path / "plan.schema.json").read_text())
    kinds = doc["properties"]["run_at"]["anyOf"]
    assert {"type": "string"} in kinds and {"$ref": "#/$defs/CronSchedule"} in kinds
    assert any(k.get("type") == "array" for k in kinds)
    assert doc["$defs"]["CronSchedule"]["required"] == ["cron"]
