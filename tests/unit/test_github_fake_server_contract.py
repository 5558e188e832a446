"""The fake GitHub serves exactly the vendored OpenAPI operations, and the bot calls only those."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.fakegithub.openapi import SUBSET, OpenAPISubset
from tests.fakegithub.server import _Handler
from tests.fakegithub.vendor import OPERATIONS

VENDOR = REPO_ROOT / "tests" / "fixtures" / "vendor"


def test_fake_server__vendored_subset_holds_exactly_the_listed_operations():
    document = json.loads(SUBSET.read_text())
    vendored = {(m, p) for p, methods in document["paths"].items() for m in methods}
    assert vendored == set(OPERATIONS)
    assert document["info"]["x-npm-package"].startswith("@octokit/openapi@")


def test_fake_server__has_a_handler_for_every_vendored_operation():
    for op in OpenAPISubset().operations:
        if op.operation_id == "users/get-authenticated":
            continue  # answered before routing
        name = "_op_" + op.operation_id.replace("/", "_").replace("-", "_")
        assert hasattr(_Handler, name), f"no handler for {op.operation_id}"


def test_fake_server__vendored_files_carry_their_licences():
    for folder in ("octokit-openapi", "webhooks-examples"):
        assert "MIT License" in (VENDOR / folder / "LICENSE").read_text()


def test_fake_server__every_endpoint_the_github_layer_names_is_vendored():
    """The ``:calls:`` the code documents (``GET /repos/...``) are all in the subset."""
    subset = OpenAPISubset()
    sources = sorted((REPO_ROOT / "exportwatch" / "github").glob("*.py"))
    named = set()
    for source in sources:
        for method, path in re.findall(r"``(GET|POST|PATCH) (/[^`?]+)", Path(source).read_text()):
            named.add((method, re.sub(r"\{[^}]+\}", "x", path).replace("OWNER:BRANCH", "x")))
    assert len(named) >= 10, f"the github layer documents the endpoints it calls: {sorted(named)}"
    for method, path in sorted(named):
        concrete = re.sub(r"/x(?=/|$)", "/1", path)
        assert subset.find(method, concrete) is not None, f"{method} {path} is not vendored"
