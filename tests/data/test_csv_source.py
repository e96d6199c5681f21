"""The csv data source: a folder of TICKER.csv files, and the sample prices shipped with minitrade."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from minitrade.data.csv import CsvDataSource
from minitrade.data.registry import source_for
from minitrade.errors import DataError
from minitrade.models import CsvSource

SAMPLES = CsvSource(type="csv", path="package:sample_data")


def test_sample_data_has_ten_years_of_three_tickers() -> None:
    source = source_for("samples", SAMPLES, root=Path("/nonexistent"))
    for ticker in ("AAPL", "IBM", "MSFT"):
        frame = source.daily(ticker, date(2000, 1, 1))
        assert frame.index[0] <= frame.index[-1].replace(year=frame.index[-1].year - 10)
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
        assert (frame[["open", "high", "low", "close"]] > 0).all().all()


def test_window_is_inclusive_and_canonical() -> None:
    source = source_for("samples", SAMPLES, root=Path("."))
    frame = source.daily("IBM", date(2012, 1, 3), date(2012, 1, 6))
    assert [d.date().isoformat() for d in frame.index] == ["2012-01-03", "2012-01-04", "2012-01-05", "2012-01-06"]
    assert frame.index.name == "date" and frame.index.tz is None


def test_folder_is_relative_to_the_trading_repo(tmp_path: Path) -> None:
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "XYZ.csv").write_text(
        "Date,Open,High,Low,Close\n2024-01-03,2,3,1,2.5\n2024-01-02,1,2,1,1.5\n")
    source = source_for("mine", CsvSource(type="csv", path="prices"), root=tmp_path)
    frame = source.daily("XYZ", date(2024, 1, 1))
    assert frame["close"].tolist() == [1.5, 2.5] and frame["volume"].tolist() == [0.0, 0.0]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    source = source_for("samples", SAMPLES, root=tmp_path)
    with pytest.raises(DataError, match=r"samples/NOPE: no price file .*NOPE.csv \(tickers in that folder: "
                                        r"AAPL, GOOG, IBM, MSFT\)"):
        source.daily("NOPE", date(2010, 1, 1))


def test_range_outside_the_file_is_a_clear_error() -> None:
    source = source_for("samples", SAMPLES, root=Path("."))
    with pytest.raises(DataError, match=r"no prices from 2020-01-01 to the end .* \(it has 2000-03-01..2013-03-01\)"):
        source.daily("AAPL", date(2020, 1, 1))


def test_bad_rows_name_the_ticker(tmp_path: Path) -> None:
    (tmp_path / "BAD.csv").write_text("date,open,high,low,close\n2024-01-02,1,2,1,0\n")
    source = source_for("mine", CsvSource(type="csv", path=str(tmp_path)), root=Path("."))
    with pytest.raises(DataError, match=r"mine/BAD: zero or negative prices on 2024-01-02"):
        source.daily("BAD", date(2024, 1, 1))


def test_last_bar_is_read_from_the_text_as_pandas_reads_it(tmp_path: Path) -> None:
    source = CsvDataSource("samples", SAMPLES, root=Path("."))
    for ticker in ("AAPL", "IBM", "MSFT", "GOOG"):
        assert source.last_bar(ticker) == source.daily(ticker, date(2000, 1, 1)).index[-1].date()
    (tmp_path / "XYZ.csv").write_text("Close,Date\n2.5,2024-01-03\n1.5,2024-01-02\n\n")  # unsorted, `date` 2nd
    (tmp_path / "US.csv").write_text("date,open,high,low,close\n01/02/2024,1,2,1,1.5\n")
    mine = CsvDataSource("mine", CsvSource(type="csv", path=str(tmp_path)), root=Path("."))
    assert mine.last_bar("XYZ") == date(2024, 1, 3)
    assert mine.last_bar("US") is None  # not ISO: `daily` (pandas) is the one to ask
    assert mine.last_bar("NOPE") is None
    (tmp_path / "BIN.csv").write_bytes(b"date,close\n\xff\xfe2024-01-02,1\n")
    assert mine.last_bar("BIN") is None
