"""Every error minitrade raises, named for what the caller does about it.

```
MinitradeError
├─ ConfigError(issues)         ← bad YAML, unknown key, bad reference; terminal for that commit
├─ GitError                    ← not a git repo, unknown revision; fix the repo or the --rev
├─ PlanUnknown                 ← no applied plan by that name; check the name or apply the plan
├─ StrategyError(plan)         ← user strategy raised or is malformed; fix the strategy file
├─ DataError(source, ticker)   ← provider down (retryable) or bad response shape (terminal)
│  ├─ DataChanged              ← strict mode: past prices changed; start a new plan or accept
│  ├─ DataStale                ← no bar for the day a run decides on; update the data, fail the run
│  └─ FetchStopped             ← a many-ticker fetch was stopped on request; stored batches stay, run again
├─ BrokerError(account)
│  ├─ BrokerNotReady           ← not logged in: hold orders and notify, never log in silently
│  │  └─ BrokerDisconnected    ← gateway up, its link to the broker down ("no bridge"): hold, send later
│  ├─ OrderRejected            ← broker said no; record it, notify, do not retry
│  │  ├─ OrderQuestionRefused  ← broker asked a question not on the confirm list; answered no
│  │  └─ AlreadyPlaced         ← the broker has this client id already: look it up, never resend
│  ├─ BrokerUnavailable        ← timeout/5xx; retry reads, reconcile before re-submitting
│  │  └─ RateLimited           ← 429: do not retry now (IB may block the address for 10 minutes)
│  ├─ OrderNotFound            ← the broker does not know the order (e.g. cancelling one already gone)
│  ├─ MalformedResponse        ← the broker answered a shape we cannot read; nothing is guessed, ask again later
│  └─ FillRefused              ← a fill that would corrupt the order book; nothing recorded
├─ RunAborted                  ← a run's worker was stopped; that run fails, the others go on
│  ├─ RunTimedOut              ← it passed its deadline (plan `timeout`)
│  └─ RunKilled                ← it died: the memory limit, a crash, or the daemon stopping
├─ SearchSpaceError            ← an optimiser --param/--constraint/--metric it cannot use; fix the option
├─ ExecutorUnavailable         ← the executor asked for cannot run (Dask missing, scheduler unreachable)
├─ NotifyError(notifier)       ← a notifier failed; log and record, never break a run
├─ StoreError                  ← DuckDB failed
│  └─ StoreLocked              ← another process holds the database file; retry later
├─ BrowserMissing              ← no Chromium/chromedriver on this machine; install them or point to them
├─ AlreadyRunning              ← another daemon holds this state dir; stop it first
└─ BotError                    ← the Telegram Bot API refused the token or cannot be reached; the rest runs on
```

`retryable` tells the daemon whether the same work may succeed later unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any


class MinitradeError(Exception):
    """Base of every error minitrade raises on purpose."""

    retryable = False


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one file, as a person would want it pointed out."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}:{field} {self.message}{hint}"


class ConfigError(MinitradeError):
    """The trading repo's files are invalid: show every issue, change nothing."""

    def __init__(self, issues: list[ConfigIssue] | ConfigIssue) -> None:
        self.issues = [issues] if isinstance(issues, ConfigIssue) else list(issues)
        count = len(self.issues)
        head = "1 problem" if count == 1 else f"{count} problems"
        super().__init__(f"{head} in the trading repo:\n" + "\n".join(f"  {i}" for i in self.issues))


class GitError(MinitradeError):
    """git failed or the folder is not a repository; fix the repo or the revision asked for."""


class PlanUnknown(MinitradeError):
    """No applied plan by that name: check the name (`minitrade status` lists them) or apply it first."""


class StrategyError(MinitradeError):
    """User strategy code is malformed or raised; the run fails, the caller keeps going."""

    def __init__(self, message: str, *, plan: str | None = None, file: str | None = None,
                 line: int | None = None) -> None:
        self.plan, self.file, self.line = plan, file, line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        who = f"plan {plan}: " if plan else ""
        super().__init__(f"{who}{where}{message}")


class DataError(MinitradeError):
    """Prices could not be had or were malformed; the run fails with the ticker named."""

    def __init__(self, message: str, *, source: str | None = None, ticker: str | None = None,
                 retryable: bool = False) -> None:
        self.source, self.ticker = source, ticker
        self.retryable = retryable
        parts = [p for p in (source, ticker) if p]
        super().__init__(f"{'/'.join(parts)}: {message}" if parts else message)


class DataChanged(DataError):
    """Strict mode found past prices changed (split, dividend); abort the run, start a new plan.

    `changes` are the per-ticker changes found (minitrade.data.changes.PriceChange records)."""

    def __init__(self, message: str, *, changes: Sequence[object] = (), source: str | None = None,
                 ticker: str | None = None) -> None:
        super().__init__(message, source=source, ticker=ticker)
        self.changes: Sequence[Any] = changes


class DataStale(DataError):
    """The source has no bar for the day a run decides on: fail the run; update the data or its delay.

    `last_bar` is the source's last bar (None when it has none in the window asked), `expected` the
    day whose bar was needed (None when a source only knows the window was empty).
    """

    def __init__(self, message: str, *, source: str | None = None, ticker: str | None = None,
                 last_bar: date | None = None, expected: date | None = None) -> None:
        self.last_bar, self.expected = last_bar, expected
        super().__init__(message, source=source, ticker=ticker)


class FetchStopped(DataError):
    """A many-ticker fetch was stopped on request: stored batches are kept, the next fetch continues."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message, source=source, retryable=True)


class BrokerError(MinitradeError):
    """A broker call failed."""

    def __init__(self, message: str, *, account: str | None = None) -> None:
        self.account = account
        super().__init__(f"broker {account}: {message}" if account else message)


class BrokerNotReady(BrokerError):
    """No live brokerage session: hold orders and ask the person to log in; never log in silently."""


class BrokerDisconnected(BrokerNotReady):
    """The gateway answers but its link to the broker's servers is down: hold orders, send them once it is back."""


class OrderRejected(BrokerError):
    """The broker refused an order: record it, notify, do not retry."""


class OrderQuestionRefused(OrderRejected):
    """The broker asked a question about an order that may not be confirmed; it was answered no and the
    order discarded. Record it REJECTED with the question, and show the person the question's text."""

    def __init__(self, message: str, *, account: str | None = None, message_ids: tuple[str, ...] = (),
                 question: str = "") -> None:
        self.message_ids, self.question = message_ids, question
        super().__init__(message, account=account)



class AlreadyPlaced(OrderRejected):
    """The broker refused the client order id as already registered: the order exists; look it up,
    do not resend."""

class BrokerUnavailable(BrokerError):
    """Timeout or 5xx: retry reads; before re-submitting, look the client order id up first."""

    retryable = True



class RateLimited(BrokerUnavailable):
    """The broker answered 429: retrying at once makes it worse (IB may block the address)."""

    retryable = False


class OrderNotFound(BrokerError):
    """The broker does not know the order (cancelling one that is already gone)."""


class MalformedResponse(BrokerError):
    """The broker's answer lacks a field or holds an unreadable value: nothing is recorded from it."""

class FillRefused(BrokerError):
    """A fill that would corrupt the order book; nothing was recorded."""


class RunAborted(MinitradeError):
    """A run's compute phase was stopped from outside; that run fails, the others go on."""


class RunTimedOut(RunAborted):
    """The run passed its deadline and its worker was killed; fix the strategy or raise `timeout`."""


class RunKilled(RunAborted):
    """The run's worker died (memory limit, crash, shutdown) before it returned a result."""


class SearchSpaceError(MinitradeError):
    """`minitrade optimize` cannot use a parameter range, constraint, metric or window; fix the option."""


class ExecutorUnavailable(MinitradeError):
    """The executor asked for cannot run: Dask not installed, or its scheduler unreachable; fix or use local."""

    retryable = True


class NotifyError(MinitradeError):
    """A notifier failed to deliver; log and record it, never break a run over it."""

    retryable = True


class StoreError(MinitradeError):
    """The DuckDB state store failed."""


class StoreLocked(StoreError):
    """Another process holds the database file; retry later or stop that process."""

    retryable = True


class BrowserMissing(MinitradeError):
    """No usable Chromium (or Chrome) and chromedriver on this machine; install them or name their paths."""


class AlreadyRunning(MinitradeError):
    """Another daemon holds this state dir; stop it first."""


class BotError(MinitradeError):
    """The Telegram Bot API refused the bot's token or cannot be reached: check telegram.bot_token and
    api_url; trading goes on without the bot (the daemon retries it)."""

    retryable = True
