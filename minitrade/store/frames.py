"""Inserting a DataFrame's rows: a few as parameters, many as a scan of the registered frame.

Registering a frame and scanning it costs ~6 ms whatever its size; a VALUES insert of a few rows
~2.5 ms. A strict tick adds a row or two to each of its tables, a first run or a fetch thousands.
Both ways store NaN and NaT as NULL (a frame scan does; parameters are made to).
"""

from __future__ import annotations

import duckdb
import pandas as pd

SMALL_INSERT = 32  # rows up to which parameters beat registering the frame


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: list[str], *,
                 verb: str = "INSERT") -> None:
    """`verb INTO table (columns)` the frame's `columns` (named alike in the table); nothing for no rows."""
    if not len(frame):
        return
    names = ", ".join(columns)
    if len(frame) <= SMALL_INSERT:
        values = [[None if v is pd.NaT or (isinstance(v, float) and v != v) else v for v in frame[c].tolist()]
                  for c in columns]
        con.executemany(f"{verb} INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})",
                        [list(row) for row in zip(*values, strict=True)])
        return
    view = f"_minitrade_{table}"
    con.register(view, frame[columns])
    try:
        con.execute(f"{verb} INTO {table} ({names}) SELECT {names} FROM {view}")
    finally:
        con.unregister(view)
