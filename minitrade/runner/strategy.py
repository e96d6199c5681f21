"""Strategy files: compile user source into a strategy class, and map user failures to StrategyError.

User code is compiled with its repo-relative file name (`strategies/sma.py`), so tracebacks and
our errors point at the user's file and line, never at minitrade's internals.
"""

from __future__ import annotations

import difflib
import hashlib
import linecache
import re
import sys
import traceback
import types
from collections.abc import Mapping
from typing import Any

import backtrader as bt

from minitrade.errors import MinitradeError, StrategyError
from minitrade.strategy_api import Strategy

MODULE_PREFIX = "minitrade_strategies."
# An exception's text goes into DuckDB, notifications and terminals: a strategy that raises with a
# whole file (or a megabyte of anything) in its message is cut to this many characters.
MAX_MESSAGE = 300


def load_strategy(source: str, filename: str, class_name: str | None = None, *, owner: str = "") -> type:
    """Compile `source` (the text of `filename`) and return the strategy class a plan runs.

    Each `owner` (a plan) gets a module of its own: plans that share a strategy file never share
    its module-level state, even in one process.

    The class is `class_name` if given; else the one class marked `@entry_strategy`; else the only
    strategy class defined in the file. Anything else is a StrategyError naming the file and line.

    >>> cls = load_strategy("import backtrader as bt\\nclass S(bt.Strategy): pass\\n", "s.py")
    >>> cls.__name__
    'S'
    """
    module = _execute(source, filename, owner)
    defined = [obj for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, bt.Strategy)
               and obj not in (bt.Strategy, Strategy) and obj.__module__ == module.__name__]
    if class_name:
        found = getattr(module, class_name, None)
        if not (isinstance(found, type) and issubclass(found, bt.Strategy)):
            names = [c.__name__ for c in defined]
            near = difflib.get_close_matches(class_name, names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (strategy classes: {', '.join(names) or 'none'})"
            raise StrategyError(f"no strategy class {class_name!r}{hint}", file=filename)
        return found
    marked = [c for c in defined if c.__dict__.get("__entry_strategy__")]
    if len(marked) == 1:
        return marked[0]
    if len(marked) > 1:
        raise StrategyError(f"several classes are marked @entry_strategy: {_names(marked)}; keep one",
                            file=filename, line=_class_line(source, marked[1].__name__))
    if len(defined) == 1:
        return defined[0]
    if not defined:
        raise StrategyError("no strategy class found: define a subclass of minitrade.Strategy "
                            "(or backtrader.Strategy)", file=filename)
    raise StrategyError(f"several strategy classes ({_names(defined)}): mark the one to run with "
                        "@entry_strategy, or name it with `class:` in the plan",
                        file=filename, line=_class_line(source, defined[1].__name__))


def strategy_file(cls: type) -> str | None:
    """The file name a loaded strategy class was compiled from."""
    module = sys.modules.get(cls.__module__)
    return getattr(module, "__file__", None)


def user_error(exc: BaseException, *, file: str | None, plan: str | None) -> StrategyError:
    """Turn an exception raised while running user code into a StrategyError at the user's line."""
    frames = traceback.extract_tb(exc.__traceback__)
    line = None
    for frame in reversed(frames):
        if file and frame.filename == file:
            line = frame.lineno
            break
    if isinstance(exc, StrategyError):
        message = str(exc).removeprefix(f"plan {exc.plan}: " if exc.plan else "")
    elif isinstance(exc, MinitradeError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {_bounded(str(exc))}"
    return StrategyError(message, plan=plan, file=file, line=line)


def check_params(cls: type, params: Mapping[str, Any], *, plan: str | None, file: str | None) -> None:
    """Refuse plan params the strategy does not declare, with the nearest known name."""
    known = list(cls.params._getkeys()) if hasattr(cls, "params") else []
    for name in params:
        if name in known:
            continue
        near = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {near[0]!r}?" if near else (
            f"it declares {', '.join(known)}" if known else "it declares no params")
        raise StrategyError(f"plan param {name!r} is not a param of strategy {cls.__name__} ({hint}); "
                            f"declare it as `params = (({name!r}, default),)` or remove it",
                            plan=plan, file=file)


def _execute(source: str, filename: str, owner: str) -> types.ModuleType:
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        # e.msg only: e.text is the offending line, which is never repeated in a message
        raise StrategyError(f"syntax error: {_bounded(e.msg)}", file=filename, line=e.lineno) from None
    digest = hashlib.sha256(f"{owner}\0{filename}\0{source}".encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", filename.rsplit("/", 1)[-1].removesuffix(".py"))
    name = f"{MODULE_PREFIX}{stem}_{digest}"
    # Let tracebacks and `inspect` show the user's lines although no file is read.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        exec(code, module.__dict__)
    except Exception as e:
        del sys.modules[name]
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
        line = frames[-1].lineno if frames else None
        raise StrategyError(f"importing the strategy failed: {type(e).__name__}: {_bounded(str(e))}",
                            file=filename, line=line) from None
    return module


def _bounded(text: str) -> str:
    """`text` on one line and at most MAX_MESSAGE characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 1] + "…"


def _names(classes: list[type]) -> str:
    return ", ".join(c.__name__ for c in classes)


def _class_line(source: str, name: str) -> int | None:
    match = re.search(rf"^[ \t]*class[ \t]+{re.escape(name)}\b", source, re.MULTILINE)
    return source.count("\n", 0, match.start()) + 1 if match else None
