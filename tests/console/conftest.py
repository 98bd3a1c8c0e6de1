"""One real `knnvocab serve` (SQLite catalog, embedded store, the ``street`` domain of
tests/service's build_home) and one headless Debian chromium per module, driven by
selenium through Debian's chromedriver. Nothing downloads a browser: a missing
chromium fails the tests (``make system-deps`` installs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from tests.console.helpers import ARTIFACTS, CHROMEDRIVER, CHROMIUM
from tests.service.conftest import Deployment, build_home
from tests.service.server import Server, knnvocab_env


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: EncoderSpec, labelme_voc: Path
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("console")
    home = root / "home"
    url = f"sqlite:///{home / 'catalog.sqlite3'}"
    settings = Settings(home=home, database_url=url, user="tester")
    tokens = build_home(settings, tiny_model, labelme_voc)
    env = knnvocab_env(home, url, KNNVOCAB_REQUEST_TIMEOUT="120")
    with Server(env, root / "serve.log") as server:
        photos = sorted((labelme_voc / "JPEGImages").glob("*.jpg"))
        yield Deployment(server, settings, tokens, photos, root)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(
                f"{path} is missing: run `make system-deps` (Debian's chromium and "
                "chromium-driver)",
                pytrace=False,
            )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--disable-gpu",
        "--no-first-run",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
