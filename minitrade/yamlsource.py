"""Parse one YAML file into plain data plus the line of every key, or issues pointing at lines.

Stricter than PyYAML's safe_load where it matters to people editing config by hand: duplicate
keys are errors (PyYAML keeps the last silently), impossible dates such as 2023-02-30 are errors
with their line, and bytes that are not UTF-8 are reported with their line.

Hostile files cannot take the process down: aliases may add at most MAX_ALIAS_NODES nodes to a
document (a "billion laughs" file is refused at the alias that crosses the bound, while it is
composed, before any of it is expanded), an alias inside its own anchor is refused, and nesting
too deep for Python's stack is an issue rather than a RecursionError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from minitrade.errors import ConfigIssue

Path_ = tuple[str | int, ...]

# Nodes that aliases may add to one document once expanded. Plain uses (a shared `params` block,
# `<<: *defaults`) add tens; a "billion laughs" file adds billions. Nodes written out in the file
# do not count: their number is bounded by the file's size.
MAX_ALIAS_NODES = 10_000
_ALIAS_HINT = "write the values out, or share smaller blocks through fewer aliases"


class _AliasBomb(ComposerError):
    """Aliases expand past MAX_ALIAS_NODES, or an alias sits inside its own anchor."""

    def __init__(self, problem: str, hint: str, mark: yaml.Mark) -> None:
        super().__init__(None, None, problem, mark)
        self.hint = hint


class _BoundedComposer:
    """Composer rules: count the nodes every alias adds (its anchor's expanded size, memoised per
    node so the count is linear in the file) and stop at the alias that crosses MAX_ALIAS_NODES."""

    def compose_document(self) -> Node | None:
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0
        return super().compose_document()  # type: ignore[misc, no-any-return]

    def compose_node(self, parent: Node | None, index: object) -> Node:
        if self.check_event(AliasEvent):  # type: ignore[attr-defined]
            event = self.peek_event()  # type: ignore[attr-defined]
            anchored = self.anchors.get(event.anchor)  # type: ignore[attr-defined]
            if anchored is not None:
                self._count_alias(anchored, event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        node: Node = super().compose_node(parent, index)  # type: ignore[misc]
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        return node

    def _count_alias(self, anchored: Node, mark: yaml.Mark) -> None:
        size = self._sizes.get(id(anchored))
        if size is None:  # the anchored collection is still open: the alias is inside itself
            raise _AliasBomb("an alias refers to the collection that contains it (a loop)",
                             "write the values out instead of the alias", mark)
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _AliasBomb(f"aliases expand to more than {MAX_ALIAS_NODES} nodes", _ALIAS_HINT, mark)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _alias_nodes_within_bound(root: Node) -> bool:
    """Whether aliases add at most MAX_ALIAS_NODES nodes to `root`'s tree and form no loop.

    For libyaml's composer, which cannot be hooked: each node of the graph is sized once (so the
    walk is linear in the file), before anything walks the graph as a tree. The expanded tree has
    one node per distinct node plus what the aliases add."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
        elif key in open_:
            return False  # reached again before it was finished: a loop
        elif key not in sizes:
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)] - len(sizes) <= MAX_ALIAS_NODES


class _StrictRules(SafeConstructor):
    """Constructor rules: refuse duplicate keys, report bad dates at their line."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ConstructorError(None, None, "a key must be a plain value, not a list or map",
                                       key_node.start_mark) from None
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r} (first at line {seen[key]}); "
                                       "keep one of them", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as e:
            raise ConstructorError(None, None, f"{node.value!r} is not a real date ({e})",
                                   node.start_mark) from None


class _StrictLoader(_BoundedComposer, _StrictRules, yaml.SafeLoader):
    """The pure-Python parser: its error messages are the ones people see."""


class _FastStrictLoader(_StrictRules, yaml.CSafeLoader):
    """The same rules on libyaml's parser (about 10x faster); a file it refuses is read again
    by _StrictLoader, so what is accepted and every message stay those of the pure parser."""


def _register(loader: Any) -> None:  # Any: the stubs type constructors per loader class, not per mixin
    loader.add_constructor("tag:yaml.org,2002:timestamp", loader.construct_yaml_timestamp)
    loader.add_constructor("tag:yaml.org,2002:map", loader.construct_mapping)


_register(_StrictLoader)
_register(_FastStrictLoader)


@dataclass
class YamlDoc:
    """A parsed file: its data and the 1-based line of each key path."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


def _index_lines(node: Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else str(key_node.start_mark)
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), lines)


def parse_yaml(raw: bytes, file: str) -> YamlDoc | ConfigIssue:
    """Parse `raw` as one YAML document; a ConfigIssue with file and line on any problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line: int | None = raw[: e.start].count(b"\n") + 1
        return ConfigIssue(file, line, "", f"not UTF-8 text (byte 0x{raw[e.start]:02x})",
                           "save the file as UTF-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    if yaml.__with_libyaml__ and "\t" not in text:  # libyaml accepts tabs that PyYAML refuses
        fast = _FastStrictLoader(text)
        try:
            node = fast.get_single_node()
            # a document without "*" has no alias to size (nearly every plan file): skip the walk
            if node is not None and ("*" not in text or _alias_nodes_within_bound(node)):
                data = fast.construct_document(node)
                found: dict[Path_, int] = {}
                _index_lines(node, (), found)
                return YamlDoc(file, data, found)
        except Exception:  # read again below: the pure parser decides and words the message
            pass
        finally:
            fast.dispose()
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters right here
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        return ConfigIssue(file, line, "", f"invalid YAML: character #x{e.character:04x} is not allowed",
                           "delete the invisible control character on this line")
    try:
        node = loader.get_single_node()
        if node is None:
            return ConfigIssue(file, None, "", "the file is empty", "add the resource's fields, or delete the file")
        data = loader.construct_document(node)
        lines: dict[Path_, int] = {}
        _index_lines(node, (), lines)
    except _AliasBomb as e:
        where = e.problem_mark.line + 1 if e.problem_mark else None
        return ConfigIssue(file, where, "", f"invalid YAML: {e.problem}", e.hint)
    except RecursionError:  # Python's stack, not the file's size: a few hundred levels of nesting
        return ConfigIssue(file, None, "", "invalid YAML: the file nests too deeply to be read",
                           "flatten it: no real plan or setting nests more than a few levels")
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = (e.problem or str(e)).strip()
        hint = ""
        if "\\t" in problem or "tab" in problem.lower():
            problem, hint = "a tab character is used for indentation", "indent with spaces only"
        elif "mapping values are not allowed" in problem or (e.context and "block" in e.context):
            hint = "check the indentation of this line against the lines above, or quote a value containing ': '"
        elif e.context_mark is not None and e.context and ("flow" in e.context):
            opened = e.context_mark.line + 1
            hint = f"the bracket opened on line {opened} is not closed"
        return ConfigIssue(file, line, "", f"invalid YAML: {problem}", hint)
    except yaml.YAMLError as e:
        return ConfigIssue(file, None, "", f"invalid YAML: {e}")
    except ValueError as e:  # an explicit tag on a value that does not fit it, e.g. `!!int x`
        return ConfigIssue(file, None, "", f"invalid YAML: {e}", "remove the !!tag or fix the value")
    finally:
        loader.dispose()
    return YamlDoc(file, data, lines)
