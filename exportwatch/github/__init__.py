"""The GitHub edge: Actions environment and inputs, event payloads, PyGithub publishing.

Modules:

* :mod:`~exportwatch.github.config` - ``ActionConfig`` from ``INPUT_*`` and ``GITHUB_*`` variables;
* :mod:`~exportwatch.github.event` - the event payload as a small dataclass;
* :mod:`~exportwatch.github.client` - a PyGithub client with retries, and the domain errors;
* :mod:`~exportwatch.github.publish` - comment upsert, check run, outputs, job summary, PR lookup;
* :mod:`~exportwatch.github.artifacts` - workflow-run artifact download and safe extraction;
* :mod:`~exportwatch.github.workflow_commands` - ``::group::`` / ``::error ...::`` lines.

Nothing here imports torch (the publish half of the fork-safe flow runs without it).
"""

from __future__ import annotations
