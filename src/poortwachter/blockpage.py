"""The page a pupil or teacher sees when a request is blocked: Dutch first, English second.

It names the category, the rule and the reglement article, and links to the unblock request form
with the blocked URL, category and rule filled in. A download refused under a download limit
(004 art. 13) gets the same page with its own heading, the maximum size and until when it holds;
a limit is not lifted by an unblock request, so it has no such link. Neither has the page of a
filter that is not ready (its category lists are missing): only ICT can install them.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from .decide import NOT_READY, Verdict

LOCAL = ZoneInfo("Europe/Amsterdam")   # the school's wall clock, as in the timetable
DOWNLOAD_LIMIT = "download_limit"      # the rule of a response refused under a download limit

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
    NOT_READY: ("Het filter van de school is nog niet gereed: de categorielijsten waarop het filtert zijn "
                "niet geïnstalleerd. Tot ICT ze heeft geïnstalleerd werkt alleen de schoolomgeving. "
                "Meld dit bij ICT.",
                "The school's filter is not ready: the category lists it filters on are not installed. "
                "Until ICT installs them, only the school environment works. Please tell ICT."),
}

# Rules whose page has its own heading instead of "Deze pagina is geblokkeerd".
HEADINGS = {
    NOT_READY: ("Filter niet gereed / Filter not ready", "Het filter is nog niet gereed",
                "The filter is not ready."),
}
BLOCKED = ("Geblokkeerd / Blocked", "Deze pagina is geblokkeerd", "This page is blocked.")

# Blocks an unblock request cannot lift, so their page has no link to the form: a category that is
# never opened, an exclusion (directie decides), an exam (nothing overrides it while it runs) and a
# filter without its lists (ICT installs them).
NO_UNBLOCK = frozenset({"niet-te-openen", "uitsluiting", "examen", NOT_READY})

PAGE = """<!doctype html>
<html lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
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
<h1>{heading_nl}</h1>
<p>{reason_nl}</p>
<p class="en" lang="en"><strong>{heading_en}</strong> {reason_en}</p>
<dl>
{facts}
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
    if verdict.rule not in NO_UNBLOCK:
        query = urlencode({"url": url, "category": verdict.category or "", "rule": verdict.rule})
        sep = "&" if "?" in unblock_url else "?"
        unblock = UNBLOCK.format(href=escape(f"{unblock_url}{sep}{query}"))
    facts = _facts(("Categorie / Category", "category", category), ("Regel / Rule", "rule", verdict.rule),
                   ("Reglement", "source", verdict.source or "-"))
    title_text, heading_nl, heading_en = HEADINGS.get(verdict.rule, BLOCKED)
    html = PAGE.format(title=title_text, heading_nl=heading_nl, heading_en=heading_en, reason_nl=escape(reason_nl),
                       reason_en=escape(reason_en), facts=facts, unblock=unblock, contact=escape(contact))
    return html.encode("utf-8")


def render_download_limit(verdict: Verdict, until: dt.datetime, max_bytes: int, contact: str) -> bytes:
    """The page for a response larger than the client's download limit allows."""
    size_nl, size_en = human_size(max_bytes)
    when = until.astimezone(LOCAL).strftime("%d-%m-%Y %H:%M")
    reason_nl = (f"Vanaf dit apparaat is overmatig gedownload. Tot {when} kun je geen bestanden ophalen die "
                 f"groter zijn dan {size_nl}.")
    reason_en = (f"This device has downloaded excessively. Until {when} you cannot fetch files larger "
                 f"than {size_en}.")
    facts = _facts(("Regel / Rule", "rule", verdict.rule), ("Reglement", "source", verdict.source or "-"),
                   ("Maximum", "max-size", size_nl if size_nl == size_en else f"{size_nl} / {size_en}"),
                   ("Tot / Until", "until", when))
    html = PAGE.format(title="Download geblokkeerd / Download blocked", heading_nl="Deze download is te groot",
                       heading_en="This download is too large.", reason_nl=escape(reason_nl),
                       reason_en=escape(reason_en), facts=facts, unblock="", contact=escape(contact))
    return html.encode("utf-8")


def limit_source(policy: object) -> str:
    """The article behind download limits: the policy's sensor source text, if it has one
    (`sensor.excessive_download.source`, else `sensor.source`); "" otherwise."""
    sensor = getattr(policy, "sensor", None)
    for holder in (getattr(sensor, "excessive_download", None), sensor):
        source = getattr(holder, "source", None)
        if isinstance(source, str) and source.strip():
            return source.strip()
    return ""


def human_size(n: int) -> tuple[str, str]:
    """A byte count in decimal units, Dutch ("1,5 GB") and English ("1.5 GB")."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            value = f"{n / size:.1f}".removesuffix(".0")
            return f"{value.replace('.', ',')} {unit}", f"{value} {unit}"
    return f"{n} bytes", f"{n} bytes"


def _facts(*rows: tuple[str, str, str]) -> str:
    return "\n".join(f'<dt>{label}</dt><dd id="{key}">{escape(value)}</dd>' for label, key, value in rows)
