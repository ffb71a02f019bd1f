"""Download limits on the console's exclusions page: directie (and ICT) see the limits the sensor
imposed and lift one early with a reason; who may do so and CSRF are in test_security.py's table."""

from __future__ import annotations

import datetime as dt

from poortwachter.store import load_state
from poortwachter.workflow.limits import impose_download_limit

from .conftest import NOW, Console, csrf_of


def _impose(console: Console, address: str) -> int:
    limit_id = impose_download_limit(console.store, address=address, zone="lokaal-101", max_bytes=1_500_000_000,
                                     until=NOW.replace(hour=23, minute=59), reason="overmatig downloaden: 3 GB",
                                     now=NOW)
    assert limit_id is not None
    return limit_id


def test_directie_sees_the_limits_and_lifts_one(console: Console) -> None:
    directie = console.login("directie")
    assert "Geen apparaat heeft een downloadlimiet." in directie.get("/uitsluitingen").text
    lifted, kept = _impose(console, "10.30.4.5"), _impose(console, "10.30.4.6")
    page = directie.get("/uitsluitingen").text
    for text in ("10.30.4.5", "10.30.4.6", "lokaal-101", "1,5 GB", "10-03-2025 23:59", "overmatig downloaden: 3 GB",
                 "sensor (systeem / system)", f'action="/uitsluitingen/downloadlimieten/{lifted}/opheffen"'):
        assert text in page

    missing = directie.post(f"/uitsluitingen/downloadlimieten/{lifted}/opheffen", data={"csrf": csrf_of(page)})
    assert missing.status_code == 400 and "Reden" in missing.text
    done = directie.post(f"/uitsluitingen/downloadlimieten/{lifted}/opheffen",
                         data={"csrf": csrf_of(page), "reason": "Leerling sprak ICT aan"})
    assert done.status_code == 303 and done.headers["location"] == "/uitsluitingen?ok=opgeheven"
    assert [d.id for d in load_state(console.store, NOW).download_limits] == [kept]
    after = directie.get(done.headers["location"]).text
    assert "De downloadlimiet is opgeheven" in after and "10.30.4.5" not in after

    again = directie.post(f"/uitsluitingen/downloadlimieten/{lifted}/opheffen",
                          data={"csrf": csrf_of(after), "reason": "nogmaals"})
    assert again.status_code == 409


def test_an_ended_limit_is_not_shown(console: Console) -> None:
    _impose(console, "10.30.4.5")
    console.clock.now = NOW.replace(hour=23, minute=59) + dt.timedelta(minutes=1)
    page = console.login("ict").get("/uitsluitingen").text
    assert "10.30.4.5" not in page and "Geen apparaat heeft een downloadlimiet." in page
