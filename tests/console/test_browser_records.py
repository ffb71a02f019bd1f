"""One truth per object, forms that survive and the phone layout, in a real browser (Debian's
headless Chromium through Playwright) against a real uvicorn on 127.0.0.1, whose clock the test
moves:

(a) a session expires while a staff form is open: sending it leads to the login, and after the
    login the form is back with what was typed, and goes through when sent again;
(b) what ICT narrowed the approval to is what the requester's status page shows, and then the
    revocation with its reason (on a phone; a screenshot of the revoked status as in (c));
(c) at 390 px wide, the request list and the status page have no column squeezed to a few
    letters and no URL wrapped mid-word (measured in the DOM), with screenshots: in a temporary
    directory, or docs/img/ with POORTWACHTER_SCREENSHOTS=1.
Every wait on the browser has a deadline (Playwright's expect and wait_for_url time out)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poortwachter.console.app import create_app
from poortwachter.store import load_state
from poortwachter.workflow import approve_request, endorse_request, get_user, list_requests, submit_request

from .conftest import NOW, PASSWORD, POLICY, USERS, Clock, make_users
from .test_browser import CHROMIUM, _free_port

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
PHONE = {"width": 390, "height": 844}
WAIT_MS = 10_000
MIN_CELL_PX = 120    # a table cell narrower than this shows a URL a few letters a line
LONG_URL = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLbiologie-cellen-en-weefsels-2025&index=7&t=42s"

# Every table cell and every shortened URL, as the browser laid them out, and how far the page
# reaches beyond the phone's width.
LAYOUT_JS = """
(width) => {
  const cells = [...document.querySelectorAll('table td')].filter(td => td.offsetParent !== null)
    .map(td => ({text: td.textContent.trim().slice(0, 40), width: td.getBoundingClientRect().width}));
  const urls = [...document.querySelectorAll('code.url')].map(el => {
    const line = parseFloat(getComputedStyle(el).lineHeight) || 20;
    return {text: el.textContent.slice(0, 40), lines: Math.round(el.getBoundingClientRect().height / line),
            rects: el.getClientRects().length, title: el.title};
  });
  // against the phone's width: a mobile viewport widens itself to what overflows
  return {cells, urls, overflow: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - width};
}
"""


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A console of its own for every test: its clock only moves forward (as the login brake
    expects of a clock)."""
    import uvicorn

    data = tmp_path_factory.mktemp("console-records")
    app = create_app(f"sqlite:///{data / 'store.db'}", POLICY, data, clock=Clock(NOW), expiry_every_s=3600)
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
def browser() -> Iterator[Any]:
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


@pytest.fixture
def clock(server: tuple[str, Any]) -> Clock:
    """The server's clock, at NOW."""
    clock: Clock = server[1].state.console.clock
    assert clock.now == NOW
    return clock


def new_page(browser: Any, viewport: dict[str, int] | None = None) -> Any:
    if viewport == PHONE:
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="nl-NL",
                                      device_scale_factor=1)
    else:
        context = browser.new_context(viewport={"width": 1024, "height": 900}, locale="nl-NL", device_scale_factor=1)
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


def log_in(page: Any, base: str, role: str, path: str) -> None:
    """Open `path`, get sent to the login form, log in, and land back on `path`."""
    page.goto(base + path)
    page.wait_for_url(f"{base}/inloggen?*")
    page.fill("#gebruikersnaam", USERS[role])
    page.fill("#wachtwoord", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url(base + path)


def make_request(app: Any, url: str = LONG_URL, *, endorsed: bool = True, approved: bool = False) -> tuple[int, str]:
    """A pupil's request through the service layer; (number, status link)."""
    store = app.state.console.store
    with store.write() as s:
        request_id = submit_request(s, url=url, category="video", rule="klaslokaal-les", requester="Piet, 3B",
                                    reason="Filmpje voor biologie", now=NOW)
        users = {u.role: u for u in (get_user(s, i) for i in range(1, len(USERS) + 1)) if u}
        if endorsed:
            endorse_request(s, request_id, user=users["leidinggevende"], ground="lesstof", sites=["youtube.com"],
                            zones=["lokaal-101", "lokaal-102"], roles=["pupil"], start=NOW,
                            end=NOW + dt.timedelta(days=1), motivation="Biologieles", now=NOW)
        if approved:
            approve_request(s, request_id, user=users["ict"], now=NOW)
        token = next(r.token for r in list_requests(s) if r.id == request_id)
    return request_id, f"/aanvraag/{request_id}?t={token}"


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    if os.environ.get("POORTWACHTER_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        path = DOCS_IMG / name
    else:
        path = tmp_path / name
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


# --- (a) a form that survives an expired session ----------------------------------------------

def test_typed_form_survives_an_expired_session(server: tuple[str, Any], browser: Any, clock: Clock) -> None:
    from playwright.sync_api import expect

    base, app = server
    request_id, _ = make_request(app, endorsed=False)
    page = new_page(browser)
    log_in(page, base, "leidinggevende", f"/aanvragen/{request_id}")
    page.check("#ground-lesstof")
    page.check("#onderbouw-zone-1")
    page.fill("#onderbouw-end", "2025-03-11T15:00")
    page.fill("#motivation", "Twintig minuten aan getypt: cellen en weefsels")
    clock.now = NOW + dt.timedelta(hours=9)                    # the session expires while the form is open
    page.click("#onderbouwen button[type=submit]")
    page.wait_for_url(f"{base}/inloggen?verlopen=1*")
    expect(page.locator("main")).to_contain_text("Je sessie was verlopen")
    with app.state.console.store.read() as s:
        assert [r.status for r in list_requests(s) if r.id == request_id] == ["submitted"]
    page.fill("#gebruikersnaam", USERS["leidinggevende"])
    page.fill("#wachtwoord", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{base}/aanvragen/{request_id}")
    expect(page.locator("#motivation")).to_have_value("Twintig minuten aan getypt: cellen en weefsels")
    expect(page.locator("#onderbouw-end")).to_have_value("2025-03-11T15:00")
    expect(page.locator("#onderbouw-zone-1")).to_be_checked()
    expect(page.locator("#onderbouw-zone-2")).not_to_be_checked()
    expect(page.locator("#ground-lesstof")).to_be_checked()
    page.click("#onderbouwen button[type=submit]")
    page.wait_for_url(f"{base}/aanvragen/{request_id}?ok=onderbouwd")
    with app.state.console.store.read() as s:
        (req,) = [r for r in list_requests(s) if r.id == request_id]
    assert req.status == "endorsed" and req.zones == ("lokaal-101",) and req.motivation.startswith("Twintig")
    page.context.close()


# --- (b) the narrowed approval and its revocation on the status page ----------------------------

def test_status_page_shows_the_narrowed_approval_then_the_revocation(server: tuple[str, Any], browser: Any,
                                                                    clock: Clock, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base, app = server
    request_id, link = make_request(app)
    ict = new_page(browser)
    log_in(ict, base, "ict", f"/aanvragen/{request_id}")
    ict.uncheck("#goedkeur-zone-2")                             # lokaal-102 narrowed away
    ict.fill("#goedkeur-end", "2025-03-10T10:43")               # three minutes instead of a day
    ict.click("#goedkeuren button[type=submit]")
    ict.wait_for_url(f"{base}/aanvragen/{request_id}?ok=goedgekeurd")

    pupil = new_page(browser, PHONE)
    pupil.goto(base + link)
    expect(pupil.locator("#status")).to_contain_text("Goedgekeurd: de site is open tot 10-03-2025 10:43")
    facts = pupil.locator("dl.facts")
    expect(facts).to_contain_text("lokaal-101")
    expect(facts).not_to_contain_text("lokaal-102")
    expect(facts).to_contain_text("10-03-2025 10:40 – 10-03-2025 10:43")

    clock.now = NOW + dt.timedelta(minutes=1)
    ict.goto(f"{base}/deblokkeringen")
    (grant,) = load_state(app.state.console.store, clock.now).grants
    card = ict.locator(f"#deblokkering-{grant.id}")
    card.locator("input[name=reason]").last.fill("Verkeerd filmpje gedeeld")
    card.locator("button.danger").click()
    ict.wait_for_url(f"{base}/deblokkeringen?ok=ingetrokken")

    pupil.reload()
    expect(pupil.locator("#status")).to_contain_text("Ingetrokken door ICT op 10-03-2025 10:41")
    expect(pupil.locator("#reason")).to_have_text("Verkeerd filmpje gedeeld")
    expect(pupil.locator("main")).not_to_contain_text("Test ict")
    screenshot(pupil, "console-request-revoked-phone.png", tmp_path)
    ict.context.close()
    pupil.context.close()


# --- (c) a phone 390 px wide -------------------------------------------------------------------

def _check_phone_layout(page: Any, where: str) -> dict[str, Any]:
    layout = page.evaluate(LAYOUT_JS, PHONE["width"])
    assert layout["overflow"] <= 0, f"{where}: scrolls sideways by {layout['overflow']}px"
    narrow = [c for c in layout["cells"] if c["width"] < MIN_CELL_PX]
    assert narrow == [], f"{where}: cells narrower than {MIN_CELL_PX}px: {narrow}"
    wrapped = [u for u in layout["urls"] if u["lines"] != 1 or u["rects"] != 1]
    assert wrapped == [], f"{where}: URLs wrapped over several lines: {wrapped}"
    assert all(u["title"] for u in layout["urls"]), f"{where}: a shortened URL without its full value"
    return layout


def test_request_list_and_status_page_on_a_phone(server: tuple[str, Any], browser: Any, clock: Clock,
                                                 tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base, app = server
    make_request(app, endorsed=False)
    make_request(app, "https://xn--bcherwurm-q9a.de/boeken/biologie/cellen-en-weefsels-voor-de-bovenbouw")
    _, link = make_request(app, approved=True)

    manager = new_page(browser, PHONE)
    log_in(manager, base, "leidinggevende", "/aanvragen")
    expect(manager.locator("table.requests").first).to_be_visible()
    layout = _check_phone_layout(manager, "aanvragen")
    assert len(layout["urls"]) >= 3 and any("bücherwurm.de" in u["title"] for u in layout["urls"])
    screenshot(manager, "console-requests-phone.png", tmp_path)

    pupil = new_page(browser, PHONE)
    pupil.goto(base + link)
    expect(pupil.locator("#status")).to_contain_text("Goedgekeurd")
    _check_phone_layout(pupil, "aanvraag")
    screenshot(pupil, "console-request-status-phone.png", tmp_path)
    manager.context.close()
    pupil.context.close()
