"""YAML parsing: the fast libyaml path accepts and refuses exactly what the reference parser does."""

from __future__ import annotations

import pytest

from minitrade.errors import ConfigIssue
from minitrade.yamlsource import YamlDoc, parse_yaml


@pytest.fixture
def pure_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.setattr(yaml, "__with_libyaml__", False)


SAMPLES = [
    pytest.param(b"name: x\nuniverse: [SPY, QQQ]\nparams: {a: {b: [1, {c: 2}]}}\n", id="nested"),
    pytest.param(b"a: 1\n\tb: 2\n", id="tab-indent"),
    pytest.param(b"a:\tb\n", id="tab-separator"),
    pytest.param(b"name: x\t\n", id="trailing-tab"),
    pytest.param(b"a: [1, 2\nb: 3\n", id="unclosed-bracket"),
    pytest.param(b"a: b: c\n", id="mapping-in-value"),
    pytest.param(b"a: 1\na: 2\n", id="duplicate-key"),
    pytest.param(b"d: 2023-02-30\n", id="impossible-date"),
    pytest.param(b"k: \x01\n", id="control-character"),
    pytest.param(b"---\na: 1\n---\nb: 2\n", id="two-documents"),
    pytest.param(b"a: !!int x\n", id="bad-explicit-tag"),
    pytest.param(b"a: !custom x\n", id="unknown-tag"),
    pytest.param(b"a: *x\n", id="unknown-alias"),
    pytest.param(b"? [a]\n: 1\n", id="list-as-key"),
    pytest.param(b"\xef\xbb\xbfa: 1\n", id="bom"),
    pytest.param(b"a: caf\xc3\xa9\nb: yes\nc: 0o17\nd: 1_000\ne: .inf\n", id="scalars"),
    pytest.param(b"", id="empty"),
    pytest.param(b"base: &b {fast: 10, slow: [20, 30]}\nplans: [*b, *b, {x: *b}]\n", id="small-aliases"),
    pytest.param(b"a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
                 id="alias-bomb"),
    pytest.param(b"a: &x [1, *x]\n", id="alias-loop"),
    pytest.param(b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", id="deep-nesting"),
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_fast_and_reference_parsers_agree(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    fast = parse_yaml(raw, "plans/p.yaml")
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    assert parse_yaml(raw, "plans/p.yaml") == fast


def test_lines_of_keys_are_one_based() -> None:
    doc = parse_yaml(b"# comment\nname: x\nparams:\n  fast: 20\n", "plans/p.yaml")
    assert isinstance(doc, YamlDoc)
    assert doc.line_of(("params", "fast")) == 4 and doc.line_of(("name",)) == 2
    assert doc.line_of(("params", "missing")) == 3


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure"])
def test_a_control_character_is_an_issue_with_its_line_not_a_traceback(
        fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.setattr(yaml, "__with_libyaml__", fast and yaml.__with_libyaml__)
    issue = parse_yaml(b"name: x\ncash: 1\x01\n", "plans/p.yaml")
    assert isinstance(issue, ConfigIssue)
    assert (issue.file, issue.line) == ("plans/p.yaml", 2) and "#x0001" in issue.message


def test_a_value_that_does_not_fit_its_tag_is_an_issue(pure_only: None) -> None:
    issue = parse_yaml(b"cash: !!int lots\n", "plans/p.yaml")
    assert isinstance(issue, ConfigIssue) and issue.message.startswith("invalid YAML:")


def test_aliases_that_expand_past_the_bound_are_refused_at_the_alias_that_crosses_it() -> None:
    from minitrade.yamlsource import MAX_ALIAS_NODES

    block = "[" + ", ".join(["1"] * 99) + "]"  # 100 nodes each time it is repeated
    repeats = MAX_ALIAS_NODES // 100
    within = f"a: &a {block}\n" + "".join(f"k{i}: *a\n" for i in range(repeats))
    doc = parse_yaml(within.encode(), "plans/p.yaml")
    assert isinstance(doc, YamlDoc) and doc.data[f"k{repeats - 1}"] == [1] * 99
    issue = parse_yaml((within + "over: *a\n").encode(), "plans/p.yaml")
    assert isinstance(issue, ConfigIssue)
    assert (issue.line, issue.message) == (repeats + 2, f"invalid YAML: aliases expand to more than "
                                                        f"{MAX_ALIAS_NODES} nodes")


def test_nesting_too_deep_for_the_stack_is_an_issue_not_a_recursion_error(pure_only: None) -> None:
    issue = parse_yaml(b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "plans/p.yaml")
    assert isinstance(issue, ConfigIssue) and "nests too deeply" in issue.message
