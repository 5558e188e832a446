"""The Dockerfile builds what a runner needs by default, and `.ci/image` only changes where it looks.

A runner builds ``image: Dockerfile`` with no build arguments, so the defaults are the product;
``.ci/image`` builds the same file here with arguments (a local base, local wheels), and an
argument the Dockerfile does not declare would be ignored without a word: these tests keep the
two in step.
"""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
CI_IMAGE = REPO_ROOT / ".ci" / "image"


def declared_args() -> dict[str, str]:
    """ARG name → default, for every ARG in the Dockerfile."""
    found = re.findall(r"^ARG (\w+)(?:=(.*))?$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    return {name: default for name, default in found}


def test_image_dockerfile__defaults_are_the_slim_python_base_and_pytorchs_cpu_index():
    text = DOCKERFILE.read_text()
    args = declared_args()
    assert args["BASE_IMAGE"] == "python:3.11-slim"
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["PIP_INDEX_URL"] == "https://pypi.org/simple"
    assert args["PIP_FIND_LINKS"] == args["PIP_EXTRA_INDEX_URL"] == ""  # empty: pip adds nothing
    # the base argument comes before FROM (the only place FROM can read it), and FROM uses it
    assert text.index("ARG BASE_IMAGE=") < text.index("\nFROM ${BASE_IMAGE}\n")
    assert re.search(r'^RUN pip install --index-url "\$\{TORCH_INDEX_URL\}" torch==2\.13\.0$', text, re.M)


def test_image_dockerfile__build_settings_stay_out_of_the_images_environment():
    """ARG values are RUN-time only; an ENV naming one would carry a build machine's paths."""
    env_block = "\n".join(re.findall(r"^ENV (?:.*\\\n)*.*$", DOCKERFILE.read_text(), flags=re.MULTILINE))
    for name in declared_args():
        assert name not in env_block, name


def test_image_dockerfile__every_build_argument_ci_image_passes_is_declared():
    passed = set(re.findall(r'--build-arg "(\w+)=', CI_IMAGE.read_text()))
    assert passed >= {"BASE_IMAGE", "TORCH_INDEX_URL", "PIP_FIND_LINKS"}
    assert passed <= set(declared_args()), passed - set(declared_args())


def test_image_dockerfile__ci_image_is_an_executable_bash_script_that_parses():
    assert CI_IMAGE.stat().st_mode & 0o111 and os.access(CI_IMAGE, os.X_OK)
    text = CI_IMAGE.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    done = subprocess.run(["bash", "-n", str(CI_IMAGE)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
