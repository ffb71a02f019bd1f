"""The block page in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) through a real mitmdump, as a school-managed laptop in a classroom would see it.

Chromium cannot choose its source address, so this module's gateway runs a copy of the e2e policy
in which 127.0.0.1 itself is in the intercepting classroom zone. The browser trusts mitmproxy's CA
by its public key (--ignore-certificate-errors-spki-list), not by switching certificate checks off.

Screenshots for the docs: `POORTWACHTER_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_browser.py`
writes docs/img/blockpage.png and docs/img/blockpage-phone.png; without it they go to a temporary
directory, so an ordinary test run never changes tracked files.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from .pki import spki_sha256
from .proxy import REPO, TEST_POLICY, Gateway

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = REPO / "docs" / "img"
DESKTOP = {"width": 1024, "height": 700}
PHONE = {"width": 375, "height": 667}

BLOCKED_URL = "https://www.pornhub.com/categorie"      # porno: blocked at any time
LESSON_URL = "https://www.tiktok.com/@klas3b"          # social media: blocked in lessons (screenshots)
ALLOWED_URL = "https://www.example.com/browser?vak=aardrijkskunde"
UNBLOCK_FORM = "http://deblokkeren.school.test/aanvraag"  # settings.unblock_url of the test policy


@pytest.fixture(scope="module")
def policy_text() -> str:
    """The e2e policy with the browser's address (127.0.0.1) added to the intercepting classroom zone."""
    text = TEST_POLICY.read_text(encoding="utf-8")
    classroom = 'cidrs: ["127.0.0.2/32"]'
    assert text.count(classroom) == 1, "tests/e2e/data/policy.yaml changed: update test_browser.py"
    return text.replace(classroom, 'cidrs: ["127.0.0.1/32", "127.0.0.2/32"]')


@pytest.fixture(scope="module")
def browser(gateway: Gateway) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium; `make test` does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--proxy-server={gateway.proxy_url}",
        # Trust only mitmproxy's key; Chromium honours this flag only with a user data dir, which
        # Playwright's launch() always sets (a fresh temporary profile per launch).
        f"--ignore-certificate-errors-spki-list={spki_sha256(gateway.mitm_ca)}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args, env=env,
                                      timeout=60_000)
        yield chromium
        chromium.close()


def _context(browser: Browser, phone: bool) -> BrowserContext:
    if phone:
        # is_mobile makes Chromium honour <meta name="viewport">, as a phone does
        return browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True,
                                   locale="nl-NL")
    return browser.new_context(viewport=DESKTOP, device_scale_factor=1, locale="nl-NL")


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:
    context = _context(browser, phone=False)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = _context(browser, phone=True)
    yield context.new_page()
    context.close()


def screenshot_path(name: str, tmp_path: Path) -> Path:
    if os.environ.get("POORTWACHTER_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG / name
    return tmp_path / name


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def open_blocked(page: Page, url: str) -> None:
    response = page.goto(url, wait_until="load")
    assert response is not None
    assert response.status == 403, f"expected the block page, got {response.status}"
    assert response.headers.get("x-poortwachter-rule"), "the 403 did not come from the gateway"


# --- tests ------------------------------------------------------------------------------------------
def test_blocked_https_page_renders_dutch_first_block_page(gateway: Gateway, desktop: Page) -> None:
    open_blocked(desktop, BLOCKED_URL)
    page = desktop
    assert page.url == BLOCKED_URL                      # the pupil stays on the address they typed
    assert page.get_attribute("html", "lang") == "nl"
    assert page.locator("h1").inner_text() == "Deze pagina is geblokkeerd"
    for element_id, text in (("category", "Pornografie / Pornography"), ("rule", "verboden-categorieen"),
                             ("source", "004 art. 11a")):
        cell = page.locator(f"#{element_id}")
        assert cell.is_visible(), f"#{element_id} is not visible"
        assert cell.inner_text() == text
    english = page.locator('p.en[lang="en"]').first
    assert english.is_visible()
    assert english.inner_text().startswith("This page is blocked.")
    # Dutch comes first in the document
    body = page.locator("main").inner_text()
    assert body.index("Deze pagina is geblokkeerd") < body.index("This page is blocked.")

    href = page.locator("#unblock").get_attribute("href")
    assert href is not None
    link = urlsplit(href)
    assert f"{link.scheme}://{link.netloc}{link.path}" == UNBLOCK_FORM
    assert parse_qs(link.query) == {"url": [BLOCKED_URL], "category": ["porno"],
                                    "rule": ["verboden-categorieen"]}
    assert not gateway.upstream.saw("www.pornhub.com")


def test_keyboard_reaches_unblock_link(desktop: Page) -> None:
    open_blocked(desktop, BLOCKED_URL)
    focused = ""
    for _ in range(5):
        desktop.keyboard.press("Tab")
        focused = desktop.evaluate("document.activeElement && document.activeElement.id")
        if focused == "unblock":
            break
    assert focused == "unblock", "Tab never reached the unblock link"
    # the page's own focus ring (not the browser default), so a keyboard user sees where they are
    outline = desktop.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


def test_allowed_page_loads_upstream_body(gateway: Gateway, desktop: Page) -> None:
    response = desktop.goto(ALLOWED_URL, wait_until="load")
    assert response is not None and response.status == 200
    assert desktop.locator("body").inner_text().strip() == \
        "upstream scheme=https host=www.example.com path=/browser?vak=aardrijkskunde"
    assert gateway.upstream.saw("www.example.com", "/browser?vak=aardrijkskunde")


def test_block_page_fits_phone_viewport(lesson: Gateway, phone: Page, tmp_path: Path) -> None:
    open_blocked(phone, LESSON_URL)
    widths = phone.evaluate("""() => ({inner: window.innerWidth,
        doc: document.documentElement.scrollWidth, body: document.body.scrollWidth})""")
    # A phone zooms out to fit content wider than the screen, so overflow shows as a wider layout
    # viewport (innerWidth > 375), as does a page without <meta name="viewport">.
    assert widths["inner"] == PHONE["width"], f"layout wider than the phone (or no viewport meta): {widths}"
    assert widths["doc"] <= widths["inner"] and widths["body"] <= widths["inner"], \
        f"horizontal scroll on a phone: {widths}"
    assert phone.locator("#unblock").is_visible()
    box = phone.locator("#unblock").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    shot = screenshot_path("blockpage-phone.png", tmp_path)
    phone.screenshot(path=str(shot))
    assert png_size(shot) == (PHONE["width"], PHONE["height"])


def test_block_page_desktop_screenshot(lesson: Gateway, desktop: Page, tmp_path: Path) -> None:
    open_blocked(desktop, LESSON_URL)
    assert desktop.locator("#category").inner_text() == "Sociale media / Social media"
    assert desktop.locator("#rule").inner_text() == "sociale-media-in-de-les"
    shot = screenshot_path("blockpage.png", tmp_path)
    desktop.screenshot(path=str(shot))
    assert png_size(shot) == (DESKTOP["width"], DESKTOP["height"])
