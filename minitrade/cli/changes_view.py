"""Rendering a ChangeSet for people (terraform-like text) and for machines (--json)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from minitrade.cli.app import JSON_FORMAT_VERSION
from minitrade.diff import Action, Change, ChangeSet

_STYLE = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.REPLACE: "magenta", Action.DELETE: "red"}


def _value(v: Any) -> str:
    if v is None:
        return "(none)"
    return json.dumps(v, default=str) if not isinstance(v, str) else v


def print_change(console: Console, change: Change) -> None:
    style = _STYLE[change.action]
    label = f"{change.action.symbol} {change.kind} {change.name}"
    reason = f"  [dim]# {escape(change.reason)}[/]" if change.reason else ""
    lines = [f"  [{style}]{escape(label)}[/]{reason}"]
    for f in change.fields:
        if change.action is Action.CREATE:
            lines.append(f"      {escape(f.path)}: {escape(_value(f.after))}")
        elif change.action is Action.DELETE:
            lines.append(f"      [dim]{escape(f.path)}: {escape(_value(f.before))}[/]")
        else:
            lines.append(f"      {escape(f.path)}: [red]{escape(_value(f.before))}[/] -> "
                         f"[green]{escape(_value(f.after))}[/]")
    console.print("\n".join(lines))  # one call per change: rich's per-call cost dominates 500-plan plans


def print_changes(console: Console, changes: ChangeSet) -> None:
    if changes.empty:
        console.print("No changes: the applied state matches the files.")
        return
    console.print("Changes:")
    for change in changes.changes:
        print_change(console, change)
    c = changes.counts()
    console.print(f"\nPlan: {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
                  f"{c['delete']} to delete.")


def print_schedule(console: Console, next_runs: dict[str, list[datetime]], disabled: set[str]) -> None:
    if not next_runs:
        return
    console.print("\nNext runs:")
    width = max(len(n) for n in next_runs)
    lines = []
    for name, times in next_runs.items():
        if name in disabled:
            lines.append(f"  {escape(name.ljust(width))}  [dim](backtest disabled: not scheduled)[/]")
            continue
        shown = ", ".join(t.strftime("%a %Y-%m-%d %H:%M:%S %Z") for t in times) or "none (calendar ended)"
        lines.append(f"  {escape(name.ljust(width))}  {escape(shown)}")
    console.print("\n".join(lines))


def changes_json(changes: ChangeSet, *, desired: dict[str, Any], applied: dict[str, Any],
                 next_runs: dict[str, list[datetime]], warnings: list[str]) -> str:
    doc = {
        "format_version": JSON_FORMAT_VERSION,
        "kind": "plan",
        "desired": desired,
        "applied": applied,
        "changes": [
            {"action": c.action.value, "symbol": c.action.symbol, "kind": c.kind, "name": c.name,
             "reason": c.reason or None,
             "fields": [{"path": f.path, "before": f.before, "after": f.after} for f in c.fields]}
            for c in changes.changes
        ],
        "summary": changes.counts(),
        "next_runs": {name: [t.isoformat() for t in times] for name, times in next_runs.items()},
        "warnings": warnings,
    }
    return json.dumps(doc, indent=2, default=str, ensure_ascii=False)
