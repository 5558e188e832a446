"""CI's main leg runs the README's commands verbatim: .ci/readme-commands.py reads them from
README.md's first bash block (the line after each numbered comment), and .ci/run runs that leg."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def load_script() -> ModuleType:
    """The script as a module (its file name has a dash: not importable by name)."""
    spec = importlib.util.spec_from_file_location("readme_commands", REPO_ROOT / ".ci" / "readme-commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_commands__are_the_lines_after_the_readmes_numbered_comments_in_its_first_bash_block():
    block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    after = {
        line.split(".")[0]: block[i + 1] for i, line in enumerate(block) if line.startswith(("# 1.", "# 2."))
    }
    commands = load_script().readme_commands(README)
    assert commands == [after["# 1"], after["# 2"]]
    assert "exportwatch sweep config/example.exportwatch.yml" in commands[0]  # the example sweep
    assert commands[1].endswith("&& python -m pytest")  # the whole suite, as a user runs it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# nothing\n", "no ```bash block"),
        ("```bash\npip install x\n```\n", "no numbered comment"),
        (
            "```bash\n# 1. Install:\n# 2. Test:\npytest\n```\n",
            "'# 1. Install:' is not followed by a one-line command",
        ),
        ("```bash\n# 2. Test:\npytest\n```\n", "out of order"),
        ("```bash\n# 1. Install:\npip install \\\n  x\n```\n", "not followed by a one-line command"),
    ],
)
def test_readme_commands__a_block_of_another_shape_is_an_error_never_zero_commands(text, message):
    script = load_script()
    with pytest.raises(script.ReadmeShapeError, match=message):
        script.readme_commands(text)


def test_ci_run__its_main_leg_is_the_readme_leg_in_a_fresh_venv_and_no_other_run_of_the_whole_suite():
    run = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    leg = (REPO_ROOT / ".ci" / "readme-leg").read_text(encoding="utf-8")
    assert '\n.ci/readme-leg "$venv"\n' in run
    assert "python .ci/readme-commands.py README.md" in leg
    assert (
        leg.index('rm -rf "$venv"')
        < leg.index('python -m venv "$venv"')
        < leg.index('. "$venv/bin/activate"')
    )
    assert '(eval "$command")' in leg and "EXPORTWATCH_REQUIRE_BROWSER=1" in leg
    # The suite runs once, in the README's command; other legs run chosen parts: the fuzz tier
    # (which a plain run leaves out) in the README's venv, the rest in venvs of their own.
    others = [line.strip() for line in run.splitlines() if line.strip().startswith("python -m pytest")]
    assert others == [
        "python -m pytest -q -p no:cacheprovider -m fuzz",
        "python -m pytest -q -p no:cacheprovider -m zoo",
        "python -m pytest -q -p no:cacheprovider -m aoti",
    ]
