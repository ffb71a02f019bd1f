"""The console in a real browser (Debian's headless Chromium through Playwright), served by a real
uvicorn on 127.0.0.1: keyboard-only use with a visible focus, the skip link, no horizontal
scrolling on a phone, text contrast of at least 4.5:1, and no Content-Security-Policy violations
(which would mean a page relies on something the CSP blocks)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poortwachter.console.app import create_app
from poortwachter.store import load_state

from .conftest import NOW, PASSWORD, POLICY, Clock, make_users

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}

# WCAG relative luminance contrast of every element with its own text against the first opaque
# background up the tree; returns the offenders.
CONTRAST_JS = """
() => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(x => parseFloat(x)); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0.99) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null && getComputedStyle(el).position !== 'fixed') continue;
    const r = el.getBoundingClientRect(); if (r.width === 0 || r.height === 0 || r.bottom < 0) continue;
    const fg = parse(getComputedStyle(el).color), b = bg(el);
    const [hi, lo] = [lum(fg), lum(b)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) bad.push(el.tagName + ' ' + ratio.toFixed(2) + ' ' + el.textContent.trim().slice(0, 30));
  }
  return bad;
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    import uvicorn

    data = tmp_path_factory.mktemp("console")
    app = create_app(f"sqlite:///{data / 'store.db'}", POLICY, data, clock=Clock(NOW))
    make_users(app.state.console.store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "console did not start"
        time.sleep(0.05)   # waiting for the server to listen
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, env=env, timeout=60_000,
                                      args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                            "--disable-background-networking", "--no-proxy-server"])
        yield chromium
        chromium.close()


@pytest.fixture(params=["phone", "desktop"])
def page(request: pytest.FixtureRequest, browser: object) -> Iterator[object]:
    if request.param == "phone":
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="nl-NL")  # type: ignore[attr-defined]
    else:
        context = browser.new_context(viewport=DESKTOP, locale="nl-NL")  # type: ignore[attr-defined]
    page = context.new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: "Content Security Policy" in msg.text and page.csp_errors.append(msg.text))  # type: ignore[attr-defined]
    yield page
    context.close()


def _check_layout(page: object, where: str) -> None:
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")  # type: ignore[attr-defined]
    assert overflow <= 0, f"{where}: scrolls sideways by {overflow}px"
    bad = page.evaluate(CONTRAST_JS)  # type: ignore[attr-defined]
    assert bad == [], f"{where}: contrast below 4.5:1: {bad}"
    assert page.csp_errors == [], f"{where}: {page.csp_errors}"  # type: ignore[attr-defined]


def test_public_form_by_keyboard_only(server: tuple[str, object], page: object) -> None:
    base, _app = server
    page.goto(f"{base}/deblokkeren?url=https://www.youtube.com/watch?v%3D1&category=video&rule=klaslokaal-les")  # type: ignore[attr-defined]
    _check_layout(page, "deblokkeren")
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    focused = page.evaluate("() => [document.activeElement.className, getComputedStyle(document.activeElement).outlineWidth,"  # type: ignore[attr-defined]
                            " document.activeElement.getBoundingClientRect().top]")
    assert focused[0] == "skip" and float(focused[1].rstrip("px")) >= 2 and focused[2] >= 0   # visible when focused
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    assert page.evaluate("() => document.activeElement.id") == "inhoud"  # type: ignore[attr-defined]
    # from the main content, Tab walks the form: url, name, reason, button
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    assert page.evaluate("() => document.activeElement.id") == "url"  # type: ignore[attr-defined]
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")  # type: ignore[attr-defined]
    assert outline == "solid"
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    page.keyboard.type("Piet, 3B")  # type: ignore[attr-defined]
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    page.keyboard.type("Voor biologie")  # type: ignore[attr-defined]
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.wait_for_url("**/aanvraag/*")  # type: ignore[attr-defined]
    assert "Je aanvraag is verstuurd" in page.content()  # type: ignore[attr-defined]
    _check_layout(page, "aanvraag")


def test_staff_pages_in_the_browser(server: tuple[str, object], page: object) -> None:
    base, app = server
    page.goto(f"{base}/klas")  # type: ignore[attr-defined]
    assert "/inloggen" in page.url  # type: ignore[attr-defined]
    _check_layout(page, "inloggen")
    page.fill("#gebruikersnaam", "ict1")  # type: ignore[attr-defined]
    page.fill("#wachtwoord", PASSWORD)  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.wait_for_url(f"{base}/klas")  # type: ignore[attr-defined]
    for path in ("/", "/aanvragen", "/deblokkeringen", "/klas", "/examen", "/uitsluitingen", "/deblokkeren"):
        page.goto(base + path)  # type: ignore[attr-defined]
        _check_layout(page, path)
    # open a classroom for the rest of the lesson with the keyboard-free default choices
    page.goto(f"{base}/klas")  # type: ignore[attr-defined]
    page.check("#cat-video")  # type: ignore[attr-defined]
    page.click("text=Toepassen")  # type: ignore[attr-defined]
    page.wait_for_url("**/klas?ok=geopend")  # type: ignore[attr-defined]
    assert "Gedaan" in page.content()  # type: ignore[attr-defined]
    _check_layout(page, "klas na openen")
    store = app.state.console.store  # type: ignore[attr-defined]
    assert any(o.zone == "lokaal-101" for o in load_state(store, NOW).openings)
    page.click("text=Nu beëindigen")  # type: ignore[attr-defined]
    page.wait_for_url("**/klas?ok=beeindigd")  # type: ignore[attr-defined]
    page.click("text=Uitloggen")  # type: ignore[attr-defined]
    page.wait_for_url("**/inloggen?uitgelogd=1")  # type: ignore[attr-defined]
