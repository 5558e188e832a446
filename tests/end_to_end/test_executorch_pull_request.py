"""Two pull requests against a model that lowers fully to XNNPACK, as ``exportwatch compare``
sees them in a real git repository (issue 27's "done when"): one makes an operator undelegated
(the ``.pte`` still runs, the phone runs part of it on portable kernels), one makes the ``.pte``
fail to load (an operator with no ExecuTorch kernel). Each gets a comment that names the module,
the operator and the coverage change, and fails the gate under the policy that asks for it.
Needs the ``executorch`` extra (CI: ``.ci/executorch-leg``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("executorch", reason="needs the executorch extra: pip install -e '.[executorch]'")

from exportwatch.cli.main import main
from exportwatch.report import Verdict, load_report
from tests.end_to_end.test_cli_compare import commit_main_and_branch, git

pytestmark = pytest.mark.executorch

MANIFEST = """\
version: 1
models:
  - name: vision
    factory: nets/vision.py:make
    inputs: {args: [{shape: [2, 3, 8, 8]}]}
    targets: [executorch]
"""

# A custom operator with an out variant but no ExecuTorch kernel: the .pte builds, loading fails.
TRIPLE_OP = """\
torch.library.define("pr_et::triple", "(Tensor x) -> Tensor")
torch.library.define("pr_et::triple.out", "(Tensor x, *, Tensor(a!) out) -> Tensor(a!)")
torch.library.impl("pr_et::triple", "CompositeExplicitAutograd")(lambda x: x * 3)
torch.library.register_fake("pr_et::triple")(lambda x: torch.empty_like(x))


def _triple_out(x, *, out):
    out.copy_(x * 3)
    return out


torch.library.impl("pr_et::triple.out", "CompositeExplicitAutograd")(_triple_out)
"""


def vision(head_line: str, *, prelude: str = "") -> str:
    return f"""\
import torch
from torch import nn

{prelude}

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4 * 6 * 6, 8)

    def forward(self, features):
        {head_line}


class Vision(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = Head()

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def make():
    return Vision()
"""


BASE = vision("return torch.relu(self.proj(features))")
UNDELEGATED = vision("return torch.cumsum(self.proj(features), dim=1)")
UNLOADABLE = vision("return torch.ops.pr_et.triple(self.proj(features))", prelude=TRIPLE_OP)


def pull_request(tmp_path, change: str, *extra: str) -> tuple[int, str, Path]:
    """``main`` holds BASE; a branch changes the model to ``change``; compare renders markdown."""
    root = tmp_path / "repo"
    commit_main_and_branch(root, {"exportwatch.yml": MANIFEST, "nets/vision.py": BASE}, "a vision model")
    (root / "nets/vision.py").write_text(change)
    git(root, "commit", "-qam", "the pull request's change")
    out = tmp_path / "out"
    code = main(
        ["compare", str(root / "exportwatch.yml"), "--base", "main", "-o", str(out / "head.json"),
         "--workers", "1", "--format", "markdown", "--rendered", str(out / "comment.md"), "-q", *extra]
    )  # fmt: skip
    return code, (out / "comment.md").read_text(), out


def test_executorch_pr__an_undelegated_operator_names_module_op_and_share_and_fails_when_asked(tmp_path):
    code, comment, out = pull_request(tmp_path, UNDELEGATED, "--fail-on-coverage-drop")
    assert code == 1, comment
    head = load_report(out / "head.json").job("vision", "executorch", "cpu")
    base = load_report(out / "head.base.json").job("vision", "executorch", "cpu")
    assert head.verdict == base.verdict == Verdict.OK  # it still lowers and runs: only coverage fell
    drop = head.root.delegation
    assert drop is not None and drop.not_delegated == {"aten.cumsum": 1}
    assert drop.not_delegated_in == {"aten.cumsum": "head"}  # the submodule whose code calls it
    assert base.root.delegation is not None and base.root.delegation.coverage == 1.0
    assert "vision" in comment and "`aten.cumsum` (in `head`) no longer delegated" in comment
    assert "100% → 80%" in comment.replace("&rarr;", "→"), comment
    # The same reports under the default policy: reported, not gated.
    default = ["diff", str(out / "head.base.json"), str(out / "head.json"), "--format", "markdown"]
    assert main([*default, "-o", str(out / "default.md")]) == 0
    assert "aten.cumsum" in (out / "default.md").read_text()


def test_executorch_pr__a_pte_that_no_longer_loads_is_a_regression_naming_the_operator(tmp_path):
    code, comment, out = pull_request(tmp_path, UNLOADABLE)
    assert code == 1, comment
    head = load_report(out / "head.json").job("vision", "executorch", "cpu")
    failing = [s for s in head.submodules if s.origin]
    assert [(s.path, s.stage, s.category) for s in failing] == [
        ("head", "load", "executorch-operator-missing")
    ]
    assert "pr_et::triple.out" in comment
    assert "head" in comment and "nets/vision.py" in comment  # the module and the user's line
