"""What a strategy file declares, read from its source with `ast`, never by running it.

`validate` checks a plan's `params` against the strategy's declared params without executing user
code (the loader never runs strategies). Only what can be known for sure is answered: when the
class a plan runs, or any class it inherits from, cannot be pinned down statically (a base class
from another module, `params` built by code), the answer is None and nothing is reported; the
dry-run backtest of `apply` checks those at run time.
"""

from __future__ import annotations

import ast

# Bases known to declare no params, by their full import path: backtrader's Strategy and minitrade's.
_ROOTS = {"backtrader.Strategy", "backtrader.strategy.Strategy", "minitrade.Strategy",
          "minitrade.strategy_api.Strategy"}


def declared_params(source: str, class_name: str | None = None) -> tuple[str, list[str]] | None:
    """(class name, its params) of the strategy a plan runs from `source`, or None when unsure.

    The class is picked as `runner.strategy.load_strategy` picks it: `class_name`; else the one
    class marked `@entry_strategy`; else the only strategy class in the file.

    >>> declared_params("import backtrader as bt\\nclass S(bt.Strategy):\\n    params = (('fast', 10),)\\n")
    ('S', ['fast'])
    """
    try:
        tree = ast.parse(source)
        classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        scope = _Scope(classes, _imports(tree))
        chosen = _choose(scope, class_name)
        params = _params_of(chosen, scope, depth=0) if chosen is not None else None
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a hostile file: the compile check says why
        return None
    return None if chosen is None or params is None else (chosen.name, params)


class _Scope:
    """The module's classes and imported names, to tell a base class's origin."""

    def __init__(self, classes: dict[str, ast.ClassDef], imports: dict[str, str]) -> None:
        self.classes, self.imports = classes, imports

    def origin(self, base: ast.expr) -> str:
        """'root', 'object', a class name of this module, or '' (from elsewhere: unknown)."""
        name = _dotted(base)
        head, _, rest = name.partition(".")
        full = self.imports.get(head, "") + (f".{rest}" if rest else "") if head in self.imports else name
        if full in _ROOTS:
            return "root"
        if name == "object":
            return "object"
        return name if name in self.classes else ""


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> full import path, from the module's top-level imports."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                out[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return out


def _choose(scope: _Scope, class_name: str | None) -> ast.ClassDef | None:
    classes = scope.classes
    if class_name:
        return classes.get(class_name)
    marked = [c for c in classes.values() if any(_dotted(d).endswith("entry_strategy") for d in c.decorator_list)]
    if len(marked) == 1:
        return marked[0]
    if marked:
        return None
    kinds = {name: _is_strategy(c, scope, depth=0) for name, c in classes.items()}
    if any(kind is None for kind in kinds.values()):
        return None  # a class with a base from elsewhere may be a strategy too: the pick is unsure
    strategies = [classes[name] for name, kind in kinds.items() if kind]
    return strategies[0] if len(strategies) == 1 else None


def _is_strategy(cls: ast.ClassDef, scope: _Scope, depth: int) -> bool | None:
    """True/False when known from this file, None when a base comes from elsewhere."""
    if depth > 20:
        return None
    found = False
    for base in cls.bases:
        origin = scope.origin(base)
        if origin == "root":
            found = True
        elif origin == "object":
            continue
        elif origin and origin != cls.name:
            kind = _is_strategy(scope.classes[origin], scope, depth + 1)
            if kind is None:
                return None
            found = found or kind
        else:
            return None
    return found


def _params_of(cls: ast.ClassDef, scope: _Scope, depth: int) -> list[str] | None:
    """Params declared by `cls` and its bases (backtrader merges them, bases first)."""
    if depth > 20 or cls.keywords:  # a metaclass= may do anything with params
        return None
    out: list[str] = []
    for base in cls.bases:
        origin = scope.origin(base)
        if origin in ("root", "object"):
            continue
        if not origin or origin == cls.name:
            return None
        inherited = _params_of(scope.classes[origin], scope, depth + 1)
        if inherited is None:
            return None
        out += [p for p in inherited if p not in out]
    own = _own_params(cls)
    if own is None:
        return None
    return out + [p for p in own if p not in out]


def _own_params(cls: ast.ClassDef) -> list[str] | None:
    """The names in the class body's `params = ...`; [] without one; None if not a plain literal."""
    found: list[str] = []
    assigned = 0
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue  # `params` inside a method is a local variable, not the class attribute
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            if any(isinstance(n, ast.Name) and n.id == "params" and isinstance(n.ctx, ast.Store)
                   for n in ast.walk(stmt)):
                return None  # set under an `if`, a loop, `+=`...: decided by code
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if not any(isinstance(t, ast.Name) and t.id == "params" for t in targets):
            continue
        assigned += 1
        names = _literal_names(stmt.value) if stmt.value is not None else None
        if names is None or assigned > 1:
            return None
        found = names
    return found


def _literal_names(value: ast.expr) -> list[str] | None:
    """Names of `(("a", 1), ("b", 2))`, `[...]`, `{"a": 1}` or `dict(a=1)`; None for anything else."""
    if isinstance(value, (ast.Tuple, ast.List)):
        names = []
        for item in value.elts:
            if not (isinstance(item, (ast.Tuple, ast.List)) and len(item.elts) == 2):
                return None
            key = item.elts[0]
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None
            names.append(key.value)
        return names
    if isinstance(value, ast.Dict):
        keys = []
        for dict_key in value.keys:
            if not (isinstance(dict_key, ast.Constant) and isinstance(dict_key.value, str)):
                return None  # None is `**other`
            keys.append(dict_key.value)
        return keys
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
        if value.args or any(k.arg is None for k in value.keywords):
            return None
        return [k.arg for k in value.keywords if k.arg is not None]
    return None


def _dotted(node: ast.expr) -> str:
    """`bt.Strategy` for an Attribute chain, the name for a Name, '' for anything else."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""
