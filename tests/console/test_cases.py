"""The console's case pages and access ledger, against the real service layer, a real key
ceremony and events sealed the way the gateway seals them.

Shown here: a case goes open -> approved -> viewed/exported -> closed -> informed through the
forms; the share holders paste their shares and type their passphrases; only the subject's events
in the window appear; every look, refusal and decision is in the ledger page, which shows counts,
never content; roles that may not act change nothing (checked on the cases and the ledger, which
the state revision of the route-table tests does not cover)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from poortwachter.audit import shares
from poortwachter.audit.keystore import KeyStore
from poortwachter.audit.record import Seen, build_event
from poortwachter.auditlog import keys
from poortwachter.decide import Verdict
from poortwachter.store.audit_repo import insert_events, store_period_keys
from poortwachter.store.models import CaseRow, LedgerRow
from poortwachter.workflow import ROLES

from .conftest import AMS, Console, csrf_of

PHRASES = {"directie": "directie-wachtzin-1", "ict": "ict-wachtzin-12345"}
SUBJECT, OTHER = "10.30.4.5", "10.30.4.6"
BLOCK = Verdict("block", "verboden-categorieen", "004 art. 11a", "gokken", "klas", "pupil", "1e-blok")
# the console's clock stands on Monday 10 March 2025 10:40 (ISO week 11)
SEEN = [
    (SUBJECT, dt.datetime(2025, 3, 3, 7, 0), "voor-tijdvak.example"),
    (SUBJECT, dt.datetime(2025, 3, 4, 9, 0), "gokken-een.example"),
    (OTHER, dt.datetime(2025, 3, 4, 9, 5), "iemand-anders.example"),
    (SUBJECT, dt.datetime(2025, 3, 6, 13, 0), "gokken-twee.example"),
    (SUBJECT, dt.datetime(2025, 3, 10, 9, 0), "vandaag.example"),
]
INSIDE = {"gokken-een.example", "gokken-twee.example"}
OUTSIDE = {host for *_, host in SEEN} - INSIDE
CASE_FORM = {"reference": "INC-2025-3", "article": "004 art. 7", "description": "Gokken in de les",
             "reason": "Welke gokdiensten, hoe vaak", "subject": SUBJECT,
             "start": "2025-03-04T08:00", "end": "2025-03-07T17:00"}


@pytest.fixture(autouse=True)
def quick_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares, "SCRYPT_N", 2**10)


@pytest.fixture
def sealed(console: Console, tmp_path: Path) -> dict[str, str]:
    """The key ceremony on the console's data directory, and the gateway's sealed events.
    Returns each holder's share file content, as they would paste it."""
    data_dir = tmp_path / "data"
    keys.init_keys(console.store, data_dir, holders=keys.parse_holders("directie:Anna,ict:Jan"), threshold=2,
                   passphrases=PHRASES, actor="cli:test", now=console.clock.now - dt.timedelta(days=30))
    ks = KeyStore(data_dir / "audit")
    for seq, (subject, local, host) in enumerate(SEEN, 1):
        at = local.replace(tzinfo=AMS).astimezone(dt.UTC)
        period, ps = ks.pseudonym(subject, at)
        seen = Seen(at.timestamp(), "http", BLOCK, ipaddress.ip_address(subject), [host], "/inzet")
        event = build_event(seen, seq=seq, gateway="gw1", at=at, period=period, pseudonym=ps,
                            escrow_public=ks.escrow_public, urls=True)
        sealed_key = ks.sealed_copy(period)
        assert sealed_key is not None
        with console.store.write() as s:
            insert_events(s, [event])
            store_period_keys(s, "gw1", {period: sealed_key}, now=at)
    return {label: keys.share_file(data_dir, label).read_text() for label in PHRASES}


def ledger(console: Console) -> list[tuple[str, int | None, str]]:
    with console.store.read() as s:
        return [(r.action, r.events, r.note) for r in s.scalars(select(LedgerRow).order_by(LedgerRow.id))]


def post(client: object, path: str, data: dict[str, str]) -> object:
    token = csrf_of(client.get("/").text)  # type: ignore[attr-defined]
    return client.post(path, data={"csrf": token, **data})  # type: ignore[attr-defined]


def open_case(console: Console) -> int:
    directie = console.login("directie")
    response = post(directie, "/zaken/openen", CASE_FORM)
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    location = response.headers["location"]  # type: ignore[attr-defined]
    assert location.endswith("?ok=geopend")
    return int(location.split("/")[2].split("?")[0])


def share_form(pasted: dict[str, str], phrases: dict[str, str] = PHRASES, labels: tuple[str, ...] = ("directie", "ict"),
               **extra: str) -> dict[str, str]:
    form = dict(extra)
    for i, label in enumerate(labels, 1):
        form[f"share_{i}"] = pasted[label]
        form[f"passphrase_{i}"] = phrases[label]
    return form


def test_a_case_through_the_console_from_opening_to_informing(console: Console, sealed: dict[str, str]) -> None:
    case_id = open_case(console)
    directie, ict = console.login("directie"), console.login("ict")
    page = directie.get(f"/zaken/{case_id}").text
    assert "wacht op goedkeuring" in page and f"/zaken/{case_id}/goedkeuren" not in page
    assert "/inzien" not in page                                  # nothing to look at before approval
    assert directie.get("/zaken").status_code == 200 and SUBJECT in directie.get("/zaken").text

    page = ict.get(f"/zaken/{case_id}").text
    assert f'action="/zaken/{case_id}/goedkeuren"' in page
    assert post(ict, f"/zaken/{case_id}/goedkeuren", {}).status_code == 303

    page = ict.get(f"/zaken/{case_id}").text
    assert "directie (Anna)" in page and "ict (Jan)" in page
    assert page.count('type="password"') == 2 and "2 deelsleutels nodig" in page

    response = post(ict, f"/zaken/{case_id}/inzien", share_form(sealed))
    assert response.status_code == 200
    html = response.text
    assert all(host in html for host in INSIDE) and not any(host in html for host in OUTSIDE)
    assert "vastgelegd in het toegangslogboek" in html
    assert PHRASES["ict"] not in html and "ciphertext" not in html           # nothing typed is echoed
    assert response.headers["cache-control"] == "no-store"

    response = post(directie, f"/zaken/{case_id}/exporteren", share_form(sealed, format="csv"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="zaak-{case_id}.csv"'
    assert {line.split(",")[11] for line in response.text.splitlines()[1:]} == INSIDE
    response = post(directie, f"/zaken/{case_id}/exporteren", share_form(sealed, format="json"))
    assert {e["host"] for e in json.loads(response.text)["events"]} == INSIDE

    assert post(directie, f"/zaken/{case_id}/sluiten", {"outcome": "Sanctie: uitsluiting"}).status_code == 303
    page = directie.get(f"/zaken/{case_id}").text
    assert "/inzien" not in page and f"/zaken/{case_id}/informeren" in page
    assert post(directie, f"/zaken/{case_id}/informeren", {"note": "Gesprek met ouders"}).status_code == 303
    assert "Gesprek met ouders" in directie.get(f"/zaken/{case_id}").text

    assert ledger(console) == [("keys", None, "2-of-2"), ("open", None, ""), ("approve", None, ""),
                               ("view", 2, ""), ("export", 2, "csv"), ("export", 2, "json"),
                               ("close", None, ""), ("inform", None, "")]
    page = directie.get("/logboek").text
    assert "Ingezien" in page and "Geëxporteerd" in page and "INC-2025-3" in page
    for secret in [SUBJECT, *INSIDE, *OUTSIDE, "Gokken in de les", "Sanctie", "ouders"]:
        assert secret not in page


def test_shares_that_do_not_open_are_refused_and_recorded(console: Console, sealed: dict[str, str]) -> None:
    case_id = open_case(console)
    ict = console.login("ict")
    post(ict, f"/zaken/{case_id}/goedkeuren", {})
    wrong = {"directie": PHRASES["directie"], "ict": "niet-de-wachtzin"}
    attempts = [
        (share_form(sealed, wrong), "Wachtzin onjuist"),
        (share_form(sealed, labels=("ict",)), "2 verschillende deelsleutels"),
        (share_form(sealed, labels=("ict", "ict")), "2 verschillende deelsleutels"),
        ({"share_1": "geen json", "passphrase_1": "x"}, "onleesbaar"),
        ({}, "Geen deelsleutels"),
    ]
    for form, message in attempts:
        response = post(ict, f"/zaken/{case_id}/inzien", form)
        assert response.status_code == 400
        assert message in response.text
        assert not any(host in response.text for host in INSIDE | OUTSIDE)
    assert [entry for entry in ledger(console) if entry[0] == "refused"] == [("refused", None, "view:shares")] * 5
    assert not any(entry[0] == "view" for entry in ledger(console))


def test_an_unapproved_case_cannot_be_looked_at(console: Console, sealed: dict[str, str]) -> None:
    case_id = open_case(console)
    directie = console.login("directie")
    response = post(directie, f"/zaken/{case_id}/inzien", share_form(sealed))
    assert response.status_code == 409 and "nog niet goedgekeurd" in response.text
    assert not any(host in response.text for host in INSIDE)
    # the opener's role cannot approve: the route refuses it
    assert post(directie, f"/zaken/{case_id}/goedkeuren", {}).status_code == 403
    response = post(directie, f"/zaken/{case_id}/exporteren", share_form(sealed, format="csv"))
    assert response.status_code == 409
    assert ledger(console)[-2:] == [("refused", None, "view:not-approved"), ("refused", None, "export:not-approved")]


def test_a_case_window_must_lie_in_the_past(console: Console) -> None:
    directie = console.login("directie")
    response = post(directie, "/zaken/openen", {**CASE_FORM, "end": "2025-03-10T12:00"})
    assert response.status_code == 400 and "kijkt terug" in response.text
    assert SUBJECT not in response.text
    with console.store.read() as s:
        assert s.scalar(select(func.count()).select_from(CaseRow)) == 0


OTHER_ROLES = sorted(set(ROLES) - {"directie", "ict"})


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_other_roles_change_no_case_and_no_ledger(console: Console, sealed: dict[str, str], role: str) -> None:
    case_id = open_case(console)
    ict = console.login("ict")
    post(ict, f"/zaken/{case_id}/goedkeuren", {})
    before = ledger(console)
    client = console.login(role)
    for path, form in [("/zaken/openen", CASE_FORM), (f"/zaken/{case_id}/goedkeuren", {}),
                       (f"/zaken/{case_id}/inzien", share_form(sealed)),
                       (f"/zaken/{case_id}/exporteren", share_form(sealed, format="csv")),
                       (f"/zaken/{case_id}/sluiten", {"outcome": "x"}),
                       (f"/zaken/{case_id}/informeren", {"note": "x"})]:
        response = post(client, path, form)
        assert response.status_code == 403
        assert not any(host in response.text for host in INSIDE)
    for path in ("/zaken", f"/zaken/{case_id}"):
        assert client.get(path).status_code == 403
    # the ledger is read-only for the FG and the MR, closed to everyone else outside directie/ICT
    assert client.get("/logboek").status_code == (200 if role in ("fg", "mr") else 403)
    assert ledger(console) == before
    with console.store.read() as s:
        assert [r.status for r in s.scalars(select(CaseRow))] == ["approved"]
