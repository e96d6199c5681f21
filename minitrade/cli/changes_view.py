"""Rendering a ChangeSet for people (terraform-like text) and for machines (--json)."""

from __future__ import annotations

import json
import re
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


# GitHub refuses a comment over 65,536 characters; the diff is cut to leave room for the rest.
MARKDOWN_DIFF_LIMIT = 60_000


def _diff_lines(change: Change) -> list[str]:
    """One change as lines of a ```diff block: + added (green), - removed (red), ~ header of an update."""
    reason = f"  # {change.reason}" if change.reason else ""
    lines = [f"{change.action.symbol} {change.kind} {change.name}{reason}"]
    for f in change.fields:
        if change.action is Action.CREATE:
            lines.append(f"+     {f.path}: {_value(f.after)}")
        elif change.action is Action.DELETE:
            lines.append(f"-     {f.path}: {_value(f.before)}")
        else:  # the before and after lines of a field, as a diff reads best
            lines += [f"-     {f.path}: {_value(f.before)}", f"+     {f.path}: {_value(f.after)}"]
    return lines


def _fence(body: str) -> str:
    """A fence longer than any run of backticks in the body, so a value cannot close the block."""
    return "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", body)), default=0))


def changes_markdown(changes: ChangeSet, *, ref: str, desired: str, against: str,
                     next_runs: dict[str, list[datetime]], disabled: set[str], warnings: list[str]) -> str:
    """The plan as a pull-request comment (Atlantis style): heading, summary, ```diff block, warnings."""
    c = changes.counts()
    out = [f"### minitrade plan for {ref}", "", f"Desired: {desired}  ", f"Compared with: {against}", ""]
    if changes.empty:
        out.append("**No changes**: the applied state matches the files.")
    else:
        out.append(f"**Plan: {c['create']} to add, {c['update']} to change, {c['replace']} to replace, "
                   f"{c['delete']} to remove.**")
        lines: list[str] = []
        for change in changes.changes:
            lines += _diff_lines(change)
        body, size = [], 0
        for i, line in enumerate(lines):
            if size + len(line) + 1 > MARKDOWN_DIFF_LIMIT:
                body.append(f"# ... {len(lines) - i} more lines: run `minitrade plan` to see them all")
                break
            body.append(line)
            size += len(line) + 1
        text = "\n".join(body)
        fence = _fence(text)
        out += ["", f"{fence}diff", text, fence]
    if warnings:
        out += ["", "**Warnings**", ""] + [f"- :warning: {w}" for w in warnings]
    if next_runs:
        out += ["", "<details><summary>Next runs</summary>", "", "| plan | next runs |", "| --- | --- |"]
        for name, times in next_runs.items():
            shown = ("backtest disabled: not scheduled" if name in disabled else
                     ", ".join(t.strftime("%a %Y-%m-%d %H:%M %Z") for t in times) or "none (calendar ended)")
            out.append(f"| {name} | {shown} |")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
