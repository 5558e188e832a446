"""Artifacts are untrusted: safe extraction refuses traversal, links, bombs; newest match wins."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from exportwatch.github.artifacts import ArtifactRef, choose_artifact, safe_extract, unsafe_member_reason
from exportwatch.github.client import NoArtifact


def make_zip(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def test_safe_extract__writes_the_regular_files(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"report.json": b"{}", "sub/report.base.json": b"[]"})
    files = safe_extract(archive, tmp_path / "out")
    assert sorted(f.relative_to(tmp_path / "out").as_posix() for f in files) == [
        "report.json",
        "sub/report.base.json",
    ]
    assert (tmp_path / "out" / "report.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escape.json", "'..'"),
        ("a/../../escape.json", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/windows/x", "absolute"),
        ("a\\..\\b", "backslash"),
    ],
)
def test_safe_extract__refuses_paths_that_could_leave_the_folder(tmp_path, name, reason):
    archive = make_zip(tmp_path / "a.zip", {name: b"x"})
    with pytest.raises(NoArtifact, match=reason):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.json").exists()


def test_safe_extract__refuses_symbolic_links(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {}, links={"report.json": "/etc/passwd"})
    with pytest.raises(NoArtifact, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract__refuses_too_many_members(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {f"f{i}": b"" for i in range(10)})
    with pytest.raises(NoArtifact, match="10 files"):
        safe_extract(archive, tmp_path / "out", max_members=5)


def test_safe_extract__refuses_an_archive_that_unpacks_too_large(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"bomb.json": b"0" * 100_000})
    with pytest.raises(NoArtifact, match="over the 1000-byte limit"):
        safe_extract(archive, tmp_path / "out", max_bytes=1_000)


def test_safe_extract__refuses_an_archive_whose_declared_size_lies(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"a.json": b"0" * 5_000})
    data = bytearray(archive.read_bytes())
    # Make the central directory lie about the size (4 bytes at offset 24 of its entry).
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(NoArtifact):
        safe_extract(archive, tmp_path / "out", max_bytes=1_000)


def test_safe_extract__refuses_a_repeated_member(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("r.json", b"1")
        zf.writestr("r.json", b"2")
    with pytest.raises(NoArtifact, match="repeated"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract__reports_a_file_that_is_not_a_zip(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(NoArtifact, match="not a valid zip"):
        safe_extract(archive, tmp_path / "out")


def test_unsafe_member_reason__accepts_plain_relative_names():
    assert unsafe_member_reason(zipfile.ZipInfo("reports/report.json")) is None


def artifact(aid: int, name: str = "exportwatch-report") -> ArtifactRef:
    return ArtifactRef(id=aid, name=name, size_in_bytes=10, download_url=f"u/{aid}")


def test_choose_artifact__takes_the_newest_unexpired_artifact_with_the_name():
    listed = [artifact(1), artifact(3), artifact(2), artifact(4, name="other")]
    assert choose_artifact(listed, "exportwatch-report", expired={3}).id == 2
    assert choose_artifact(listed, "missing", expired=set()) is None


# ------------------------------------------------------------------- archives no upload-artifact writes

GOOD = b'{"schema_version": 1}' * 50


def hostile_archive(kind: str) -> bytes:
    """An archive that zipfile cannot (or must not) read, the way a hostile run could upload it."""
    from tests import hostile_inputs as h

    plain = h.zip_bytes({h.REPORT_NAME: GOOD})
    return {
        "encrypted": lambda: h.encrypted(plain),
        "compression method 99": lambda: h.with_method(plain, 99),
        "bzip2": lambda: h.zip_bytes({h.REPORT_NAME: GOOD}, method=zipfile.ZIP_BZIP2),
        "corrupt deflate": lambda: h.corrupt_member_data(plain),
        "corrupt bzip2": lambda: h.corrupt_member_data(
            h.zip_bytes({h.REPORT_NAME: GOOD}, method=zipfile.ZIP_BZIP2), start=8
        ),
        "corrupt lzma": lambda: h.corrupt_member_data(
            h.zip_bytes({h.REPORT_NAME: GOOD}, method=zipfile.ZIP_LZMA), start=2
        ),
        "over-long member name": lambda: h.zip_bytes({"a" * 5_000 + ".json": GOOD}),
        "over-long path": lambda: h.zip_bytes({("d" * 200 + "/") * 30 + "r.json": GOOD}),
        "newline in the name": lambda: h.zip_bytes({"report\n::error::x.json": GOOD}),
        "a file where a folder goes": lambda: h.zip_bytes({"r": GOOD, "r/x.json": GOOD}),
        "a name that is the folder itself": lambda: h.zip_bytes({".": GOOD}),
        "truncated": lambda: plain[: len(plain) // 2],
    }[kind]()


@pytest.mark.parametrize(
    "kind",
    [
        "encrypted",
        "compression method 99",
        "bzip2",
        "corrupt deflate",
        "corrupt bzip2",
        "corrupt lzma",
        "over-long member name",
        "over-long path",
        "newline in the name",
        "a file where a folder goes",
        "a name that is the folder itself",
        "truncated",
    ],
)
def test_safe_extract__refuses_an_archive_it_cannot_read_in_one_line(tmp_path, kind):
    """Each of these once escaped as RuntimeError, NotImplementedError, zlib.error or OSError (exit 3)."""
    archive = tmp_path / "artifact.zip"
    archive.write_bytes(hostile_archive(kind))
    with pytest.raises(NoArtifact) as caught:
        safe_extract(archive, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith("artifact") and "\n" not in message and len(message) < 400, message


def test_safe_extract__names_the_member_it_refuses(tmp_path):
    from tests import hostile_inputs as h

    archive = tmp_path / "artifact.zip"
    archive.write_bytes(h.encrypted(h.zip_bytes({h.REPORT_NAME: GOOD})))
    with pytest.raises(NoArtifact, match=rf"member '{h.REPORT_NAME}'.*encrypted"):
        safe_extract(archive, tmp_path / "out")
    archive.write_bytes(h.with_method(h.zip_bytes({h.REPORT_NAME: GOOD}), 99))
    with pytest.raises(NoArtifact, match=rf"member '{h.REPORT_NAME}'.*compression method 99"):
        safe_extract(archive, tmp_path / "out2")
