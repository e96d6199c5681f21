"""Secret references: `${ENV_VAR}` or `${file:PATH}` in YAML, resolved late into SecretStr.

Resolved values never go back into models, digests, DuckDB or output; `redact` removes them
from any text that might have picked one up (an exception message, a URL in a log line).
"""

from __future__ import annotations

import os
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
