"""Parse one YAML file into plain data plus the line of every key, or issues pointing at lines.

Stricter than PyYAML's safe_load where it matters to people editing config by hand: duplicate
keys are errors (PyYAML keeps the last silently), impossible dates such as 2023-02-30 are errors
with their line, and bytes that are not UTF-8 are reported with their line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from minitrade.errors import ConfigIssue

Path_ = tuple[str | int, ...]


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


class _StrictLoader(_StrictRules, yaml.SafeLoader):
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
            if node is not None:
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
    lines: dict[Path_, int] = {}
    _index_lines(node, (), lines)
    return YamlDoc(file, data, lines)
