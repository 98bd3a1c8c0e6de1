"""What the console's browser tests share: signing in, screenshots, a signed-in HTTP
client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.service.conftest import Deployment

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: screenshots of the pages, kept as test artifacts (git-ignored)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


def sign_in(driver: webdriver.Chrome, base: str, token: str) -> None:
    """Sign out (if signed in), then sign in with ``token`` through the form."""
    driver.delete_all_cookies()
    driver.get(f"{base}/ui/sign-in")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda b: "/ui/sign-in" not in b.current_url)


def shoot(driver: webdriver.Chrome, name: str) -> Path:
    """Save a screenshot of the page as a test artifact."""
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


@contextmanager
def session_client(d: Deployment, token: str) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the console with ``token`` (its session cookie)."""
    with httpx.Client(base_url=d.url, timeout=120, follow_redirects=False) as client:
        answer = client.post("/ui/sign-in", data={"token": d.tokens[token]})
        assert answer.status_code == 303, answer.text
        assert client.cookies.get("knnvocab_session")
        yield client
