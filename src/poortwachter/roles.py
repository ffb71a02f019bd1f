"""The roles of the console's accounts (004 art. 11a, 12) and their titles, defined once.

The users table's CHECK constraint, the CLI's `--role` choices, the console's pages and the
workflow's "not allowed for this role" messages are all made from the table below; its order is
the order of the constraint's list, so it must match the migrations.

These are the roles of people who log in to the console. They are not the policy's roles of a
client on the network (pupil, staff, guest: `policy.model.Role`), which rules and the scope of a
grant name; the console shows those as GATEWAY_ROLES (console/policyview.py).

Standard library only: the CLI and the store import it without loading anything else.
"""

from __future__ import annotations

from typing import NamedTuple


class RoleTitle(NamedTuple):
    label: str     # on its own: a menu, a table cell, "ingelogd als ..."
    in_text: str   # inside a sentence or after a name: "Jan de Vries (docent / teacher)"


_TITLES: dict[str, RoleTitle] = {
    "ict": RoleTitle("ICT", "ICT"),
    "leidinggevende": RoleTitle("Leidinggevende / Manager", "leidinggevende / manager"),
    "docent": RoleTitle("Docent / Teacher", "docent / teacher"),
    "directie": RoleTitle("Directie / School management", "directie / management"),
    "examencoordinator": RoleTitle("Examencoördinator / Exam coordinator", "examencoördinator / exam coordinator"),
    "fg": RoleTitle("Functionaris gegevensbescherming / Data protection officer",
                    "functionaris gegevensbescherming / data protection officer"),
    "mr": RoleTitle("Medezeggenschapsraad / Participation council", "medezeggenschapsraad / participation council"),
}

ROLES: tuple[str, ...] = tuple(_TITLES)
ROLE_TITLES: dict[str, str] = {role: title.label for role, title in _TITLES.items()}
ROLE_TITLES_IN_TEXT: dict[str, str] = {role: title.in_text for role, title in _TITLES.items()}
