"""The daemon's IB keepalive: `/tickle` every gateway of the applied state about once a minute.

IB's gateway ends an idle brokerage session after a few minutes; the tickle keeps it open between
passes, and its answer tells whether the session is still authenticated. A session seen
authenticated and then found gone is notified once (and once when it is back), so the person logs
in before orders are due. It never logs in (money safety: a login is always a person's act).

It runs on its own thread with its own IB clients (an IBClient is not thread-safe, and the pass
uses its own), so a pass that computes for minutes does not starve the session.
"""

from __future__ import annotations

import logging
import os
import threading

from minitrade import clock
from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.broker import IBBroker
from minitrade.errors import BrokerError, MinitradeError
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.models import Settings
from minitrade.notify import Notifier, messages
from minitrade.store import Store

log = logging.getLogger("minitrade.keepalive")
KEEPALIVE_SECONDS = 60.0
ENV = "MINITRADE_KEEPALIVE_SECONDS"   # shorter cadence for rehearsals and tests


def keepalive_seconds() -> float:
    """The tickle cadence: `MINITRADE_KEEPALIVE_SECONDS` when set, else once a minute."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return KEEPALIVE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise MinitradeError(f"{ENV}={raw!r} is not a number of seconds between 0 and 3600; unset it "
                             f"for the default ({KEEPALIVE_SECONDS:g})")
    return value


class Keepalive:
    """Tickles the IB gateways of the settings it is told to `watch`, on a thread, every `interval` s."""

    def __init__(self, store: Store, *, interval: float) -> None:
        self._store, self._interval = store, interval
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._settings: Settings | None = None
        self._thread: threading.Thread | None = None
        # owned by the thread:
        self._brokers: dict[str, IBBroker] = {}
        self._seen: set[str] = set()                 # sessions seen authenticated
        self._lost: dict[str, SessionState] = {}     # ...and since found gone (told once)

    def watch(self, settings: Settings | None) -> None:
        """Follow these settings' IB brokers from the next tickle on (the applied state's)."""
        with self._guard:
            self._settings = settings

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ib-keepalive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop tickling and close the clients (waits for a tickle in flight, at most its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for broker in self._brokers.values():
            broker.close()
        self._brokers.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the keepalive must never die silently while the daemon trades
                log.exception("IB keepalive failed; trying again in %gs", self._interval)
            self._stop.wait(self._interval)

    def tick(self) -> None:
        """Tickle every watched IB gateway once and tell the sessions that dropped or came back."""
        with self._guard:
            settings = self._settings
        specs = {name: spec for name, spec in (settings.brokers.items() if settings else ())
                 if isinstance(spec, IBBrokerSpec)}
        for name in list(self._brokers):  # a broker removed or changed by a commit starts afresh
            if specs.get(name) != self._brokers[name].spec:
                self._brokers.pop(name).close()
                self._seen.discard(name)
                self._lost.pop(name, None)
        for name, spec in specs.items():
            if self._stop.is_set():
                return
            broker = self._brokers.setdefault(name, IBBroker(name, spec))
            try:
                state = broker.keepalive()
            except BrokerError as e:  # no answer we can read: neither lost nor back
                log.info("IB keepalive of %s: %s", name, e)
                continue
            log.debug("IB keepalive of %s: %s", name, state.value)
            if settings is not None:
                self._follow(name, state, settings)

    def _follow(self, name: str, state: SessionState, settings: Settings) -> None:
        if state is SessionState.AUTHENTICATED:
            if self._lost.pop(name, None) is not None:
                log.info("IB session of %s is back", name)
                self._notify(settings, messages.broker_session_restored(name, at=clock.now()))
            self._seen.add(name)
        elif name in self._seen and name not in self._lost:
            self._lost[name] = state
            log.warning("IB session of %s lost (%s): run `minitrade ib login %s`", name, state.value, name)
            self._notify(settings, messages.broker_session_lost(name, state.value, at=clock.now()))

    def _notify(self, settings: Settings, message: messages.Message) -> None:
        Notifier.from_settings(settings, store=self._store).notify(message)
