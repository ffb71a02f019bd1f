"""hosts.unicode_host: the form of a host people read (decoded by the idna package), and the
console's `site` filter that shows it with its punycode beside it."""

from __future__ import annotations

import pytest

from poortwachter.console.display import host, site
from poortwachter.hosts import BadHost, unicode_host


@pytest.mark.parametrize(("raw", "shown"), [
    ("xn--bcherwurm-q9a.de", "bücherwurm.de"),
    ("BÜCHERWURM.de.", "bücherwurm.de"),              # normalised first
    ("www.xn--bcherwurm-q9a.de", "www.bücherwurm.de"),
    ("xn--pple-43d.com", "аpple.com"),                # a Cyrillic "а": shown, with its punycode beside it
    ("example.com", "example.com"),
    ("10.1.2.3", "10.1.2.3"),
    ("xn--ls8h.la", "xn--ls8h.la"),                   # an emoji label idna will not decode stays encoded
])
def test_unicode_host(raw: str, shown: str) -> None:
    assert unicode_host(raw) == shown


def test_unicode_host_refuses_what_the_normaliser_refuses() -> None:
    with pytest.raises(BadHost):
        unicode_host("xn--zz")


@pytest.mark.parametrize(("value", "shown"), [
    ("xn--bcherwurm-q9a.de", "bücherwurm.de (xn--bcherwurm-q9a.de)"),
    ("xn--bcherwurm-q9a.de/boeken", "bücherwurm.de/boeken (xn--bcherwurm-q9a.de)"),
    ("https://xn--bcherwurm-q9a.de/a?b=1", "https://bücherwurm.de/a?b=1 (xn--bcherwurm-q9a.de)"),
    ("https://bücherwurm.de:8443/x", "https://bücherwurm.de:8443/x (xn--bcherwurm-q9a.de)"),
    ("https://www.youtube.com/watch?v=1", "https://www.youtube.com/watch?v=1"),   # ASCII: as it is
    ("youtube.com/pad", "youtube.com/pad"),
    ("Video (categorie / category)", "Video (categorie / category)"),
    ("xn--zz", "xn--zz"),                                                         # not a host: as it is
    ("https://[2001:db8::1]/x", "https://[2001:db8::1]/x"),
])
def test_site_filter(value: str, shown: str) -> None:
    assert site(value) == shown


def test_host_of_a_url_or_site() -> None:
    assert host("https://xn--bcherwurm-q9a.de/boeken") == "xn--bcherwurm-q9a.de"
    assert host("YouTube.com/pad") == "youtube.com"
    assert host("niet een host!") == ""
