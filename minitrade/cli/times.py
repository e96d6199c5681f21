"""One rule for the times typed on the command line (`--at` of run, fill and daemon; durations).

A time with a UTC offset (`2026-11-25T15:45-05:00`, or `Z`) is that instant. A time without one
(`2026-11-25 15:45`) is read in the timezone of what it is about: the plan's exchange time for
`run` and `fill` (the plan's `timezone`, else its calendar's), and minitrade.yaml's `timezone`
for `daemon --once --at`, which runs every plan.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer

from minitrade.errors import MinitradeError

if TYPE_CHECKING:      # the loader (pydantic models) loads when a command runs, not for --help
    from minitrade.loader import Snapshot

PLAN_TIME_HELP = ("ISO time, e.g. '2026-11-25 15:45'; without a UTC offset it is the plan's exchange time "
                  "(the plan's timezone, else its calendar's); add one (15:45-05:00) for another zone.")
SETTINGS_TIME_HELP = ("ISO time, e.g. '2026-11-25 15:45'; without a UTC offset it is minitrade.yaml's "
                      "timezone; add one (15:45-05:00) for another zone.")


def parse_at(text: str, zone: tzinfo | None, *, option: str = "--at", zone_name: str = "") -> datetime:
    """`text` as an aware instant; naive times are read in `zone` (refused when there is none)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MinitradeError(f"{option} {text!r} is not a time: use e.g. '2026-11-25 15:45' "
                             "or '2026-11-25T15:45-05:00'") from None
    if moment.tzinfo is not None:
        return moment
    if zone is None:
        raise MinitradeError(f"{option} {text!r} has no UTC offset and {zone_name or 'no timezone applies'}: "
                             "write one, e.g. '2026-11-25T15:45-05:00'")
    return moment.replace(tzinfo=zone)


def plan_zone_of(snapshot: Snapshot | None, plan: str) -> ZoneInfo | None:
    """The plan's exchange timezone (its `timezone`, else its calendar's); None if it is not there."""
    if snapshot is None or plan not in snapshot.plans:
        return None
    from minitrade.scheduler import plan_zone
    from minitrade.trading_calendar import get_calendar

    spec = snapshot.plans[plan]
    return plan_zone(spec, get_calendar(spec.calendar))


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, option: str) -> timedelta:
    """`90`, `90s`, `5m`, `1h`, `1d` -> timedelta (a bare number is seconds)."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration: e.g. 60s, 5m, 1h", param_hint=f"'{option}'")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])


def parse_day(value: str | None, option: str) -> date | None:
    """An ISO day given on the command line (`--from 2024-01-31`), or None when not given."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2024-01-31", param_hint=option) from None
