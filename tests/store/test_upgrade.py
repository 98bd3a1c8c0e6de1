"""`knnvocab store upgrade` on a store made by the code before it (one qdrant-edge shard per
domain): the code of commit ``LAYOUT_1`` — taken from this repository's own history — builds
a real history (two ingests, a retire, a restore) and segments every version with
``--exact``; after the upgrade the current code gives byte-identical outputs."""

from __future__ import annotations

import io
import json
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

#: runs knnvocab CLI commands (argument lists as JSON, one per line after the code's
#: folder) in one process, so torch and the model load once: the CLI of the folder given,
#: not the installed (editable) one, or the installed one when the folder is ""
MANY_CLI = """
import json, sys
root = sys.argv[1]
if root:
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, root)
import knnvocab
assert knnvocab.__file__.startswith(root), knnvocab.__file__
from knnvocab.cli import main
for line in sys.argv[2:]:
    sys.argv = ["knnvocab", *json.loads(line)]
    try:
        main()
    except SystemExit as done:
        if done.code not in (0, None):
            raise
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


def _run(commands: list[list[str]], env: dict[str, str], old: Path | None = None) -> str:
    """Run CLI commands, each an argument list, in one process; their joined stdout."""
    lines = [json.dumps(args) for args in commands]
    code = [sys.executable, "-c", MANY_CLI, str(old) if old else ""]
    done = subprocess.run([*code, *lines], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{commands}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
    return done.stdout


def _segment_every_version(env: dict[str, str], out: Path, old: Path | None) -> None:
    photos = [
        next((VIDEO / "JPEGImages").iterdir()),
        *sorted((VIDEO / "JPEGImages").iterdir())[-1:],
    ]
    flags = ["--exact", "--rle"]
    commands = [
        [
            "segment",
            "shop",
            *map(str, photos),
            "--out",
            str(out / f"v{v}"),
            "--version",
            str(v),
            *flags,
        ]
        for v in (1, 2, 3, 4)
    ]
    _run(commands, env, old)


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
    history = [
        ["ingest", "shop", str(labelme_voc), "--format", "voc", *model],
        ["ingest", "shop", str(VIDEO), "--format", "voc"],
        ["vocab", "retire", "shop", "person"],
        ["vocab", "restore", "shop", "person"],
    ]
    _run(history, env, old)
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
    assert "moved to one shard" in _run([["store", "upgrade"]], env)
    assert sorted(p.name for p in collection.iterdir() if p.is_dir()) == ["shard"]
    assert "already one shard" in _run([["store", "upgrade"]], env)  # idempotent
    _segment_every_version(env, tmp_path / "after", None)
    before = sorted(p.relative_to(tmp_path / "before") for p in (tmp_path / "before").rglob("*"))
    after = sorted(p.relative_to(tmp_path / "after") for p in (tmp_path / "after").rglob("*"))
    assert before == after and len(before) > 4 * 2 * 4
    for name in before:
        if (tmp_path / "before" / name).is_file():
            assert (tmp_path / "before" / name).read_bytes() == (
                tmp_path / "after" / name
            ).read_bytes(), name
    assert "consistent: shop" in _run([["doctor"]], env)
