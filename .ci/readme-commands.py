"""Print the README's numbered commands, one a line: what .ci/run's main leg runs, verbatim.

CI runs what a user copies from the README, read from the README itself so the two can never
drift: the first ```bash block of README.md, the line after each ``# 1.``, ``# 2.`` ...
comment. A block of another shape (no numbered comment, a gap in the numbers, a comment with no
command after it) is an error, never zero commands run. Standard library only.

    python .ci/readme-commands.py README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

NUMBERED = re.compile(r"#\s*(\d+)\.")


class ReadmeShapeError(ValueError):
    """The README's first bash block is not the numbered commands CI runs."""


def first_bash_block(text: str) -> list[str]:
    """The lines of the first ```bash fenced block of a Markdown text."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if line.strip() == "```bash":
            for end in range(start + 1, len(lines)):
                if lines[end].strip() == "```":
                    return lines[start + 1 : end]
            raise ReadmeShapeError("the first ```bash block is not closed")
    raise ReadmeShapeError("no ```bash block")


def readme_commands(text: str) -> list[str]:
    """The command after each numbered comment of the first bash block, in order (1, 2, ...)."""
    block = first_bash_block(text)
    commands: list[str] = []
    for i, line in enumerate(block):
        found = NUMBERED.match(line.strip())
        if not found:
            continue
        if int(found.group(1)) != len(commands) + 1:
            raise ReadmeShapeError(
                f"comment {line.strip()!r} is out of order (expected # {len(commands) + 1}.)"
            )
        following = block[i + 1].strip() if i + 1 < len(block) else ""
        if not following or following.startswith("#") or following.endswith("\\"):
            raise ReadmeShapeError(f"comment {line.strip()!r} is not followed by a one-line command")
        commands.append(following)
    if not commands:
        raise ReadmeShapeError("the first ```bash block has no numbered comment (# 1.)")
    return commands


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    try:
        commands = readme_commands(path.read_text(encoding="utf-8"))
    except (OSError, ReadmeShapeError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
