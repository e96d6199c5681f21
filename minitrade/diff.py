"""Desired resources vs applied resources -> ChangeSet (+ create, ~ update, - delete, -/+ replace). Pure.

Called a ChangeSet, not a plan: in this product "plan" already means a trade plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from minitrade.models import REPLACE_FIELDS

Key = tuple[str, str]
Versioned = tuple[str, dict[str, Any]]  # (digest, spec)

KIND_ORDER = ("settings", "data_source", "broker", "notifier", "telegram", "strategy", "plan")


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}[self.value]


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str
    name: str
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""

    @property
    def key(self) -> Key:
        return (self.kind, self.name)


@dataclass
class ChangeSet:
    changes: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def touched(self) -> set[Key]:
        """Resources that are new or changed (what `apply` must check)."""
        return {c.key for c in self.changes if c.action is not Action.DELETE}

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out


def flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    """Nested maps as dotted paths; lists stay whole (a reordered universe is one change)."""
    if isinstance(spec, dict) and spec:
        out: dict[str, Any] = {}
        for k, v in spec.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: spec} if prefix else {}


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    old, new = flatten(before), flatten(after)
    return tuple(FieldChange(p, old.get(p), new.get(p)) for p in sorted(set(old) | set(new))
                 if old.get(p) != new.get(p))


def compute(desired: dict[Key, Versioned], applied: dict[Key, Versioned],
            plan_strategies: dict[str, str] | None = None) -> ChangeSet:
    """What applying `desired` over `applied` would change.

    Args:
        plan_strategies: plan name -> strategy path, to say why a plan whose spec did not change
            still changed (its strategy code did).
    """
    changes: list[Change] = []
    for key in sorted(set(desired) | set(applied), key=lambda k: (KIND_ORDER.index(k[0]), k[1])):
        kind, name = key
        if key not in applied:
            changes.append(Change(Action.CREATE, kind, name, field_changes({}, desired[key][1])))
        elif key not in desired:
            changes.append(Change(Action.DELETE, kind, name, field_changes(applied[key][1], {})))
        elif desired[key][0] != applied[key][0]:
            fields = field_changes(applied[key][1], desired[key][1])
            replaced = kind == "plan" and any(f.path.split(".")[0] in REPLACE_FIELDS for f in fields)
            reason = ""
            if replaced:
                names = sorted({f.path.split(".")[0] for f in fields} & set(REPLACE_FIELDS))
                reason = f"{', '.join(names)} changed: a new plan with a fresh history"
            elif not fields and plan_strategies and name in plan_strategies:
                reason = f"strategy code {plan_strategies[name]} changed"
            changes.append(Change(Action.REPLACE if replaced else Action.UPDATE, kind, name, fields, reason))
    return ChangeSet(changes)
