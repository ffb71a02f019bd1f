"""Hostile tests for host normalisation (poortwachter.hosts).

The tables pin every decision documented in the module docstring; the hypothesis properties
check that nothing but BadHost ever escapes, that the output is a fixed point, and that the
cheap fast path never disagrees with the full parse.
"""

import ipaddress
import re
import traceback

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poortwachter import hosts
from poortwachter.hosts import (
    BadHost,
    Url,
    host_mismatch,
    is_ip_literal,
    normalize_host,
    parse_url,
    split_authority,
)

# ---- tables -----------------------------------------------------------------------------------

VALID: list[tuple[str, str]] = [
    # case and trailing dots
    ("example.com", "example.com"),
    ("Example.COM", "example.com"),
    ("Example.COM.", "example.com"),
    ("example.com...", "example.com"),  # every trailing dot goes
    ("WWW.EXAMPLE.COM", "www.example.com"),
    ("localhost", "localhost"),
    # underscores and odd-but-real hyphens are DNS reality
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("a_b.example.com", "a_b.example.com"),
    ("r3---sn-5hne6nzk.googlevideo.com", "r3---sn-5hne6nzk.googlevideo.com"),
    ("-foo.blogspot.com", "-foo.blogspot.com"),
    # labels that start with digits are names as long as the LAST label is not numeric
    ("123.foo", "123.foo"),
    ("1.2.3.4a", "1.2.3.4a"),
    ("0xg.com", "0xg.com"),
    # ports and userinfo
    ("example.com:8443", "example.com"),
    ("example.com:", "example.com"),  # RFC 3986 allows an empty port
    ("example.com:00080", "example.com"),
    ("user:pw@example.com:8443", "example.com"),
    ("user@example.com", "example.com"),
    ("@example.com", "example.com"),
    ("evil.com@good.com", "good.com"),
    ("good.com@evil.com", "evil.com"),
    ("user%40x@good.com", "good.com"),  # an encoded "@" inside userinfo is just userinfo
    ("u:p@[::1]:80", "::1"),
    # percent-decoding, applied once, after userinfo and port are split off
    ("%65xample.com", "example.com"),
    ("%45XAMPLE.COM", "example.com"),
    ("exa%6dple.com", "example.com"),
    ("example%2ecom", "example.com"),  # encoded dot separates labels, as in browsers
    ("example%2Ecom", "example.com"),
    ("example.com%2e", "example.com"),
    ("b%C3%BCcher.de", "xn--bcher-kva.de"),
    ("example%ef%bc%8ecom", "example.com"),  # encoded fullwidth dot
    ("%31%32%37.0.0.1", "127.0.0.1"),
    # IDN, UTS46 mapping, punycode
    ("bücher.de", "xn--bcher-kva.de"),
    ("Bücher.DE.", "xn--bcher-kva.de"),
    ("BÜCHER.de", "xn--bcher-kva.de"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
    ("xn--bcher-kva.xn--bcher-kva", "xn--bcher-kva.xn--bcher-kva"),
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("faß.de", "xn--fa-hia.de"),  # non-transitional: ß is kept, not folded to "ss"
    ("xn--zca.de", "xn--zca.de"),
    ("ΑΒΓ.gr", "xn--mxacd.gr"),
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("日本。jp", "xn--wgv71a.jp"),  # ideographic full stop is a label separator
    ("ＥＸＡＭＰＬＥ．ｃｏｍ", "example.com"),  # fullwidth letters and dot
    ("ｘｎ－－ｂｃｈｅｒ－ｋｖａ.de", "xn--bcher-kva.de"),
    ("exa\u00admple.com", "example.com"),  # soft hyphen is ignored by UTS46
    ("ex\u200bample.com", "example.com"),  # so is zero-width space
    ("ⓔxample.com", "example.com"),
    ("\u212aids.com", "kids.com"),  # Kelvin sign
    ("اب.com", "xn--mgbc.com"),
    # mixed scripts are NOT folded to their look-alikes: homographs stay distinct hosts
    ("pаypal.com", "xn--pypal-4ve.com"),  # Cyrillic а
    ("gοogle.com", "xn--gogle-rce.com"),  # Greek ο
    ("аррӏе.com", "xn--80ak6aa92e.com"),  # all Cyrillic
    # UTS46-valid but IDNA2008-disallowed (emoji): punycode, as browsers resolve it
    ("💩.la", "xn--ls8h.la"),
    ("xn--ls8h.la", "xn--ls8h.la"),
    # IPv4 in every form inet_aton and browsers accept
    ("127.0.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("127.0.0.1:8080", "127.0.0.1"),
    ("3232235777", "192.168.1.1"),
    ("0300.0250.0.1", "192.168.0.1"),
    ("0xc0.0xa8.0.1", "192.168.0.1"),
    ("0XC0.0XA8.0.1", "192.168.0.1"),
    ("0xc0a80001", "192.168.0.1"),
    ("127.1", "127.0.0.1"),
    ("10.1.2", "10.1.0.2"),
    ("0x7f.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0127.0.0.1", "87.0.0.1"),  # octal: a filter reading "127..." would be wrong
    ("0.0.0.0", "0.0.0.0"),
    ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"),  # WHATWG: "0x" is the number 0
    ("1.2.3.0x", "1.2.3.0"),
    ("4294967295", "255.255.255.255"),
    ("１２７．０．０．１", "127.0.0.1"),  # fullwidth digits map to ASCII before the IPv4 parse
    # IPv6
    ("::1", "::1"),
    ("[::1]", "::1"),
    ("[::1]:443", "::1"),
    ("[::1]:", "::1"),
    ("0:0:0:0:0:0:0:1", "::1"),
    ("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
    ("2001:0db8:0000::0001", "2001:db8::1"),
    ("::1:443", "::1:443"),  # bare IPv6: the last group is an address group, never a port
    ("::ffff:1.2.3.4", "1.2.3.4"),  # IPv4-mapped -> the IPv4 lists match
    ("[::FFFF:102:304]", "1.2.3.4"),
    ("[::ffff:7f00:1]:80", "127.0.0.1"),
    ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),  # IPv4-translated stays IPv6
    ("::1.2.3.4", "::102:304"),  # IPv4-compatible (deprecated) stays IPv6
    ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),  # NAT64 stays IPv6
    # length limits, at the edge
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),  # 253
    (".".join(["a" * 63] * 3 + ["b" * 61]) + ".", ".".join(["a" * 63] * 3 + ["b" * 61])),
]

# (raw input, a fragment of the expected message: says what is wrong)
INVALID: list[tuple[str, str]] = [
    # empty
    ("", "empty"),
    (".", "empty"),
    ("...", "empty"),
    ("a..b", "empty label"),
    (".example.com", "empty label"),
    ("%2e", "empty"),
    ("%2e.com", "empty label"),
    ("example.com@", "empty"),
    (":80", "empty"),
    ("[]", "empty"),
    # forbidden characters, raw
    ("exa mple.com", "U+0020"),
    (" example.com", "U+0020"),
    ("example.com ", "U+0020"),
    ("exa\tmple.com", "U+0009"),
    ("example.com/", "U+002F"),
    ("example.com/path", "U+002F"),
    ("evil.com\\good.com", "U+005C"),
    ("example.com?x", "U+003F"),
    ("example.com#x", "U+0023"),
    ("exa<mple.com", "U+003C"),
    ("exa*mple.com", "U+002A"),
    ("exa!mple.com", "U+0021"),
    ("exa$mple.com", "U+0024"),
    ("exa~mple.com", "U+007E"),
    ("exa|mple.com", "U+007C"),
    ("exa,mple.com", "U+002C"),
    ("exa\x7fmple.com", "U+007F"),
    ("exa\x85mple.com", "U+0085"),
    ("a\u00a0b.com", "U+00A0"),
    ("a\u2028b.com", "U+2028"),
    ("a\u3000b.com", "U+3000"),
    ("\ud800.com", "U+D800"),  # lone surrogate (e.g. from surrogateescape)
    # CRLF / NUL injection
    ("example.com\r\nX-Injected: 1", "U+000D"),
    ("example.com\nx", "U+000A"),
    ("example.com\x00.evil.com", "U+0000"),
    ("example.com%0d%0aX-Injected%3a%201", "U+000D"),
    ("example.com%00.evil.com", "U+0000"),
    # userinfo ambiguity and delimiters in userinfo
    ("a@b@c.com", "more than one '@'"),
    ("user:p@ss@example.com", "more than one '@'"),
    ("good.com/x@evil.com", "U+002F"),
    ("good.com#@evil.com", "U+0023"),
    ("good.com?@evil.com", "U+003F"),
    # percent-encoding: decoded once, never re-parsed as a delimiter
    ("good.com%40evil.com", "U+0040"),  # decoded "@" is rejected, not treated as userinfo
    ("evil.com%2540good.com", "U+0025"),  # no double decoding
    ("%2565xample.com", "U+0025"),
    ("example.com%3a80", "U+003A"),
    ("example.com%2fpath", "U+002F"),
    ("example.com%5cx", "U+005C"),
    ("exa%20mple.com", "U+0020"),
    ("%5b%3a%3a1%5d", "U+005B"),  # brackets only count when literal
    ("%5b::1%5d", "'%' in IPv6 literal"),
    ("%", "malformed percent-encoding"),
    ("exa%4", "malformed percent-encoding"),
    ("exa%zzmple.com", "malformed percent-encoding"),
    ("b%FCcher.de", "not valid UTF-8"),
    # UTS46 maps some characters onto forbidden ASCII
    ("ex\u2100mple.com", "U+002F"),  # ℀ -> "a/c"
    ("ex\uff0fample.com", "U+002F"),  # fullwidth solidus
    ("ex\uff20ample.com", "U+0040"),  # fullwidth @
    ("exam\uff1a80ple.com", "U+003A"),  # fullwidth colon
    # invalid punycode and IDNA
    ("xn--zz.com", "invalid punycode"),
    ("xn--zz", "invalid punycode"),
    ("xn--.com", "invalid punycode"),
    ("xn--a.com", "invalid punycode"),  # decodes to U+0080
    ("xn--example-.com", "invalid punycode"),  # fake A-label, decodes to ASCII
    ("xn--bcher-2pa.de", "not in canonical form"),  # decodes to "bÜcher": upper case
    ("xn--bü.de", "xn--"),
    ("a\u200db.com", "bidi or joiner"),  # zero-width joiner
    ("ab\u0627.com", "bidi or joiner"),
    ("\u0301a.com", "combining mark"),
    ("\ue000.com", "internationalised"),  # private use
    # IPv4-looking names: a numeric last label must be a valid IPv4 address
    ("256.1.1.1", "out of range"),
    ("1.1.1.256", "out of range"),
    ("1.2.65536", "out of range"),
    ("4294967296", "out of range"),
    ("0x100000000", "out of range"),
    ("1.2.3.4.5", "more than four parts"),
    ("08.0.0.1", "not a valid IPv4"),
    ("0x1g.1.1.1", "not a valid IPv4"),
    ("foo.123", "not a valid IPv4"),
    ("example.0x1", "not a valid IPv4"),
    ("example.0x", "not a valid IPv4"),
    # IPv6
    ("fe80::1%eth0", "zone identifier"),
    ("[fe80::1%25eth0]", "zone identifier"),
    ("[fe80::1%eth0]:80", "zone identifier"),
    ("[::1", "unclosed"),
    ("::1]", "invalid IPv6"),
    ("[::1]]", "unexpected characters after ']'"),
    ("[::1]junk", "unexpected characters after ']'"),
    ("[:::1]", "invalid IPv6"),
    ("1:2:3:4:5:6:7:8:9", "invalid IPv6"),
    ("[::g]", "invalid IPv6"),
    ("[example.com]", "invalid IPv6"),
    ("[1.2.3.4]", "invalid IPv6"),
    ("example.com:80:80", "invalid IPv6"),
    # ports
    ("example.com:99999", "port out of range"),
    ("example.com:65536", "port out of range"),
    ("example.com:0", "port out of range"),
    ("example.com:-1", "invalid port"),
    ("example.com:+80", "invalid port"),
    ("example.com:8o", "invalid port"),
    ("example.com:٨٠", "invalid port"),  # Arabic-Indic digits: str.isdigit() would say yes
    ("example.com:８０", "invalid port"),
    ("example.com:123456", "invalid port"),
    ("[::1]:99999", "port out of range"),
    ("[::1]:x", "invalid port"),
    # lengths
    ("a" * 64 + ".com", "longer than 63"),
    (".".join(["a" * 63] * 3 + ["b" * 62]), "longer than 253"),
    ("ü" * 60 + ".de", "longer than 63"),  # fits as Unicode, not as an A-label
    ("a" * (hosts.MAX_RAW_LEN + 1), "too long"),
    ("a." * 600, "too long"),
    ("exa" + "\u00ad" * 300 + "mple.com", "longer than 253"),  # ignorable padding, bounded work
]


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=[repr(r)[:60] for r, _ in VALID])
def test_normalize_valid(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(("raw", "fragment"), INVALID, ids=[repr(r)[:60] for r, _ in INVALID])
def test_normalize_invalid(raw: str, fragment: str) -> None:
    with pytest.raises(BadHost) as info:
        normalize_host(raw)
    msg = str(info.value)
    assert fragment in msg
    assert "\r" not in msg and "\n" not in msg
    if len(raw) >= 3:
        assert raw not in msg


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=[repr(r)[:60] for r, _ in VALID])
def test_normalize_is_a_fixed_point_on_table(raw: str, expected: str) -> None:
    assert normalize_host(expected) == expected


@pytest.mark.parametrize("bad", [None, b"example.com", 123, ["example.com"], {"h": 1}])
def test_non_strings_raise_badhost(bad: object) -> None:
    with pytest.raises(BadHost):
        normalize_host(bad)  # type: ignore[arg-type]
    with pytest.raises(BadHost):
        split_authority(bad)  # type: ignore[arg-type]
    with pytest.raises(BadHost):
        parse_url(bad)  # type: ignore[arg-type]


def test_badhost_is_a_valueerror() -> None:
    assert issubclass(BadHost, ValueError)


def test_homographs_do_not_collapse_onto_the_latin_name() -> None:
    assert normalize_host("pаypal.com") != normalize_host("paypal.com")
    assert host_mismatch("pаypal.com", "paypal.com")


def test_repeated_calls_agree_with_the_first() -> None:
    # The cache must never hand back a result for a different input.
    for raw, expected in VALID:
        assert normalize_host(raw) == expected
    for raw, _ in INVALID:
        with pytest.raises(BadHost):
            normalize_host(raw)


# ---- privacy of error messages ---------------------------------------------------------------

MARKER = "GeheimLeerlingSite"
PRIVATE_BAD = [
    f"{MARKER}.com:99999",
    f"{MARKER}..com",
    f"xn--{MARKER.lower()}-zz.com",
    f"{MARKER}%40x.com",
    f"{MARKER}%zz.com",
    f"{MARKER}.com\r\nX-Injected: {MARKER}",
    f"a@b@{MARKER}.com",
    f"[{MARKER}]",
    f"[{MARKER}::1%eth0]",
    f"{MARKER}.256",
    f"{MARKER}ü\u200d.com",
    f"{MARKER}\ue000.com",
    f"{MARKER}ab\u0627.com",
    f"{MARKER}\u2100.com",
    f"{MARKER}" + "x" * 70 + ".com",
    f"{MARKER}." + "x" * 2000,
    f"{MARKER}" + "ü" * 60 + ".com",
    f"{MARKER}%FF.com",
]


@pytest.mark.parametrize("raw", PRIVATE_BAD, ids=range(len(PRIVATE_BAD)))
def test_badhost_never_leaks_the_input(raw: str) -> None:
    for call in (normalize_host, split_authority, parse_url):
        with pytest.raises(BadHost) as info:
            call(raw)
        exc = info.value
        assert MARKER.lower() not in str(exc).lower()
        # Nor through a chained library exception in a logged traceback.
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__
        assert MARKER.lower() not in "".join(traceback.format_exception(exc)).lower()


# ---- split_authority --------------------------------------------------------------------------

AUTHORITIES: list[tuple[str, tuple[str, int | None]]] = [
    ("example.com:443", ("example.com", 443)),
    ("Example.COM.:8080", ("example.com", 8080)),
    ("example.com", ("example.com", None)),
    ("example.com:", ("example.com", None)),
    ("[::1]:443", ("::1", 443)),
    ("[::1]", ("::1", None)),
    ("::1", ("::1", None)),
    ("[::ffff:10.0.0.1]:8443", ("10.0.0.1", 8443)),
    ("user:pw@bücher.de:443", ("xn--bcher-kva.de", 443)),
    ("evil.com@good.com:443", ("good.com", 443)),
    ("3232235777:80", ("192.168.1.1", 80)),
    ("example.com:65535", ("example.com", 65535)),
    ("example.com:1", ("example.com", 1)),
]


@pytest.mark.parametrize(("authority", "expected"), AUTHORITIES, ids=[a for a, _ in AUTHORITIES])
def test_split_authority(authority: str, expected: tuple[str, int | None]) -> None:
    assert split_authority(authority) == expected


@pytest.mark.parametrize(
    "authority", ["example.com:99999", "example.com:0", "[::1]:x", "a@b@c:1", ":443", "[::1%1]:443"]
)
def test_split_authority_invalid(authority: str) -> None:
    with pytest.raises(BadHost):
        split_authority(authority)


# ---- parse_url --------------------------------------------------------------------------------

URLS: list[tuple[str, Url]] = [
    ("http://example.com/", Url("http", "example.com", None, "/")),
    ("https://Example.COM./a/B?Q=1", Url("https", "example.com", None, "/a/B?Q=1")),
    ("HTTPS://example.com", Url("https", "example.com", None, "/")),
    ("https://example.com:443/x", Url("https", "example.com", None, "/x")),  # default port
    ("http://example.com:443/x", Url("http", "example.com", 443, "/x")),
    ("http://example.com:8080?q", Url("http", "example.com", 8080, "/?q")),
    ("https://example.com#frag", Url("https", "example.com", None, "/")),
    ("https://example.com/p#frag?no", Url("https", "example.com", None, "/p")),
    ("https://user:pw@bücher.de/x", Url("https", "xn--bcher-kva.de", None, "/x")),
    ("https://evil.com@good.com/", Url("https", "good.com", None, "/")),
    ("https://[::1]:8443/x", Url("https", "::1", 8443, "/x")),
    ("http://[::ffff:1.2.3.4]/", Url("http", "1.2.3.4", None, "/")),
    ("http://0x7f000001/", Url("http", "127.0.0.1", None, "/")),
    # backslash ends the authority in http(s) URLs, as in browsers
    ("http://evil.com\\@good.com/", Url("http", "evil.com", None, "/@good.com/")),
    ("http://evil.com\\x\\y", Url("http", "evil.com", None, "/x/y")),
    # path: unreserved characters decoded, others kept with upper-case hex, case kept
    ("http://e.com/%7Euser/%41%62%2D%2e%5F", Url("http", "e.com", None, "/~user/Ab-._")),
    ("http://e.com/a%2fb%3F", Url("http", "e.com", None, "/a%2Fb%3F")),
    ("http://e.com/a%2Fb?x=%2f&y=%6a", Url("http", "e.com", None, "/a%2Fb?x=%2F&y=j")),
    ("http://e.com/Path/MiXeD", Url("http", "e.com", None, "/Path/MiXeD")),
    ("http://e.com/%zz%", Url("http", "e.com", None, "/%zz%")),
    ("http://e.com/%C3%BC", Url("http", "e.com", None, "/%C3%BC")),
    # dot segments resolved, also when encoded, so "/ok/../blocked" is seen as "/blocked"
    ("http://e.com/ok/../blocked", Url("http", "e.com", None, "/blocked")),
    ("http://e.com/ok/%2e%2E/blocked", Url("http", "e.com", None, "/blocked")),
    ("http://e.com/a/./b/.", Url("http", "e.com", None, "/a/b/")),
    ("http://e.com/../../x", Url("http", "e.com", None, "/x")),
    ("http://e.com/a/b/..", Url("http", "e.com", None, "/a/")),
    ("http://e.com/a//b", Url("http", "e.com", None, "/a//b")),
    ("http://e.com/a?x=/../y", Url("http", "e.com", None, "/a?x=/../y")),  # not in the query
    ("http://e.com/.hidden/x.y", Url("http", "e.com", None, "/.hidden/x.y")),
    # without a scheme: squid CONNECT lines and list-style URLs
    ("example.com:443", Url("https", "example.com", None, "/")),
    ("Example.com:8443", Url("http", "example.com", 8443, "/")),
    ("[::1]:443", Url("https", "::1", None, "/")),
    ("example.com/path?q=1", Url("http", "example.com", None, "/path?q=1")),
    ("example.com", Url("http", "example.com", None, "/")),
    ("//example.com/x", Url("http", "example.com", None, "/x")),
]


@pytest.mark.parametrize(("url", "expected"), URLS, ids=[u[:60] for u, _ in URLS])
def test_parse_url(url: str, expected: Url) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://example.com/",
        "javascript://example.com/",
        "http://",
        "http:///path",
        "http://exa mple.com/",
        "http://example.com/a b",
        "http://example.com/\r\nX-Injected: 1",
        "http://example.com\x00.evil.com/",
        "http://a@b@c.com/",
        "http://good.com%40evil.com/",
        "http://example.com:99999/",
        "http://[::1/",
        "http://256.1.1.1/",
        "http://xn--zz.com/",
        "http://e.com/" + "a" * hosts.MAX_URL_LEN,
    ],
)
def test_parse_url_invalid(url: str) -> None:
    with pytest.raises(BadHost):
        parse_url(url)


# ---- is_ip_literal and host_mismatch -----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("1.2.3.4", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("2001:db8::1", True),
        ("example.com", False),
        ("1.2.3.4a", False),
        ("123.foo", False),
        ("xn--bcher-kva.de", False),
        ("fe80::1%eth0", False),
        ("1.2.3.256", False),
        ("", False),
    ],
)
def test_is_ip_literal(host: str, expected: bool) -> None:
    assert is_ip_literal(host) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("example.com", "example.com", False),
        ("Example.COM.", "example.com", False),
        ("example.com:443", "example.com", False),  # Host header with port vs SNI
        ("bücher.de", "xn--bcher-kva.de", False),
        ("::ffff:1.2.3.4", "1.2.3.4", False),
        ("127.1", "127.0.0.1", False),
        ("allowed.example", "blocked.example", True),  # domain fronting
        ("www.example.com", "example.com", True),
        ("pаypal.com", "paypal.com", True),
        ("example.com", "a..b", True),  # unreadable counts as a mismatch
        ("a..b", "c..d", True),
        ("", "example.com", True),
    ],
)
def test_host_mismatch(a: str, b: str, expected: bool) -> None:
    assert host_mismatch(a, b) is expected
    assert host_mismatch(b, a) is expected


# ---- properties --------------------------------------------------------------------------------

_PIECES = [
    *"abcxyzABCXYZ0189-_.:@[]%/\\ ",
    "xn--",
    "0x",
    "%2e",
    "%40",
    "%25",
    "%3a",
    "%c3%bc",
    "%ff",
    "ü",
    "ß",
    "Ü",
    "．",
    "。",
    "ｅ",
    "\u200d",
    "\u00ad",
    "\u0301",
    "\u0627",
    "💩",
    "::",
    "ffff",
    "\r\n",
    "\x00",
    "255",
    "256",
    "4294967295",
    "\u2100",
    "\ud800",
]
hostile_text = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
label = st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)
clean_names = st.lists(label, min_size=1, max_size=6).map(".".join)
host_like = st.builds(
    lambda user, labels, dot, port: user + ".".join(labels) + dot + port,
    st.sampled_from(["", "u@", "u:p@", "%40@"]),
    st.lists(
        st.one_of(label, st.sampled_from(["bücher", "ÜBER", "xn--bcher-kva", "0x7f", "08", "255"])),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", ".", ".."]),
    st.sampled_from(["", ":", ":443", ":0", ":65536"]),
)
any_input = st.one_of(st.text(max_size=80), hostile_text, host_like)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_OUTPUT_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def _assert_canonical_output(out: str) -> None:
    assert out and out.isascii() and out == out.lower()
    if is_ip_literal(out):
        addr = ipaddress.ip_address(out)
        assert str(addr) == out
        assert not (isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped)
        return
    assert len(out) <= 253 and not out.endswith(".")
    labels = out.split(".")
    assert all(_OUTPUT_LABEL.fullmatch(lab) for lab in labels)
    assert not re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1])


@PROPERTY
@given(any_input)
def test_only_badhost_escapes_and_output_is_a_canonical_fixed_point(raw: str) -> None:
    try:
        out = normalize_host(raw)
    except BadHost:
        return  # anything else propagates and fails the test
    _assert_canonical_output(out)
    assert normalize_host(out) == out


@PROPERTY
@given(any_input)
def test_split_authority_and_parse_url_only_raise_badhost(raw: str) -> None:
    for call in (split_authority, parse_url):
        try:
            call(raw)
        except BadHost:
            pass
    try:
        url = parse_url("http://" + raw + "/p")
    except BadHost:
        return
    assert normalize_host(url.host) == url.host
    assert url.path.startswith("/")


@PROPERTY
@given(any_input)
def test_ascii_case_does_not_matter(raw: str) -> None:
    if not raw.isascii():
        return
    results = []
    for variant in (raw, raw.upper(), raw.lower()):
        try:
            results.append(normalize_host(variant))
        except BadHost:
            results.append(None)
    assert results[0] == results[1] == results[2]


@PROPERTY
@given(clean_names)
def test_fast_path_agrees_with_the_full_parse(name: str) -> None:
    # The regex fast path returns early; the full parse must reach the same verdict.
    try:
        slow: str | None = hosts._canonical_name(name)
    except BadHost:
        slow = None
    try:
        fast: str | None = normalize_host(name)
    except BadHost:
        fast = None
    assert fast == slow


@PROPERTY
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_spelling_gives_the_dotted_quad(n: int) -> None:
    quad = str(ipaddress.IPv4Address(n))
    octets = [int(o) for o in quad.split(".")]
    spellings = [
        quad,
        str(n),
        hex(n),
        "0" + oct(n)[2:],
        ".".join(hex(o) for o in octets),
        ".".join("0" + oct(o)[2:] for o in octets),
        f"{octets[0]}.{(n & 0xFFFFFF)}",
        f"{octets[0]}.{octets[1]}.{(n & 0xFFFF)}",
        f"[::ffff:{quad}]",
        f"::ffff:{n >> 16:x}:{n & 0xFFFF:x}",
        quad + ".",
        quad + ":443",
    ]
    for spelling in spellings:
        assert normalize_host(spelling) == quad, spelling


@PROPERTY
@given(st.integers(min_value=0, max_value=2**128 - 1), st.integers(min_value=1, max_value=65535))
def test_every_ipv6_spelling_gives_the_compressed_form(n: int, port: int) -> None:
    addr = ipaddress.IPv6Address(n)
    expected = str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)
    for spelling in (addr.exploded, addr.exploded.upper(), str(addr), f"[{addr.exploded}]", f"[{addr}]:{port}"):
        assert normalize_host(spelling) == expected
    assert split_authority(f"[{addr.exploded}]:{port}") == (expected, port)


@PROPERTY
@given(clean_names)
def test_trailing_dot_userinfo_and_port_do_not_change_the_host(name: str) -> None:
    try:
        expected = normalize_host(name)
    except BadHost:
        return
    assert normalize_host(name.upper() + ".") == expected
    assert normalize_host("user:pw@" + name + ":8443") == expected
    assert split_authority(name + ":443") == (expected, 443)
