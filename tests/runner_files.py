"""Reading what the action leaves for the runner, the way the runner reads it."""

from __future__ import annotations


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT in heredoc form (``name<<DELIMITER`` … ``DELIMITER``)."""
    out, lines, i = {}, text.split("\n"), 0
    while i < len(lines) and lines[i]:
        name, delimiter = lines[i].split("<<", 1)
        j = lines.index(delimiter, i + 1)
        out[name] = "\n".join(lines[i + 1 : j])
        i = j + 1
    return out
