"""minitrade: run trading strategies on schedule, GitOps style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from minitrade.strategy_api import Strategy, entry_strategy

__all__ = ["Strategy", "__version__", "entry_strategy"]


def __getattr__(name: str) -> Any:
    # Strategy files do `from minitrade import Strategy`; load backtrader only when they do.
    if name in ("Strategy", "entry_strategy"):
        from minitrade import strategy_api

        return getattr(strategy_api, name)
    raise AttributeError(f"module 'minitrade' has no attribute {name!r}")
