"""The dependency set of a tree, whether it changed, and what a base environment installs (pure)."""

from __future__ import annotations

from exportwatch.baseline.environment import (
    changed_files,
    dependency_files,
    dependency_set,
    install_plan,
    package_changes,
    pyproject_requirements,
)


class Tree:
    """A source tree as test data: repo-relative path -> text."""

    def __init__(self, files: dict[str, str]) -> None:
        self.data = {k: v.encode() for k, v in files.items()}

    def read(self, rel: str) -> bytes | None:
        return self.data.get(rel)

    def is_file(self, rel: str) -> bool:
        return rel in self.data

    def is_dir(self, rel: str) -> bool:
        return any(p.startswith(rel + "/") for p in self.data)

    def files(self) -> list[str]:
        return sorted(self.data)


PYPROJECT = """\
[project]
name = "demo"
dependencies = ["torch>=2.6", "shapelib==1.0"]

[project.optional-dependencies]
hf = ["transformers==4.40"]

[tool.ruff]
line-length = 100
"""


def test_dependency_files__finds_the_conventional_files_at_the_root_only():
    tree = Tree({
        "requirements.txt": "", "requirements-dev.txt": "", "constraints.txt": "", "uv.lock": "",
        "pyproject.toml": "", "docs/requirements.txt": "", "setup.cfg": "", "README.md": "",
    })  # fmt: skip
    assert dependency_files(tree) == [
        "constraints.txt", "pyproject.toml", "requirements-dev.txt", "requirements.txt", "uv.lock",
    ]  # fmt: skip


def test_dependency_files__uses_only_the_named_files_when_some_are_named():
    tree = Tree({"requirements.txt": "", "deps/ci.txt": ""})
    assert dependency_files(tree, ["deps/ci.txt"]) == ["deps/ci.txt"]


def test_changed_files__sees_a_bumped_pin_in_a_requirements_file():
    base = dependency_set(Tree({"requirements.txt": "shapelib==1.0\n"}))
    head = dependency_set(Tree({"requirements.txt": "shapelib==2.0\n"}))
    assert changed_files(head, base) == ("requirements.txt",)
    assert changed_files(base, base) == ()


def test_changed_files__ignores_a_tool_config_edit_in_pyproject_but_not_a_dependency_bump():
    base = dependency_set(Tree({"pyproject.toml": PYPROJECT}))
    tool_edit = dependency_set(
        Tree({"pyproject.toml": PYPROJECT.replace("line-length = 100", "line-length = 88")})
    )
    extra_bump = dependency_set(Tree({"pyproject.toml": PYPROJECT.replace("4.40", "4.41")}))
    assert changed_files(tool_edit, base) == ()
    assert changed_files(extra_bump, base) == ("pyproject.toml",)


def test_changed_files__a_pyproject_without_dependencies_is_not_part_of_the_set():
    base = dependency_set(Tree({}))
    head = dependency_set(Tree({"pyproject.toml": "[tool.ruff]\nline-length = 100\n"}))
    assert head.files == {} and changed_files(head, base) == ()


def test_changed_files__an_invalid_pyproject_is_compared_byte_for_byte():
    base = dependency_set(Tree({"pyproject.toml": "[project\n"}))
    head = dependency_set(Tree({"pyproject.toml": "[project\n# edit\n"}))
    assert pyproject_requirements(b"[project\n") is None
    assert changed_files(head, base) == ("pyproject.toml",)


def test_changed_files__a_lock_file_or_a_named_file_that_appears_counts():
    assert changed_files(dependency_set(Tree({"uv.lock": "a"})), dependency_set(Tree({}))) == ("uv.lock",)
    named = ["deps/ci.txt"]
    head = dependency_set(Tree({"deps/ci.txt": "x==1\n"}), named)
    base = dependency_set(Tree({}), named)
    assert base.files == {"deps/ci.txt": "absent"} and changed_files(head, base) == ("deps/ci.txt",)


def test_install_plan__installs_changed_files_every_constraint_and_only_differing_pyproject_pins():
    base = dependency_set(Tree({
        "requirements.txt": "shapelib==1.0\n", "requirements-dev.txt": "pytest\n",
        "constraints.txt": "numpy<3\n", "pyproject.toml": PYPROJECT,
    }))  # fmt: skip
    head = dependency_set(Tree({
        "requirements.txt": "shapelib==2.0\n", "requirements-dev.txt": "pytest\n",
        "constraints.txt": "numpy<3\n", "pyproject.toml": PYPROJECT.replace("shapelib==1.0", "shapelib==2.0"),
    }))  # fmt: skip
    plan = install_plan(head, base)
    assert plan.requirement_files == ("requirements.txt",)  # the dev file did not change
    assert plan.constraint_files == ("constraints.txt",)
    assert plan.requirements == ("shapelib==1.0",)  # torch and the extra are HEAD's already
    assert plan.unsupported == () and not plan.empty


def test_install_plan__names_a_changed_lock_file_pip_cannot_install_from():
    plan = install_plan(dependency_set(Tree({"uv.lock": "new"})), dependency_set(Tree({"uv.lock": "old"})))
    assert plan.unsupported == ("uv.lock",) and plan.empty


def test_install_plan__everything_installs_every_base_file_even_unchanged():
    same = dependency_set(Tree({"requirements.txt": "shapelib==1.0\n"}))
    assert install_plan(same, same).empty
    assert install_plan(same, same, everything=True).requirement_files == ("requirements.txt",)


def test_package_changes__lists_only_versions_that_differ():
    base = {"shapelib": "1.0", "torch": "2.13.0", "old": "1"}
    head = {"shapelib": "2.0", "torch": "2.13.0"}
    assert package_changes(base, head) == {"old": ("1", None), "shapelib": ("1.0", "2.0")}
