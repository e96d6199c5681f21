"""ChangeSet: create, update with field-level before/after, delete, replace on identity fields."""

from __future__ import annotations

from minitrade.diff import Action, compute

PLAN = {"name": "p", "cash": 1000.0, "universe": {"SPY": {}}, "params": {"fast": 10}, "strategy": "s.py"}


def test_identical_state_has_no_changes() -> None:
    assert compute({("plan", "p"): ("d1", PLAN)}, {("plan", "p"): ("d1", PLAN)}).empty


def test_create_and_delete() -> None:
    changes = compute({("plan", "new"): ("d1", PLAN)}, {("plan", "old"): ("d2", PLAN)})
    assert [(c.action, c.name) for c in changes.changes] == [(Action.CREATE, "new"), (Action.DELETE, "old")]
    assert changes.touched() == {("plan", "new")}


def test_update_shows_only_the_edited_field() -> None:
    after = {**PLAN, "params": {"fast": 12}}
    (change,) = compute({("plan", "p"): ("d2", after)}, {("plan", "p"): ("d1", PLAN)}).changes
    assert change.action is Action.UPDATE
    assert [(f.path, f.before, f.after) for f in change.fields] == [("params.fast", 10, 12)]


def test_cash_change_forces_replacement() -> None:
    after = {**PLAN, "cash": 2000.0}
    (change,) = compute({("plan", "p"): ("d2", after)}, {("plan", "p"): ("d1", PLAN)}).changes
    assert change.action is Action.REPLACE and change.action.symbol == "-/+"
    assert "cash changed" in change.reason


def test_strategy_code_change_is_explained() -> None:
    (change,) = compute({("plan", "p"): ("d2", PLAN)}, {("plan", "p"): ("d1", PLAN)}, {"p": "s.py"}).changes
    assert change.action is Action.UPDATE and change.fields == ()
    assert change.reason == "strategy code s.py changed"


def test_changes_are_ordered_by_kind_then_name() -> None:
    desired = {("plan", "a"): ("1", PLAN), ("broker", "b"): ("1", {}), ("settings", "minitrade"): ("1", {})}
    kinds = [c.kind for c in compute(desired, {}).changes]
    assert kinds == ["settings", "broker", "plan"]
