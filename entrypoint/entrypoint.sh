#!/bin/bash
# The action's entrypoint, for the Docker image and the composite variant alike. Thin on
# purpose: the orchestration lives in exportwatch/action/main.py (tested without Docker by running
# this very script with the runner's environment).
#
# bash, not sh: dash (Debian's /bin/sh) drops variables whose names are not shell identifiers
# from the environment it passes on, and the runner names inputs INPUT_GITHUB-TOKEN,
# INPUT_FAIL-ON, ... with hyphens.
#
# The token never stays in an environment: the action runs the user's install commands and
# model code, and a process can read its ancestors' environments (/proc/PID/environ). So the
# token goes to Python through file descriptor 3 (read and closed before any child starts),
# and Python is exec'd with every secret variable removed.
set -euo pipefail
token="$(printenv 'INPUT_GITHUB-TOKEN' || printenv INPUT_GITHUB_TOKEN || true)"
exec 3<<<"${token}"
unset token
exec env -u 'INPUT_GITHUB-TOKEN' -u INPUT_GITHUB_TOKEN -u GITHUB_TOKEN -u GH_TOKEN \
    -u ACTIONS_RUNTIME_TOKEN -u ACTIONS_ID_TOKEN_REQUEST_TOKEN \
    EXPORTWATCH_TOKEN_FD=3 "${EXPORTWATCH_PYTHON:-python}" -m exportwatch.action "$@"
