"""Desired state: the resources a person writes as YAML (minitrade.yaml and plans/*.yaml).

The pydantic models here are the schema: `minitrade schema` derives the JSON Schema from them.
Everything is `extra="forbid"` so a typo is an error, never silently ignored. Secrets stay
references (`${ENV}`) in these models; `credentials` resolves them late, where they are used.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{file:([^}]+)\}")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_SHARES = 10**12  # far above any real position; keeps DuckDB BIGINT and float maths exact


class Resource(BaseModel):
    """Base of every YAML resource: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              allow_inf_nan=False, populate_by_name=True)


class OrderType(StrEnum):
    """When an order executes: at the next open, at today's close, or at the next market price."""

    TOO = "TOO"
    TOC = "TOC"
    TRG = "TRG"


class Mode(StrEnum):
    """strict: replay from backtest_start every run; incremental: rerun from actual positions."""

    STRICT = "strict"
    INCREMENTAL = "incremental"


class Switch(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class EarlyClose(StrEnum):
    """What a run time that an early close breaks does: move earlier (shift) or not run (skip)."""

    SHIFT = "shift"
    SKIP = "skip"


# ---------------------------------------------------------------------------------------------
# minitrade.yaml


_DELAY = ("Minutes after a session opens until this source has that session's bar (a partial one "
          "while the market is open). A run needs the bar of the last session whose open plus this "
          "delay has passed, else it fails as stale. Files written at 18:00 New York: 510.")
REMOTE_DELAY_MINUTES = 20.0  # Yahoo/EastMoney show today's partial bar minutes after the open
VERIFY_EVERY_DAYS = 7
FETCH_CONCURRENCY = 8  # HTTP fetches in flight at once when many tickers are fetched
_VERIFY = ("Days between full re-reads of the cached history (edits to old bars are caught then); "
           "newer bars are checked at every fetch.")
_CONCURRENCY = ("HTTP fetches in flight at once when many tickers are fetched (a large first fetch); "
                "lower it if the provider rate-limits. Default 8.")


PACKAGE_PREFIX = "package:"


class CsvSource(Resource):
    """Daily OHLCV from a folder of TICKER.csv files (offline; the embedded default uses it)."""

    type: Literal["csv"]
    path: str = Field(description="Folder of TICKER.csv files, relative to the trading repo "
                                  "or 'package:sample_data' for the prices shipped with minitrade.")
    # None (unset) keeps the spec digest of repos written before the field existed
    delay_minutes: float | None = Field(None, ge=0, le=7 * 24 * 60, description=_DELAY + " Default 0.")

    @property
    def delay(self) -> timedelta:
        return timedelta(minutes=self.delay_minutes or 0.0)

    def folder(self, root: Path) -> Path:
        """The folder of the files: `path` relative to the trading repo `root`, or inside minitrade."""
        if self.path.startswith(PACKAGE_PREFIX):
            return Path(__file__).resolve().parent / self.path[len(PACKAGE_PREFIX):].strip("/")
        folder = Path(self.path).expanduser()
        return folder if folder.is_absolute() else Path(root) / folder


class RemoteSource(Resource):
    """What the HTTP sources share: publication delay, periodic full verification, concurrency."""

    # None (unset) means the default and keeps the spec digest of repos written before these fields
    delay_minutes: float | None = Field(None, ge=0, le=7 * 24 * 60, description=_DELAY + " Default 20.")
    verify_every_days: int | None = Field(None, ge=1, le=366, description=_VERIFY + " Default 7.")
    concurrency: int | None = Field(None, ge=1, le=64, description=_CONCURRENCY)

    @property
    def delay(self) -> timedelta:
        return timedelta(minutes=REMOTE_DELAY_MINUTES if self.delay_minutes is None else self.delay_minutes)

    @property
    def verify_every(self) -> timedelta:
        return timedelta(days=self.verify_every_days or VERIFY_EVERY_DAYS)

    @property
    def fetch_concurrency(self) -> int:
        return self.concurrency or FETCH_CONCURRENCY


class YahooSource(RemoteSource):
    """Yahoo Finance chart API (the v8 chart endpoint yfinance uses), with a hard deadline per fetch."""

    type: Literal["yahoo"]
    proxy: str | None = None
    base_url: str | None = Field(None, description="Override the Yahoo host (tests, mirrors).")
    timeout: float = Field(30.0, gt=0, le=600, description="Hard deadline per ticker, seconds.")


class EastMoneySource(RemoteSource):
    """EastMoney kline API (China A-shares and ETFs)."""

    type: Literal["eastmoney"]
    proxy: str | None = None
    base_url: str = "https://push2his.eastmoney.com"
    timeout: float = Field(30.0, gt=0, le=600)


DataSourceSpec = Annotated[CsvSource | YahooSource | EastMoneySource, Field(discriminator="type")]


class ManualBroker(Resource):
    """Orders are shown to the person, who places them and backfills the fills."""

    type: Literal["manual"]


class GatewaySpec(Resource):
    url: str = "https://localhost:5000"
    verify_tls: bool = Field(False, description="The gateway uses a self-signed certificate.")
    ca_cert: str | None = Field(None, description="PEM file to verify the gateway's certificate.")
    install_dir: str | None = Field(None, description="Folder of the unzipped clientportal.gw.")


# IB order questions ("reply" messages) minitrade may answer yes by default: notices that come with
# every market-type order and say nothing about this order's size or price. Everything else is
# answered no and the order is REJECTED, among others: o163 price deviation, o383 size limit, o451
# total value limit (an order far off its usual size or price is exactly what they catch), o403
# "will fill immediately", o2137 cross side (an opposite order of ours is open), o10152/o10331 stop
# orders, o2136/p6 allocations, p12 price-management algo (minitrade sends none of these kinds).
IB_CONFIRM_DEFAULT = (
    "o354",     # no market data subscription at IB: sizes come from the plan's data source, not IB quotes
    "o10151",   # the generic risk notice for market orders; every minitrade order is a market type
    "o10153",   # IB may cap a market order's price; only ever makes an order less likely to trade
)
MessageId = Annotated[str, Field(pattern=r"^[a-z]+[0-9]+$", description="An IB message id, e.g. o354.")]


class IBBroker(Resource):
    """Interactive Brokers through the Client Portal Web API gateway."""

    type: Literal["ib"]
    account_type: Literal["paper", "live"] = Field("paper", description="A hint only.")
    account_id: str | None = Field(None, description="Which account to trade; the first if unset.")
    username: str = Field(description="Secret reference, e.g. ${IB_USERNAME}.")
    password: str = Field(description="Secret reference, e.g. ${IB_PASSWORD}.")
    gateway: GatewaySpec = Field(default_factory=lambda: GatewaySpec.model_validate({}))
    max_login_attempts: int = Field(2, ge=1, le=5)
    confirm_message_ids: list[MessageId] = Field(
        default_factory=lambda: list(IB_CONFIRM_DEFAULT),
        description="IB order questions answered yes (each is logged and noted on the order); any other "
                    "question is answered no and the order is REJECTED. Default: o354, o10151, o10153.")
    suppress_message_ids: list[MessageId] = Field(
        default_factory=list, description="Questions IB should not ask at all (a yes nobody sees); each must "
                                          "also be in confirm_message_ids.")

    @field_validator("username", "password")
    @classmethod
    def _must_be_reference(cls, value: str) -> str:
        if not SECRET_REF.fullmatch(value):
            raise ValueError("must be a secret reference like ${IB_PASSWORD} or ${file:~/.ib-pass}, "
                             "never the secret itself (it would end up in git)")
        return value

    @field_validator("suppress_message_ids")
    @classmethod
    def _suppressed_are_confirmable(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # Suppressing is IB answering yes without asking: only for ids a person chose to confirm.
        allowed = set(info.data.get("confirm_message_ids") or ())
        extra = [m for m in value if m not in allowed]
        if extra:
            raise ValueError(f"{', '.join(extra)} would be confirmed without being asked; add them to "
                             "confirm_message_ids too if that is what you want")
        return value


BrokerSpec = Annotated[ManualBroker | IBBroker, Field(discriminator="type")]
# The `type:` tags of the tagged unions above (pydantic puts them in error locations).
TYPE_TAGS = frozenset(tag for spec in (CsvSource, YahooSource, EastMoneySource, ManualBroker, IBBroker)
                      for tag in get_args(spec.model_fields["type"].annotation))

EventName = Literal[
    "run.finished", "run.failed", "orders.generated", "orders.pending", "orders.submitted",
    "orders.refused", "fills.recorded", "config.applied", "config.rejected", "data.changed",
    "calendar.ending", "broker.login_needed", "daemon.started", "daemon.stopped",
    "ticks.skipped", "ticks.missed", "calendar.early_close",
    "source.failing", "source.recovered", "source.force_pushed",
    "broker.session_lost", "broker.session_restored",
]
EVENTS: tuple[str, ...] = get_args(EventName)
# The events there were when notifiers were first applied. A notifier taking every event is digested
# with these, so adding an event does not show every applied notifier as changed.
_FIRST_EVENTS = EVENTS[:17]


class NotifierSpec(Resource):
    """Apprise URLs and the events they receive."""

    urls: list[str] = Field(min_length=1, description="Apprise URLs; put secrets in ${ENV} references.")
    events: list[EventName] = Field(default_factory=lambda: list(EVENTS))  # type: ignore[arg-type]
    dedup_minutes: float = Field(10.0, ge=0, description="Suppress the same message within this window.")

    def spec(self) -> dict[str, Any]:
        """The notifier as plain data (for digests and diffs); every event reads as it did first."""
        spec = self.model_dump(mode="json", exclude_none=True)
        if set(self.events) == set(EVENTS):
            spec["events"] = list(_FIRST_EVENTS)
        return spec


class ExecutorSpec(Resource):
    """Where the compute phase of runs happens: worker processes on this machine, or a Dask cluster."""

    type: Literal["local", "dask"] = Field("local", description="local: worker processes on this machine; "
                                                               "dask: the Dask scheduler at `address` "
                                                               "(research sweeps and `backtest --all`).")
    address: str | None = Field(None, pattern=r"^(tcp|tls)://[^\s/:]+:[0-9]{1,5}$",
                                description="Dask scheduler address, e.g. tcp://10.0.0.5:8786.")
    workers: int | None = Field(None, ge=1, le=256, description="Worker processes; default: the machine's cores.")
    timeout: float = Field(300.0, gt=0, le=86400, description="Deadline of a run's compute, seconds; a plan's "
                                                              "`timeout` overrides it.")
    memory_limit_mb: int = Field(2048, ge=256, le=1024 * 1024, description="Address-space cap of each run's "
                                                                          "worker, MiB.")

    @model_validator(mode="after")
    def _dask_needs_address(self) -> ExecutorSpec:
        if self.type == "dask" and self.address is None:
            raise ValueError("executor type dask needs the scheduler's address (address: tcp://HOST:8786)")
        return self


class TelegramSpec(Resource):
    """The Telegram bot that controls minitrade from a phone (docs/telegram.md)."""

    bot_token: str = Field(description="Secret reference to the token BotFather gave, e.g. ${TELEGRAM_BOT_TOKEN}.")
    allowed_chats: list[int] = Field(min_length=1, description="Chat ids the bot obeys; every other chat is "
                                                                "ignored and logged.")
    api_url: str | None = Field(None, description="Bot API root (default https://api.telegram.org); a local "
                                                  "Bot API server or `minitrade telegram fake-api`.")

    @field_validator("bot_token")
    @classmethod
    def _token_is_reference(cls, value: str) -> str:
        if not SECRET_REF.fullmatch(value):
            raise ValueError("must be a secret reference like ${TELEGRAM_BOT_TOKEN} or ${file:~/.telegram-token}, "
                             "never the token itself (it would end up in git); revoke a token that was committed "
                             "with BotFather's /revoke")
        return value

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/") if value is not None else None


class Settings(Resource):
    """minitrade.yaml: settings shared by every plan."""

    timezone: str = "UTC"
    state_dir: str = "state"
    branch: str | None = Field(None, description="Branch the daemon tracks; the checked-out one if unset.")
    commission: float = Field(0.0, ge=0, lt=0.1, description="Commission rate of traded value.")
    data_sources: dict[str, DataSourceSpec] = Field(default_factory=dict)
    brokers: dict[str, BrokerSpec] = Field(
        default_factory=lambda: {"manual": ManualBroker(type="manual")})  # type: ignore[arg-type]
    notifiers: dict[str, NotifierSpec] = Field(default_factory=dict)
    executor: ExecutorSpec = Field(default_factory=lambda: ExecutorSpec.model_validate({}))
    telegram: TelegramSpec | None = Field(None, description="Control from Telegram (`minitrade telegram`; the "
                                                           "daemon runs it too).")

    @field_validator("data_sources", "brokers", "notifiers")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.match(NAME_PATTERN, str(name)):
                raise ValueError(f"name {name!r} must be letters, digits, '-', '_' or '.'")
        return value


# ---------------------------------------------------------------------------------------------
# plans/*.yaml

_TIME = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_RANGE = re.compile(rf"^{_TIME}-{_TIME}/(\d+)\s*(min|m|h)$")
_SINGLE = re.compile(rf"^{_TIME}$")


def _clock(h: str, m: str, s: str | None) -> time:
    try:
        return time(int(h), int(m), int(s or 0))
    except ValueError:
        raise ValueError(f"{h}:{m}{':' + s if s else ''} is not a time of day (00:00:00 to 23:59:59)") from None


def parse_run_at(spec: str) -> list[time]:
    """Expand one run_at spec into clock times, ends inclusive.

    >>> [t.isoformat() for t in parse_run_at("09:30:01-11:00/30min")]
    ['09:30:01', '10:00:01', '10:30:01']
    """
    spec = spec.strip()
    if m := _SINGLE.match(spec):
        return [_clock(*m.groups())]
    if m := _RANGE.match(spec):
        g = m.groups()
        start, end = _clock(g[0], g[1], g[2]), _clock(g[3], g[4], g[5])
        step = timedelta(minutes=int(g[6])) if g[7] in ("min", "m") else timedelta(hours=int(g[6]))
        if step <= timedelta(0):
            raise ValueError(f"{spec!r}: the interval must be positive")
        if end < start:
            raise ValueError(f"{spec!r}: the range ends before it starts")
        times, cursor = [], timedelta(hours=start.hour, minutes=start.minute, seconds=start.second)
        stop = timedelta(hours=end.hour, minutes=end.minute, seconds=end.second)
        while cursor <= stop:
            seconds = int(cursor.total_seconds())
            times.append(time(seconds // 3600, seconds % 3600 // 60, seconds % 60))
            cursor += step
        return times
    raise ValueError(f"{spec!r} is not a run time: use 'HH:MM[:SS]' or 'HH:MM[:SS]-HH:MM[:SS]/Nmin' "
                     "(or '/Nh'), e.g. '15:45' or '09:30:01-16:00/30min'")


def _check_run_at(spec: str) -> str:
    parse_run_at(spec)
    return spec


RunAt = Annotated[str, AfterValidator(_check_run_at)]


class CronSchedule(Resource):
    """`cron: "45 15 * * FRI"`: runs at the times a cron expression names, on the calendar's sessions.

    Five fields (minute hour day-of-month month day-of-week), read in the plan's timezone (the
    exchange's). Only sessions run: a time on a holiday is skipped, never moved to another day.
    When day-of-month and day-of-week are both restricted a day must match both
    (`0 9 1-7 * MON` is the first Monday of each month), not either as in classic cron.
    """

    cron: str = Field(description="Cron expression 'minute hour day-of-month month day-of-week' in the "
                                  "exchange's timezone, e.g. '45 15 * * FRI' or '0 9 1-7 * MON' (first Monday).")

    @field_validator("cron")
    @classmethod
    def _valid(cls, value: str) -> str:
        from croniter import croniter

        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression: use five fields 'minute hour "
                             "day-of-month month day-of-week', e.g. '45 15 * * FRI'")
        return " ".join(value.split())

    def clock_times(self) -> list[time]:
        """Every time of day the expression can name (on some day)."""
        from croniter import croniter

        minutes, hours = croniter(self.cron).expanded[:2]
        every_hour, every_minute = hours == ["*"], minutes == ["*"]
        return sorted(time(h, m) for h in (range(24) if every_hour else map(int, hours))
                      for m in (range(60) if every_minute else map(int, minutes)))


def _run_at_kind(value: Any) -> str:
    # a map is a cron entry, anything else a clock time: one error per entry, never one per kind
    return "cron-entry" if isinstance(value, (dict, CronSchedule)) else "time-entry"


RunAtEntry = Annotated[Annotated[RunAt, Tag("time-entry")] | Annotated[CronSchedule, Tag("cron-entry")],
                       Discriminator(_run_at_kind)]


def _not_bool(value: Any) -> Any:
    # YAML reads yes/no/on/off as booleans and pydantic would take True as 1: one share, or conid 1.
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, not {str(value).lower()} "
                         "(YAML reads yes/no/on/off/true/false as booleans)")
    return value


WholeNumber = Annotated[int, BeforeValidator(_not_bool)]


def _one_or_list(schema: dict[str, Any]) -> None:
    """run_at's JSON Schema: what YAML may hold (one entry, or a list), not only the parsed list."""
    entries = schema.pop("items")
    schema.pop("type", None)
    schema.pop("minItems", None)
    one = entries.get("oneOf") or entries.get("anyOf") or [entries]
    schema["anyOf"] = [*one, {"type": "array", "items": entries, "minItems": 1}]


def _universe_forms(schema: dict[str, Any]) -> None:
    """universe's JSON Schema: every form YAML may hold (a list or a string of tickers, or a map of
    ticker -> {conid}, conid or nothing), not only the parsed map."""
    entry = {"anyOf": [schema.pop("additionalProperties"), {"type": "integer"}, {"type": "null"}]}
    schema.pop("type", None)
    as_map = {"type": "object", "minProperties": 1, "additionalProperties": entry}
    schema["anyOf"] = [as_map, {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "string"}, as_map]}},
                       {"type": "string", "minLength": 1}]


class Instrument(Resource):
    """A universe entry; `conid` pins the IB contract once resolved."""

    conid: WholeNumber | None = Field(None, gt=0, lt=2**63)


class Plan(Resource):
    """One trade plan: which strategy trades what, when, where and with how much."""

    name: str = Field(pattern=NAME_PATTERN)
    strategy: str = Field(description="Path of the strategy file, e.g. strategies/momentum.py.")
    class_name: str | None = Field(None, alias="class", description="Strategy class if the file has several.")
    universe: dict[str, Instrument] = Field(description="Tickers: a list, or a map ticker -> {conid}.",
                                            json_schema_extra=_universe_forms)
    data_source: str
    calendar: str = Field("XNYS", description="exchange_calendars code, e.g. XNYS, XSHG.")
    timezone: str | None = Field(None, description="Defaults to the calendar's timezone.")
    backtest_start: date
    trade_start: date | None = Field(None, description="Signals before this date never become orders.")
    run_at: list[RunAtEntry] = Field(min_length=1, description="'HH:MM[:SS]', 'HH:MM[:SS]-HH:MM[:SS]/Nmin' "
                                                                 "(every session) or {cron: '45 15 * * FRI'}; "
                                                                 "one, or a list.",
                                     json_schema_extra=_one_or_list)
    mode: Mode = Mode.STRICT
    order_type: OrderType = Field(OrderType.TOC, validate_default=True)
    broker: str = "manual"
    cash: float = Field(gt=0, le=1e13)
    positions: dict[str, Annotated[WholeNumber, Field(ge=-MAX_SHARES, le=MAX_SHARES)]] = Field(
        default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    backtest: Switch = Switch.ENABLED
    trading: Switch = Switch.DISABLED
    commission: float | None = Field(None, ge=0, lt=0.1, description="Overrides minitrade.yaml's commission.")
    timeout: float | None = Field(None, gt=0, le=86400, description="Deadline of this plan's compute, seconds "
                                                                    "(default: minitrade.yaml's executor.timeout).")
    allow_short: bool = Field(False, description="Let orders and fills take a position below zero. "
                                                 "Off: a sell beyond what the plan holds is clipped or refused.")
    early_close: EarlyClose = Field(EarlyClose.SHIFT, description=(
        "On an early-close day, a run time after the close's auction cutoff: shift (keep its distance "
        "to the close, at the latest 15 min before it) or skip (recorded SKIPPED)."))

    @field_validator("universe", mode="before")
    @classmethod
    def _universe_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [t for t in value.replace(",", " ").split()]
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for item in value:
                if isinstance(item, dict):
                    out.update(item)
                else:
                    out[str(item)] = {}
            return out
        if isinstance(value, dict):
            return {k: ({} if v is None else ({"conid": v} if isinstance(v, int) else v))
                    for k, v in value.items()}
        return value

    @field_validator("universe")
    @classmethod
    def _universe_nonempty(cls, value: dict[str, Instrument]) -> dict[str, Instrument]:
        if not value:
            raise ValueError("the universe needs at least one ticker")
        for ticker in value:
            if not re.match(r"^[A-Za-z0-9^][A-Za-z0-9.=^_-]{0,31}$", ticker):
                raise ValueError(f"{ticker!r} is not a ticker symbol")
        return value

    @field_validator("trade_start")
    @classmethod
    def _trade_after_backtest(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("backtest_start")
        if value is not None and start is not None and value < start:
            raise ValueError(f"trade_start {value} is before backtest_start {start}; "
                             "move trade_start on or after backtest_start")
        return value

    @field_validator("order_type")
    @classmethod
    def _strict_needs_known_prices(cls, value: OrderType, info: ValidationInfo) -> OrderType:
        if value is OrderType.TRG and info.data.get("mode") is Mode.STRICT:
            raise ValueError("strict mode allows only TOO or TOC orders (a TRG fill price is not known "
                             "in the backtest); use order_type TOC/TOO, or mode incremental")
        return value

    @field_validator("positions")
    @classmethod
    def _positions_in_universe(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        universe = info.data.get("universe") or {}
        unknown = sorted(set(value) - set(universe))
        if universe and unknown:
            raise ValueError(f"positions name tickers outside the universe: {', '.join(unknown)}; "
                             "add them to universe or remove them")
        return value

    @field_validator("run_at", mode="before")
    @classmethod
    def _run_at_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, dict):  # run_at: {cron: "..."}
            return [value]
        return value

    def run_times(self) -> list[time]:
        """Every clock time of day this plan can run at (cron entries: on the days they name), sorted."""
        return sorted({t for spec in self.run_at
                       for t in (spec.clock_times() if isinstance(spec, CronSchedule) else parse_run_at(spec))})

    @property
    def tickers(self) -> list[str]:
        return list(self.universe)

    @property
    def trading_enabled(self) -> bool:
        return self.trading is Switch.ENABLED

    @property
    def backtest_enabled(self) -> bool:
        return self.backtest is Switch.ENABLED

    def spec(self) -> dict[str, Any]:
        """The plan as plain data, keys as written in YAML (for digests and diffs)."""
        spec = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name in _LATER_FIELDS:  # at their default they leave the digest of an applied plan as it was
            if getattr(self, name) == type(self).model_fields[name].default:
                spec.pop(name, None)
        return spec


# Fields added after plans were first applied: left out of spec() while at their default, so an
# upgrade does not show every applied plan as changed (nor change its orders' plan_digest).
_LATER_FIELDS = ("allow_short", "early_close")


# Fields whose change means a new plan rather than an edit (terraform's "forces replacement").
REPLACE_FIELDS = ("strategy", "class", "broker", "mode", "cash")
