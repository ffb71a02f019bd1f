"""Host names and URL keys as the category lists compare them.

One module for both sides of a comparison: the compiler normalises list entries with these
functions and the index normalises queries with the same ones, so the two cannot drift apart.
An internationalised name goes through poortwachter.hosts.normalize_host, the normaliser every
request passes (UTS-46, IDNA 2008): "faß.de" is "xn--fa-hia.de" in a list as in a request.
"""

from __future__ import annotations

import re

from poortwachter.hosts import BadHost, normalize_host

# A DNS label as seen in real block lists: letters, digits, '-' and '_' (the latter is not a
# valid host name character, but occurs in real DNS names and in the lists), no leading or
# trailing hyphen.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
# At least two labels; the top-level label must look like a TLD (letters, or an IDNA A-label),
# which rules out "snapchat-com", "anitokyo.t" and numeric garbage.
_HOST_RE = re.compile(rf"(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_MAX_NAME = 253
# Characters of an authority or URL that normalize_host would take apart (userinfo, port, IPv6
# brackets, percent-encoding, a path): in a list they make the line malformed, not a name.
_NOT_IN_A_NAME = re.compile(r"[@:%\[\]/\\?#\s]")

# squidGuard strips "www.", "web.", "ftp." (optionally followed by digits) from URL hosts.
# We only strip when what remains still has a dot, so "web.de" stays "web.de" (squidGuard
# would reduce it to "de"); entries and queries go through the same rule, so they stay aligned.
_WWW_RE = re.compile(r"(?:www|web|ftp)[0-9]*\.(?=[^.]+\.)")
_PORT_RE = re.compile(r":[0-9]*$")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*://")

# Two host names glued together ("code.jquery.comembed.redtube.com"): an inner label that starts
# with a common TLD and continues. Only a prefilter; see glued_splits().
_GLUED_RE = re.compile(r"\.(?:com|net|org)[a-z0-9_-]+\.")


def normalise_name(text: str) -> str | None:
    """Lower-case host name or IPv4 literal, or None when `text` is not a usable name.

    A name with non-ASCII characters or an "xn--" label is spelled by normalize_host, as a request
    for it would be; one it refuses (a label that is not canonical punycode) is not usable.
    """
    name = text.lower()
    name = name.removesuffix(".")
    if not name.isascii() or "xn--" in name:
        if _NOT_IN_A_NAME.search(name):
            return None
        try:
            name = normalize_host(name)
        except BadHost:
            return None
    if len(name) > _MAX_NAME:
        return None
    if _HOST_RE.fullmatch(name) or _IPV4_RE.fullmatch(name):
        return name
    return None


def is_ipv4(name: str) -> bool:
    return _IPV4_RE.fullmatch(name) is not None


def domain_key(name: str) -> str:
    """Trie key for a normalised name: characters reversed, plus a trailing dot.

    "www.example.com" -> "moc.elpmaxe.www." The trailing dot makes every stored key end on a
    label boundary, so the keys that are prefixes of a query's key are exactly the listed
    suffix domains of the query host ("moc.elpmaxe." is a prefix of "moc.elpmaxe.www.", but not
    of "moc.elpmaxea."). Reversing characters instead of labels gives the same boundaries and
    costs one slice per lookup instead of a split and a join.
    """
    return name[::-1] + "."


def strip_www(host: str) -> str:
    """Drop a leading www./web./ftp. (+digits) label, as squidGuard does for URL lists."""
    if host[:3] in ("www", "web", "ftp"):
        match = _WWW_RE.match(host)
        if match is not None:
            return host[match.end() :]
    return host


def strip_port(host: str) -> str:
    """Drop ":port" from "host:port"; leave IPv6 literals (more than one colon) alone."""
    if host.count(":") == 1:
        return _PORT_RE.sub("", host)
    return host


def url_entry_key(text: str) -> str | None:
    """Trie key ("host/path") for a line of a UT1 `urls` file, or None when malformed."""
    entry = _SCHEME_RE.sub("", text.lower())
    host, slash, path = entry.partition("/")
    name = normalise_name(strip_port(host))
    if name is None:
        return None
    return strip_www(name) + slash + path


def url_query_key(host: str, path: str) -> str:
    """Key of a request in the urls trie: normalised host without www./port, plus the path."""
    return strip_www(strip_port(host.lower())) + path.lower()


def looks_glued(name: str) -> bool:
    """True when an inner label of `name` starts with com/net/org and goes on."""
    return _GLUED_RE.search(name) is not None


def glued_splits(name: str) -> list[tuple[str, str]]:
    """Possible (first, second) host names when `name` looks like two names glued together.

    "code.jquery.comembed.redtube.com" -> [("code.jquery.com", "embed.redtube.com")]. The split
    is only a suspicion; the caller confirms it against the rest of the list.
    """
    if not looks_glued(name):
        return []
    labels = name.split(".")
    splits: list[tuple[str, str]] = []
    for i in range(1, len(labels) - 1):
        label = labels[i]
        for tld in ("com", "net", "org"):
            if label.startswith(tld) and len(label) > len(tld):
                first = ".".join(labels[:i] + [tld])
                second = ".".join([label[len(tld) :]] + labels[i + 1 :])
                if normalise_name(second) is not None:
                    splits.append((first, second))
    return splits
