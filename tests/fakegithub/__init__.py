"""A local GitHub-compatible REST server for tests, validated against GitHub's OpenAPI description."""

from __future__ import annotations

from tests.fakegithub.server import ACTIONS_TOKEN, APP_TOKEN, DEFAULT_TOKEN, FakeGitHub, RecordedRequest

__all__ = ["ACTIONS_TOKEN", "APP_TOKEN", "DEFAULT_TOKEN", "FakeGitHub", "RecordedRequest"]
