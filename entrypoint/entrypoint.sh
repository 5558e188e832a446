#!/bin/sh
# The action's entrypoint, for the Docker image and the composite variant alike. Thin on
# purpose: the orchestration lives in exportwatch/action.py (tested without Docker by running
# this very script with the runner's environment).
set -eu
exec "${EXPORTWATCH_PYTHON:-python}" -m exportwatch.action "$@"
