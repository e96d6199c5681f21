"""Parse one YAML file into plain data plus the line of every key, or issues pointing at lines.

Stricter than PyYAML's safe_load where it matters to people editing config by hand: duplicate
keys are errors (PyYAML keeps the last silently), impossible dates such as 2023-02-30 are errors
with their line, and bytes that are not UTF-8 are reported with their line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from minitrade.errors import ConfigIssue

Path_ = tuple[str | int, ...]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reports bad dates at their line."""

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


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_yaml_timestamp)
_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_mapping)


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
    loader = _StrictLoader(text)
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
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    _index_lines(node, (), lines)
    return YamlDoc(file, data, lines)
