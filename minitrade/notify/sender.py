"""Deliver events through Apprise to every notifier subscribed to them.

Secrets in notifier URLs stay `${ENV}` references until the moment of sending; their values are
redacted from message text, from the error we record and from the log lines Apprise and urllib3
write while sending. A failing notifier is logged and returned as an `Outcome`, never raised: a
notification must not break a run. The same event (event kind and `Message.key`: a run id, the
orders' client ids, a commit) through the same notifier is not sent again within its
`dedup_minutes`; a different event is always sent, however alike its text reads. Every attempt
leaves an audit row in table `notifications` (with the key's digest, never the text).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import apprise

from minitrade.credentials import redact, resolve_secret, secret_values
from minitrade.errors import ConfigError, StoreError
from minitrade.models import EVENTS, SECRET_REF, NotifierSpec, Settings
from minitrade.notify.messages import Message, notifier_test
from minitrade.store import notifications as audit
from minitrade.store.db import Store

log = logging.getLogger("minitrade.notify")

# Loggers that print request URLs while Apprise sends (a token in a URL path would show up there).
_SENDING_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests")


class _RedactSecrets(logging.Filter):
    """Rewrites any log record that carries a known secret value; installed once per process."""

    def __init__(self) -> None:
        super().__init__("minitrade.redact")
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def remember(self, values: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(v for v in values if v)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(self._secrets)
        if not secrets:
            return True
        text = record.getMessage()
        if any(s in text for s in secrets):
            record.msg, record.args = redact(text, secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = str(record.exc_info[1])
            if any(s in exc_text for s in secrets):
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg} ({redact(exc_text, secrets)})"
        return True


_REDACTOR = _RedactSecrets()


class _AddComplaints(logging.Filter):
    """While a thread hands URLs to Apprise, keeps Apprise's complaints (e.g. "Unparseable Telegram
    URL") for the one message that reports the URL, instead of a second report in the log."""

    def __init__(self) -> None:
        super().__init__("minitrade.apprise-add")
        self._local = threading.local()

    @contextmanager
    def capturing(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield lines
        finally:
            self._local.lines = None

    def filter(self, record: logging.LogRecord) -> bool:
        lines: list[str] | None = getattr(self._local, "lines", None)
        if lines is None or record.levelno < logging.WARNING:
            return True
        lines.append(record.getMessage())
        return False


_COMPLAINTS = _AddComplaints()


def _install_redactor() -> None:
    for name in (*_SENDING_LOGGERS, log.name):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
    apprise_logger = logging.getLogger("apprise")
    if _COMPLAINTS not in apprise_logger.filters:  # after the redactor: what it keeps is masked
        apprise_logger.addFilter(_COMPLAINTS)


@dataclass(frozen=True)
class Outcome:
    """What happened to one event at one notifier: sent, suppressed (duplicate) or failed."""

    notifier: str
    event: str
    outcome: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


def _refusal(url: str, complaints: list[str]) -> str:
    """Why Apprise refused `url`: an unknown scheme, or Apprise's own words about the URL's parts."""
    from apprise.manager_plugins import NotificationManager

    scheme = url.split("://", 1)[0].lower() if "://" in url else url[:12]
    if scheme not in NotificationManager():  # type: ignore[no-untyped-call]
        return f"no Apprise plugin takes scheme {scheme!r}; see https://github.com/caronc/apprise/wiki"
    why = "; ".join(dict.fromkeys(complaints)) or "it refused the URL"
    return (f"Apprise cannot use this URL: {why} (check each part of the URL, secrets included, against "
            "https://github.com/caronc/apprise/wiki)")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def settings_secrets(settings: Settings, *, env: Mapping[str, str] | None = None) -> list[str]:
    """Resolved values of every secret reference in minitrade.yaml (brokers, notifiers), for masking."""
    refs = [v for broker in settings.brokers.values() for v in broker.model_dump().values()
            if isinstance(v, str) and SECRET_REF.search(v)]
    refs += [u for spec in settings.notifiers.values() for u in spec.urls]
    return secret_values(refs, env=env)


def message_digest(event: str, key: str) -> str:
    """Identity of an event for dedup and the audit: its kind and key, never its wording."""
    return hashlib.sha256(f"{event}\0{key}".encode()).hexdigest()[:32]


class Notifier:
    """Sends events to the notifiers of minitrade.yaml.

        notifier = Notifier.from_settings(snapshot.settings, store=snapshot.store())
        notifier.notify(messages.run_failed("spy", "data source down"))

    Args:
        notifiers: name -> NotifierSpec (URLs with `${ENV}` references, events, dedup window).
        store: where dedup state and the audit rows live; None sends without either.
        secrets: extra values to keep out of messages (e.g. broker passwords).
        env: where `${VAR}` resolves from (default os.environ).
        clock: the current time (replay runs on a simulated clock).
    """

    def __init__(self, notifiers: Mapping[str, NotifierSpec], *, store: Store | None = None,
                 secrets: Iterable[str] = (), env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.notifiers = dict(notifiers)
        self.store = store
        self._env = env
        self._clock = clock
        urls = [u for spec in self.notifiers.values() for u in spec.urls]
        self._secrets = [*secret_values(urls, env=env), *secrets]
        _install_redactor()
        _REDACTOR.remember(self._secrets)

    @classmethod
    def from_settings(cls, settings: Settings, *, store: Store | None = None,
                      env: Mapping[str, str] | None = None,
                      clock: Callable[[], datetime] = _utcnow) -> Notifier:
        """A notifier for every entry of `settings.notifiers`; broker secrets are redacted too."""
        return cls(settings.notifiers, store=store, secrets=settings_secrets(settings, env=env), env=env,
                   clock=clock)

    def __repr__(self) -> str:
        return f"Notifier({sorted(self.notifiers)})"

    # -- public ----------------------------------------------------------------------------
    def notify(self, message: Message) -> list[Outcome]:
        """Send a prepared message to every notifier subscribed to its event."""
        return self.send(message.event, message.title, message.body, key=message.key,
                         notify_type=message.notify_type)

    def send(self, event: str, title: str, body: str, *, key: str, notify_type: str = "info") -> list[Outcome]:
        """Send to every notifier whose `events` include `event`; one Outcome each.

        `key` is the event's identity (see `Message.key`): the same event and key within a
        notifier's dedup window is suppressed.

        Delivery problems never raise; only an event name outside `models.EVENTS` does, because
        that is a bug in the caller that would otherwise silently notify nobody.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}; one of: {', '.join(EVENTS)}")
        title, body = redact(title, self._secrets), redact(body, self._secrets)
        digest = message_digest(event, key)
        return [self._deliver(name, spec, event, title, body, notify_type, digest=digest, dedup=True)
                for name, spec in self.notifiers.items() if event in spec.events]

    def send_test(self, name: str, *, context: str = "") -> Outcome:
        """Send a test message through notifier `name` regardless of its events and of dedup.

        Raises:
            ConfigError: no notifier has that name.
        """
        spec = self.notifiers.get(name)
        if spec is None:
            from minitrade.errors import ConfigIssue

            known = ", ".join(sorted(self.notifiers)) or "none configured"
            raise ConfigError(ConfigIssue("minitrade.yaml", None, "notifiers",
                                          f"no notifier named {name!r}", f"known: {known}"))
        message = notifier_test(name, context=context)
        return self._deliver(name, spec, message.event, message.title,
                             redact(message.body, self._secrets), "info",
                             digest=message_digest(message.event, message.key), dedup=False)

    # -- delivery --------------------------------------------------------------------------
    def _deliver(self, name: str, spec: NotifierSpec, event: str, title: str, body: str,
                 notify_type: str, *, digest: str, dedup: bool) -> Outcome:
        now = self._clock()
        if dedup and spec.dedup_minutes > 0 and self._seen(name, event, digest,
                                                           now - timedelta(minutes=spec.dedup_minutes)):
            log.info("notifier %s: %s not sent again within %g min (%s)", name, event,
                     spec.dedup_minutes, title)
            return self._record(Outcome(name, event, "suppressed"), digest, title, now)
        error = self._send_apprise(name, spec, title, body, notify_type)
        if error is None:
            log.info("notifier %s: sent %s (%s)", name, event, title)
            return self._record(Outcome(name, event, "sent"), digest, title, now)
        # a test's failure is its caller's answer (notify test, apply's check), reported there once
        log.log(logging.WARNING if dedup else logging.INFO, "notifier %s: %s not delivered: %s", name, event, error)
        return self._record(Outcome(name, event, "failed", error), digest, title, now)

    def _send_apprise(self, name: str, spec: NotifierSpec, title: str, body: str,
                      notify_type: str) -> str | None:
        """Deliver through Apprise; the redacted reason on failure, None on success."""
        sender = apprise.Apprise(asset=apprise.AppriseAsset(app_id="minitrade", app_desc="minitrade"))
        problems: list[str] = []
        for i, url in enumerate(spec.urls):
            try:
                resolved = resolve_secret(url, env=self._env, field=f"notifiers.{name}.urls[{i}]")
            except ConfigError as e:
                problems.append("; ".join(f"{issue.message} ({issue.hint})" for issue in e.issues))
                continue
            with _COMPLAINTS.capturing() as complaints:
                added = sender.add(resolved.get_secret_value())
            if not added:
                # Apprise's own words name the real problem ("Unparseable Telegram URL": a malformed
                # token), where "does not understand the scheme" would send people looking elsewhere
                problems.append(f"urls[{i}]: {_refusal(url, complaints)}")
        if len(sender) == 0:
            return redact("; ".join(problems) or "no usable URL", self._secrets)
        try:
            result = sender.notify(body=body, title=title, notify_type=notify_type,
                                   body_format=apprise.NotifyFormat.TEXT)
        except Exception as e:  # any plugin bug: a failed notification must not break a run
            problems.append(f"Apprise raised {type(e).__name__}: {e}")
        else:
            if not result:  # AppriseResult: `== False` is always False, truthiness is the answer
                reasons = [entry.message for entry in result.logs()
                           if entry.level in ("WARNING", "ERROR", "CRITICAL")]
                problems.append("; ".join(dict.fromkeys(reasons)) or
                                f"{result.failed_count} of {len(sender)} URL(s) failed ({result.status})")
        return redact("; ".join(problems), self._secrets) if problems else None

    # -- audit and dedup -------------------------------------------------------------------
    def _seen(self, name: str, event: str, digest: str, since: datetime) -> bool:
        if self.store is None:
            return False
        try:
            return audit.sent_since(self.store, name, event, digest, since)
        except StoreError as e:
            log.warning("notifier %s: dedup state unavailable, sending anyway: %s", name, e)
            return False

    def _record(self, outcome: Outcome, digest: str, title: str, when: datetime) -> Outcome:
        if self.store is not None:
            try:
                audit.record(self.store, notifier=outcome.notifier, event=outcome.event, digest=digest,
                             title=title, sent_at=when, outcome=outcome.outcome, error=outcome.error)
            except StoreError as e:
                log.warning("notifier %s: could not record the %s notification: %s",
                            outcome.notifier, outcome.event, e)
        return outcome
