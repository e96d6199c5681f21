"""The state database (DuckDB): the only SQL in minitrade lives in this package.

`Store` opens short transactions; the submodules hold typed reads and writes per concern:
`applied` (desired state applied, reconciliations), `runs` (backtests and their results),
`prices` (price cache), `orders` (orders, fills, ticks), `notifications`.
"""

from minitrade.store.db import Store

__all__ = ["Store"]
