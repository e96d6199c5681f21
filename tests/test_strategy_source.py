"""A strategy's declared params, read from its source without running it; None whenever unsure."""

from __future__ import annotations

import pytest

from minitrade.strategy_source import declared_params

BT = "import backtrader as bt\n"
MT = "from minitrade import Strategy, entry_strategy\n"


@pytest.mark.parametrize(("source", "class_name", "expected"), [
    pytest.param(BT + "class S(bt.Strategy):\n    params = (('fast', 1), ('slow', 2))\n", None,
                 ("S", ["fast", "slow"]), id="tuple-of-pairs"),
    pytest.param(BT + "class S(bt.Strategy):\n    params = [['fast', 1]]\n", None, ("S", ["fast"]), id="list"),
    pytest.param(BT + "class S(bt.Strategy):\n    params = {'fast': 1}\n", None, ("S", ["fast"]), id="dict"),
    pytest.param(BT + "class S(bt.Strategy):\n    params = dict(fast=1, slow=2)\n", None,
                 ("S", ["fast", "slow"]), id="dict-call"),
    pytest.param(MT + "class S(Strategy):\n    def next(self):\n        params = 1\n", None, ("S", []),
                 id="no-params-minitrade"),
    pytest.param(BT + "class Base(bt.Strategy):\n    params = (('fast', 1),)\n"
                 "class S(Base):\n    params = (('slow', 2),)\n", "S", ("S", ["fast", "slow"]), id="inherited"),
    pytest.param(MT + "class A(Strategy):\n    params = dict(a=1)\n@entry_strategy\nclass B(Strategy):\n"
                 "    params = dict(b=1)\n", None, ("B", ["b"]), id="entry-marked"),
    pytest.param(BT + "class S(bt.SignalStrategy):\n    params = dict(fast=1)\n", None, None,
                 id="base-with-its-own-params"),
    pytest.param("from elsewhere import Strategy\nclass S(Strategy):\n    params = dict(fast=1)\n", None, None,
                 id="strategy-from-another-module"),
    pytest.param(BT + "P = (('fast', 1),)\nclass S(bt.Strategy):\n    params = P\n", None, None, id="computed"),
    pytest.param(BT + "class S(bt.Strategy):\n    if True:\n        params = dict(a=1)\n", None, None,
                 id="conditional"),
    pytest.param(BT + "class A(bt.Strategy):\n    pass\nclass B(bt.Strategy):\n    pass\n", None, None,
                 id="two-strategies-unmarked"),
    pytest.param(BT + "class S(bt.Strategy)\n", None, None, id="syntax-error"),
])
def test_declared_params(source: str, class_name: str | None, expected: tuple[str, list[str]] | None) -> None:
    assert declared_params(source, class_name) == expected


def test_a_file_nested_too_deep_for_the_parser_is_unknown_not_a_crash() -> None:
    assert declared_params(BT + "x = " + "1+" * 200_000 + "1\n") is None
