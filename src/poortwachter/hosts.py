"""Host name normalisation: the one place where a hostile host string becomes a canonical key.

Every host the gateway decides on (CONNECT target, TLS SNI, Host header, absolute URL) passes
through `normalize_host` exactly once before it is matched against category lists, which hold
lower-case ASCII names and some IPv4 literals. The rules follow what browsers do (WHATWG URL
host parsing with UTS46) wherever that is safe, and reject where parsers disagree, because a
disagreement between the gateway and the upstream/client is how filters get bypassed.

Decisions (each one pinned by tests/unit/test_hosts.py):
- Output: lower-case ASCII, no trailing dot(s), no port, no userinfo, no brackets.
- Userinfo: everything up to the single "@" is dropped ("evil.com@good.com" -> good.com).
  More than one "@" is rejected: parsers disagree on which one separates the userinfo.
- Percent-decoding happens once, after userinfo and port are split off, so "%40" is never a
  userinfo separator and "%3a" never a port separator. If decoding yields a character that is
  not allowed in a host ("@", ":", "%", "/", controls, ...) the host is rejected, not re-parsed.
  An encoded dot ("%2e") becomes a label separator, as in browsers.
- Labels may hold ASCII letters, digits, "-" and "_" (real DNS names use "_" and "--", e.g.
  "r3---sn-abc.googlevideo.com"); anything else that survives UTS46 mapping is rejected.
- IDN: UTS46 non-transitional mapping ("faß" keeps its ß), then IDNA 2008 (package `idna`).
  Where IDNA 2008 refuses a code point that UTS46 accepts (emoji, symbols) we encode the mapped
  label as punycode anyway, as browsers do, so lists can match it; bidi and joiner (ZWJ/ZWNJ)
  violations and labels starting with a combining mark stay rejected. "xn--" labels must be
  canonical A-labels (decode and re-encode to themselves), else rejected ("xn--zz").
- A name whose last label is a number (decimal, or "0x" hex) must be an IPv4 address in one of
  the forms inet_aton/browsers accept ("3232235777", "0300.0250.0.1", "0xc0a80001", "127.1");
  anything else ("256.1.1.1", "foo.123", "1.2.3.4.5") is rejected, never treated as a name.
- IPv6: with or without brackets (bare only when it has two or more ":"), canonical compressed;
  zone identifiers ("%eth0", "%25eth0") are rejected; IPv4-mapped (::ffff:a.b.c.d) becomes the
  dotted quad. IPv4-compatible and NAT64 forms stay IPv6.
- Ports: 1..65535, ASCII digits only; "host:" (empty port, allowed by RFC 3986) means no port.
"""

import functools
import ipaddress
import re
import unicodedata
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

import idna

__all__ = [
    "BadHost",
    "Url",
    "host_mismatch",
    "is_ip_literal",
    "normalize_host",
    "parse_url",
    "readable",
    "split_authority",
    "unicode_host",
]

MAX_HOST_LEN = 253
MAX_LABEL_LEN = 63
# Raw input may legitimately be longer than a host (userinfo, port, %XX triplets); the bound only
# keeps the work done on hostile input small and linear.
MAX_RAW_LEN = 1024
MAX_URL_LEN = 65536
# Per cache; worst case about _CACHE_SIZE * MAX_RAW_LEN characters of keys.
_CACHE_SIZE = 8192


class BadHost(ValueError):
    """The host cannot be normalised. The message says what is wrong but never repeats the input
    (privacy: it may be a pupil's URL; and log injection: it may hold CR/LF)."""


# The fast path: an already clean lower-case ASCII name whose last label is not numeric, or a
# canonical dotted quad. Both are returned unchanged without any further work.
_CLEAN_NAME = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*(?![0-9]+\Z|0x[0-9a-f]*\Z)[a-z0-9_-]{1,63}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CLEAN_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")

# Never part of a host or authority, before or after decoding: C0/C1 controls, DEL, whitespace,
# URL delimiters (a URL parser would end the authority there and see another host), surrogates.
_FORBIDDEN_RAW = re.compile(r"[\x00-\x20\x7f-\x9f/\\?#\s\ud800-\udfff]")
# After decoding and mapping: any ASCII other than a-z 0-9 - _ and the label separator.
_FORBIDDEN_ASCII = re.compile(r"[\x00-\x2c/\x3a-\x5e`\x7b-\x7f]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PORT = re.compile(r"[0-9]{1,5}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_IPV4_PART = {16: re.compile(r"[0-9a-f]*"), 8: re.compile(r"[0-7]*"), 10: re.compile(r"[0-9]+")}


def _codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def normalize_host(raw: str) -> str:
    """Canonical form of a host (see the module docstring); raises BadHost."""
    try:
        return _normalize_cached(raw)
    except TypeError:
        if isinstance(raw, str):  # a bug, not bad input: let it show
            raise
        raise BadHost("host is not a string") from None  # unhashable, so not a str


def split_authority(authority: str) -> tuple[str, int | None]:
    """ "host:port", "[v6]:port", "user@host" -> (normalised host, port or None); raises BadHost."""
    try:
        return _split_authority_cached(authority)
    except TypeError:
        if isinstance(authority, str):
            raise
        raise BadHost("authority is not a string") from None


# Cache first: the same few thousand hosts come back all day, and a hit (~40 ns) is far cheaper
# than even the regex fast path. Errors are not cached, so a flood of bad hosts costs its (linear,
# bounded) parse every time but cannot grow memory beyond the cache size.
@functools.lru_cache(maxsize=_CACHE_SIZE)
def _normalize_cached(raw: str) -> str:
    if (
        type(raw) is str
        and len(raw) <= MAX_HOST_LEN
        and ((_CLEAN_NAME.fullmatch(raw) and "xn--" not in raw) or _CLEAN_IPV4.fullmatch(raw))
    ):
        return raw
    host, _port, is_v6 = _split_host_port(raw)
    return _canonical(host, is_v6)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _split_authority_cached(authority: str) -> tuple[str, int | None]:
    host, port, is_v6 = _split_host_port(authority)
    return _canonical(host, is_v6), port


def is_ip_literal(host: str) -> bool:
    """True for a normalised IPv4 dotted quad or IPv6 address."""
    if ":" in host:
        if "%" in host:
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return _CLEAN_IPV4.fullmatch(host) is not None


def host_mismatch(a: str, b: str) -> bool:
    """True when two hosts (e.g. SNI and Host header) do not name the same host.

    A host that cannot be normalised counts as a mismatch: the domain fronting check must not
    pass on something it could not read."""
    if a == b:
        return False
    try:
        return normalize_host(a) != normalize_host(b)
    except BadHost:
        return True


def unicode_host(host: str) -> str:
    """The host as people read it: the normalised host with every "xn--" label decoded by the idna
    package ("xn--bcherwurm-q9a.de" -> "bücherwurm.de"). For display only; matching always uses
    the normalised ASCII form, and a page that shows this form should show that one beside it,
    so a look-alike ("аpple.com" with a Cyrillic "а") cannot pass for the real name. A label idna
    will not decode (an emoji label, encoded as browsers do) stays as it is. Raises BadHost for
    what normalize_host refuses."""
    ascii_host = normalize_host(host)
    if "xn--" not in ascii_host:
        return ascii_host
    labels = ascii_host.split(".")
    for i, label in enumerate(labels):
        if label.startswith("xn--"):
            try:
                labels[i] = idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                pass
    return ".".join(labels)


def _split_host_port(raw: str) -> tuple[str, int | None, bool]:
    """Drop userinfo, split off the port. Returns (host still encoded, port, is IPv6 literal)."""
    if not isinstance(raw, str):
        raise BadHost("host is not a string")
    if not raw:
        raise BadHost("empty host")
    if len(raw) > MAX_RAW_LEN:
        raise BadHost("input too long")
    bad = _FORBIDDEN_RAW.search(raw)
    if bad:
        raise BadHost(f"forbidden character {_codepoint(bad.group())}")
    ats = raw.count("@")
    if ats > 1:
        raise BadHost("more than one '@': ambiguous userinfo")
    hostport = raw.partition("@")[2] if ats else raw
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise BadHost("unclosed '[' in IPv6 literal")
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise BadHost("unexpected characters after ']'")
        return hostport[1:end], _parse_port(rest[1:]), True
    colons = hostport.count(":")
    if colons == 0:
        return hostport, None, False
    if colons == 1:
        host, _, port = hostport.partition(":")
        return host, _parse_port(port), False
    return hostport, None, True  # bare IPv6: without brackets a port cannot be told apart


def _parse_port(port: str) -> int | None:
    if not port:
        return None
    if not _PORT.fullmatch(port):
        raise BadHost("invalid port")
    value = int(port)
    if not 0 < value <= 65535:
        raise BadHost("port out of range")
    return value


def _canonical(host: str, is_v6: bool) -> str:
    if not is_v6 and len(host) <= MAX_HOST_LEN and "xn--" not in host and _CLEAN_NAME.fullmatch(host):
        return host
    try:
        return _canonical_ipv6(host) if is_v6 else _canonical_name(host)
    except BadHost:
        raise
    except (UnicodeError, ValueError):  # idna.IDNAError is a UnicodeError
        # `from None`: the library's message quotes the input, keep it out of tracebacks.
        raise BadHost("not a valid internationalised domain name") from None


def _canonical_ipv6(host: str) -> str:
    if "%" in host:
        raise BadHost("'%' in IPv6 literal (zone identifier or percent-encoding) is not allowed")
    if not host:
        raise BadHost("empty IPv6 literal")
    try:
        addr = ipaddress.IPv6Address(host)
    except ValueError:
        raise BadHost("invalid IPv6 address") from None
    mapped = addr.ipv4_mapped
    return str(mapped) if mapped is not None else str(addr)


def _percent_decode(host: str) -> str:
    if _BAD_PERCENT.search(host):
        raise BadHost("malformed percent-encoding")
    try:
        return unquote_to_bytes(host).decode("utf-8")
    except UnicodeDecodeError:
        raise BadHost("percent-encoding is not valid UTF-8") from None


def _canonical_name(host: str) -> str:
    if "%" in host:
        host = _percent_decode(host)
        bad = _FORBIDDEN_RAW.search(host)
        if bad:
            raise BadHost(f"forbidden character {_codepoint(bad.group())}")
    # Checked before the (costly) mapping too: only UTS46-ignored characters such as soft hyphens
    # could shrink a longer input below the limit, and no real host is spelled that way.
    if len(host) > MAX_HOST_LEN and len(host.rstrip(".")) > MAX_HOST_LEN:
        raise BadHost("host name longer than 253 characters")
    if host.isascii():
        host = host.lower()
    else:
        # UTS46 mapping: case folding, fullwidth forms and ideographic dots ("．", "。") to ASCII.
        host = idna.uts46_remap(host, std3_rules=False, transitional=False)
    host = host.rstrip(".")
    if not host:
        raise BadHost("empty host")
    bad = _FORBIDDEN_ASCII.search(host)
    if bad:
        raise BadHost(f"forbidden character {_codepoint(bad.group())}")
    if len(host) > MAX_HOST_LEN:  # an A-label is never shorter than its U-label
        raise BadHost("host name longer than 253 characters")
    labels = host.split(".")
    for i, label in enumerate(labels):
        if not label:
            raise BadHost("empty label")
        if label.isascii():
            if len(label) > MAX_LABEL_LEN:
                raise BadHost("label longer than 63 characters")
            if label.startswith("xn--"):
                _check_alabel(label)
        else:
            labels[i] = _to_alabel(label)
    host = ".".join(labels)
    if len(host) > MAX_HOST_LEN:
        raise BadHost("host name longer than 253 characters")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return _parse_ipv4(labels)
    return host


def _to_alabel(label: str) -> str:
    """UTS46-mapped Unicode label -> A-label."""
    if len(label) > MAX_LABEL_LEN:  # an A-label is never shorter than its U-label
        raise BadHost("label longer than 63 characters")
    if label.startswith("xn--"):
        raise BadHost("label starts with 'xn--' but is not punycode")
    try:
        alabel = idna.alabel(label).decode("ascii")
    except (idna.IDNABidiError, idna.InvalidCodepointContext):
        raise BadHost("internationalised label breaks bidi or joiner rules") from None
    except idna.IDNAError:
        # IDNA 2008 refuses code points that UTS46 (and so every browser) accepts, e.g. emoji.
        # The browser would resolve the punycode of the mapped label, so that is the key to match.
        if unicodedata.category(label[0]).startswith("M"):
            raise BadHost("label starts with a combining mark") from None
        alabel = "xn--" + label.encode("punycode").decode("ascii")
    if len(alabel) > MAX_LABEL_LEN:
        raise BadHost("label longer than 63 characters")
    return alabel


def _check_alabel(label: str) -> None:
    """An "xn--" label must be the canonical encoding of a valid, already mapped U-label."""
    try:
        ulabel = label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError, IndexError, OverflowError):
        raise BadHost("invalid punycode") from None
    if not ulabel or ulabel.isascii():
        raise BadHost("invalid punycode: no non-ASCII content")
    try:
        mapped = idna.uts46_remap(ulabel, std3_rules=False, transitional=False)
    except idna.IDNAError:
        raise BadHost("invalid punycode: disallowed code point") from None
    if mapped != ulabel or _FORBIDDEN_ASCII.search(ulabel) or "." in ulabel:
        raise BadHost("invalid punycode: not in canonical form")
    if _to_alabel(ulabel) != label:
        raise BadHost("invalid punycode: not in canonical form")


def _parse_ipv4(parts: list[str]) -> str:
    """WHATWG/inet_aton IPv4 forms -> dotted quad; BadHost for anything else."""
    if len(parts) > 4:
        raise BadHost("numeric host with more than four parts is not an IPv4 address")
    numbers = [_ipv4_number(p) for p in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise BadHost("IPv4 address out of range")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str) -> int:
    if part.startswith("0x"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not _IPV4_PART[base].fullmatch(digits):
        raise BadHost("numeric last label but not a valid IPv4 address")
    return int(digits, base) if digits else 0


# ---- URLs -------------------------------------------------------------------------------------


class Url(NamedTuple):
    scheme: str  # "http" or "https"
    host: str  # normalised
    port: int | None  # None when absent or the scheme's default
    path: str  # starts with "/", includes the query, no fragment


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_AUTHORITY_END = re.compile(r"[/?#\\]")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_PCT_TRIPLET = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORT = {"http": 80, "https": 443}


def parse_url(url: str) -> Url:
    """Absolute URL, scheme-less "example.com/path", or CONNECT form "host:443" -> Url.

    Without a scheme, port 443 means https and anything else http. The authority ends at the
    first "/", "?", "#" or "\\" (browsers treat "\\" as "/" in http(s) URLs, so
    "http://evil.com\\@good.com/" is evil.com). Raises BadHost."""
    if not isinstance(url, str):
        raise BadHost("URL is not a string")
    if len(url) > MAX_URL_LEN:
        raise BadHost("URL too long")
    bad = _URL_FORBIDDEN.search(url)
    if bad:
        raise BadHost(f"forbidden character {_codepoint(bad.group())} in URL")
    scheme: str | None = None
    m = _SCHEME.match(url)
    if m:
        scheme = m.group(1).lower()
        if scheme not in _DEFAULT_PORT:
            raise BadHost("unsupported URL scheme")
        rest = url[m.end() :]
    else:
        rest = url[2:] if url.startswith("//") else url
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    host, port = split_authority(authority)
    if scheme is None:
        scheme = "https" if port == 443 else "http"
    if port == _DEFAULT_PORT[scheme]:
        port = None
    return Url(scheme, host, port, _normalize_path(tail))


def readable(value: str) -> str:
    """A site ("host", "host/path") or URL as people read it, on a console page or in an e-mail:
    an internationalised host in Unicode with its ASCII (punycode) form beside it,
    "bücherwurm.de (xn--bcherwurm-q9a.de)", so a look-alike cannot pass for the name it imitates.
    Anything else (an ASCII host, a category line, something that is not a valid host) is
    returned as it is."""
    if not value or any(ch.isspace() for ch in value):
        return value
    try:
        if "://" in value:
            url = parse_url(value)
            shown = unicode_host(url.host)
            if shown == url.host:
                return value
            port = f":{url.port}" if url.port else ""
            return f"{url.scheme}://{shown}{port}{url.path} ({url.host})"
        host, slash, path = value.partition("/")
        ascii_host = normalize_host(host)
        shown = unicode_host(ascii_host)
    except BadHost:
        return value
    if shown == ascii_host:
        return value
    return f"{shown}{slash}{path} ({ascii_host})"


def _normalize_path(tail: str) -> str:
    """Drop the fragment, "\\" -> "/", decode %XX of unreserved characters only (RFC 3986 6.2.2),
    upper-case the hex of the rest, resolve "." and ".." segments so "/ok/../blocked" matches
    "/blocked" as the server will see it. Case is kept."""
    tail = tail.partition("#")[0]
    path, sep, query = tail.partition("?")
    path = path.replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path
    if "%" in path:
        path = _PCT_TRIPLET.sub(_decode_unreserved, path)
    if "/." in path:
        path = _remove_dot_segments(path)
    if "%" in query:
        query = _PCT_TRIPLET.sub(_decode_unreserved, query)
    return path + sep + query


def _decode_unreserved(m: re.Match[str]) -> str:
    ch = chr(int(m.group(1), 16))
    return ch if ch in _UNRESERVED else "%" + m.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    segments = path.split("/")[1:]
    out: list[str] = []
    for seg in segments:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    result = "/" + "/".join(out)
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result
