"""Every error minitrade raises, named for what the caller does about it.

```
MinitradeError
├─ ConfigError(issues)         ← bad YAML, unknown key, bad reference; terminal for that commit
├─ GitError                    ← not a git repo, unknown revision; fix the repo or the --rev
├─ StrategyError(plan)         ← user strategy raised or is malformed; fix the strategy file
├─ DataError(source, ticker)   ← provider down (retryable) or bad response shape (terminal)
│  └─ DataChanged              ← strict mode: past prices changed; start a new plan or accept
├─ BrokerError(account)
│  ├─ BrokerNotReady           ← not logged in: hold orders and notify, never log in silently
│  ├─ OrderRejected            ← broker said no; record it, notify, do not retry
│  └─ BrokerUnavailable        ← timeout/5xx; retry reads, reconcile before re-submitting
├─ NotifyError(notifier)       ← a notifier failed; log and record, never break a run
├─ StoreError                  ← DuckDB failed
│  └─ StoreLocked              ← another process holds the database file; retry later
└─ BrowserMissing              ← no Chromium/chromedriver on this machine; install them or point to them
```

`retryable` tells the daemon whether the same work may succeed later unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    """Strict mode found past prices changed (split, dividend); abort the run, start a new plan."""


class BrokerError(MinitradeError):
    """A broker call failed."""

    def __init__(self, message: str, *, account: str | None = None) -> None:
        self.account = account
        super().__init__(f"broker {account}: {message}" if account else message)


class BrokerNotReady(BrokerError):
    """No live brokerage session: hold orders and ask the person to log in; never log in silently."""


class OrderRejected(BrokerError):
    """The broker refused an order: record it, notify, do not retry."""


class BrokerUnavailable(BrokerError):
    """Timeout or 5xx: retry reads; before re-submitting, look the client order id up first."""

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
