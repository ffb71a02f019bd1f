"""The console's menu: which pages each role sees (the routes check the roles again)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    path: str
    nl: str
    en: str
    roles: frozenset[str]
    count_key: str | None = None
    count_nl: str = ""
    count_en: str = ""


TILES = (
    Tile("/aanvragen", "Deblokkeringsaanvragen", "Unblock requests", frozenset({"leidinggevende", "ict"}),
         "pending_requests", "openstaand", "pending"),
    Tile("/deblokkeren", "Deblokkering aanvragen", "Request an unblock", frozenset({"leidinggevende", "ict"})),
    Tile("/deblokkeringen", "Actieve deblokkeringen", "Active unblocks", frozenset({"ict"}),
         "active_grants", "actief", "active"),
    Tile("/klas", "Mijn lokaal", "My classroom", frozenset({"docent", "ict"}),
         "active_openings", "lokalen aangepast", "classrooms changed"),
    Tile("/examen", "Examenmodus", "Exam mode", frozenset({"examencoordinator", "ict"}),
         "active_exams", "lopend", "running"),
    Tile("/uitsluitingen", "Uitsluitingen van het netwerk", "Network exclusions", frozenset({"directie", "ict"}),
         "active_exclusions", "actief", "active"),
    Tile("/zaken", "Zaken (logbestanden inzien)", "Cases (reviewing logs)", frozenset({"directie", "ict"})),
    Tile("/logboek", "Toegangslogboek", "Access ledger", frozenset({"directie", "ict", "fg", "mr"})),
    Tile("/gebruikers", "Gebruikers", "Accounts", frozenset({"ict"})),
)


def tiles_for(role: str) -> list[Tile]:
    return [t for t in TILES if role in t.roles]
