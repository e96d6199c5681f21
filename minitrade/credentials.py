"""Secret references: `${ENV_VAR}` or `${file:PATH}` in YAML, resolved late into SecretStr.

Resolved values never go back into models, digests, DuckDB or output; `redact` removes them
from any text that might have picked one up (an exception message, a URL in a log line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import SecretStr

from minitrade.errors import ConfigError, ConfigIssue
from minitrade.models import SECRET_REF

MASK = "***"
_resolved: set[str] = set()  # every value resolved in this process: the log handlers mask them (logsetup)


def references(text: str) -> list[str]:
    """The `${...}` references inside `text`, as written."""
    return [m.group(0) for m in SECRET_REF.finditer(text)]


def resolve_secret(text: str, *, env: Mapping[str, str] | None = None, field: str = "") -> SecretStr:
    """Replace every `${VAR}` / `${file:PATH}` in `text` with its value.

    Raises:
        ConfigError: a variable is unset or a secrets file is missing, naming which one.
    """
    environ = os.environ if env is None else env
    problems: list[ConfigIssue] = []
    values: list[str] = []

    def value(match: object) -> str:
        values.append(found := _value(match))
        return found

    def _value(match: object) -> str:
        var, path = match.group(1), match.group(2)  # type: ignore[attr-defined]
        if var:
            if var not in environ or environ[var] == "":
                problems.append(ConfigIssue("environment", None, field,
                                            f"secret ${{{var}}} is not set",
                                            f"export {var}=... before running minitrade"))
                return ""
            return environ[var]
        file = Path(os.path.expanduser(path))
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as e:
            problems.append(ConfigIssue(str(file), None, field, f"cannot read secrets file: {e.strerror}",
                                        "create it outside the repo with mode 600"))
            return ""

    resolved = SECRET_REF.sub(value, text)
    if problems:
        raise ConfigError(problems)
    _resolved.update(v for v in values if len(v) >= 3)
    return SecretStr(resolved)


def resolved_values() -> frozenset[str]:
    """Every secret value resolved in this process so far (for redaction in the log handlers)."""
    return frozenset(_resolved)


def secret_values(texts: Iterable[str], *, env: Mapping[str, str] | None = None) -> list[str]:
    """Resolved values of every reference in `texts` that can be resolved (for redaction)."""
    found: list[str] = []
    for text in texts:
        for ref in references(text):
            try:
                found.append(resolve_secret(ref, env=env).get_secret_value())
            except ConfigError:
                continue
    return [v for v in found if len(v) >= 3]


def redact(text: str, secrets: Iterable[str | SecretStr]) -> str:
    """`text` with every secret value replaced by ***, longest first."""
    values = sorted({s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets},
                    key=len, reverse=True)
    for v in values:
        if v:
            text = text.replace(v, MASK)
    return text


# Where an Apprise URL keeps its secrets, per scheme, after each Apprise plugin's private template
# tokens: "host" is the part before the first "/" (after any `user@`), "user" the user before "@",
# an int the n-th path segment (-1 the last), "path" every segment. Everywhere, whatever the scheme:
# the password of `user:password@`, and query values named like a key (`?token=`, `?apikey=`).
# Path segments starting with #, @ or + name channels, users or phone numbers: never secrets.
_SECRET_PARTS: dict[str, tuple[str | int, ...]] = {
    "tgram": ("host",), "discord": ("host", 0), "slack": ("host", 0, 1), "msteams": ("host", "path"),
    "pover": ("user", "host"), "pbul": ("host",), "gotify": (-1,), "gotifys": (-1,),
    "ses": (0, 1), "sns": ("host", 0), "bark": (0,), "barks": (0,), "join": ("host",), "line": ("host",),
    "ifttt": ("host",), "psafer": ("host",), "psafers": ("host",), "prowl": ("host",),
    "opsgenie": ("host",), "pagerduty": ("user", "host"), "zulip": (0,), "mmost": (-1,), "mmosts": (-1,),
    "wxteams": ("host",), "feishu": ("host",), "dingtalk": ("host",), "wecombot": ("host",),
    "schan": ("host",), "hassio": (-1,), "hassios": (-1,), "apprise": (-1,), "apprises": (-1,),
    "rockets": ("user",), "spush": ("host",), "pushplus": ("host",),
}
_SECRET_QUERY = re.compile(r"(?i)token|key|secret|pass|pwd|auth|webhook|sig")  # also +Authorization= headers
_HOLE = "\x00"


def literal_secret(url: str) -> str | None:
    """`url` with its secrets masked (`tgram://***/chat`) when one is written literally instead of
    as a `${...}` reference; None when every secret part is (or contains) a reference.

    >>> literal_secret("tgram://123456:AAE-token/987")
    'tgram://***/987'
    >>> literal_secret("tgram://${TELEGRAM_TOKEN}/987") is None
    True
    """
    refs = [m.group(0) for m in SECRET_REF.finditer(url)]
    holed = SECRET_REF.sub(_HOLE, url)  # a ${file:/a/b} reference holds "/" and ":"; hide them first
    scheme, sep, rest = holed.partition("://")
    if not sep:
        return None
    rest, qmark, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    segments = path.split("/")
    used = [i for i, s in enumerate(segments) if s and s[0] not in "#@+"]
    found = False

    def mask(part: str) -> str:
        nonlocal found
        if part and _HOLE not in part:
            found = True
            return MASK
        return part

    wants = _SECRET_PARTS.get(scheme.lower(), ())
    password = mask(password)
    user = mask(user) if "user" in wants else user
    host = mask(host) if "host" in wants else host
    picks = set(range(len(used))) if "path" in wants else {w % len(used) for w in wants
                                                            if isinstance(w, int) and used}
    for k in picks:
        segments[used[k]] = mask(segments[used[k]])
    pairs = [p.partition("=") for p in query.split("&")] if query else []
    query = "&".join(k + eq + (mask(v) if _SECRET_QUERY.search(k) else v) for k, eq, v in pairs)
    if not found:
        return None
    out = (f"{scheme}://{user}{colon}{password}{at}{host}{slash}{'/'.join(segments)}{qmark}{query}")
    for ref in refs:
        out = out.replace(_HOLE, ref, 1)
    return out
