"""A trading repo (working tree or commit) -> Snapshot of validated models, or every problem at once.

Errors name `file:line`, the field path, what is wrong and the fix, with "did you mean" for
typos. Cross-references (plan -> broker, data source, strategy file, calendar) are checked here
so that nothing half-valid is ever applied.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import posixpath
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ValidationError

from minitrade import gitrepo
from minitrade.credentials import literal_secret, references
from minitrade.errors import ConfigError, ConfigIssue
from minitrade.models import TYPE_TAGS, CsvSource, IBBroker, Plan, Settings
from minitrade.statedir import resolve_state_dir
from minitrade.strategy_source import declared_params
from minitrade.trading_calendar import calendar_names
from minitrade.yamlsource import YamlDoc, parse_yaml

if TYPE_CHECKING:
    from minitrade.store import Store

SETTINGS_FILE = "minitrade.yaml"
PLANS_DIR = "plans"
STRATEGIES_DIR = "strategies"


@dataclass
class Snapshot:
    """Desired state read from one place: a working tree or a commit."""

    root: Path
    settings: Settings
    plans: dict[str, Plan]
    plan_files: dict[str, str]
    strategies: dict[str, str]
    sources: dict[str, str] = field(default_factory=dict)
    commit: str | None = None
    dirty: bool = False

    @property
    def state_dir(self) -> Path:
        return resolve_state_dir(self.root, self.settings.state_dir)

    def store(self) -> Store:
        from minitrade.store import Store

        return Store(self.state_dir / "minitrade.duckdb")

    def resources(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every resource as (kind, name) -> spec as plain data (secret references, never values)."""
        s = self.settings
        out: dict[tuple[str, str], dict[str, Any]] = {
            ("settings", "minitrade"): s.model_dump(mode="json", include={"timezone", "state_dir", "branch",
                                                                          "commission"}),
        }
        for kind, group in (("data_source", s.data_sources), ("broker", s.brokers)):
            for name, spec in group.items():
                out[(kind, name)] = spec.model_dump(mode="json", exclude_none=True)
        for name, notifier in s.notifiers.items():
            out[("notifier", name)] = notifier.spec()
        if s.telegram is not None:  # its token as the reference written, never the value
            out[("telegram", "bot")] = s.telegram.model_dump(mode="json", exclude_none=True)
        for path, source in self.strategies.items():
            out[("strategy", path)] = {"sha256": hashlib.sha256(source.encode()).hexdigest()}
        for name, plan in self.plans.items():
            out[("plan", name)] = plan.spec()
        return out

    def digests(self) -> dict[tuple[str, str], str]:
        specs = self.resources()
        out = {key: digest(spec) for key, spec in specs.items()}
        for name, plan in self.plans.items():  # a plan's digest covers the code it runs
            out[("plan", name)] = digest({"spec": specs[("plan", name)],
                                          "strategy": specs.get(("strategy", plan.strategy), {})})
        return out


def digest(spec: Any) -> str:
    """A short stable digest of plain data."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# entry points

def load_worktree(root: Path) -> Snapshot:
    """Load the files as they are on disk (what a person editing YAML expects)."""
    root = root.resolve()

    def read(path: str) -> bytes | None:
        p = root / path
        return p.read_bytes() if p.is_file() else None

    def listing(folder: str) -> list[str]:
        base = root / folder
        return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def is_link(path: str) -> bool:  # any component: a linked folder leads out of the repo as well
        here = root
        for part in PurePosixPath(path).parts:
            here = here / part
            if here.is_symlink():
                return True
        return False

    snap = _load(root, read, listing, is_link)
    if gitrepo.is_repo(root):
        snap.commit = gitrepo.resolve(root, "HEAD")
        snap.dirty = snap.commit is None or bool(
            gitrepo.dirty_paths(root, [SETTINGS_FILE, PLANS_DIR, STRATEGIES_DIR]))
    return snap


def load_commit(root: Path, rev: str = "HEAD") -> Snapshot:
    """Load the files as committed at `rev`; the working tree is not read."""
    root = root.resolve()
    sha = gitrepo.resolve(root, rev)
    if sha is None:
        raise ConfigError(ConfigIssue(str(root), None, "", "the repository has no commit yet",
                                      "commit minitrade.yaml, plans/ and strategies/ first"))
    files = set(gitrepo.list_files(root, sha))
    links = set(gitrepo.list_symlinks(root, sha))  # git stores a link as its target's path: never read it

    def read(path: str) -> bytes | None:
        return gitrepo.read_file(root, sha, path) if path in files else None

    def listing(folder: str) -> list[str]:
        return sorted(p for p in files if p.startswith(folder + "/"))

    def is_link(path: str) -> bool:  # a linked folder is one link entry, and the path runs through it
        parts = path.split("/")
        return any("/".join(parts[:n]) in links for n in range(1, len(parts) + 1))

    snap = _load(root, read, listing, is_link)
    snap.commit = sha
    return snap


# ---------------------------------------------------------------------------------------------
# loading

def _load(root: Path, read: Callable[[str], bytes | None], listing: Callable[[str], list[str]],
          is_link: Callable[[str], bool]) -> Snapshot:
    issues: list[ConfigIssue] = []
    sources: dict[str, str] = {}

    raw = read(SETTINGS_FILE)
    settings: Settings | None = None
    settings_doc: YamlDoc | None = None
    if raw is not None and is_link(SETTINGS_FILE):
        issues.append(_link_issue(SETTINGS_FILE))
    elif raw is None:
        issues.append(ConfigIssue(SETTINGS_FILE, None, "", "not found in the trading repo",
                                  "run `minitrade init` or create minitrade.yaml"))
    else:
        sources[SETTINGS_FILE] = raw.decode("utf-8", "replace")
        settings_doc, settings = _parse(raw, SETTINGS_FILE, Settings, issues)

    plans: dict[str, Plan] = {}
    plan_files: dict[str, str] = {}
    plan_docs: dict[str, YamlDoc] = {}
    raw_docs: list[YamlDoc] = []
    for path in listing(PLANS_DIR):
        if not path.endswith((".yaml", ".yml")):
            continue
        if is_link(path):
            issues.append(_link_issue(path))
            continue
        content = read(path)
        assert content is not None
        sources[path] = content.decode("utf-8", "replace")
        doc, plan = _parse(content, path, Plan, issues, default_name=Path(path).stem)
        if doc is not None and isinstance(doc.data, dict):
            raw_docs.append(doc)
        if plan is None or doc is None:
            continue
        if plan.name in plans:
            issues.append(ConfigIssue(path, doc.line_of(("name",)), "name",
                                      f"plan name {plan.name!r} is already used by {plan_files[plan.name]}",
                                      "give each plan a unique name"))
            continue
        plans[plan.name], plan_files[plan.name], plan_docs[plan.name] = plan, path, doc

    strategies: dict[str, str] = {}
    available = [p for p in listing(STRATEGIES_DIR) if p.endswith(".py")]
    for doc in raw_docs:
        path = doc.data.get("strategy")
        if not isinstance(path, str) or path in strategies:
            continue
        unsafe = _unsafe_strategy_path(path) or (
            f"strategy file {path!r} is a symbolic link" if is_link(path) else None)
        if unsafe:
            issues.append(ConfigIssue(doc.file, doc.line_of(("strategy",)), "strategy", unsafe,
                                      f"keep the strategy as a regular file in {STRATEGIES_DIR}/ and write "
                                      f"its path from the repo root, e.g. {STRATEGIES_DIR}/sma.py"))
            continue
        content = read(path)
        if content is None:
            issues.append(ConfigIssue(doc.file, doc.line_of(("strategy",)), "strategy",
                                      f"strategy file {path!r} not found",
                                      _suggest(path, available, "strategies/<name>.py")))
            continue
        try:
            strategies[path] = content.decode("utf-8")
        except UnicodeDecodeError:
            issues.append(ConfigIssue(path, None, "", "not UTF-8 text", "save it as UTF-8"))

    if settings is not None and settings_doc is not None:
        issues += _check_settings(settings, settings_doc)
    if settings is not None:
        for doc in raw_docs:
            issues += _check_plan_refs(doc, settings)
    for doc in raw_docs:
        issues += _check_params(doc, strategies)
    issues.sort(key=lambda i: (i.file != SETTINGS_FILE, i.file, i.line or 0))
    if issues:
        raise ConfigError(issues)
    assert settings is not None
    return Snapshot(root=root, settings=settings, plans=plans, plan_files=plan_files,
                    strategies=strategies, sources=sources)


def ticker_issues(snapshot: Snapshot, plans: Iterable[str] | None = None) -> list[ConfigIssue]:
    """Universe tickers a csv data source has no file for, at the line of the universe entry.

    Only sources that can answer offline are asked (a csv folder that exists); remote sources
    are tried by `apply`. Kept out of the load itself: the answer depends on files outside the
    commit, and an applied commit must always load again (a daemon restarting after a price file
    went missing still runs its other plans).
    """
    issues: list[ConfigIssue] = []
    listings: dict[str, set[str] | None] = {}
    for name in sorted(snapshot.plans if plans is None else plans):
        plan = snapshot.plans.get(name)
        spec = snapshot.settings.data_sources.get(plan.data_source) if plan else None
        if plan is None or not isinstance(spec, CsvSource):
            continue
        if plan.data_source not in listings:
            folder = spec.folder(snapshot.root)
            listings[plan.data_source] = ({p.stem for p in folder.glob("*.csv") if p.is_file()}
                                          if folder.is_dir() else None)
        have = listings[plan.data_source]
        missing = [t for t in plan.tickers if have is not None and t not in have]
        if not missing or have is None:
            continue
        file = snapshot.plan_files[name]
        doc = parse_yaml(snapshot.sources[file].encode(), file)
        for ticker in missing:
            line = doc.line_of(_universe_path(doc.data.get("universe"), ticker)) \
                if isinstance(doc, YamlDoc) and isinstance(doc.data, dict) else None
            near = _suggest(ticker, sorted(have))
            files = ", ".join(sorted(have)[:20]) or "none"
            issues.append(ConfigIssue(file, line, "universe",
                                      f"data source {plan.data_source} has no {ticker}.csv in {spec.path}",
                                      near or f"add {ticker}.csv to that folder or remove {ticker}; "
                                              f"tickers it has: {files}"))
    return issues


def _universe_path(universe: Any, ticker: str) -> tuple[str | int, ...]:
    """Where `ticker` is written in a plan's raw `universe` (list, map or one string)."""
    if isinstance(universe, list):
        for i, item in enumerate(universe):
            if item == ticker or (isinstance(item, dict) and ticker in item):
                return ("universe", i)
    if isinstance(universe, dict) and ticker in universe:
        return ("universe", ticker)
    return ("universe",)


def _unsafe_strategy_path(path: str) -> str | None:
    """Why `path` may not name a strategy, or None. The same rule for working trees and commits:
    a plain relative path inside strategies/, so nothing outside the repo is ever read or run."""
    if path.startswith(("/", "~")) or "\\" in path or path[1:2] == ":":
        return f"strategy path {path!r} is not relative to the repo"
    parts = path.split("/")
    if any(ord(c) < 32 for c in path) or any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path:
        return f"strategy path {path!r} is not a plain path: no '..', '.', '//' or control characters"
    if parts[0] != STRATEGIES_DIR or len(parts) < 2:
        return f"strategy path {path!r} is outside {STRATEGIES_DIR}/"
    return None


def _link_issue(path: str) -> ConfigIssue:
    return ConfigIssue(path, None, "", "is a symbolic link: minitrade reads only regular files in the repo "
                                       "(a link can point outside it, and git stores only where it points)",
                       "replace the link with the file itself")


def _parse(raw: bytes, file: str, model: type[Any], issues: list[ConfigIssue],
           default_name: str | None = None) -> tuple[YamlDoc | None, Any]:
    parsed = parse_yaml(raw, file)
    if isinstance(parsed, ConfigIssue):
        issues.append(parsed)
        return None, None
    if not isinstance(parsed.data, dict):
        kind = type(parsed.data).__name__.replace("NoneType", "nothing")
        issues.append(ConfigIssue(file, parsed.line_of(()), "", f"expected a map of keys, found a {kind}",
                                  "write `key: value` lines at the top level"))
        return parsed, None
    data = dict(parsed.data)
    if default_name is not None:
        data.setdefault("name", default_name)
    try:
        return parsed, model.model_validate(data)
    except ValidationError as e:
        issues.extend(_issues_from(e, parsed, model))
        return parsed, None


def _issues_from(error: ValidationError, doc: YamlDoc, model: type[BaseModel]) -> list[ConfigIssue]:
    out = []
    for err in error.errors(include_url=False):
        loc = _data_path(doc.data, tuple(err["loc"]))
        field_name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        message, hint = str(err["msg"]), ""
        kind = err["type"]
        if kind == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            message = f"unknown key {loc[-1]!r}"
            hint = _suggest(str(loc[-1]), known, "valid keys: " + ", ".join(known))
        elif kind == "missing":
            message = "required but missing"
            hint = f"add `{loc[-1]}:`"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            message = "unknown or missing `type`"
            hint = str(err.get("ctx", {}).get("expected_tags", "")).replace("'", "")
            hint = f"type must be one of {hint}" if hint else ""
        elif kind == "enum" or kind == "literal_error":
            hint = "expected " + str(err.get("ctx", {}).get("expected", ""))
            message = f"{err.get('input')!r} is not allowed"
            if isinstance(err.get("input"), bool):
                hint += " (YAML reads yes/no/on/off as true/false)"
        elif kind == "string_pattern_mismatch":
            message = f"{err.get('input')!r} is not a valid name"
            hint = "use letters, digits, '-', '_' or '.', starting with a letter or digit, no spaces"
        elif kind == "dict_type":
            message = "expected a map of `key: value` entries"
            hint = f"e.g. `{loc[-1] if loc else 'key'}: {{name: value}}`"
        elif kind == "list_type":
            message = "expected a list"
            hint = f"e.g. `{loc[-1] if loc else 'key'}: [a, b]`"
        elif "input" in err and kind not in ("dict_type", "list_type", "model_type"):
            message = f"{message} (got {err['input']!r})"
        out.append(ConfigIssue(doc.file, doc.line_of(loc), field_name, message, hint))
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's error location mapped onto the YAML data (drops union tags and function names)."""
    path: list[Any] = []
    node = data
    for part in loc:
        in_map = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_map or in_list:
            path.append(part)
            node = node[part]
        elif (isinstance(node, (dict, list)) and isinstance(part, str) and (
                part.startswith(("function-", "tagged-union")) or part in TYPE_TAGS)) or (
                part in ("time-entry", "cron-entry")):  # the tags of a run_at entry's kinds (models.RunAtEntry)
            continue
        else:
            path.append(part)
            node = None
    return tuple(path)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names (as written in YAML) valid at `loc` inside `model`, for 'did you mean'."""
    current: Any = model
    for part in loc:
        current = _child_type(current, part)
        if current is None:
            return []
    models = [m for m in _models_in(current)]
    names: list[str] = []
    for m in models:
        for name, info in m.model_fields.items():
            names.append(info.alias or name)
    return sorted(set(names))


def _child_type(tp: Any, part: Any) -> Any:
    for candidate in _models_in(tp):
        fields = {(info.alias or name): info for name, info in candidate.model_fields.items()}
        if part in fields:
            return fields[part].annotation
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _child_type(args[0], part)
    if origin in (dict,) and len(args) == 2:
        return args[1]
    if origin in (list,) and args:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _child_type(arg, part)
            if found is not None:
                return found
    return None


def _models_in(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(tp):
        out += _models_in(arg)
    return out


def _suggest(word: str, choices: list[str], fallback: str = "") -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else fallback


def _check_settings(settings: Settings, doc: YamlDoc) -> list[ConfigIssue]:
    issues = []
    if settings.timezone not in _timezones():
        issues.append(ConfigIssue(doc.file, doc.line_of(("timezone",)), "timezone",
                                  f"unknown timezone {settings.timezone!r}",
                                  _suggest(settings.timezone, sorted(_timezones()), "use an IANA name like "
                                           "America/New_York")))
    for name, spec in settings.notifiers.items():
        for i, url in enumerate(spec.urls):
            where = (doc.file, doc.line_of(("notifiers", name, "urls", i)), f"notifiers.{name}.urls[{i}]")
            masked = literal_secret(url)
            if "://" not in url and references(url) != [url]:  # a whole-URL ${NOTIFY_URL} is fine
                issues.append(ConfigIssue(*where, "not an Apprise URL",
                                          "e.g. tgram://${TELEGRAM_TOKEN}/${TELEGRAM_CHAT_ID}"))
            elif masked is not None:  # the message shows the URL masked: it must not repeat the secret
                issues.append(ConfigIssue(*where, f"{masked}: a secret is written literally in the URL "
                                                  "(it would end up in git)",
                                          "write each *** part as ${ENV_VAR} or ${file:/path/outside/repo}, "
                                          "e.g. tgram://${TELEGRAM_TOKEN}/${TELEGRAM_CHAT_ID}"))
    for name, broker in settings.brokers.items():
        if isinstance(broker, IBBroker):
            for key in ("username", "password"):
                if not references(getattr(broker, key)):
                    issues.append(ConfigIssue(doc.file, doc.line_of(("brokers", name, key)),
                                              f"brokers.{name}.{key}", "must be a secret reference"))
    return issues


def _check_plan_refs(doc: YamlDoc, settings: Settings) -> list[ConfigIssue]:
    """References from a plan to minitrade.yaml and to exchange calendars, checked on the raw data
    so they are reported even when the plan has other errors."""
    issues = []
    data = doc.data

    def ref(field_name: str, known: dict[str, Any], what: str) -> None:
        value = data.get(field_name, "manual" if field_name == "broker" else None)
        if isinstance(value, str) and value not in known:
            names = sorted(known)
            issues.append(ConfigIssue(doc.file, doc.line_of((field_name,)), field_name,
                                      f"unknown {what} {value!r}",
                                      _suggest(value, names, f"defined in minitrade.yaml: {', '.join(names) or 'none'}")))

    ref("broker", settings.brokers, "broker")
    ref("data_source", settings.data_sources, "data source")
    calendar = data.get("calendar")
    if isinstance(calendar, str) and not _calendar_known(calendar):
        issues.append(ConfigIssue(doc.file, doc.line_of(("calendar",)), "calendar",
                                  f"unknown exchange calendar {calendar!r}",
                                  _suggest(calendar, sorted(calendar_names()), "use an exchange_calendars code "
                                           "like XNYS, XSHG, XLON")))
    tz = data.get("timezone")
    if isinstance(tz, str) and tz not in _timezones():
        issues.append(ConfigIssue(doc.file, doc.line_of(("timezone",)), "timezone",
                                  f"unknown timezone {tz!r}",
                                  _suggest(tz, sorted(_timezones()), "use an IANA name like America/New_York")))
    return issues


def _check_params(doc: YamlDoc, strategies: dict[str, str]) -> list[ConfigIssue]:
    """Plan params the strategy does not declare, read from its source without running it
    (nothing is said when the declared params cannot be known statically)."""
    params, path, cls = doc.data.get("params"), doc.data.get("strategy"), doc.data.get("class")
    if not isinstance(params, dict) or not params or not isinstance(path, str) or path not in strategies:
        return []
    declared = declared_params(strategies[path], cls if isinstance(cls, str) else None)
    if declared is None:
        return []
    name, known = declared
    issues = []
    for key in params:
        if key in known:
            continue
        fallback = (f"{name} declares {', '.join(known)}" if known else f"{name} declares no params") + (
            f"; declare it in {path} as `params = (({str(key)!r}, default),)` or remove it")
        issues.append(ConfigIssue(doc.file, doc.line_of(("params", key)), f"params.{key}",
                                  f"unknown param {str(key)!r} of strategy {name} ({path})",
                                  _suggest(str(key), known, fallback)))
    return issues


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
        _TZ_CACHE.add("UTC")
    return _TZ_CACHE


def _calendar_known(code: str) -> bool:
    return code in calendar_names()

