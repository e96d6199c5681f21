"""Publishing the report site from the store: gather every plan's records and render the pages.

Lives in the orchestration layer because it joins the store, the scheduler and the renderer;
`minitrade report`, the daemon (after each pass that ran something) and `replay` call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minitrade.errors import ConfigError, MinitradeError
from minitrade.models import Plan
from minitrade.reports import PlanInput, SiteInput, render_index, render_plan
from minitrade.store import Store, reporting

Progress = Callable[[int, int, str], None]


def next_run(spec: Mapping[str, Any] | None, now: datetime) -> datetime | None:
    """The applied plan's next tick, or None (suspended, deleted, or its calendar has ended)."""
    if not spec or spec.get("backtest") == "disabled":
        return None
    from minitrade.scheduler import next_run_times

    try:
        times = next_run_times(Plan.model_validate(dict(spec)), now, count=1)
    except (ValueError, MinitradeError):
        return None
    return times[0] if times else None


def broker_state(plan: PlanInput, known: Mapping[str, str]) -> str | None:
    """What the report can say about the broker session without contacting it."""
    broker = plan.broker
    if broker is None:
        return None
    if broker in known:
        return known[broker]
    if broker == "manual":
        return "ready"
    if any(o.get("status") == "HELD" for o in plan.orders):
        return "login needed: orders held"
    return "not checked (minitrade ib status)"


def write_site(store: Store, out_dir: Path, *, plans: list[str] | None = None,
               broker_states: Mapping[str, str] | None = None, progress: Progress | None = None,
               now: datetime | None = None, secrets: Sequence[str] = ()) -> Path:
    """Gather every (or the named) plan from the store and write the site; returns index.html.

    The index always lists every plan; `plans` limits which plan pages are rewritten. The runner
    calls this after each run with the live broker state it knows. `secrets` are masked in every
    file written (`minitrade.notify.settings_secrets(settings)` gives them).
    """
    now = now or datetime.now(UTC)
    with store.transaction() as con:
        names = reporting.plan_names(con)
        unknown = sorted(set(plans or []) - set(names))
        if unknown:
            from minitrade.errors import ConfigIssue

            raise ConfigError([ConfigIssue("state", None, "plan", f"no plan named {n!r} in the store",
                                           f"known: {', '.join(names) or 'none yet'}") for n in unknown])
        site = SiteInput(plans=[], generated_at=now, applied_commit=reporting.applied_commit(con),
                         last_reconciliation=reporting.last_reconciliation(con), secrets=tuple(secrets))
        wanted = set(plans or names)
        for done, name in enumerate(names, start=1):
            rows = reporting.plan_rows(con, name)
            if name not in wanted:  # the index needs the summary only
                rows.update(equity=[], closes=[], trades=[], sim_fills=[], fills=[])
            site.plans.append(PlanInput(name=name, **rows))
            if progress:
                progress(done, len(names) * 2, f"read {name}")
    for plan in site.plans:
        plan.next_run = next_run(plan.spec, now)
        plan.broker_state = broker_state(plan, broker_states or {})
    for done, plan in enumerate(site.plans, start=1):
        if plan.name in wanted:
            render_plan(plan, out_dir, site=site)
        if progress:
            progress(len(names) + done, len(names) * 2, f"wrote {plan.name}")
    return render_index(site, out_dir)
