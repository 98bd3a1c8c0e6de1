"""The wheel is what gets deployed: built from the sources and installed into a fresh
virtualenv that cannot see this checkout, it imports from its own site-packages, migrates a
catalog with the Alembic scripts it ships, and ingests real photos with a real (tiny)
open_clip model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from knnvocab.catalog.database import head_revision
from knnvocab.embed.spec import EncoderSpec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: what the wheel is built from: the files deploy/Dockerfile copies into the image
SOURCES = ("pyproject.toml", "README.md", "knnvocab")
#: offline, quiet pip
PIP_ENV = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _check(
    cmd: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [str(c) for c in cmd]
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv holding the built wheel and nothing else of knnvocab."""

    wheel: Path
    venv: Path
    site_packages: Path
    work: Path  # the working directory of every command, outside the checkout

    def run(self, program: str, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        """``program`` from the venv's bin/, with a clean environment plus ``env``."""
        bin_dir = self.venv / "bin"
        clean = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(self.work)}
        return _check([bin_dir / program, *args], cwd=self.work, env={**clean, **env})


def _build_wheel(folder: Path) -> Path:
    # Built from a copy: building in the checkout leaves build/ behind, and setuptools
    # would put files since deleted from the sources into the next wheel from it.
    src = folder / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = folder / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w"]
    _check([*pip, dist, src], env={**os.environ, **PIP_ENV})
    (wheel,) = dist.glob("knnvocab-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel in a new venv. Its dependencies (torch, open_clip, …) are this venv's,
    added by a ``.pth`` line: a directory added that way does not get its own ``.pth``
    files run, so the editable install of knnvocab in it stays inactive."""
    folder = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(folder)
    venv = folder / "venv"
    _check([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(_check([python, "-c", purelib]).stdout.strip())
    (site_packages / "knnvocab-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = folder / "work"
    work.mkdir()
    found = Installed(wheel, venv, site_packages, work)
    probe = "import importlib.util as u; print(u.find_spec('knnvocab'), u.find_spec('alembic'))"
    before = found.run("python", "-c", probe).stdout
    if not before.startswith("None ModuleSpec(name='alembic'"):
        pytest.fail(f"before the install the venv must see alembic, not knnvocab: {before}")
    found.run("python", "-m", "pip", "install", "--no-deps", wheel, **PIP_ENV)
    return found


def _shipped_and_expected(installed: Installed, package: str) -> tuple[set[str], set[str]]:
    """The files of ``knnvocab/<package>/`` in the wheel, and those in the source tree."""
    folder = ROOT / "knnvocab" / package
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {n for n in wheel.namelist() if n.startswith(f"knnvocab/{package}/")}
    return shipped, expected


def test_the_wheel_ships_the_migrations(installed: Installed) -> None:
    shipped, expected = _shipped_and_expected(installed, "migrations")
    assert shipped == expected
    assert {
        "knnvocab/migrations/env.py",
        "knnvocab/migrations/script.py.mako",
        "knnvocab/migrations/versions/0001_initial.py",
    } <= shipped


def test_the_wheel_ships_the_console(installed: Installed) -> None:
    shipped, expected = _shipped_and_expected(installed, "console")
    assert shipped == expected  # the templates and static files with the code
    assert {"knnvocab/console/templates/base.html", "knnvocab/console/static/console.js"} <= shipped


def test_the_package_and_its_migrations_come_from_the_venv(installed: Installed) -> None:
    code = (
        "import knnvocab; from knnvocab.catalog.database import MIGRATIONS_DIR; "
        "print(knnvocab.__file__); print(MIGRATIONS_DIR)"
    )
    lines = installed.run("python", "-c", code).stdout.splitlines()
    package, migrations = (Path(line).resolve() for line in lines)
    site_packages = installed.site_packages.resolve()
    assert package == site_packages / "knnvocab" / "__init__.py"
    assert migrations == site_packages / "knnvocab" / "migrations"
    assert not package.is_relative_to(ROOT)


def test_db_upgrade_and_current(installed: Installed, tmp_path: Path) -> None:
    head = head_revision()
    env = {
        "KNNVOCAB_HOME": str(tmp_path / "home"),
        "KNNVOCAB_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
    }
    upgraded = installed.run("knnvocab", "db", "upgrade", **env)
    assert f"at revision {head}" in upgraded.stdout
    current = installed.run("knnvocab", "db", "current", **env)
    assert f"revision {head} (latest {head})" in current.stdout


def test_ingest_real_photos(
    installed: Installed, tmp_path: Path, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    """On the default embedded catalog (auto-migrated) and store in KNNVOCAB_HOME."""
    env = {"KNNVOCAB_HOME": str(tmp_path / "home"), "KNNVOCAB_USER": "tester"}
    model = ["--model", tiny_model.model, "--checkpoint", str(tiny_model.checkpoint)]
    installed.run("knnvocab", "ingest", "d", labelme_voc, "--format", "voc", *model, **env)
    log = json.loads(installed.run("knnvocab", "vocab", "log", "d", "--json", **env).stdout)
    (version,) = log["versions"]
    assert (version["number"], version["state"], version["operation"]) == (
        1,
        "published",
        "ingest",
    )
    assert sum(version["instances_added"].values()) > 0
