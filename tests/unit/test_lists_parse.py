"""Parsing of list lines: host names, hosts files, urls, expressions, UT1 metadata."""

from __future__ import annotations

import pytest

from poortwachter.lists.names import (
    domain_key,
    glued_splits,
    normalise_name,
    strip_port,
    strip_www,
    url_entry_key,
    url_query_key,
)
from poortwachter.lists.parse import (
    Tally,
    iter_domains,
    iter_expressions,
    iter_hosts,
    iter_urls,
    parse_global_usage,
    parse_usage,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("www.example.com.", "www.example.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("1.1.1.1", "1.1.1.1"),
        ("snapchat-com", None),  # one label
        ("anitokyo.t", None),  # one-letter TLD
        ("w-w-i-s-.com", None),  # label ends in a hyphen
        (".afshin.ir", None),  # empty label
        ("a..b.com", None),
        ("example.123", None),  # numeric TLD and not an IPv4 address
        ("256.1.1.1", None),
        ("01.1.1.1", None),
        ("x" * 64 + ".com", None),  # label longer than 63
        ("a.b/c.com", None),
    ],
)
def test_normalise_name(text: str, expected: str | None) -> None:
    assert normalise_name(text) == expected


def test_domain_key_puts_label_boundaries_at_prefix_ends() -> None:
    listed = domain_key("amex.com")
    assert domain_key("www.amex.com").startswith(listed)
    assert domain_key("amex.com") == listed
    assert not domain_key("aamex.com").startswith(listed)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.com", "example.com"),
        ("www2.example.com", "example.com"),
        ("web.example.com", "example.com"),
        ("ftp01.example.com", "example.com"),
        ("web.de", "web.de"),  # nothing left but a TLD: kept
        ("wwwexample.com", "wwwexample.com"),
        ("www-2.example.com", "www-2.example.com"),
        ("m.www.example.com", "m.www.example.com"),
    ],
)
def test_strip_www(host: str, expected: str) -> None:
    assert strip_www(host) == expected


def test_strip_port_leaves_ipv6_alone() -> None:
    assert strip_port("example.com:8080") == "example.com"
    assert strip_port("[::1]") == "[::1]"
    assert strip_port("::1") == "::1"


def test_url_keys_of_entries_and_queries_agree() -> None:
    assert url_entry_key("www.Example.com:8080/Games/Flash") == "example.com/games/flash"
    assert url_query_key("www.example.com:8080", "/Games/Flash?x=1") == "example.com/games/flash?x=1"
    assert url_entry_key("http://example.com/x") == "example.com/x"
    assert url_entry_key("example.com") == "example.com"
    assert url_entry_key("bad_host!/x") is None


def test_glued_splits() -> None:
    assert glued_splits("code.jquery.comembed.redtube.com") == [("code.jquery.com", "embed.redtube.com")]
    assert glued_splits("www.xnxx.comwww.xnxx.com") == [("www.xnxx.com", "www.xnxx.com")]
    assert glued_splits("www.comicbox.xyz") == [("www.com", "icbox.xyz")]  # a suspicion only
    assert glued_splits("example.com") == []
    assert glued_splits("comics.example.com") == []  # first label: no name before it


def test_iter_domains_counts_malformed_lines() -> None:
    tally = Tally()
    lines = ["# comment\n", "\n", "   \n", "example.com\n", "Good.Example # note\n", "two words\n", "-bad.com\n"]
    assert list(iter_domains(lines, tally)) == ["example.com", "good.example"]
    assert tally.count == 2
    assert [e["line"] for e in tally.examples] == [6, 7]


def test_iter_hosts() -> None:
    tally = Tally()
    lines = [
        "# Title: x\n",
        "127.0.0.1 localhost\n",
        "::1 ip6-localhost ip6-loopback\n",
        "0.0.0.0 0.0.0.0\n",
        "0.0.0.0 a.example\n",
        "127.0.0.1\tb.example c.example  # trailing comment\n",
        "0.0.0.0 d.example en\n",  # second name unusable: line counted, d.example kept
        "e.example\n",  # no address
        "0.0.0.0\n",  # no name
        "999.0.0.1 f.example\n",  # not an address
    ]
    assert list(iter_hosts(lines, tally)) == ["a.example", "b.example", "c.example", "d.example"]
    assert tally.count == 4
    assert [e["line"] for e in tally.examples] == [7, 8, 9, 10]


def test_tally_keeps_only_a_few_examples() -> None:
    tally = Tally()
    list(iter_domains([f"bad{i}\n" for i in range(50)], tally))
    assert tally.count == 50
    assert len(tally.examples) == 5


def test_iter_urls() -> None:
    tally = Tally()
    lines = ["# c\n", "www.example.com/a\n", "danskporn.dk/#p2\n", "x y\n", "bad host/x\n"]
    assert list(iter_urls(lines, tally)) == ["example.com/a", "danskporn.dk/#p2"]
    assert tally.count == 2


def test_iter_expressions_skips_broken_and_match_everything_patterns() -> None:
    tally = Tally()
    lines = ["(/banner/|/sponsor/)\n", "(unclosed\n", "\n", "(optional)?\n", "^\n", "#c\n"]
    assert list(iter_expressions(lines, tally)) == ["(/banner/|/sponsor/)"]
    assert tally.count == 3
    reasons = [str(e["reason"]) for e in tally.examples]
    assert reasons[0].startswith("does not compile")
    assert reasons[1:] == ["matches every URL", "matches every URL"]


def test_iter_expressions_rejects_patterns_that_cannot_be_joined() -> None:
    tally = Tally()
    assert list(iter_expressions(["(?i)casino\n", "poker\n"], tally)) == ["poker"]
    assert tally.count == 1


def test_parse_usage_keeps_list_types_only() -> None:
    assert parse_usage(["black\n", "adult\n", "porn\n"]) == ["black"]
    assert parse_usage(["white\n", "black\n", "white\n"]) == ["white", "black"]
    assert parse_usage([]) == []


def test_parse_global_usage() -> None:
    lines = [
        "# header\n",
        "NAME:\tadult\n",
        "DEFAULT_TYPE: black\n",
        "NAME EN: Adult (X)\n",
        "NAME NL: 18+ (X)\n",
        "NAME DE: Porno\n",
        "DESC EN: Some adult site.\n",
        "\n",
        "NAME:\tbank\n",
        "NAME EN: Banks\n",
    ]
    assert parse_global_usage(lines) == {
        "adult": {"name_en": "Adult (X)", "name_nl": "18+ (X)", "desc_en": "Some adult site."},
        "bank": {"name_en": "Banks"},
    }
