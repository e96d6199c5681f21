"""Apply desired state: validate, run the checks on what changed, record it with its commit.

Owns last-attempted vs last-applied: every attempt is recorded; only an attempt whose checks all
pass moves the applied state, in one transaction, so a bad commit never damages a good state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from minitrade import clock, gitrepo
from minitrade.diff import ChangeSet, Key, compute
from minitrade.errors import ConfigError, GitError
from minitrade.loader import Snapshot
from minitrade.records import ApplyOutcome
from minitrade.runner.suspension import Override, clear_disabled
from minitrade.store import Store
from minitrade.store.applied import (
    applied_resources,
    finish_loading,
    last_applied,
    record_loading,
    record_reconciliation,
    replace_applied,
)

Check = Callable[[Snapshot, set[Key]], list[str]]
Progress = Callable[[str], None]


@dataclass
class ApplyResult:
    changes: ChangeSet
    outcome: ApplyOutcome
    errors: list[str] = field(default_factory=list)
    # suspensions the applied files made moot (the plan is now disabled or deleted), with why
    cleared: list[tuple[Override, str]] = field(default_factory=list)


def strategy_compile_check(snapshot: Snapshot, changed: set[Key]) -> list[str]:
    """Every new or changed strategy file must at least be valid Python."""
    errors = []
    for kind, path in sorted(changed):
        if kind != "strategy":
            continue
        try:
            compile(snapshot.strategies[path], path, "exec")
        except SyntaxError as e:
            errors.append(f"{path}:{e.lineno}: syntax error: {e.msg}")
    return errors


def default_checks() -> list[tuple[str, Check]]:
    """The checks `apply` runs, in order, each over the resources that are new or changed.

    The test notification goes last and only when everything else passed, so a rejected change
    never pings anyone's phone.
    """
    from minitrade.brokers.ib.contracts import contracts_check
    from minitrade.data.source_check import check as data_source_check
    from minitrade.notify.check import notifier_check
    from minitrade.runner.dry_run import dry_run_check

    return [
        ("strategy code", strategy_compile_check),
        ("data sources", data_source_check),
        ("broker connections and contracts", contracts_check),
        ("dry-run backtests", dry_run_check),
        (NOTIFY_CHECK, notifier_check),
    ]


NOTIFY_CHECK = "test notifications"


def desired_state(snapshot: Snapshot) -> dict[Key, tuple[str, dict[str, object]]]:
    specs, digests = snapshot.resources(), snapshot.digests()
    return {key: (digests[key], spec) for key, spec in specs.items()}


def changeset(snapshot: Snapshot, store: Store) -> ChangeSet:
    """What `apply` would change, comparing the snapshot with the applied state in `store`."""
    with store.transaction() as con:
        applied = {k: (r.digest, r.spec) for k, r in applied_resources(con).items()}
    return compute(desired_state(snapshot), applied,
                   {name: plan.strategy for name, plan in snapshot.plans.items()})


def apply(snapshot: Snapshot, store: Store, *, checks: Sequence[tuple[str, Check]] | None = None,
          source: str = "apply", progress: Progress | None = None) -> ApplyResult:
    """Check what changed and record the new applied state with its commit, or record the rejection."""
    say = progress or (lambda _msg: None)
    changes = changeset(snapshot, store)
    touched = changes.touched()
    # A plan whose strategy code changed is rerun by the checks too.
    touched |= {("plan", n) for n, p in snapshot.plans.items() if ("strategy", p.strategy) in touched}
    errors: list[str] = []
    if not changes.empty:
        for name, check in (checks if checks is not None else default_checks()):
            if errors and name == NOTIFY_CHECK:
                break
            say(f"checking {name}")
            errors += check(snapshot, touched)
    info = _commit_info(snapshot)
    cleared: list[tuple[Override, str]] = []
    with store.transaction() as con:
        previous = last_applied(con)
        if errors:
            outcome = ApplyOutcome.REJECTED
        elif changes.empty:
            outcome = ApplyOutcome.UNCHANGED
            if previous is not None and previous.commit_sha == snapshot.commit and previous.dirty == snapshot.dirty:
                return ApplyResult(changes, outcome)
        else:
            outcome = ApplyOutcome.APPLIED
            replace_applied(con, desired_state(snapshot), snapshot.commit)
            cleared = clear_disabled(con, snapshot.plans, at=clock.now(), by=f"apply of commit "
                                     f"{(snapshot.commit or 'uncommitted')[:8]}{' (dirty)' if snapshot.dirty else ''}")
        record_reconciliation(con, commit_sha=snapshot.commit, dirty=snapshot.dirty,
                              author_time=info[0], message=info[1], outcome=outcome,
                              error="\n".join(errors) or None, source=source)
    return ApplyResult(changes, outcome, errors, cleared)


def record_rejected_load(root: Path, store: Store, commit: str | None, error: ConfigError | GitError,
                         source: str) -> None:
    """A commit that does not even load is still an attempt: record it with its errors."""
    author_time, message = _commit_meta(root, commit)
    with store.transaction() as con:
        record_reconciliation(con, commit_sha=commit, dirty=False, author_time=author_time, message=message,
                              outcome=ApplyOutcome.REJECTED, error=str(error), source=source)


def begin_load(root: Path, store: Store, commit: str, source: str) -> int:
    """Record `commit` as being loaded, before its load starts (see store.applied.LOADING)."""
    author_time, message = _commit_meta(root, commit)
    with store.transaction() as con:
        return record_loading(con, commit_sha=commit, author_time=author_time, message=message, source=source)


def end_load(store: Store, attempt_id: int, error: str | None) -> None:
    """The load begun as `attempt_id` ended: loaded (error None) or rejected with `error`."""
    with store.transaction() as con:
        finish_loading(con, attempt_id, error=error)


def _commit_meta(root: Path, commit: str | None) -> tuple[datetime | None, str | None]:
    if commit:
        try:
            meta = gitrepo.commit_info(root, commit)
            return meta.author_time, meta.message
        except GitError:
            pass
    return None, None


def _commit_info(snapshot: Snapshot) -> tuple[datetime | None, str | None]:
    if not snapshot.commit:
        return None, None
    meta = gitrepo.commit_info(snapshot.root, snapshot.commit)
    return meta.author_time, meta.message
