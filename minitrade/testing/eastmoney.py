"""A fake EastMoney kline API: `GET /api/qt/stock/kline/get` (EXTERNAL_APIS.md §5).

Imports nothing from minitrade. Answers like push2his.eastmoney.com: `secid` is `{market}.{code}`
(1 Shanghai, 0 Shenzhen and Beijing); a code asked on the wrong market gets `"data": null`, as
the real service does. `data.klines` rows are
`date,open,close,high,low,volume(lots),amount,amplitude%,change%,change,turnover%` — close before
high and low. `fqt` 0 raw, 1 forward-adjusted (qfq: the latest prices are real, the past is scaled
for later splits and dividends), 2 backward-adjusted. A dropped connection (`inject("drop")`) is
what the real anti-scraping does.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from minitrade.testing.market import (
    EMPTY,
    MISSING_FIELDS,
    NAN,
    FakeHTTPServer,
    PriceBook,
    RawBar,
    Reply,
    Session,
)

SHANGHAI = Session("Asia/Shanghai", time(9, 30), time(15, 0))
KLINE_PATH = "/api/qt/stock/kline/get"
NAMES = {"000001": "平安银行", "600519": "贵州茅台", "510300": "沪深300ETF", "159915": "创业板ETF",
         "430047": "诺思兰德", "300750": "宁德时代"}


def market_of(code: str) -> int | None:
    """The market EastMoney files a six-digit code under (the fake's own table)."""
    if len(code) != 6 or not code.isdigit():
        return None
    if code.startswith("92"):
        return 0  # Beijing's new codes
    if code[0] in "659":
        return 1
    if code[0] in "012348":
        return 0
    return None


class FakeEastMoney(FakeHTTPServer):
    """EastMoney's daily klines on 127.0.0.1 from a PriceBook, with scripted faults."""

    def __init__(self, book: PriceBook | None = None) -> None:
        super().__init__(book)

    def request_ticker(self, path: str, query: dict[str, str]) -> str | None:
        secid = query.get("secid", "")
        return secid.split(".", 1)[-1] if "." in secid else None

    def route(self, method: str, path: str, query: dict[str, str]) -> Reply:
        if path != KLINE_PATH:
            return Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")
        secid = query.get("secid", "")
        market, _, code = secid.partition(".")
        known = market.isdigit() and market_of(code) == int(market) and code not in self.book.unknown
        if not known or query.get("klt", "101") != "101":
            return self._answer(None)
        beg, end = _day(query.get("beg", "0"), date(1990, 1, 1)), _day(query.get("end", "20500101"),
                                                                          date(2050, 1, 1))
        bars = self.book.bars(code, beg, end, SHANGHAI)
        if "lmt" in query and query["lmt"].isdigit():
            bars = bars[-int(query["lmt"]):]
        fqt = query.get("fqt", "0")
        decimals = 3 if code[0] in "15" else 2
        klines, previous = [], None
        steps = self._steps(code)
        for bar in bars:
            scale = self._adjustment(bar, steps, fqt)
            klines.append(_kline(bar, scale, previous, decimals))
            previous = bar.close * scale
        return self._answer({"code": code, "market": int(market), "name": NAMES.get(code, f"股票{code}"),
                             "decimal": decimals, "dktotal": len(bars),
                             "preKPrice": round(bars[0].open, decimals) if bars else 0.0,
                             "klines": klines})

    def fault_reply(self, fault: str, reply: Reply) -> Reply:
        doc = json.loads(reply.body)
        data = doc.get("data")
        if not isinstance(data, dict):
            return reply
        if fault == EMPTY:
            data["klines"] = []
            data["dktotal"] = 0
        elif fault == MISSING_FIELDS:
            del data["klines"]
        elif fault == NAN and data["klines"]:
            row = data["klines"][len(data["klines"]) // 2].split(",")
            row[2] = "-"
            data["klines"][len(data["klines"]) // 2] = ",".join(row)
        return Reply(reply.status, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(), reply.content_type)

    def _steps(self, code: str) -> list[tuple[date, float]]:
        """(date, price factor) of each split and dividend up to today."""
        today = self.book.now.astimezone(ZoneInfo(SHANGHAI.tz)).date()
        steps = [(day, 1 / ratio) for day, ratio in self.book.splits.get(code, []) if day <= today]
        for day, amount in self.book.dividends.get(code, []):
            if day <= today:
                before = self.book.bars(code, date.fromordinal(day.toordinal() - 7),
                                        date.fromordinal(day.toordinal() - 1), SHANGHAI)
                steps.append((day, 1 - amount / before[-1].close if before else 1.0))
        return steps

    @staticmethod
    def _adjustment(bar: RawBar, steps: list[tuple[date, float]], fqt: str) -> float:
        """qfq scales a bar by the events after it; hfq by the inverse of those up to it."""
        if fqt not in ("1", "2"):
            return 1.0
        after, upto = 1.0, 1.0
        for day, step in steps:
            if bar.day < day:
                after *= step
            else:
                upto /= step
        return after if fqt == "1" else upto

    def _answer(self, data: dict[str, Any] | None) -> Reply:
        body = {"rc": 0, "rt": 17, "svr": 177617930, "lt": 1, "full": 0, "dlmkts": "", "data": data}
        return Reply(200, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), "application/json; charset=UTF-8")


def _kline(bar: RawBar, scale: float, previous: float | None, decimals: int) -> str:
    o, c, h, low = (round(v * scale, decimals) for v in (bar.open, bar.close, bar.high, bar.low))
    lots = int(round(bar.volume / 100))
    amount = bar.volume * (bar.open + bar.close) / 2
    base = previous if previous else o
    amplitude = (h - low) / base * 100
    change = c - base
    return (f"{bar.day.isoformat()},{o:.{decimals}f},{c:.{decimals}f},{h:.{decimals}f},{low:.{decimals}f},"
            f"{lots},{amount:.2f},{amplitude:.2f},{change / base * 100:.2f},{change:.{decimals}f},"
            f"{lots / 50000:.2f}")


def _day(text: str, default: date) -> date:
    if text in ("", "0"):
        return default
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return default
