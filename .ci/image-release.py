"""The release workflow's logic (config/workflows/exportwatch-release.yml), kept here so a test runs it.

A release is a version tag ``vX.Y.Z`` pushed on main. The workflow builds and pushes the image,
then makes a release commit whose ``action.yml`` runs that prebuilt image instead of building
the Dockerfile, and moves ``vX.Y.Z`` and the major tag (``v0``) to it. ``main`` keeps
``image: Dockerfile``, so ``@main`` always builds what it says.

    tags --ref vX.Y.Z [--pyproject F]  check the tag against pyproject's version; print
                                       version=X.Y.Z and major=vX (GITHUB_OUTPUT lines)
    pin --action F --image REF         rewrite action.yml's ``image: Dockerfile`` to
                                       ``image: docker://REF`` (REF: registry/name:vX.Y.Z@sha256:…)

Standard library only: the runner's python3 runs it before anything is installed.
Exit: 0 done, 2 a tag, file or reference that is not what a release needs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TAG = re.compile(r"v(?P<version>(?P<major>0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*))")
# A pushed image: lower-case repository path, the version tag, and the digest that pins it.
REFERENCE = re.compile(r"[a-z0-9.-]+(?::\d+)?(?:/[a-z0-9._-]+)+:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}")
# The only line the rewrite touches: `runs:`'s `image: Dockerfile` (indented, maybe quoted).
BUILD_LINE = re.compile(r"^(?P<indent>[ \t]+)image:[ \t]*['\"]?Dockerfile['\"]?[ \t]*$", re.MULTILINE)
# pyproject.toml's [project] version line (a regex, not tomllib: python3 >= 3.10 runs this).
VERSION_LINE = re.compile(
    r"^\[project\]$(?:\n(?!\[).*)*?\nversion\s*=\s*\"(?P<version>[^\"]+)\"", re.MULTILINE
)


class ReleaseError(Exception):
    """A release input that is not what a release needs; the message names the file or value."""


def tags(ref: str, pyproject: Path) -> dict[str, str]:
    """Version and major tag of a release tag, which must match the package's version."""
    match = TAG.fullmatch(ref.removeprefix("refs/tags/"))
    if match is None:
        raise ReleaseError(f"tag {ref!r} is not a release tag vX.Y.Z")
    try:
        found = VERSION_LINE.search(pyproject.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReleaseError(f"{pyproject}: cannot read ({exc.strerror})") from exc
    if found is None:
        raise ReleaseError(f'{pyproject}: no version = "…" in [project]')
    declared = found["version"]
    if declared != match["version"]:
        raise ReleaseError(f"{pyproject}: version {declared} does not match tag {ref}")
    return {"version": match["version"], "major": f"v{match['major']}"}


def pin(action_text: str, reference: str, *, name: str = "action.yml") -> str:
    """``action_text`` with its one ``image: Dockerfile`` line pointing at the pushed image."""
    if REFERENCE.fullmatch(reference) is None:
        raise ReleaseError(f"image {reference!r} is not registry/name:vX.Y.Z@sha256:<64 hex digits>")
    lines = BUILD_LINE.findall(action_text)
    if "using: docker" not in action_text or len(lines) != 1:
        found = len(lines)
        raise ReleaseError(f"{name}: want exactly one `image: Dockerfile` in a docker action, found {found}")
    return BUILD_LINE.sub(lambda m: f"{m['indent']}image: docker://{reference}", action_text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tag = commands.add_parser("tags", help="check a release tag; print version= and major=")
    tag.add_argument("--ref", required=True, help="the tag (GITHUB_REF_NAME or refs/tags/…)")
    tag.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    rewrite = commands.add_parser("pin", help="point action.yml at the pushed image")
    rewrite.add_argument("--action", type=Path, required=True)
    rewrite.add_argument("--image", required=True, help="registry/name:vX.Y.Z@sha256:…")
    args = parser.parse_args(argv)
    try:
        if args.command == "tags":
            for key, value in tags(args.ref, args.pyproject).items():
                print(f"{key}={value}")
        else:
            try:
                text = args.action.read_text(encoding="utf-8")
            except OSError as exc:
                raise ReleaseError(f"{args.action}: cannot read ({exc.strerror})") from exc
            args.action.write_text(pin(text, args.image, name=str(args.action)), encoding="utf-8")
    except ReleaseError as exc:
        print(f"::error::image-release: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
