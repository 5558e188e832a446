"""YAML → plain values that remember where each one was written (composed, not loaded), with
limits on nesting and alias expansion."""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from exportwatch.manifest.specs import PATH_KEY_RE, ConfigError, Location

# --- YAML → plain values, remembering where each one was written -------------------------------

FieldPath = tuple[str | int, ...]


class ManifestYamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.2 does; PyYAML's 1.1 rules make
    it a string, which would turn ``rtol: 1e-4`` into a confusing type error)."""


ManifestYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


#: Values a manifest may expand to once its aliases are followed. A real manifest has hundreds;
#: nine nested aliases of nine items each (436 bytes, an "alias bomb") would expand to 387 million.
MAX_EXPANDED_VALUES = 100_000
#: Nesting depth of lists and mappings (PyYAML composes recursively; Python's stack is ~1,000).
MAX_NESTING = 100


def compose(text: str, *, file: str) -> yaml.Node:
    depth = _nesting_depth(text)
    if depth > MAX_NESTING:
        raise ConfigError(f"YAML nested {depth} levels deep (at most {MAX_NESTING} are allowed)", file=file)
    try:
        node = yaml.compose(text, Loader=ManifestYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += (
                f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
            )
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise ConfigError(message, file=file, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None:
        raise ConfigError(
            "manifest is empty: expected 'version: 1' and 'models'", file=file, line=1, column=1
        )
    expanded = _expanded_size(node)
    if expanded > MAX_EXPANDED_VALUES:
        raise ConfigError(
            f"YAML aliases expand to more than {MAX_EXPANDED_VALUES:,} values (an alias bomb?): "
            "write the repeated values out, or use fewer nested aliases",
            file=file,
        )
    return node


def _nesting_depth(text: str) -> int:
    """The deepest flow (``[``/``{``) nesting, an upper bound checked before PyYAML recurses.

    Brackets inside quoted scalars count too: over-counting refuses only absurd manifests."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    # Block-style nesting shows as indentation: two columns per level is the tightest style.
    indents = (len(line) - len(line.lstrip(" ")) for line in text.splitlines())
    return max(deepest, max(indents, default=0) // 2)


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes reading ``root`` visits, aliases followed, counted without expanding them
    (a node's size is memoised: an alias costs its target's size). Stops counting past the cap;
    a recursive alias is left for the reader, which names it."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in on_path or isinstance(node, yaml.ScalarNode):
            return 1
        on_path.add(id(node))
        total = 1
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_VALUES:
                break
        on_path.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def format_path(path: FieldPath) -> str:
    """``("models", 1, "inputs", "args", 0)`` → ``models[1].inputs.args[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and PATH_KEY_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


class Reader:
    """Turns composed YAML nodes into plain values and records each value's and key's mark."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.value_marks: dict[FieldPath, tuple[int, int]] = {}
        self.key_marks: dict[FieldPath, tuple[int, int]] = {}
        self._constructor = ManifestYamlLoader("")

    def error(self, path: FieldPath, message: str, *, at_key: bool = False) -> ConfigError:
        mark = self.key_marks.get(path) if at_key else None
        if mark is None:
            mark = self._nearest_mark(path)
        return ConfigError(
            message,
            file=self.file,
            line=mark[0],
            column=mark[1],
            field_path=format_path(path) or None,
        )

    def location(self, path: FieldPath) -> Location:
        line, column = self._nearest_mark(path)
        return Location(file=self.file, line=line, column=column, field_path=format_path(path))

    def _nearest_mark(self, path: FieldPath) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            mark = self.value_marks.get(path[:end])
            if mark is not None:
                return mark
        return (1, 1)

    def read(self, node: yaml.Node, path: FieldPath, stack: frozenset[int] = frozenset()) -> Any:
        if id(node) in stack:
            raise self._node_error(node, path, "recursive YAML alias (a value contains itself)")
        self.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._constructor.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                raise self._node_error(node, path, f"cannot read value: {problem}") from None
        inner = stack | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self._node_error(node, path, _tag_message(node.tag))
            return [self.read(child, (*path, i), inner) for i, child in enumerate(node.value)]
        if node.tag != _MAP_TAG:
            raise self._node_error(node, path, _tag_message(node.tag))
        return self._read_mapping(node, path, inner)

    def _read_mapping(self, node: yaml.MappingNode, path: FieldPath, stack: frozenset[int]) -> dict[Any, Any]:
        own_keys = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
        if len(own_keys) != len(node.value):
            try:
                self._constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            except yaml.YAMLError as exc:
                raise self._node_error(node, path, f"bad merge key: {exc.problem}") from None
        result: dict[Any, Any] = {}
        first_seen: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._node_error(
                    key_node, path, "mapping keys must be plain values, not lists or mappings"
                )
            key = self.read(key_node, (*path, "<key>"), stack)
            self.value_marks.pop((*path, "<key>"), None)
            child = (*path, key)
            is_own = id(key_node) in own_keys
            if is_own:
                if key in first_seen:
                    line, _ = first_seen[key]
                    raise self._node_error(
                        key_node, child, f"duplicate key {key!r} (first set at line {line})"
                    )
                first_seen[key] = _mark(key_node)
                self.key_marks[child] = _mark(key_node)
                self.value_marks[child] = _mark(value_node)
            result[key] = self.read(value_node, child, stack)
        return result

    def _node_error(self, node: yaml.Node, path: FieldPath, message: str) -> ConfigError:
        line, column = _mark(node)
        return ConfigError(
            message, file=self.file, line=line, column=column, field_path=format_path(path) or None
        )


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag_message(tag: str) -> str:
    return f"unsupported YAML tag {tag!r} (write a tuple as {{tuple: [...]}})"


# --- validation: plain values → specs -----------------------------------------------------------


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def or_empty(value: Any, empty: Any) -> Any:
    """``empty`` for null only: ``x or {}`` would also swallow a wrong-typed ``[]`` or ``0``."""
    return empty if value is None else value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (NaN, infinities and ints too large for a float are not numbers
    here: a NaN timeout would never expire)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
