"""Reading what the action leaves for the runner, the way the runner reads it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT in heredoc form (``name<<DELIMITER`` … ``DELIMITER``)."""
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines) and lines[i]:
        name, delimiter = lines[i].split("<<", 1)
        j = lines.index(delimiter, i + 1)
        out[name] = "\n".join(lines[i + 1 : j])
        i = j + 1
    return out


# --------------------------------------------------------------------------------------------
# Workflow expressions (``if:``, ``${{ … }}``), evaluated the way the runner does, for the subset
# the example workflows use: literals, context paths, ``!``, ``==``/``!=``, ``&&``/``||`` (which
# return an operand, as GitHub's do), parentheses and the status functions.

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!()])"
    r"|(?P<name>[A-Za-z_][\w.-]*))"
)
STATUS_FUNCTIONS = ("success", "failure", "cancelled", "always")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read the expression at {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def evaluate(expression: str, context: Mapping[str, Any], *, status: str = "success") -> Any:
    """The value of a workflow expression (with or without ``${{ }}``) in ``context``.

    ``status`` is what the job's earlier steps (or needed jobs) concluded: ``success``,
    ``failure`` or ``cancelled``; the status functions read it.
    """
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    tokens, i = _tokens(text), 0

    def peek() -> str | None:
        return tokens[i][1] if i < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal i
        i += 1
        return tokens[i - 1]

    def primary() -> Any:
        kind, value = take()
        if value == "(" and kind == "op":
            inner = either()
            assert take()[1] == ")", f"unbalanced parentheses in {expression!r}"
            return inner
        if value == "!" and kind == "op":
            return not primary()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value)
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if value in STATUS_FUNCTIONS and peek() == "(":
            take(), take()
            return {"success": status == "success", "failure": status == "failure",
                    "cancelled": status == "cancelled", "always": True}[value]  # fmt: skip
        node: Any = context
        for part in value.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def comparison() -> Any:
        left = primary()
        while peek() in ("==", "!="):
            op, right = take()[1], primary()
            strings = isinstance(left, str) and isinstance(right, str)
            same = left.lower() == right.lower() if strings else left == right  # GitHub ignores case
            left = same if op == "==" else not same
        return left

    def both() -> Any:
        left = comparison()
        while peek() == "&&":
            take()
            right = comparison()
            left = right if left else left  # GitHub's && returns an operand
        return left

    def either() -> Any:
        left = both()
        while peek() == "||":
            take()
            right = both()
            left = left if left else right
        return left

    value = either()
    if i != len(tokens):
        raise ValueError(f"cannot read the expression {expression!r}")
    return value


def job_runs(condition: str | None, context: Mapping[str, Any], *, status: str = "success") -> bool:
    """A job's or step's ``if:``: without a status function it means ``success() && (…)``."""
    if condition is None:
        return status == "success"
    uses_status = any(re.search(rf"\b{name}\s*\(", condition) for name in STATUS_FUNCTIONS)
    value = bool(evaluate(condition, context, status=status))
    return value if uses_status else value and status == "success"
