"""Check requests against the vendored subset of GitHub's OpenAPI description.

A request passes when its method and path match an operation, its path and query parameters
are ones the operation declares (with values of the declared type), and its JSON body validates
against the operation's ``requestBody`` schema.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

SUBSET = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "vendor"
    / "octokit-openapi"
    / "api.github.com.subset.json"
)
#: The operations the publish half reads back after an ambiguous write (``vendor.RECHECK_OPERATIONS``).
PUBLISH_SUBSET = SUBSET.with_name("api.github.com.publish-subset.json")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    regex: re.Pattern[str]
    literal_segments: int
    spec: dict[str, Any]

    def parameters(self, where: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.spec.get("parameters", []) if p.get("in") == where}

    def example(self) -> Any:
        for response in self.spec.get("responses", {}).values():
            for value in response.get("examples", {}).values():
                return copy.deepcopy(value)
        raise KeyError(f"{self.operation_id} has no vendored example")


def _openapi30_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 schemas are JSON Schema plus ``nullable``; turn that into a type union."""
    if isinstance(node, dict):
        out = {k: _openapi30_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            elif "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_openapi30_to_jsonschema(v) for v in node]
    return node


class OpenAPISubset:
    def __init__(self, path: Path = SUBSET, *extra: Path) -> None:
        self.document = json.loads(path.read_text(encoding="utf-8"))
        for more in extra or ((PUBLISH_SUBSET,) if path == SUBSET else ()):
            document = json.loads(more.read_text(encoding="utf-8"))
            for template, methods in document["paths"].items():
                self.document["paths"].setdefault(template, {}).update(methods)
            schemas = self.document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(document.get("components", {}).get("schemas", {}))
        self.operations: list[Operation] = []
        for template, methods in self.document["paths"].items():
            pattern = "/".join(
                f"(?P<{seg[1:-1].replace('-', '_')}>[^/]+)" if seg.startswith("{") else re.escape(seg)
                for seg in template.split("/")
            )
            literal = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
            for method, spec in methods.items():
                self.operations.append(
                    Operation(
                        method=method.upper(),
                        template=template,
                        operation_id=spec["operationId"],
                        regex=re.compile(f"^{pattern}$"),
                        literal_segments=literal,
                        spec=spec,
                    )
                )
        self._components = _openapi30_to_jsonschema(self.document.get("components", {}))

    def find(self, method: str, path: str) -> Operation | None:
        matches = [op for op in self.operations if op.method == method and op.regex.match(path)]
        return max(matches, key=lambda op: op.literal_segments, default=None)

    def operation(self, operation_id: str) -> Operation:
        return next(op for op in self.operations if op.operation_id == operation_id)

    def check(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, content_type: str
    ) -> tuple[Operation | None, list[str]]:
        """The matching operation and a list of problems (empty when the request is valid)."""
        op = self.find(method, path)
        if op is None:
            return None, [f"{method} {path}: no such operation in GitHub's OpenAPI description (subset)"]
        problems: list[str] = []
        where = f"{method} {op.template} ({op.operation_id})"
        match = op.regex.match(path)
        assert match is not None
        for name, param in op.parameters("path").items():
            value = match.group(name.replace("-", "_"))
            problems += [f"{where}: path {name}={value!r}: {p}" for p in _check_value(value, param)]
        declared = op.parameters("query")
        for name, values in query.items():
            if name not in declared:
                problems.append(f"{where}: undeclared query parameter {name!r}")
                continue
            for value in values:
                problems += [
                    f"{where}: query {name}={value!r}: {p}" for p in _check_value(value, declared[name])
                ]
        for name, param in declared.items():
            if param.get("required") and name not in query:
                problems.append(f"{where}: missing required query parameter {name!r}")
        request_body = op.spec.get("requestBody")
        if request_body is None:
            if body.strip():
                problems.append(f"{where}: takes no request body")
            return op, problems
        if not body.strip():
            if request_body.get("required"):
                problems.append(f"{where}: request body is required")
            return op, problems
        if "json" not in content_type:
            problems.append(f"{where}: Content-Type {content_type!r} is not JSON")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return op, [*problems, f"{where}: body is not JSON: {exc}"]
        schema = _openapi30_to_jsonschema(request_body["content"]["application/json"]["schema"])
        schema = {"allOf": [schema], "components": self._components}
        validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
        for error in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path)):
            location = "/".join(str(p) for p in error.absolute_path) or "(body)"
            problems.append(f"{where}: body {location}: {error.message[:300]}")
        return op, problems


def _check_value(raw: str, param: dict[str, Any]) -> list[str]:
    schema = _openapi30_to_jsonschema(param.get("schema", {}))
    kind = schema.get("type")
    value: Any = raw
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", raw):
            return ["not an integer"]
        value = int(raw)
    elif kind == "boolean":
        if raw not in ("true", "false"):
            return ["not a boolean"]
        value = raw == "true"
    validator = jsonschema.Draft7Validator(schema)
    return [e.message for e in validator.iter_errors(value)]
