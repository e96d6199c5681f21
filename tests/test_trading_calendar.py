"""Exchange calendars: built within the years each calendar knows, sessions and early closes."""

from __future__ import annotations

from datetime import date

import pytest

from minitrade.models import Plan
from minitrade.scheduler import next_run_times
from minitrade.trading_calendar import get_calendar


@pytest.mark.parametrize("code", ["XTKS", "XBOM", "XSHG"])
def test_calendars_with_a_first_or_last_year_still_build(code: str) -> None:
    # XTKS and XBOM start in 1997, XSHG and XBOM end in 2026: clamp, never refuse the calendar.
    cal = get_calendar(code)
    assert cal.first_day <= date(2000, 1, 31) < cal.last_day
    assert cal.is_session(cal.next_session_day(date(2020, 6, 1)))  # type: ignore[arg-type]


def test_a_tokyo_plan_gets_its_next_runs() -> None:
    plan = Plan.model_validate(dict(name="jp", strategy="s.py", universe=["7203.T"], data_source="d",
                                    calendar="XTKS", backtest_start="2020-01-06", run_at="14:50", cash=1e6))
    cal = get_calendar("XTKS")
    after = cal.session(cal.next_session_day(date(2024, 1, 1))).open  # type: ignore[arg-type]
    runs = next_run_times(plan, after, 3)
    assert len(runs) == 3 and all(r.tzinfo is not None and r.strftime("%H:%M") == "14:50" for r in runs)
    assert [cal.is_session(r.date()) for r in runs] == [True, True, True]


def test_sessions_and_early_closes_of_new_york() -> None:
    cal = get_calendar("XNYS")
    assert not cal.is_session(date(2024, 12, 25)) and not cal.is_session(date(2024, 12, 28))
    eve = cal.session(date(2024, 12, 24))
    assert eve.early_close and eve.close.hour == 13
    assert cal.regular_close.hour == 16
    assert cal.previous_session_day(date(2024, 12, 26)) == date(2024, 12, 24)


def test_a_built_calendar_is_cached_for_the_next_process_and_a_bad_cache_is_rebuilt(tmp_path) -> None:
    """The next process reads the sessions back without importing exchange_calendars (about a second
    saved on every command that shows a next run); a damaged file only means building again."""
    import json
    import os
    import subprocess
    import sys

    probe = ("import sys, json\nfrom minitrade.trading_calendar import get_calendar\nc = get_calendar('XNYS')\n"
             "print(json.dumps({'xcals': 'exchange_calendars' in sys.modules, 'days': len(c.sessions(c.first_day, "
             "c.last_day)), 'close': str(c.session(c.next_session_day(c.first_day)).close), "
             "'early': len(c._early), 'regular': str(c.regular_close)}))")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}

    def run() -> dict[str, object]:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    built = run()
    assert built["xcals"] is True
    (cached_file,) = (tmp_path / "minitrade" / "calendars").glob("XNYS-*.json")
    cached = run()
    assert cached["xcals"] is False, "read from the cache: exchange_calendars is not even imported"
    assert {k: v for k, v in cached.items() if k != "xcals"} == {k: v for k, v in built.items() if k != "xcals"}
    cached_file.write_text('{"format": 1, "days": [')  # a damaged cache (a full disk, a crash mid-write)
    again = run()
    assert again["xcals"] is True and again["days"] == built["days"]
