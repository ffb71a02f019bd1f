"""Which block pages invite an unblock request: only blocks a grant can lift. An exam, an
exclusion and a category nobody may open get a page without the link (a request there could never
be granted), and the page cites the article the school's policy names."""

from __future__ import annotations

import pytest

from poortwachter import blockpage
from poortwachter.decide import Verdict

UNBLOCK_URL = "http://127.0.0.1:8090/deblokkeren"


def page(rule: str, source: str, category: str | None = None) -> str:
    verdict = Verdict("block", rule, source, category, "klas", "leerling", "les")
    return blockpage.render(verdict, "http://www.example.com/", None, UNBLOCK_URL, "ICT").decode()


@pytest.mark.parametrize("rule", ["examen", "uitsluiting", "niet-te-openen"])
def test_blocks_no_request_can_lift_have_no_unblock_link(rule: str) -> None:
    html = page(rule, "Examenreglement art. 7")
    assert 'id="unblock"' not in html and UNBLOCK_URL not in html and "Deblokkering aanvragen" not in html
    assert "Examenreglement art. 7" in html


def test_a_category_block_invites_a_request() -> None:
    html = page("sociale-media-in-de-les", "Reglement art. 9", "sociale-media")
    assert 'id="unblock"' in html and UNBLOCK_URL in html
