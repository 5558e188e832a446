"""Run the built image's ENTRYPOINT as a runner starts a Docker action, and check what it leaves.

Called by ``.ci/image`` with the container's root already mounted (``podman mount``), /proc and
/dev mounted in it, and a host directory bind-mounted at ``<root>/github``. This script lays out
what the runner would put there (a checkout owned by the runner's user, the event, the file
commands), starts the local fake GitHub on the host (the chroot shares the host's network, so
http://127.0.0.1:PORT works), runs the image's entrypoint in a chroot, and checks: the exit code,
the comment, the check run, the outputs file, and that every file the action wrote into the
workspace can be read by the runner's (non-root) user, as later steps of the job must.

Exit: 0 every check passed, 1 a check failed (each is printed), 3 the run could not be set up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# The end-to-end test's repository (a head commit that breaks one model's export), its event
# and the runner's output parser: one copy of each, shared with tests/end_to_end.
from tests.end_to_end.test_entrypoint import ACTION_INPUTS, REPO, make_checkout, pr_payload  # noqa: E402
from tests.fakegithub import FakeGitHub, events  # noqa: E402
from tests.runner_files import parse_outputs  # noqa: E402

RUNNER_UID = RUNNER_GID = 1001  # the `runner` user of GitHub-hosted runners owns the checkout
CONTAINER_GITHUB = "/github"  # where the runner mounts its directories in a Docker action
EXPECTED_OUTPUTS = {"verdict", "regressions", "fixes", "report-path", "comment-url"}
COMMENT_MARKER = "<!-- exportwatch:comment -->"


def image_config(image: str) -> dict:
    """The image's Entrypoint, Env and WorkingDir, as the Dockerfile left them."""
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Config}}", image],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def files_under(folder: Path) -> dict[Path, int]:
    """Every file and directory below ``folder`` (``.git`` included) → its mtime in ns."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        found[path] = path.lstat().st_mtime_ns
    return found


def chown_tree(folder: Path, uid: int, gid: int) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, gid)


def readable_by_runner(path: Path) -> bool:
    """Whether the runner's user can read ``path`` (a real read, not a look at the mode bits)."""
    done = subprocess.run(
        ["cat", str(path)], user=RUNNER_UID, group=RUNNER_GID, extra_groups=[],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return done.returncode == 0


def runner_env(config: dict, *, fake: FakeGitHub, payload_name: str, sha: str) -> dict[str, str]:
    """The image's environment plus what the runner passes to a Docker action (paths in the container)."""
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env |= {
        "HOME": "/github/home",
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": f"{CONTAINER_GITHUB}/workflow/{payload_name}",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": sha,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": fake.server_url,
        "GITHUB_RUN_ID": "777",
        "GITHUB_OUTPUT": f"{CONTAINER_GITHUB}/file_commands/set_output",
        "GITHUB_STEP_SUMMARY": f"{CONTAINER_GITHUB}/file_commands/step_summary",
        "GITHUB_WORKSPACE": f"{CONTAINER_GITHUB}/workspace",
        "RUNNER_TEMP": f"{CONTAINER_GITHUB}/runner_temp",
    }
    for name, spec in ACTION_INPUTS.items():  # the runner passes every input, defaults included
        value = str(spec.get("default", ""))
        env[f"INPUT_{name.upper()}"] = fake.token if value == "${{ github.token }}" else value
    env["INPUT_WORKERS"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="the built image (for its entrypoint and env)")
    parser.add_argument("--root", type=Path, required=True, help="the container's mounted root")
    parser.add_argument("--github", type=Path, required=True, help="host directory mounted at <root>/github")
    args = parser.parse_args(argv)

    chroot = shutil.which("chroot")
    if chroot is None or not (args.root / "usr/local/bin/exportwatch-entrypoint").exists():
        print(f"::error::{args.root}: no chroot on PATH, or no entrypoint in that root", file=sys.stderr)
        return 3
    config = image_config(args.image)
    os.umask(0o022)  # Docker's default for a container's processes, whatever this shell's is
    github = args.github
    for sub in ("file_commands", "workflow", "home", "runner_temp"):
        (github / sub).mkdir(parents=True, exist_ok=True)
    checkout = make_checkout(github / "workspace")
    chown_tree(github / "workspace", RUNNER_UID, RUNNER_GID)
    before = files_under(checkout.path)
    event = events.write(github / "workflow", pr_payload(checkout))

    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    with FakeGitHub() as fake:
        fake.add_pull(REPO, 7, head_sha=checkout.head, base_sha=checkout.base)
        env = runner_env(config, fake=fake, payload_name=event.name, sha=checkout.head)
        # `docker run --workdir /github/workspace IMAGE` ≈ chroot ROOT env -C WORKDIR ENTRYPOINT
        workdir = env["GITHUB_WORKSPACE"]
        command = [chroot, str(args.root), "/usr/bin/env", "-C", workdir, *config["Entrypoint"]]
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - started
        print(done.stdout + done.stderr)
        print(f"== the entrypoint ran {seconds:.1f} s, exit {done.returncode}")

        outputs_file = github / "file_commands" / "set_output"
        outputs = parse_outputs(outputs_file.read_text()) if outputs_file.exists() else {}
        check(done.returncode == 1, f"exit code 1 (the gate fails on the regression): {done.returncode}")
        check(
            set(outputs) >= EXPECTED_OUTPUTS,
            f"outputs file has {sorted(EXPECTED_OUTPUTS)}: {sorted(outputs)}",
        )
        check(
            (outputs.get("verdict"), outputs.get("regressions")) == ("failed", "1"),
            f"verdict failed, 1 regression: {outputs.get('verdict')}, {outputs.get('regressions')}",
        )
        comments = fake.comments(REPO, 7)
        check(
            len(comments) == 1 and COMMENT_MARKER in comments[0]["body"] and "gated" in comments[0]["body"],
            f"one PR comment with the marker naming `gated`: {len(comments)} comment(s)",
        )
        if comments:
            check(
                outputs.get("comment-url", "").endswith(f"#issuecomment-{comments[0]['id']}"),
                f"comment-url points at it: {outputs.get('comment-url')!r}",
            )
        runs = fake.check_runs(REPO)
        found = [(r["head_sha"], r["conclusion"]) for r in runs]
        check(found == [(checkout.head, "failure")], f"one check run on the head, failed: {found}")
        check(fake.violations == [], f"every request matched GitHub's API description: {fake.violations}")
        seen = checkout.path / "env-seen-by-user-code.txt"
        check(seen.exists() and fake.token not in seen.read_text(), "the token never reached the user's code")
        check(fake.token not in done.stdout + done.stderr, "the token is not in the log")

    written = sorted(p for p, mtime in files_under(checkout.path).items() if before.get(p) != mtime)
    reports = [checkout.path / "exportwatch-report.json", checkout.path / "exportwatch-report.base.json"]
    check(all(p in written for p in reports), "both reports were written into the workspace")
    for path in written:
        if path.is_relative_to(checkout.path / ".git"):
            continue  # git's own bookkeeping (the base worktree, removed again)
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o755 if path.is_dir() else 0o644
        relative = path.relative_to(checkout.path)
        check(mode == want, f"{relative}: mode {mode:04o} (want {want:04o})")
        if path.is_file():
            check(readable_by_runner(path), f"{relative}: readable by uid {RUNNER_UID}")
    git = ["git", "-c", "safe.directory=*", "worktree", "list"]
    worktrees = subprocess.run(git, cwd=checkout.path, capture_output=True, text=True).stdout.splitlines()
    check(len(worktrees) == 1, f"the base worktree is removed: {worktrees}")

    if failures:
        print(f"::error::.ci/image-check.py: {len(failures)} check(s) failed: {'; '.join(failures)}")
        return 1
    print("== the image works: comment, check run, outputs, files readable by the runner's user")
    return 0


if __name__ == "__main__":
    sys.exit(main())
