"""Workflow-run artifacts: find one by name, download it size-capped, extract it safely.

An artifact uploaded by a ``pull_request`` run from a fork is written by code nobody reviewed:
every byte is untrusted. The archive size is checked before and during the download, and the
extraction refuses absolute paths, ``..``, links, too many members and too many bytes.
"""

from __future__ import annotations

import logging
import lzma
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from github import GithubException
from requests.adapters import HTTPAdapter

from exportwatch.github.client import ClientSettings, NoArtifact, describe, make_retry
from exportwatch.github.config import Secret

log = logging.getLogger(__name__)

MAX_ARTIFACT_BYTES = 20 * 1024 * 1024  # compressed archive
MAX_EXTRACTED_BYTES = 50 * 1024 * 1024
MAX_MEMBERS = 64
#: A member's name, and each part of it: far beyond any report's, well within what a file system takes.
MAX_NAME_CHARS = 1024
MAX_NAME_PART_BYTES = 255
#: What actions/upload-artifact writes; anything else is refused before it is decompressed.
ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_CHUNK = 64 * 1024
#: What zipfile raises on archives it cannot read: bad headers, broken streams, unknown methods.
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
)


@dataclass(frozen=True, kw_only=True)
class ArtifactRef:
    id: int
    name: str
    size_in_bytes: int
    download_url: str
    head_sha: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """A workflow run as the API reports it (trusted), with the artifact we need."""

    id: int
    head_sha: str
    head_branch: str | None
    head_repository: str | None
    event: str | None
    conclusion: str | None
    artifact: ArtifactRef


def choose_artifact(artifacts: list[ArtifactRef], name: str, *, expired: set[int]) -> ArtifactRef | None:
    """The newest non-expired artifact called ``name`` (names repeat across re-runs). Pure."""
    matches = [a for a in artifacts if a.name == name and a.id not in expired]
    return max(matches, key=lambda a: a.id, default=None)


def find_run_artifact(repo: Any, run_id: int, name: str) -> RunInfo:
    """``GET /repos/{o}/{r}/actions/runs/{id}`` then ``GET /repos/{o}/{r}/actions/runs/{id}/artifacts``."""
    try:
        run = repo.get_workflow_run(run_id)
        listed, expired = [], set()
        for art in run.get_artifacts():
            listed.append(
                ArtifactRef(
                    id=art.id,
                    name=art.name,
                    size_in_bytes=art.size_in_bytes,
                    download_url=art.archive_download_url,
                    head_sha=getattr(art.workflow_run, "head_sha", None) if art.workflow_run else None,
                )
            )
            if art.expired:
                expired.add(art.id)
        found = choose_artifact(listed, name, expired=expired)
        head_repo = run.head_repository.full_name if run.head_repository else None
        info = dict(
            id=run.id,
            head_sha=run.head_sha,
            head_branch=run.head_branch,
            head_repository=head_repo,
            event=run.event,
            conclusion=run.conclusion,
        )
    except GithubException as exc:
        raise NoArtifact(f"cannot list the artifacts of run {run_id}: {describe(exc)}") from exc
    if found is None:
        names = sorted({a.name for a in listed})
        raise NoArtifact(
            f"run {run_id} has no artifact named {name!r}"
            + (f" (it has: {', '.join(names)})" if names else " (it has none; did the sweep job upload it?)")
        )
    return RunInfo(artifact=found, **info)


def download_artifact(
    artifact: ArtifactRef,
    dest: Path,
    *,
    token: Secret,
    settings: ClientSettings | None = None,
    max_bytes: int = MAX_ARTIFACT_BYTES,
) -> Path:
    """``GET /repos/{o}/{r}/actions/artifacts/{id}/zip`` to ``dest`` (a file path), following the
    redirect by hand. The token goes to the API only: the
    redirect target (blob storage with a signed URL) gets no ``Authorization`` header."""
    settings = settings or ClientSettings()
    if artifact.size_in_bytes > max_bytes:
        raise NoArtifact(
            f"artifact {artifact.name!r} is {artifact.size_in_bytes} bytes, over the {max_bytes}-byte limit"
        )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=make_retry(settings)))
    session.mount("https://", HTTPAdapter(max_retries=make_retry(settings)))
    headers = {
        "Authorization": f"Bearer {token.reveal()}",
        "Accept": "application/vnd.github+json",
        "User-Agent": "exportwatch",
    }
    try:
        with session:
            response = session.get(
                artifact.download_url, headers=headers, allow_redirects=False, timeout=settings.timeout
            )
            hops = 0
            while response.status_code in (301, 302, 303, 307, 308) and hops < 5:
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise NoArtifact(f"artifact {artifact.name!r}: redirect without a location")
                hops += 1
                response = session.get(
                    location,
                    headers={"User-Agent": "exportwatch"},
                    allow_redirects=False,
                    stream=True,
                    timeout=settings.timeout,
                )
            if response.status_code != 200:
                raise NoArtifact(
                    f"artifact {artifact.name!r}: download answered {response.status_code}"
                    + (" (expired?)" if response.status_code == 410 else "")
                )
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise NoArtifact(
                    f"artifact {artifact.name!r} is {declared} bytes, over the {max_bytes}-byte limit"
                )
            received = 0
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as handle:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise NoArtifact(f"artifact {artifact.name!r} is over the {max_bytes}-byte limit")
                    handle.write(chunk)
    except requests.RequestException as exc:
        # str(exc) holds the URL (a signed URL at worst), never the Authorization header.
        raise NoArtifact(f"artifact {artifact.name!r}: download failed: {type(exc).__name__}") from exc
    except NoArtifact:
        dest.unlink(missing_ok=True)
        raise
    log.info("downloaded artifact %r (%d bytes)", artifact.name, received)
    return dest


def unsafe_member_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be extracted, or None. Pure."""
    name = info.filename
    path = PurePosixPath(name)
    mode = info.external_attr >> 16
    if "\\" in name or "\x00" in name:
        return "backslash or NUL in the name"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "control character in the name"
    if len(name) > MAX_NAME_CHARS or any(
        len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_PART_BYTES for part in path.parts
    ):
        return f"name longer than {MAX_NAME_CHARS} characters or {MAX_NAME_PART_BYTES} bytes a part"
    if path.parts in ((), (".",)):
        return "no file name"
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if any(part == ".." for part in path.parts):
        return "'..' in the path"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        return "not a regular file"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.compress_type not in ALLOWED_METHODS:
        return f"compression method {info.compress_type} (only stored or deflate)"
    return None


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> list[Path]:
    """Extract regular files only, refusing anything that could escape ``dest`` or blow up.

    Every refusal is a :class:`NoArtifact` of one line (a usage error, exit 2): the archive
    came from an untrusted run, so a broken one is bad input, never an internal error.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except _UNREADABLE as exc:
        raise NoArtifact(f"artifact is not a valid zip: {_one_line(exc)}") from exc
    with zf:
        members = zf.infolist()
        if len(members) > max_members:
            raise NoArtifact(f"artifact has {len(members)} files, over the limit of {max_members}")
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            raise NoArtifact(f"artifact unpacks to {declared} bytes, over the {max_bytes}-byte limit")
        for info in members:  # every name checked before a byte is written
            reason = unsafe_member_reason(info)
            if reason:
                raise NoArtifact(f"artifact member {_shown(info.filename)} refused: {reason}")
        written: list[Path] = []
        total = 0
        for info in members:
            if info.is_dir():
                continue
            target = (root / info.filename).resolve()
            if not target.is_relative_to(root):
                raise NoArtifact(f"artifact member {_shown(info.filename)} refused: escapes the folder")
            total = _extract_member(zf, info, target, total=total, max_bytes=max_bytes)
            written.append(target)
    return written


def _extract_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, total: int, max_bytes: int
) -> int:
    """Copy one member, counting real bytes (the header's ``file_size`` can lie); the new total."""
    name = _shown(info.filename)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # another member is a file where this one's folder goes
        raise NoArtifact(f"artifact member {name} cannot be written: its folder is a file") from exc
    except OSError as exc:
        raise NoArtifact(f"artifact member {name} cannot be written: {exc.strerror}") from exc
    try:
        out = target.open("xb")
    except FileExistsError as exc:
        raise NoArtifact(f"artifact member {name} repeated") from exc
    except OSError as exc:
        raise NoArtifact(f"artifact member {name} cannot be written: {exc.strerror}") from exc
    with out:
        try:
            with zf.open(info) as src:
                while chunk := src.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise NoArtifact(f"artifact unpacks to over {max_bytes} bytes")
                    out.write(chunk)
        except _UNREADABLE as exc:
            raise NoArtifact(f"artifact member {name} cannot be read: {_one_line(exc)}") from exc
    return total


def _shown(name: str) -> str:
    """A member name for a one-line message: quoted, escaped, cut."""
    text = repr(name)
    return text if len(text) <= 120 else f"{text[:100]}…' ({len(name)} characters)"


def _one_line(exc: BaseException) -> str:
    """An exception from zipfile or a decompressor as one short line (its repr names a ZipInfo)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
