"""The fake Yahoo is faithful enough for yfinance itself, an independent reader of the wire format.

yfinance 1.7 is pointed at the fake with a requests session whose adapter rewrites every Yahoo
host (fc.yahoo.com, query1/query2.finance.yahoo.com) to 127.0.0.1. It performs its cookie and
crumb handshake, its timezone lookup and the history call, and must read the same adjusted
prices, splits and dividends our own client reads.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pytest
import requests
from requests.adapters import HTTPAdapter

yf = pytest.importorskip("yfinance")


class ToFake(HTTPAdapter):
    """Send every request to the fake, keeping path and query."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = urlsplit(target)

    def send(self, request, **kwargs):  # type: ignore[override]  # requests spells out every argument
        parts = urlsplit(request.url)
        request.url = urlunsplit((self.target.scheme, self.target.netloc, parts.path or "/", parts.query, ""))
        return super().send(request, **kwargs)


@pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")
def test_yfinance_reads_the_fake_like_our_client(fake_yahoo, yahoo, tmp_path):
    fake_yahoo.book.add_split("MSFT", date(2026, 6, 10), 2.0)
    fake_yahoo.book.add_dividend("MSFT", date(2026, 9, 16), 0.83)
    yf.set_tz_cache_location(str(tmp_path / "yf-cache"))
    session = requests.Session()
    session.mount("https://", ToFake(fake_yahoo.url))
    session.mount("http://", ToFake(fake_yahoo.url))

    theirs = yf.Ticker("MSFT", session=session).history(start="2026-05-01", end="2026-11-21",
                                                        auto_adjust=True)
    ours = yahoo.daily("MSFT", date(2026, 5, 1), date(2026, 11, 20))

    paths = [r.path for r in fake_yahoo.requests]
    assert "/v1/test/getcrumb" in paths and paths.count("/v8/finance/chart/MSFT") >= 2
    assert [d.date() for d in theirs.index] == [d.date() for d in ours.index]
    for column in ("open", "high", "low", "close"):
        assert theirs[column.title()].to_numpy() == pytest.approx(ours[column].to_numpy(), rel=1e-9)
    splits = theirs[theirs["Stock Splits"] > 0]["Stock Splits"]
    dividends = theirs[theirs["Dividends"] > 0]["Dividends"]
    assert [(d.date(), v) for d, v in splits.items()] == [(date(2026, 6, 10), 2.0)]
    assert [d.date() for d in dividends.index] == [date(2026, 9, 16)]
    assert dividends.iloc[0] == pytest.approx(0.83)
    assert isinstance(theirs.index, pd.DatetimeIndex) and str(theirs.index.tz) == "America/New_York"
