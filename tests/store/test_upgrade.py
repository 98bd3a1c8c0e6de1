"""`knnvocab store upgrade` on a store made by the code before it (one qdrant-edge shard per
domain): the code of commit ``LAYOUT_1`` — taken from this repository's own history — builds
a real history (two ingests, a retire, a restore) and segments every version with
``--exact``; after the upgrade the current code gives byte-identical outputs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from knnvocab.embed.spec import EncoderSpec

pytestmark = pytest.mark.slow

#: the last commit whose embedded store kept one shard per domain
LAYOUT_1 = "f4dff62"
REPO = Path(__file__).resolve().parents[2]
VIDEO = Path("/usr/share/doc/labelme-examples/examples/video_annotation/data_dataset_voc")

#: runs the knnvocab CLI of the folder given first, not the installed (editable) one
OLD_CLI = """
import sys
root = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, root)
import knnvocab
assert knnvocab.__file__.startswith(root), knnvocab.__file__
from knnvocab.cli import main
sys.argv[0] = "knnvocab"
main()
"""


def _old_code(tmp_path: Path) -> Path:
    """The package as it was at ``LAYOUT_1``, extracted from git."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", LAYOUT_1, "knnvocab"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(f"git archive {LAYOUT_1} failed: {archive.stderr.decode()}", pytrace=False)
    root = tmp_path / "old"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root


def _run(args: list[str], env: dict[str, str], old: Path | None = None) -> str:
    prefix = (
        [sys.executable, "-c", OLD_CLI, str(old)] if old else [sys.executable, "-m", "knnvocab"]
    )
    done = subprocess.run([*prefix, *args], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
    return done.stdout


def _segment_every_version(env: dict[str, str], out: Path, old: Path | None) -> None:
    photos = [
        next((VIDEO / "JPEGImages").iterdir()),
        *sorted((VIDEO / "JPEGImages").iterdir())[-1:],
    ]
    for version in (1, 2, 3, 4):
        args = ["segment", "shop", *map(str, photos), "--out", str(out / f"v{version}")]
        _run([*args, "--version", str(version), "--exact", "--rle"], env, old)


def test_a_store_of_one_shard_per_domain_is_upgraded_and_answers_the_same(
    tmp_path: Path, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    old = _old_code(tmp_path)
    home = tmp_path / "home"
    env = {
        **os.environ,
        "KNNVOCAB_HOME": str(home),
        "KNNVOCAB_DATABASE_URL": f"sqlite:///{home / 'catalog.sqlite3'}",
        "KNNVOCAB_USER": "tester",
        "KNNVOCAB_QDRANT_URL": "",
    }
    model = ["--model", tiny_model.model, "--checkpoint", str(tiny_model.checkpoint)]
    _run(["ingest", "shop", str(labelme_voc), "--format", "voc", *model], env, old)
    _run(["ingest", "shop", str(VIDEO), "--format", "voc"], env, old)
    _run(["vocab", "retire", "shop", "person"], env, old)
    _run(["vocab", "restore", "shop", "person"], env, old)
    _segment_every_version(env, tmp_path / "before", old)
    (collection,) = (p for p in (home / "vectors").iterdir() if p.is_dir())
    assert (collection / "shop" / "edge_config.json").is_file()  # the old layout

    refused = subprocess.run(
        [sys.executable, "-m", "knnvocab", "vocab", "retire", "shop", "car"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1 and "run `knnvocab store upgrade`" in refused.stderr
    assert "moved to one shard" in _run(["store", "upgrade"], env)
    assert sorted(p.name for p in collection.iterdir() if p.is_dir()) == ["shard"]
    assert "already one shard" in _run(["store", "upgrade"], env)  # idempotent
    _segment_every_version(env, tmp_path / "after", None)
    before = sorted(p.relative_to(tmp_path / "before") for p in (tmp_path / "before").rglob("*"))
    after = sorted(p.relative_to(tmp_path / "after") for p in (tmp_path / "after").rglob("*"))
    assert before == after and len(before) > 4 * 2 * 4
    for name in before:
        if (tmp_path / "before" / name).is_file():
            assert (tmp_path / "before" / name).read_bytes() == (
                tmp_path / "after" / name
            ).read_bytes(), name
    assert "consistent: shop" in _run(["doctor"], env)
