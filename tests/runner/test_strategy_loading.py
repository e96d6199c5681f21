"""Strategy files: which class runs, and every malformed file or failing strategy names file:line."""

from __future__ import annotations

import backtrader as bt
import pytest

from minitrade.errors import StrategyError
from minitrade.runner.backtest import run_backtest
from minitrade.runner.strategy import load_strategy

from .conftest import SMA_SOURCE, bars, make_plan

TWO = '''
from minitrade import Strategy, entry_strategy


class Helper(Strategy):
    pass


{marker}
class Main(Strategy):
    pass
'''


def test_single_class_file_runs_that_class() -> None:
    cls = load_strategy(SMA_SOURCE, "strategies/sma.py")
    assert cls.__name__ == "SmaCross" and issubclass(cls, bt.Strategy)


def test_entry_strategy_marker_picks_the_class() -> None:
    cls = load_strategy(TWO.format(marker="@entry_strategy"), "strategies/two.py")
    assert cls.__name__ == "Main"


def test_class_named_in_the_plan_wins() -> None:
    assert load_strategy(TWO.format(marker=""), "strategies/two.py", "Helper").__name__ == "Helper"


def test_unknown_class_name_suggests_the_nearest() -> None:
    with pytest.raises(StrategyError, match=r"strategies/two.py: no strategy class 'Mian'; did you mean 'Main'"):
        load_strategy(TWO.format(marker=""), "strategies/two.py", "Mian")


def test_several_unmarked_classes_is_an_error_naming_file_and_line() -> None:
    with pytest.raises(StrategyError) as info:
        load_strategy(TWO.format(marker=""), "strategies/two.py")
    assert info.value.file == "strategies/two.py" and info.value.line == 10
    assert "@entry_strategy" in str(info.value) and "Helper, Main" in str(info.value)


def test_imported_strategy_bases_do_not_count_as_candidates() -> None:
    source = "import backtrader as bt\nfrom minitrade import Strategy\nfrom backtrader import SignalStrategy\n\n" \
             "class Mine(Strategy):\n    pass\n"
    assert load_strategy(source, "strategies/mine.py").__name__ == "Mine"


def test_file_without_strategy_is_an_error() -> None:
    with pytest.raises(StrategyError, match=r"strategies/empty.py: no strategy class found"):
        load_strategy("X = 1\n", "strategies/empty.py")


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(StrategyError, match=r"strategies/bad.py:3: syntax error"):
        load_strategy("import backtrader as bt\n\nclass S(bt.Strategy)\n    pass\n", "strategies/bad.py")


def test_import_error_names_file_and_line() -> None:
    with pytest.raises(StrategyError, match=r"strategies/imp.py:2: importing the strategy failed: "
                                            r"ModuleNotFoundError: No module named 'no_such_lib'"):
        load_strategy("import backtrader as bt\nimport no_such_lib\n", "strategies/imp.py")


RAISES_IN_NEXT = '''from minitrade import Strategy


class Boom(Strategy):
    def next(self):
        if len(self) == 3:
            ratio = 1 / 0
'''


def test_exception_in_next_becomes_strategy_error_at_the_users_line() -> None:
    cls = load_strategy(RAISES_IN_NEXT, "strategies/boom.py")
    with pytest.raises(StrategyError) as info:
        run_backtest(make_plan(), {"AAA": bars([10] * 5, [10] * 5)}, cls)
    err = info.value
    assert (err.plan, err.file, err.line) == ("test-plan", "strategies/boom.py", 7)
    assert str(err) == "plan test-plan: strategies/boom.py:7: ZeroDivisionError: division by zero"


def test_exception_in_init_becomes_strategy_error() -> None:
    source = "import backtrader as bt\n\nclass Bad(bt.Strategy):\n    def __init__(self):\n" \
             "        self.x = bt.ind.SMA(period='ten')\n"
    cls = load_strategy(source, "strategies/init.py")
    with pytest.raises(StrategyError, match=r"strategies/init.py:5: TypeError"):
        run_backtest(make_plan(), {"AAA": bars([10] * 5, [10] * 5)}, cls)


def test_order_for_a_ticker_outside_the_universe_is_a_clear_error() -> None:
    source = "import backtrader as bt\n\nclass Stray(bt.Strategy):\n    def next(self):\n" \
             "        self.buy(data='ZZZ', size=1)\n"
    cls = load_strategy(source, "strategies/stray.py")
    with pytest.raises(StrategyError) as info:
        run_backtest(make_plan(), {"AAA": bars([10] * 5, [10] * 5)}, cls)
    assert "ticker 'ZZZ' is not in the plan's universe (AAA)" in str(info.value)
    assert info.value.line == 5 and info.value.plan == "test-plan"


def test_data_of_an_unknown_ticker_is_a_clear_error() -> None:
    source = "from minitrade import Strategy\n\nclass Stray(Strategy):\n    def next(self):\n" \
             "        self.data_of('ZZZ')\n"
    cls = load_strategy(source, "strategies/stray2.py")
    with pytest.raises(StrategyError, match=r"strategies/stray2.py:5: ticker 'ZZZ' is not in the plan's universe"):
        run_backtest(make_plan(), {"AAA": bars([10] * 5, [10] * 5)}, cls)


def test_plan_params_override_strategy_params() -> None:
    source = "from minitrade import Strategy\n\nclass P(Strategy):\n    params = (('lookback', 3),)\n" \
             "    def start(self):\n        self.storage['seen'] = self.p.lookback\n"
    storage: dict[str, object] = {}
    run_backtest(make_plan(params={"lookback": 7}), {"AAA": bars([10] * 5, [10] * 5)},
                 load_strategy(source, "strategies/p.py"), storage=storage)
    assert storage == {"seen": 7}


def test_unknown_plan_param_is_an_error_with_a_suggestion() -> None:
    cls = load_strategy(SMA_SOURCE, "strategies/sma.py")
    with pytest.raises(StrategyError, match=r"plan param 'slwo' is not a param of strategy SmaCross "
                                            r"\(did you mean 'slow'\?\)"):
        run_backtest(make_plan(params={"slwo": 3}), {"AAA": bars([10] * 5, [10] * 5)}, cls)


def test_strategy_sees_now_tickers_and_initial_positions() -> None:
    source = '''from minitrade import Strategy


class Look(Strategy):
    def next(self):
        self.storage.setdefault("days", []).append(self.now.isoformat())
        self.storage["tickers"] = self.tickers
        self.storage["initial"] = self.initial_positions
        self.storage["held"] = self.position_of("BBB")
'''
    storage: dict[str, object] = {}
    frames = {"AAA": bars([10, 11], [10, 11]), "BBB": bars([5, 6], [5, 6])}
    plan = make_plan(universe=["AAA", "BBB"], positions={"BBB": 3})
    run_backtest(plan, frames, load_strategy(source, "strategies/look.py"), storage=storage)
    assert storage == {"days": ["2024-01-02", "2024-01-03"], "tickers": ["AAA", "BBB"],
                       "initial": {"BBB": 3.0}, "held": 3.0}


def test_a_syntax_error_names_file_and_line_without_quoting_the_line() -> None:
    source = 'import backtrader as bt\nTOKEN = "AAE-secret-token-text"\nx = (TOKEN,\ndef f(:\n'
    with pytest.raises(StrategyError) as info:
        load_strategy(source, "strategies/bad.py")
    assert (info.value.file, info.value.line) == ("strategies/bad.py", 4)
    assert "secret" not in str(info.value) and len(str(info.value)) < 200


def test_an_import_error_message_is_cut_to_one_bounded_line() -> None:
    source = "import backtrader as bt\nraise ValueError('line one\\n' + 'A' * 100000)\n"
    with pytest.raises(StrategyError) as info:
        load_strategy(source, "strategies/huge.py")
    message = str(info.value)
    assert message.startswith("strategies/huge.py:2: importing the strategy failed: ValueError: line one AAAA")
    assert "\n" not in message and len(message) < 400
