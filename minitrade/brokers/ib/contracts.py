"""Symbol -> IB contract id (conid), and the `apply` check for IB plans and brokers.

A symbol usually has several listings (AAPL: NASDAQ, LSEETF, AEQLIT...). minitrade never guesses:
a conid pinned in the plan (`universe: {AAPL: {conid: 265598}}`) wins; an unpinned symbol must have
exactly one listing, otherwise the choices are listed and the person pins one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.client import IBClient
from minitrade.errors import BrokerError, BrokerNotReady, BrokerUnavailable, OrderRejected
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.models import Instrument

if TYPE_CHECKING:
    from minitrade.loader import Snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    conid: int
    name: str
    exchange: str
    is_us: bool

    def __str__(self) -> str:
        return f"{self.conid} {self.exchange} {'US' if self.is_us else 'non-US'} ({self.name})"


def candidates(client: IBClient, symbols: Iterable[str]) -> dict[str, list[Candidate]]:
    """Every stock listing of each symbol, US listings first (`/trsrv/stocks`)."""
    wanted = sorted({s.upper() for s in symbols})
    if not wanted:
        return {}
    body = client.stocks(wanted)
    out: dict[str, list[Candidate]] = {}
    for symbol in wanted:
        found = []
        for entry in body.get(symbol) or []:
            for contract in entry.get("contracts") or []:
                found.append(Candidate(int(contract["conid"]), str(entry.get("name") or ""),
                                       str(contract.get("exchange") or ""), bool(contract.get("isUS"))))
        out[symbol] = sorted(found, key=lambda c: (not c.is_us, c.exchange, c.conid))
    return out


def choices_text(symbol: str, found: list[Candidate]) -> str:
    """How to say "pick one" about an ambiguous symbol."""
    lines = "; ".join(str(c) for c in found)
    return (f"{symbol} is ambiguous at IB ({len(found)} listings: {lines}); pin one in the plan, e.g. "
            f"universe: {{{symbol}: {{conid: {found[0].conid}}}}}")


def resolve_conid(client: IBClient, symbol: str, *, account: str | None = None) -> int:
    """The conid of an unpinned symbol with exactly one listing; OrderRejected otherwise."""
    found = candidates(client, [symbol]).get(symbol.upper(), [])
    if not found:
        raise OrderRejected(f"IB knows no stock listing for {symbol}", account=account)
    if len(found) > 1:
        raise OrderRejected(choices_text(symbol, found), account=account)
    return found[0].conid


def conids_for(client: IBClient, universe: Mapping[str, Instrument], *, account: str | None = None) -> dict[str, int]:
    """Ticker -> conid for a plan's universe: pins win; the rest must be unambiguous (one lookup call)."""
    out = {t: i.conid for t, i in universe.items() if i.conid is not None}
    missing = [t for t in universe if t not in out]
    listings = candidates(client, missing) if missing else {}
    for ticker in missing:
        found = listings.get(ticker.upper(), [])
        if len(found) != 1:
            raise OrderRejected(choices_text(ticker, found) if found else f"IB knows no stock listing for {ticker}",
                                account=account)
        out[ticker] = found[0].conid
    return out


def check_connection(name: str, spec: IBBrokerSpec) -> tuple[list[str], list[str]]:
    """Test a broker's gateway without logging in: (errors, notes). No session is a note, not an error."""
    errors: list[str] = []
    notes: list[str] = []
    with IBClient.from_spec(spec, name=name, read_retries=0) as client:
        try:
            state = client.session_state()
            if state is SessionState.NOT_RUNNING:
                errors.append(f"broker {name}: no gateway answers at {spec.gateway.url}; start it with "
                              f"`minitrade ib start --account {name}`")
            elif state is SessionState.AUTHENTICATED:
                accounts = client.accounts()
                if spec.account_id and spec.account_id not in accounts:
                    errors.append(f"broker {name}: account_id {spec.account_id} is not among this login's "
                                  f"accounts ({', '.join(accounts) or 'none'})")
            else:
                notes.append(f"broker {name}: login needed (session: {state.value}); run "
                             f"`minitrade ib login {name}`")
        except BrokerError as e:
            errors.append(f"broker {name}: connection test failed: {e}")
    return errors, notes


def contracts_check(snapshot: Snapshot, changed: set[tuple[str, str]]) -> list[str]:
    """`apply` hook: test new/changed IB brokers, refuse ambiguous unpinned symbols in new/changed IB plans.

    Notes that are not failures ("login needed") are logged as warnings.
    """
    brokers = snapshot.settings.brokers
    errors: list[str] = []
    for kind, name in sorted(changed):
        spec = brokers.get(name)
        if kind == "broker" and isinstance(spec, IBBrokerSpec):
            found_errors, notes = check_connection(name, spec)
            errors += found_errors
            for note in notes:
                log.warning("%s", note)
    wanted: dict[str, dict[str, list[tuple[str, int | None]]]] = {}     # broker -> symbol -> (plan, pin)
    for kind, name in sorted(changed):
        plan = snapshot.plans.get(name) if kind == "plan" else None
        if plan is None or not isinstance(brokers.get(plan.broker), IBBrokerSpec):
            continue
        for ticker, instrument in plan.universe.items():
            wanted.setdefault(plan.broker, {}).setdefault(ticker, []).append((name, instrument.conid))
    for broker_name, symbols in sorted(wanted.items()):
        spec = brokers[broker_name]
        assert isinstance(spec, IBBrokerSpec)
        with IBClient.from_spec(spec, name=broker_name, read_retries=0) as client:
            try:
                listings = candidates(client, symbols)
            except (BrokerNotReady, BrokerUnavailable) as e:
                log.warning("broker %s: cannot check contracts of %s now (%s); unpinned symbols are "
                            "resolved at order time and refused there if ambiguous",
                            broker_name, ", ".join(sorted(symbols)), e)
                continue
            except BrokerError as e:
                errors.append(f"broker {broker_name}: contract lookup failed: {e}")
                continue
        for symbol, uses in sorted(symbols.items()):
            errors += _symbol_errors(snapshot, symbol, uses, listings.get(symbol.upper(), []))
    return errors


def _symbol_errors(snapshot: Snapshot, symbol: str, uses: list[tuple[str, int | None]],
                   found: list[Candidate]) -> list[str]:
    """Problems of one symbol across the plans using it (pinned or not)."""
    errors = []
    for plan, conid in uses:
        where = f"{snapshot.plan_files.get(plan, f'plan {plan}')}: universe: "
        if conid is None and not found:
            errors.append(f"{where}IB knows no stock listing for {symbol}")
        elif conid is None and len(found) > 1:
            errors.append(where + choices_text(symbol, found))
        elif conid is not None and found and conid not in {c.conid for c in found}:
            # A pin for a symbol IB lists under other conids is almost surely a typo: it would trade
            # another instrument. (A symbol IB does not list at all may be pinned freely: that is the
            # way to map names that differ, like BRK-B.)
            listed = "; ".join(str(c) for c in found)
            errors.append(f"{where}conid {conid} pinned for {symbol} is not one of its IB listings ({listed})")
    return errors
