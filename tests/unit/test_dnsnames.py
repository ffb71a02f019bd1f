"""The name a DNS question is judged on, and the network's signals (poortwachter.dnsnames)."""

from __future__ import annotations

import pytest

from poortwachter.dnsnames import NODATA, NXDOMAIN, SIGNALS, judged_name, signal


@pytest.mark.parametrize(("name", "answer"), [
    ("use-application-dns.net", NXDOMAIN),
    ("mask.icloud.com", NXDOMAIN),
    ("mask-h2.icloud.com", NXDOMAIN),
    ("_dns.resolver.arpa", NODATA),
])
def test_signals_004_art_12(name: str, answer: str) -> None:
    """004 art. 12 (het filter niet omzeilen): the answers that keep Firefox off its own
    DNS-over-HTTPS, Apple devices off iCloud Private Relay and every client off a designated
    encrypted resolver (RFC 9462)."""
    assert signal(name) == answer


@pytest.mark.parametrize("name", ["USE-APPLICATION-DNS.NET", "Mask.iCloud.com.", "_DNS.Resolver.ARPA."])
def test_signals_regardless_of_case_and_trailing_dot(name: str) -> None:
    """A question in other case (DNS 0x20 randomisation) or fully qualified is the same question:
    answering it from upstream would let the device switch to a resolver the gateway cannot see."""
    assert signal(name) is not None


@pytest.mark.parametrize("name", [
    "example.com", "icloud.com", "www.mask.icloud.com", "application-dns.net", "resolver.arpa",
    "use-application-dns.net.evil.example", "mask.icloud.com.evil.example", "",
])
def test_other_names_are_not_signals(name: str) -> None:
    """Only the exact names are signals: a lookalike or a subdomain goes through the policy like any
    other name (and a blocked site cannot dress up as a signal to get an NXDOMAIN it controls)."""
    assert signal(name) is None


def test_signal_answers_are_the_two_known_kinds() -> None:
    # the resolver answers NXDOMAIN for one and no data for anything else: a third value would be
    # answered as no data without anyone deciding so
    assert set(SIGNALS.values()) <= {NXDOMAIN, NODATA}


@pytest.mark.parametrize(("question", "judged"), [
    ("_sip._tls.example.com", "example.com"),
    ("_xmpp-client._tcp.chat.example.com.", "chat.example.com"),
    ("_dmarc.example.com", "example.com"),
    ("www.example.com", "www.example.com"),
    ("www.example.com.", "www.example.com"),
    ("example.com", "example.com"),
])
def test_service_labels_are_dropped(question: str, judged: str) -> None:
    assert judged_name(question) == judged


def test_a_service_label_does_not_launder_a_blocked_site_004_art_11a() -> None:
    """004 art. 11a: `_x._tcp.pornhub.com` asks about pornhub.com and is judged as pornhub.com."""
    assert judged_name("_x._tcp.pornhub.com") == "pornhub.com"
    assert judged_name("_a._b._c._d._e.pornhub.com") == "pornhub.com"


def test_only_leading_labels_are_dropped() -> None:
    """An underscore label further in is part of the host (the lists match its parents anyway)."""
    assert judged_name("www._sub.example.com") == "www._sub.example.com"
    assert judged_name("_srv.www._sub.example.com") == "www._sub.example.com"


def test_a_name_of_service_labels_only_keeps_its_last_label() -> None:
    """Nothing is left to judge but the last label; it is kept (the caller's normalisation then
    decides), never turned into an empty name that could match everything or nothing."""
    assert judged_name("_a._b") == "_b"
    assert judged_name("_a") == "_a"
    assert judged_name("_a.") == "_a"
