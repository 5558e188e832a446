#!/bin/bash
# The action's entrypoint, for the Docker image and the composite variant alike. Thin on
# purpose: the orchestration lives in exportwatch/action.py (tested without Docker by running
# this very script with the runner's environment).
#
# bash, not sh: dash (Debian's /bin/sh) drops variables whose names are not shell identifiers
# from the environment it passes on, and the runner names inputs INPUT_GITHUB-TOKEN,
# INPUT_FAIL-ON, ... with hyphens.
set -euo pipefail
exec "${EXPORTWATCH_PYTHON:-python}" -m exportwatch.action "$@"
