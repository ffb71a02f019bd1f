"""Time-dependent rules on the running gateway: the clock file moves it through the timetable."""

from __future__ import annotations

import pytest

from .clients import curl, httpx_client
from .proxy import BREAK, CLASSROOM, LESSON, Gateway, wait_until

pytestmark = pytest.mark.e2e


def _tiktok_status(gw: Gateway) -> int:
    return curl(gw, "http://www.tiktok.com/filmpje", CLASSROOM).status


def test_social_media_blocked_in_lesson_allowed_in_break(lesson: Gateway) -> None:
    gw = lesson
    pid = gw.proc.pid if gw.proc else None
    first = curl(gw, "http://www.tiktok.com/filmpje", CLASSROOM)
    assert first.status == 403 and first.headers["x-poortwachter-rule"] == "sociale-media-in-de-les"

    gw.set_clock(BREAK)
    wait_until(lambda: _tiktok_status(gw) == 200, 5, "tiktok allowed in the break")
    r = curl(gw, "http://www.tiktok.com/filmpje", CLASSROOM)
    assert r.body == "upstream scheme=http host=www.tiktok.com path=/filmpje\n"
    with httpx_client(gw, CLASSROOM) as client:     # the same over intercepted HTTPS
        assert client.get("https://www.tiktok.com/filmpje").status_code == 200

    gw.set_clock(LESSON)
    wait_until(lambda: _tiktok_status(gw) == 403, 5, "tiktok blocked again in the next lesson")
    with httpx_client(gw, CLASSROOM) as client:
        again = client.get("https://www.tiktok.com/filmpje")
    assert again.status_code == 403 and again.headers["x-poortwachter-rule"] == "sociale-media-in-de-les"
    assert gw.alive() and gw.proc is not None and gw.proc.pid == pid   # no restart needed


def test_time_does_not_open_what_is_always_forbidden(lesson: Gateway) -> None:
    lesson.set_clock(BREAK)
    wait_until(lambda: _tiktok_status(lesson) == 200, 5, "the break has begun")
    r = curl(lesson, "http://www.pornhub.com/", CLASSROOM)
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == "verboden-categorieen"
