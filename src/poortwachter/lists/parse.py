"""Line parsers for the list formats: UT1 domains/urls/expressions and hosts files.

Parsers never raise on bad input: a malformed line is recorded in a Tally and skipped, because
one broken line in a 60,000-line list must not keep a school from updating its lists.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from poortwachter.lists.names import normalise_name, url_entry_key

MAX_EXAMPLES = 5
_EXAMPLE_CHARS = 120

# Names that hosts files map for their own sake (the standard header of /etc/hosts), not
# entries of the block list. Skipped silently: they are not malformed either.
HOSTS_BOILERPLATE = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",
    }
)


@dataclass
class Tally:
    """Malformed lines of one list file: a count and the first few for the report."""

    count: int = 0
    examples: list[dict[str, object]] = field(default_factory=list)

    def add(self, line_no: int | None, text: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            example: dict[str, object] = {"text": text[:_EXAMPLE_CHARS], "reason": reason}
            if line_no is not None:
                example["line"] = line_no
            self.examples.append(example)


def _content_lines(lines: Iterable[str], strip_inline_comment: bool) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of every line that is not blank and not a comment."""
    for line_no, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0] if strip_inline_comment else raw
        text = text.strip()
        if text and not text.startswith("#"):
            yield line_no, text


def iter_domains(lines: Iterable[str], tally: Tally) -> Iterator[str]:
    """Names of a one-domain-per-line file (UT1 `domains`, or a plain list)."""
    for line_no, text in _content_lines(lines, strip_inline_comment=True):
        if len(text.split()) != 1:
            tally.add(line_no, text, "more than one field")
            continue
        name = normalise_name(text)
        if name is None:
            tally.add(line_no, text, "not a host name or IPv4 address")
            continue
        yield name


def iter_hosts(lines: Iterable[str], tally: Tally) -> Iterator[str]:
    """Names of a hosts-format file ("0.0.0.0 name [name...]").

    Extra names on a line are legal hosts syntax and kept. A line with any unusable name is
    counted once as malformed; its usable names are still kept (dropping them would only lose
    entries the list author meant). A name "www.<domain>" also yields <domain> (when that still
    has two labels): a hosts file can only name hosts, and whoever lists the www name of a site
    means the site, which its bare name reaches as well (docs/lists.md).
    """
    for line_no, text in _content_lines(lines, strip_inline_comment=True):
        fields = text.split()
        try:
            ipaddress.ip_address(fields[0])
        except ValueError:
            tally.add(line_no, text, "does not start with an IP address")
            continue
        if len(fields) == 1:
            tally.add(line_no, text, "no host name")
            continue
        bad: list[str] = []
        for field_text in fields[1:]:
            if field_text.lower() in HOSTS_BOILERPLATE:
                continue
            name = normalise_name(field_text)
            if name is None:
                bad.append(field_text)
                continue
            yield name
            if name.startswith("www.") and "." in name[4:]:
                yield name[4:]
        if bad:
            tally.add(line_no, text, "not a host name: " + " ".join(bad))


def iter_urls(lines: Iterable[str], tally: Tally) -> Iterator[str]:
    """Keys ("host/path") of a UT1 `urls` file. '#' is legal inside a URL, so only whole-line
    comments count."""
    for line_no, text in _content_lines(lines, strip_inline_comment=False):
        if len(text.split()) != 1:
            tally.add(line_no, text, "more than one field")
            continue
        key = url_entry_key(text)
        if key is None:
            tally.add(line_no, text, "host part is not a host name or IPv4 address")
            continue
        yield key


def iter_expressions(lines: Iterable[str], tally: Tally) -> Iterator[str]:
    """Patterns of a UT1 `expressions` file that compile under Python `re`.

    The lists are POSIX extended regular expressions; the common subset compiles unchanged.
    One that does not is skipped and counted, as squidGuard skips one regcomp rejects. They are
    matched case-sensitively against the lower-cased URL, as squidGuard does (REG_EXTENDED only).
    """
    for line_no, raw in enumerate(lines, 1):
        pattern = raw.rstrip("\r\n")
        if not pattern.strip() or pattern.lstrip().startswith("#"):
            continue
        try:
            compiled = re.compile(pattern)
            # The index joins a category's patterns as "(?:p1)|(?:p2)": a pattern must also be
            # valid there, which rules out global flags such as "(?i)" (only legal at the start).
            re.compile(f"(?:{pattern})")
        except re.error as exc:
            tally.add(line_no, pattern, f"does not compile: {exc}")
            continue
        if compiled.search("") is not None:
            # A pattern that matches the empty string matches every URL: one such line would
            # put the whole web in the category.
            tally.add(line_no, pattern, "matches every URL")
            continue
        yield pattern


def parse_usage(lines: Iterable[str]) -> list[str]:
    """List types of a UT1 `usage` file: "black" and/or "white". The file's other lines are
    alias keywords ("adult", "porn"), not types."""
    types: list[str] = []
    for _, text in _content_lines(lines, strip_inline_comment=True):
        for word in text.lower().split():
            if word in ("black", "white") and word not in types:
                types.append(word)
    return types


def parse_global_usage(lines: Iterable[str]) -> dict[str, dict[str, str]]:
    """English and Dutch names and English description per category from UT1 `global_usage`."""
    wanted = {"NAME EN": "name_en", "NAME NL": "name_nl", "DESC EN": "desc_en"}
    result: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in lines:
        line = raw.strip()
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "NAME":
            current = result.setdefault(value, {})
        elif current is not None and key in wanted:
            current[wanted[key]] = value
    return result
