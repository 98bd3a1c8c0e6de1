"""Unpacking uploaded archives: real zip and tar files, well-formed and hostile, in tmp_path."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from knnvocab.archives import ArchiveLimits, extract_archive
from knnvocab.errors import InputError

TREE = {
    "top/classes.txt": b"background\ncat\n",
    "top/images/a.png": bytes(range(256)) * 40,
    "top/images/b.png": b"\x89PNG" + bytes(1000),
    "top/labels/a.txt": b"0 0.5 0.5 0.1 0.1\n",
}
TAR_MODES = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}


def make_zip(path: Path, files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def tar_file(name: str, data: bytes = b"", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def tar_special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, b""


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def tree_members(files: dict[str, bytes]) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [tar_file(name, data) for name, data in files.items()]


def refused(source: Path, tmp_path: Path, limits: ArchiveLimits | None = None) -> str:
    """Extract expecting a refusal; check nothing is left behind and return the reason."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    label = f"upload-{source.name}"
    with pytest.raises(InputError) as caught:
        extract_archive(source, out / "dataset", label, limits or ArchiveLimits())
    message = str(caught.value)
    assert message.startswith(f"{label}: ")
    assert "\n" not in message
    assert list(out.iterdir()) == []
    return message.removeprefix(f"{label}: ")


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


# archives that unpack


def test_zip_of_one_folder_returns_that_folder(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "data.zip", TREE)
    root = extract_archive(source, tmp_path / "out" / "dataset")
    assert root == tmp_path / "out" / "dataset" / "top"
    assert read_tree(root.parent) == TREE
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dataset"]


@pytest.mark.parametrize("suffix", list(TAR_MODES))
def test_tar_of_one_folder_returns_that_folder(tmp_path: Path, suffix: str) -> None:
    source = make_tar(tmp_path / f"data.{suffix}", tree_members(TREE), TAR_MODES[suffix])
    root = extract_archive(source, tmp_path / "dataset")
    assert root == tmp_path / "dataset" / "top"
    assert read_tree(root.parent) == TREE


def test_kind_is_read_from_content_not_name(tmp_path: Path) -> None:
    source = make_tar(tmp_path / "upload.zip", tree_members(TREE))
    assert read_tree(extract_archive(source, tmp_path / "a").parent) == TREE
    source = make_zip(tmp_path / "upload.tar.gz", TREE)
    assert read_tree(extract_archive(source, tmp_path / "b").parent) == TREE


def test_two_top_level_entries_return_dest(tmp_path: Path) -> None:
    files = {"images/a.png": b"a", "classes.txt": b"cat\n"}
    dest = tmp_path / "dataset"
    assert extract_archive(make_zip(tmp_path / "d.zip", files), dest) == dest
    assert read_tree(dest) == files


def test_dot_slash_names_and_folder_entries_are_fine(tmp_path: Path) -> None:
    members = [tar_special(".", tarfile.DIRTYPE), tar_special("./top", tarfile.DIRTYPE)]
    members += [tar_file("./top/a.txt", b"a"), tar_special("./top/empty", tarfile.DIRTYPE)]
    root = extract_archive(make_tar(tmp_path / "d.tgz", members), tmp_path / "dataset")
    assert root == tmp_path / "dataset" / "top"
    assert (root / "a.txt").read_bytes() == b"a"
    assert (root / "empty").is_dir()


def test_archive_permissions_are_ignored(tmp_path: Path) -> None:
    members = [tar_file("top/run.sh", b"#!/bin/sh\n", mode=0o4777), tar_file("top/x", b"", 0)]
    members.append((tarfile.TarInfo("top/locked"), b""))
    members[-1][0].type, members[-1][0].mode = tarfile.DIRTYPE, 0o000
    root = extract_archive(make_tar(tmp_path / "d.tar", members, "w"), tmp_path / "dataset")
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "x").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "locked").stat().st_mode) == 0o755
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE(root.parent.stat().st_mode) == 0o755


def test_existing_dest_is_a_programming_error(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        extract_archive(make_zip(tmp_path / "d.zip", TREE), tmp_path / "dataset")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ArchiveLimits(max_ratio=0)


def test_errors_name_the_source_by_default(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "d.zip", {"../evil": b"x"})
    with pytest.raises(InputError, match=r"^d\.zip: member '\.\./evil': "):
        extract_archive(source, tmp_path / "dataset")


# hostile paths


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil", "'..' components are not accepted"),
        ("a/../../evil", "'..' components are not accepted"),
        ("a/../b", "'..' components are not accepted"),
        ("/abs", "absolute paths are not accepted"),
        ("//abs", "absolute paths are not accepted"),
        ("C:/evil", "drive letters are not accepted"),
        ("c:evil", "drive letters are not accepted"),
        ("..\\evil", "backslashes are not accepted in paths"),
        ("a\\..\\..\\evil", "backslashes are not accepted in paths"),
        ("a\nb", "control characters are not accepted in paths"),
        ("a/" + "x" * 256, "a path component is longer than 255 bytes"),
    ],
)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_unsafe_paths_are_refused(tmp_path: Path, kind: str, member: str, reason: str) -> None:
    files = {"ok/a.txt": b"fine", member: b"evil"}
    if kind == "zip":
        source = make_zip(tmp_path / "d.zip", files)
    else:
        source = make_tar(tmp_path / "d.tgz", tree_members(files))
    message = refused(source, tmp_path)
    shown = repr(member if len(member) <= 100 else member[:97] + "...")  # long names are cut
    assert message == f"member {shown}: {reason}"
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "a.txt"])
def test_tar_symlinks_are_refused_wherever_they_point(tmp_path: Path, target: str) -> None:
    members = [tar_file("top/a.txt", b"a"), tar_special("top/link", tarfile.SYMTYPE, target)]
    source = make_tar(tmp_path / "d.tgz", members)
    assert refused(source, tmp_path) == "member 'top/link': links are not accepted"


def test_tar_hardlinks_are_refused(tmp_path: Path) -> None:
    members = [tar_file("top/a.txt", b"a"), tar_special("top/b.txt", tarfile.LNKTYPE, "top/a.txt")]
    source = make_tar(tmp_path / "d.tgz", members)
    assert refused(source, tmp_path) == "member 'top/b.txt': links are not accepted"


@pytest.mark.parametrize("target", ["/etc/passwd", "a.txt"])
def test_zip_symlinks_are_refused(tmp_path: Path, target: str) -> None:
    source = tmp_path / "d.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("top/a.txt", b"a")
        link = zipfile.ZipInfo("top/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, target)
    assert refused(source, tmp_path) == "member 'top/link': links are not accepted"


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_special_members_are_refused(tmp_path: Path, kind: bytes) -> None:
    source = make_tar(tmp_path / "d.tgz", [tar_file("a.txt", b"a"), tar_special("dev", kind)])
    reason = refused(source, tmp_path)
    assert reason.startswith("member 'dev': special members (devices, fifos")


def test_duplicate_paths_are_refused(tmp_path: Path) -> None:
    source = make_tar(tmp_path / "d.tgz", [tar_file("a.txt", b"1"), tar_file("./a.txt", b"2")])
    assert refused(source, tmp_path) == "member './a.txt': another member has the same path"
    source = tmp_path / "d.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"
        make_zip(source, {"a.txt": b"1"})
        with zipfile.ZipFile(source, "a") as archive:
            archive.writestr("a.txt", b"2")
    assert refused(source, tmp_path) == "member 'a.txt': another member has the same path"


def test_a_file_and_a_folder_on_one_path_are_refused(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "a.zip", {"top/a": b"file", "top/a/b.txt": b"under it"})
    assert refused(source, tmp_path) == (
        "member 'top/a/b.txt': a folder on its path is a file in the archive"
    )
    source = make_zip(tmp_path / "b.zip", {"top/a/b.txt": b"under it", "top/a": b"file"})
    assert refused(source, tmp_path) == "member 'top/a': another member has the same path"


# bombs and limits


def test_zip_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    source = tmp_path / "bomb.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("top/a.txt", b"a")
        with archive.open("top/zeros.bin", "w") as member:
            for _ in range(20):
                member.write(bytes(1 << 20))
    reason = refused(source, tmp_path)
    assert reason.startswith("would expand more than 200 times its ")
    assert reason.endswith("bytes (possible archive bomb)")


def test_tar_gz_bomb_is_refused_before_decompressing_it(tmp_path: Path) -> None:
    members = [tar_file("top/a.txt", b"a"), tar_file("top/zeros.bin", bytes(20 << 20))]
    source = make_tar(tmp_path / "bomb.tar.gz", members)
    assert "possible archive bomb" in refused(source, tmp_path)


def test_huge_tar_header_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "header.tgz"
    with tarfile.open(source, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        info, data = tar_file("top/a.txt", b"a")
        info.pax_headers = {"comment": "x" * (3 << 20)}
        archive.addfile(info, io.BytesIO(data))
    assert refused(source, tmp_path) == (
        "tar headers expand far past their declared sizes (possible archive bomb)"
    )


def test_declared_total_over_the_limit_is_refused(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "d.zip", TREE, zipfile.ZIP_STORED)
    reason = refused(source, tmp_path, ArchiveLimits(max_total_bytes=1000))
    assert reason == "files total more than 1,000 bytes unpacked"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_too_many_members_are_refused(tmp_path: Path, kind: str) -> None:
    files = {f"top/{i}.txt": b"x" for i in range(11)}
    if kind == "zip":
        source = make_zip(tmp_path / "d.zip", files)
    else:
        source = make_tar(tmp_path / "d.tgz", tree_members(files))
    assert refused(source, tmp_path, ArchiveLimits(max_members=10)) == "more than 10 members"
    assert extract_archive(source, tmp_path / "ok", limits=ArchiveLimits(max_members=11))


# corrupt, truncated and not archives


@pytest.mark.parametrize("suffix", ["zip", "tar.gz", "tar.bz2", "tar.xz"])
def test_archive_cut_in_half_is_refused(tmp_path: Path, suffix: str) -> None:
    whole = tmp_path / f"whole.{suffix}"
    if suffix == "zip":
        make_zip(whole, TREE)
    else:
        make_tar(whole, tree_members(TREE), TAR_MODES[suffix])
    data = whole.read_bytes()
    source = tmp_path / f"cut.{suffix}"
    source.write_bytes(data[: len(data) // 2])
    assert refused(source, tmp_path).startswith("truncated or corrupt archive (")


@pytest.mark.parametrize("cut", [1024, 1600, 2048])
def test_plain_tar_cut_anywhere_is_refused(tmp_path: Path, cut: int) -> None:
    # two 512-byte members: headers at 0 and 1024, data at 512 and 1536
    members = [tar_file("top/a.bin", bytes(512)), tar_file("top/b.bin", bytes(512))]
    data = make_tar(tmp_path / "whole.tar", members, "w").read_bytes()
    source = tmp_path / "cut.tar"
    source.write_bytes(data[:cut])
    assert refused(source, tmp_path).startswith("truncated or corrupt archive (")


def test_corrupt_member_late_in_a_zip_leaves_nothing_behind(tmp_path: Path) -> None:
    files = {"top/a.txt": b"first file, written before the failure", "top/b.txt": b"B" * 500}
    data = bytearray(make_zip(tmp_path / "whole.zip", files, zipfile.ZIP_STORED).read_bytes())
    data[data.index(b"B" * 500) + 100] ^= 0xFF
    source = tmp_path / "crc.zip"
    source.write_bytes(bytes(data))
    reason = refused(source, tmp_path)
    assert reason.startswith("truncated or corrupt archive (BadZipFile: Bad CRC-32")


def _patch_zip_size(data: bytes, declared: int) -> bytes:
    """Rewrite the one member's uncompressed size in its central directory record."""
    central = data.index(b"PK\x01\x02")
    return data[: central + 24] + declared.to_bytes(4, "little") + data[central + 28 :]


def test_zip_declaring_more_than_it_holds_is_refused(tmp_path: Path) -> None:
    data = make_zip(tmp_path / "whole.zip", {"a.txt": b"x" * 1100}, zipfile.ZIP_STORED)
    source = tmp_path / "lies.zip"
    source.write_bytes(_patch_zip_size(data.read_bytes(), 2000))
    assert refused(source, tmp_path) == (
        "member 'a.txt': holds only 1,100 of the 2,000 bytes its header declares"
    )


def test_zip_declaring_less_than_it_holds_is_refused(tmp_path: Path) -> None:
    data = make_zip(tmp_path / "whole.zip", {"a.txt": b"x" * 1100})
    source = tmp_path / "lies.zip"
    source.write_bytes(_patch_zip_size(data.read_bytes(), 10))
    assert refused(source, tmp_path).startswith("truncated or corrupt archive (")


def test_not_an_archive(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(png)
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n" * 100)
    gz = tmp_path / "notes.txt.gz"
    gz.write_bytes(gzip.compress(text.read_bytes()))
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    for source in (png, text, gz, empty):
        assert refused(source, tmp_path) == "not a zip or tar archive"


def test_archives_without_files_are_refused(tmp_path: Path) -> None:
    assert refused(make_zip(tmp_path / "none.zip", {}), tmp_path) == "archive holds no files"
    folders = make_tar(tmp_path / "dirs.tgz", [tar_special("top", tarfile.DIRTYPE)])
    assert refused(folders, tmp_path) == "archive holds no files"


def test_encrypted_zip_members_are_refused(tmp_path: Path) -> None:
    data = bytearray(make_zip(tmp_path / "whole.zip", {"a.txt": b"secret"}).read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.index(signature) + flags_at] |= 0x1
    source = tmp_path / "locked.zip"
    source.write_bytes(bytes(data))
    assert refused(source, tmp_path) == "member 'a.txt': encrypted members are not accepted"
