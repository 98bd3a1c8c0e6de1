"""The web console in a real browser (headless chromium) against a real `knnvocab
serve`: every page is signed in to, navigated and checked against the catalog; the
screenshots are kept under test-artifacts/console/."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from knnvocab.client import Client
from knnvocab.history import version_log, vocabulary
from knnvocab.lifecycle import audit_log
from knnvocab.lifecycle.domains import domain_info
from knnvocab.workspace import Workspace
from tests.console.helpers import session_client, shoot, sign_in
from tests.service.conftest import Deployment

pytestmark = pytest.mark.slow


def _catalog(d: Deployment) -> Workspace:
    """The deployment's catalog, read beside the running service (no store opened)."""
    return Workspace(d.settings)


def _texts(driver: webdriver.Chrome, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_sign_in_and_overview(console: Deployment, browser: webdriver.Chrome) -> None:
    sign_in(browser, console.url, console.tokens["street:query"])
    assert browser.current_url == f"{console.url}/ui/domains/street"  # a domain token's home
    with _catalog(console) as ws:
        info = domain_info(ws, "street")
        vocab = vocabulary(ws, "street")
    assert browser.find_element(By.ID, "head-version").text == f"v{info.head_version}"
    assert browser.find_element(By.ID, "encoder").text == info.encoder
    rows = browser.find_elements(By.CSS_SELECTOR, "#classes tbody tr")
    shown = {r.get_attribute("data-class"): r.find_elements(By.TAG_NAME, "td") for r in rows}
    assert set(shown) == {c.name for c in vocab.classes}
    for c in vocab.classes:
        assert shown[c.name][2].text == ("live" if c.live else "retired")
        assert shown[c.name][3].text == str(c.instances)
    assert browser.find_elements(By.CSS_SELECTOR, "figure.chart svg polyline")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)  # the keyboard's first stop
    assert browser.switch_to.active_element.text == "Skip to content"
    shoot(browser, "overview")


def test_versions_page(console: Deployment, browser: webdriver.Chrome) -> None:
    browser.find_element(By.LINK_TEXT, "Versions").click()
    WebDriverWait(browser, 30).until(ec.url_contains("/versions"))
    with _catalog(console) as ws:
        log = version_log(ws, "street")
    items = browser.find_elements(By.CSS_SELECTOR, "li.version")
    assert [i.get_attribute("id") for i in items] == [f"v{r.number}" for r in reversed(log)]
    first = browser.find_element(By.ID, "v1").text
    assert log[0].dataset is not None
    assert log[0].dataset["content_sha256"] in first
    assert f"{log[0].user}@{log[0].host}" in first and log[0].encoder["model"] in first
    assert "failed" in browser.find_element(By.ID, "v2").text
    shoot(browser, "versions")


def _a_class(d: Deployment) -> str:
    with _catalog(d) as ws:
        return max(vocabulary(ws, "street").classes, key=lambda c: c.instances).name


def test_class_page_query_token(console: Deployment, browser: webdriver.Chrome) -> None:
    name = _a_class(console)
    browser.get(f"{console.url}/ui/domains/street")
    browser.find_element(By.LINK_TEXT, name).click()
    WebDriverWait(browser, 30).until(ec.url_contains("/classes/"))
    with _catalog(console) as ws:
        count = next(c for c in vocabulary(ws, "street").classes if c.name == name).instances
    assert browser.find_element(By.ID, "class-instances").text == str(count)
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#instances img")
    assert len(thumbs) == min(count, 24)
    WebDriverWait(browser, 30).until(
        lambda b: all(b.execute_script("return arguments[0].naturalWidth", t) > 0 for t in thumbs)
    )
    assert not browser.find_elements(By.ID, "retire-button")  # a query token: no buttons
    assert not browser.find_elements(By.ID, "restore-button")
    shoot(browser, "class")


def test_retire_and_restore_with_a_write_token(
    console: Deployment, browser: webdriver.Chrome
) -> None:
    name = _a_class(console)
    sign_in(browser, console.url, console.tokens["street:write"])
    browser.find_element(By.LINK_TEXT, name).click()
    WebDriverWait(browser, 30).until(ec.url_contains("/classes/"))
    browser.find_element(By.ID, "message").send_keys("from the console test")
    browser.find_element(By.ID, "retire-button").click()
    WebDriverWait(browser, 60).until(ec.url_contains("done=retired"))
    assert browser.find_element(By.ID, "class-state").text == "retired"
    with _catalog(console) as ws:
        assert name in [c.name for c in vocabulary(ws, "street").classes if not c.live]
        last = audit_log(ws, "street", action="retire")[-1]
    assert last.actor == "street-write"
    browser.find_element(By.ID, "restore-button").click()
    WebDriverWait(browser, 60).until(ec.url_contains("done=restored"))
    assert browser.find_element(By.ID, "class-state").text == "live"


def test_diff_page(console: Deployment, browser: webdriver.Chrome) -> None:
    name = _a_class(console)  # retired in v3 and restored in v4 by the test above
    browser.get(f"{console.url}/ui/domains/street/diff")
    for field, value in (("from", "1"), ("to", "3")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "to").send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(ec.url_contains("to=3"))
    assert browser.find_element(By.ID, "diff-retired").text == name
    assert browser.find_element(By.ID, "diff-added").text == "—"
    assert name in browser.find_element(By.ID, "counts").text
    shoot(browser, "diff")
    browser.find_element(By.LINK_TEXT, "Overview").click()  # the chart now spans 3 versions
    WebDriverWait(browser, 10).until(ec.url_matches(r"/ui/domains/street$"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart circle")) >= 3
    shoot(browser, "overview-history")


def test_audit_page_with_a_filter(console: Deployment, browser: webdriver.Chrome) -> None:
    browser.get(f"{console.url}/ui/domains/street/audit")
    with _catalog(console) as ws:
        every = audit_log(ws, "street")
        retires = audit_log(ws, "street", action="retire")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")) == len(every)
    browser.find_element(By.ID, "action").send_keys("retire", Keys.ENTER)
    WebDriverWait(browser, 10).until(ec.url_contains("action=retire"))
    shown = _texts(browser, "#audit td.action")
    assert shown == [r.action for r in reversed(retires)]
    assert all(a.startswith("retire") for a in shown) and shown
    shoot(browser, "audit")


def test_try_it(console: Deployment, browser: webdriver.Chrome) -> None:
    sign_in(browser, console.url, console.tokens["street:query"])
    browser.get(f"{console.url}/ui/domains/street/try")
    browser.find_element(By.ID, "image").send_keys(str(console.photos[0]))
    browser.find_element(By.ID, "version").clear()
    browser.find_element(By.ID, "version").send_keys("1")
    browser.find_element(By.ID, "segment-button").click()
    overlay = WebDriverWait(browser, 120).until(ec.presence_of_element_located((By.ID, "overlay")))
    assert browser.execute_script("return arguments[0].naturalWidth", overlay) > 0
    first = browser.find_element(By.CSS_SELECTOR, "#segments details summary")
    first.send_keys(Keys.ENTER)  # the keyboard opens a segment
    panel = browser.find_element(By.CSS_SELECTOR, "#segments details[open]")
    neighbours = panel.find_elements(By.CSS_SELECTOR, ".neighbours li")
    assert neighbours and "added in v" in neighbours[0].text
    webdriver.ActionChains(browser).move_to_element(overlay).perform()  # pointing opens one
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#segments details.pointed[open]")
    )
    assert browser.find_element(By.ID, "marker").is_displayed()  # its box on the overlay
    pointed = browser.find_element(By.CSS_SELECTOR, "#segments details.pointed")
    imgs = pointed.find_elements(By.CSS_SELECTOR, ".neighbours img")
    WebDriverWait(browser, 30).until(
        lambda b: all(b.execute_script("return arguments[0].complete", i) for i in imgs)
    )
    shoot(browser, "try")


#: a visible form control without a name a screen reader can say: no <label for=…>
#: pointing at it, no enclosing <label>, no aria-label / aria-labelledby
UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .filter(e => !e.getAttribute('aria-labelledby'))
  .filter(e => !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML);
"""


#: the WCAG contrast ratio of every element's own text against the first opaque
#: background behind it; the lowest ratios, with what they belong to
CONTRAST = """
const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
  .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
  .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
const behind = e => {
  for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const out = [];
for (const e of document.querySelectorAll('body *')) {
  const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || !e.offsetParent) continue;
  const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(behind(e))];
  out.push([(Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), e.tagName + '.' + e.className]);
}
return out.sort((x, y) => x[0] - y[0]).slice(0, 3);
"""


def test_every_control_is_labelled_and_readable(
    console: Deployment, browser: webdriver.Chrome
) -> None:
    """On every page a write token sees (forms included), each control has a label and
    all text reaches WCAG AA contrast (4.5:1) against its background."""
    sign_in(browser, console.url, console.tokens["street:write"])
    base = f"{console.url}/ui/domains/street"
    pages = ["", "/versions", "/diff?from=1&to=3", "/audit", f"/classes/{_a_class(console)}"]
    for page in [*pages, "/try"]:
        browser.get(base + page)
        assert browser.find_elements(By.TAG_NAME, "main"), page
        assert browser.execute_script(UNLABELLED) == [], page
        lowest = browser.execute_script(CONTRAST)
        assert lowest[0][0] >= 4.5, (page, lowest)  # WCAG AA for normal text
    probe = "document.querySelector('main').append(document.createElement('input'))"
    browser.execute_script(probe)  # the check itself finds an unlabelled control
    assert browser.execute_script(UNLABELLED) == ["<input>"]


def test_try_refuses_a_file_that_is_not_an_image(console: Deployment, tmp_path: Path) -> None:
    with session_client(console, "street:query") as client:
        page = client.get("/ui/domains/street/try").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        files = {"image": ("notes.txt", b"not a photo", "text/plain")}
        answer = client.post("/ui/domains/street/try", data={"csrf": csrf}, files=files)
    assert answer.status_code == 422
    assert "Could not do that" in answer.text and "Traceback" not in answer.text


def test_try_takes_a_photo_larger_than_a_json_body(console: Deployment) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    assert buffer.tell() > 1024 * 1024  # past the 1 MB limit of JSON bodies
    with session_client(console, "street:query") as client:
        page = client.get("/ui/domains/street/try").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        files = {"image": ("noise.png", buffer.getvalue(), "image/png")}
        answer = client.post("/ui/domains/street/try", data={"csrf": csrf}, files=files)
    assert answer.status_code == 200, answer.text[:500]
    assert 'id="overlay"' in answer.text


def test_a_purge_marks_versions_not_reproducible(
    console: Deployment, browser: webdriver.Chrome
) -> None:
    """Last in the module: it purges the street domain's only dataset."""
    with _catalog(console) as ws:
        dataset = version_log(ws, "street")[0].dataset
    assert dataset is not None
    with Client(console.url, console.tokens["street:admin"]) as admin:
        admin.purge("street", dataset=dataset["name"], message="the photos' owner asked")
    sign_in(browser, console.url, console.tokens["street:query"])
    browser.get(f"{console.url}/ui/domains/street/versions")
    with _catalog(console) as ws:
        log = {r.number: r for r in version_log(ws, "street")}
    for number, record in log.items():
        if record.state != "published":
            continue
        text = browser.find_element(By.ID, f"v{number}").text
        assert ("not reproducible" in text) == (not record.reproducible), (number, text)
    assert not log[1].reproducible
    purge = browser.find_element(By.ID, f"v{max(log)}").text  # its plan is bookkeeping
    assert "data_dataset_voc" in purge and '"plan"' not in purge and '"pid"' not in purge
    shoot(browser, "versions-after-purge")
