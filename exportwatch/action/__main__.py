"""``python -m exportwatch.action``: the entrypoint the action runs."""

import sys

from exportwatch.action.main import main

raise SystemExit(main(sys.argv[1:]))
