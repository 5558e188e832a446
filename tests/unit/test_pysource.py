"""exportwatch.pysource: parsing never fails because of where it is called from, and what it
cannot read is a ValueError that leaves later parses working."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from exportwatch.pysource import parse_python

#: 300 nested unary minus: plain ast.parse raises RecursionError for it 100 frames below the limit.
NESTED = "x = " + "-" * 300 + "1\n"


def test_parse_python__reads_code_and_refuses_bad_code_as_ast_parse_does() -> None:
    assert [type(n).__name__ for n in parse_python("import os\nx = 1\n").body] == ["Import", "Assign"]
    with pytest.raises(SyntaxError):
        parse_python("def (:\n")
    with pytest.raises((SyntaxError, ValueError)):  # a null byte: which one depends on the release
        parse_python("x = 1\0\n")


def test_parse_python__deep_in_a_python_stack_still_parses() -> None:
    def at_depth(n: int) -> object:
        return parse_python(NESTED) if n == 0 else at_depth(n - 1)

    limit = sys.getrecursionlimit()
    assert at_depth(limit - 100) is not None  # ast.parse here, on this thread, recurses out


def test_parse_python__a_file_too_deep_to_read_is_a_value_error_and_later_parses_still_work() -> None:
    """In a fresh interpreter: plain ast.parse of a too-deep tree on a deep stack breaks every
    later parse on CPython 3.11 (SystemError); parse_python refuses it and the next parse works."""
    script = textwrap.dedent(
        """
        import sys
        from exportwatch.pysource import parse_python
        deep = "x = " + "-" * 50_000 + "1\\n"
        try:
            parse_python(deep)
        except ValueError as exc:
            print("refused:", type(exc.__cause__).__name__ if exc.__cause__ else "ValueError")
        except SyntaxError:
            print("refused: SyntaxError")
        else:
            print("parsed")
        print(type(parse_python("import os\\n")).__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "Module"
