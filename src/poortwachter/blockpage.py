"""The page a pupil or teacher sees when a request is blocked: Dutch first, English second.

It names the category, the rule and the reglement article, and links to the unblock request form
with the blocked URL, category and rule filled in.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from .decide import Verdict

REASONS = {
    "uitsluiting": ("Je bent tijdelijk uitgesloten van het schoolnetwerk.",
                    "You are temporarily excluded from the school network."),
    "niet-te-openen": ("Deze site is gevaarlijk en kan niet worden opengezet.",
                       "This site is dangerous and cannot be unblocked."),
    "examen": ("In dit lokaal loopt een examen: alleen de examensites zijn bereikbaar.",
               "An exam is running in this room: only the exam sites can be reached."),
    "lokaal-allowlist": ("Je docent heeft dit lokaal beperkt tot de sites die hij of zij aangeeft.",
                         "Your teacher has limited this room to the sites they point to."),
    "onbekend-netwerk": ("Dit apparaat hoort bij geen enkel netwerk van de school.",
                         "This device is not on any of the school's networks."),
}

PAGE = """<!doctype html>
<html lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Geblokkeerd / Blocked</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem;
       color: #1a1a1a; background: #fff; line-height: 1.5; }}
h1 {{ color: #8a1c1c; }}
.en {{ color: #444; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }}
dt {{ font-weight: 600; }}
a.button {{ display: inline-block; padding: .6rem 1rem; background: #1d4f91; color: #fff;
            border-radius: .3rem; text-decoration: none; }}
a.button:focus {{ outline: 3px solid #1a1a1a; outline-offset: 3px; }}
@media (max-width: 30rem) {{ dl {{ grid-template-columns: 1fr; }} dd {{ margin: 0 0 .5rem 0; }} }}
</style>
</head>
<body>
<main>
<h1>Deze pagina is geblokkeerd</h1>
<p>{reason_nl}</p>
<p class="en" lang="en"><strong>This page is blocked.</strong> {reason_en}</p>
<dl>
<dt>Categorie / Category</dt><dd id="category">{category}</dd>
<dt>Regel / Rule</dt><dd id="rule">{rule}</dd>
<dt>Reglement</dt><dd id="source">{source}</dd>
</dl>
{unblock}
<p>Vragen? Neem contact op met {contact}.<br><span class="en" lang="en">Questions? Contact {contact}.</span></p>
</main>
</body>
</html>
"""

UNBLOCK = """<p>Hoort deze site bij de les of heb je hem nodig voor je werk? Vraag via je leidinggevende
een (tijdelijke) deblokkering aan bij ICT.<br><span class="en" lang="en">Is this site part of the lesson or
needed for your work? Ask for a (temporary) unblock through your manager.</span></p>
<p><a class="button" id="unblock" href="{href}">Deblokkering aanvragen / Request an unblock</a></p>"""


def render(verdict: Verdict, url: str, title: str | None, unblock_url: str, contact: str) -> bytes:
    reason_nl, reason_en = REASONS.get(verdict.rule, (
        "Deze site valt onder de regels van het reglement van de school.",
        "This site falls under the school's rules."))
    category = title or verdict.category or "geen / none"
    unblock = ""
    if verdict.rule not in ("niet-te-openen", "uitsluiting"):
        query = urlencode({"url": url, "category": verdict.category or "", "rule": verdict.rule})
        sep = "&" if "?" in unblock_url else "?"
        unblock = UNBLOCK.format(href=escape(f"{unblock_url}{sep}{query}"))
    html = PAGE.format(reason_nl=escape(reason_nl), reason_en=escape(reason_en), category=escape(category),
                       rule=escape(verdict.rule), source=escape(verdict.source or "-"),
                       unblock=unblock, contact=escape(contact))
    return html.encode("utf-8")
