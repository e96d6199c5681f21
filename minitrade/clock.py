"""The machine's clock, the one place that says what "now" really is.

Runs compare their tick with this clock to tell the real present (orders may be submitted) from a
rehearsal (`run --at`, `daemon --once --at`, a tick outside its grace period: orders recorded as
rehearsal, never submitted). Simulated clocks (`--at`, replay) never replace it.

`MINITRADE_NOW` (an ISO instant with offset) makes this clock read that instant, the way
`faketime` would: for end-to-end tests and rehearsals of the live path against fake brokers. It is
never silent: every process that honours it logs a warning naming the instant.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

ENV = "MINITRADE_NOW"
log = logging.getLogger("minitrade.clock")
_warned: set[str] = set()


def now() -> datetime:
    """The present instant (UTC), or the instant `MINITRADE_NOW` names."""
    fake = os.environ.get(ENV)
    if not fake:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(fake)
    except ValueError as e:
        raise ValueError(f"{ENV}={fake!r} is not an ISO instant such as 2026-11-25T15:45-05:00") from e
    if at.tzinfo is None:
        raise ValueError(f"{ENV}={fake!r} has no UTC offset; write one, e.g. 2026-11-25T15:45-05:00")
    if fake not in _warned:
        _warned.add(fake)
        log.warning("%s is set: the clock reads %s, not the machine's time", ENV, at.isoformat())
    return at.astimezone(UTC)
