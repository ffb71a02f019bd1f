"""Smoke test: the console on PostgreSQL (the shared store of several gateways). One flow, from the
public form to a grant in the snapshot and back, plus login and logout. The server is the one at
127.0.0.1:5432 (database `test`, a fresh schema per test); POORTWACHTER_TEST_PG_URL overrides."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from poortwachter.store import load_state

from ..dbfixtures import pg_schema, pg_unreachable
from ..dbfixtures import pg_url as shared_pg_url
from .conftest import NOW, Console, csrf_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with pg_schema("pw_console") as schema:
        yield shared_pg_url(schema)   # session time zone Pacific/Chatham: any time-zone slip shows


def test_unblock_flow_on_postgresql(pg_url: str, make_console: Callable[[str], Console]) -> None:
    console = make_console(pg_url)
    pupil = console.client()
    page = pupil.get("/deblokkeren", params={"url": "https://www.youtube.com/watch?v=1", "category": "video"})
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": "https://www.youtube.com/watch?v=1",
                                               "category": "video", "requester": "Piet", "reason": "les"})
    assert response.status_code == 303
    link = response.headers["location"]
    request_id = int(re.match(r"/aanvraag/(\d+)", link).group(1))  # type: ignore[union-attr]

    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    assert manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "lesstof", "sites": "www.youtube.com", "zones": ["lokaal-101"],
        "start": "2025-03-10T10:40", "end": "2025-03-10T16:00", "motivation": "m"}).status_code == 303

    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    assert ict.post(f"/aanvragen/{request_id}/goedkeuren", data={
        "csrf": csrf_of(detail), "sites": "www.youtube.com", "zones": ["lokaal-101"],
        "start": "2025-03-10T11:00", "end": "2025-03-10T12:00"}).status_code == 303
    [grant] = load_state(console.store, NOW).grants
    assert grant.start.isoformat() == "2025-03-10T10:00:00+00:00"   # 11:00 Amsterdam (CET)
    assert "Goedgekeurd" in console.client().get(link).text

    unblocks = ict.get("/deblokkeringen").text
    assert ict.post(f"/deblokkeringen/{grant.id}/intrekken", data={"csrf": csrf_of(unblocks),
                                                                  "reason": "klaar"}).status_code == 303
    assert load_state(console.store, NOW).grants == ()

    token = ict.cookies.get("pw_sessie")
    assert ict.post("/uitloggen", data={"csrf": csrf_of(unblocks)}).status_code == 303
    replay = console.client()
    replay.cookies.set("pw_sessie", token, domain="testserver.local")
    assert replay.get("/").status_code == 303
