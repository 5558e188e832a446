"""Regenerate the vendored subsets of GitHub's OpenAPI description and webhook examples.

Tests never run this (they read the vendored files, so they need neither npm nor the network).
Run it by hand after adding an endpoint the bot calls or an event it reads::

    cd /tmp && npm pack @octokit/openapi @octokit/webhooks-examples
    mkdir oa wh && tar xzf octokit-openapi-*.tgz -C oa && tar xzf octokit-webhooks-examples-*.tgz -C wh
    python -m tests.fakegithub.vendor --openapi /tmp/oa/package --webhooks /tmp/wh/package

The OpenAPI subset keeps, per operation the bot uses: ``operationId``, ``parameters`` (``$ref``s
inlined), ``requestBody`` (with every ``#/components/schemas`` it references copied along, so
``$ref``s still resolve inside the subset) and, for a few operations, the first example of its
success response (the fake server builds its responses from them). Response schemas are left
out: they are large and the server only validates what the bot *sends*.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

VENDOR = Path(__file__).resolve().parents[1] / "fixtures" / "vendor"

#: (method, path template) of every REST operation exportwatch calls. Keep in sync with
#: exportwatch/github/ (a test checks that the fake server serves exactly these).
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/user"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("patch", "/repos/{owner}/{repo}/pulls/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts"),
    ("get", "/repos/{owner}/{repo}/actions/artifacts"),
    ("get", "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/{archive_format}"),
)

#: Operations the publish half calls only to re-read after an ambiguous write (a 5xx or a timeout
#: on a POST/PATCH that GitHub may have applied): vendored to a second file beside the first,
#: ``api.github.com.publish-subset.json``, that the fake server loads as well.
RECHECK_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
)

#: Operations whose success-response example the fake server uses as a response template
#: (the first example of each); other operations' examples are left out to keep the file small.
TEMPLATE_OPERATIONS = frozenset(
    {
        "users/get-authenticated",
        "issues/create-comment",
        "pulls/get",
        "pulls/list-files",
        "pulls/create-review",
        "pulls/update-review-comment",
        "checks/create",
        "actions/get-workflow-run",
        "actions/list-workflow-run-artifacts",
    }
)

#: (event name, index in @octokit/webhooks-examples, file name, why).
WEBHOOK_EXAMPLES: tuple[tuple[str, int, str], ...] = (
    ("pull_request", 0, "pull_request.opened.json"),
    ("pull_request", 22, "pull_request.synchronize.json"),
    ("workflow_run", 0, "workflow_run.completed.json"),
    ("workflow_run", 2, "workflow_run.completed.with_pull_requests.json"),
    ("push", 4, "push.branch.json"),
)


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _inline(spec: dict[str, Any], node: Any, kinds: tuple[str, ...]) -> Any:
    """Replace ``$ref``s to the given component kinds by their targets, recursively."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and any(ref.startswith(f"#/components/{k}/") for k in kinds):
            return _inline(spec, _resolve(spec, ref), kinds)
        return {k: _inline(spec, v, kinds) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(spec, v, kinds) for v in node]
    return node


def _schema_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref)
        for value in node.values():
            _schema_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_refs(value, found)


def openapi_subset(
    spec: dict[str, Any], operations: tuple[tuple[str, str], ...] = OPERATIONS
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, template in operations:
        op = spec["paths"][template][method]
        success = next(code for code in op["responses"] if code.startswith(("2", "3")))
        response = _inline(spec, op["responses"][success], ("responses", "examples", "headers"))
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        if op["operationId"] not in TEMPLATE_OPERATIONS:
            examples = {}
        examples = dict(list(examples.items())[:1])
        kept: dict[str, Any] = {
            "operationId": op["operationId"],
            "summary": op.get("summary", ""),
            "parameters": _inline(spec, op.get("parameters", []), ("parameters",)),
            "responses": {
                success: {
                    "description": response.get("description", ""),
                    **({"examples": {k: v.get("value") for k, v in examples.items()}} if examples else {}),
                }
            },
        }
        if "requestBody" in op:
            kept["requestBody"] = op["requestBody"]
        paths.setdefault(template, {})[method] = kept

    schemas: dict[str, Any] = {}
    pending: set[str] = set()
    _schema_refs(paths, pending)
    while pending:
        ref = pending.pop()
        name = ref.rsplit("/", 1)[1]
        if name in schemas:
            continue
        schemas[name] = _resolve(spec, ref)
        _schema_refs(schemas[name], pending)
    return {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"]["title"] + " (subset vendored by exportwatch)",
            "version": spec["info"]["version"],
            "license": spec["info"].get("license"),
            "x-exportwatch-note": "Only the operations exportwatch calls; regenerate with "
            "tests/fakegithub/vendor.py.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openapi", type=Path, help="unpacked @octokit/openapi package directory")
    parser.add_argument("--webhooks", type=Path, help="unpacked @octokit/webhooks-examples directory")
    args = parser.parse_args(argv)
    if args.openapi:
        package = json.loads((args.openapi / "package.json").read_text())
        spec = json.loads((args.openapi / "generated" / "api.github.com.json").read_text())
        out = VENDOR / "octokit-openapi"
        out.mkdir(parents=True, exist_ok=True)
        subset = openapi_subset(spec)
        subset["info"]["x-npm-package"] = f"{package['name']}@{package['version']}"
        (out / "api.github.com.subset.json").write_text(json.dumps(subset, indent=1) + "\n")
        recheck = openapi_subset(spec, RECHECK_OPERATIONS)
        recheck["info"]["x-npm-package"] = subset["info"]["x-npm-package"]
        (out / "api.github.com.publish-subset.json").write_text(json.dumps(recheck, indent=1) + "\n")
        shutil.copy(args.openapi / "LICENSE", out / "LICENSE")
    if args.webhooks:
        package = json.loads((args.webhooks / "package.json").read_text())
        events = json.loads((args.webhooks / "api.github.com" / "index.json").read_text())
        out = VENDOR / "webhooks-examples"
        out.mkdir(parents=True, exist_ok=True)
        by_name = {e["name"]: e for e in events}
        for name, index, filename in WEBHOOK_EXAMPLES:
            payload = by_name[name]["examples"][index]
            (out / filename).write_text(json.dumps(payload, indent=2) + "\n")
        (out / "SOURCE").write_text(
            f"{package['name']}@{package['version']} (license: {package['license']}), "
            "api.github.com/index.json\n"
            + "".join(f"{f}: {n} example #{i}\n" for n, i, f in WEBHOOK_EXAMPLES)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
