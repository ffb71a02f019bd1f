"""One host spelling everywhere: list entries, the policy's own sites and requests all go through
poortwachter.hosts.normalize_host (UTS-46 non-transitional, IDNA 2008), so "faß.de" is
"xn--fa-hia.de" on both sides of a comparison and never "fass.de" (IDNA 2003's spelling)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter.decide import Categorizer, Context, Request, decide
from poortwachter.hosts import normalize_host
from poortwachter.lists import CategoryIndex, IndexLoadError, lists_dir
from poortwachter.lists.build import FORMAT, MANIFEST
from poortwachter.lists.names import normalise_name, url_entry_key
from poortwachter.lists.update import NamedFile, UpdateRequest, run_update
from poortwachter.policy.compiled import CompiledPolicy
from poortwachter.policy.load import PolicyError, parse_policy

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
PUPIL = ipaddress.ip_address("10.1.2.3")

POLICY = """\
school: "IDN"
zones:
  klas: {kind: classroom, role: pupil, cidrs: ["10.0.0.0/8"]}
timetable:
  schedules: {dag: [{name: les, start: "08:00", end: "17:00", kind: lesson}]}
  weekdays: {monday: dag}
categories:
  lijst: {title: "Lijst", lists: [idn-domains, idn-hosts, idn-urls]}
  eigen: {title: "Eigen", sites: [%(site)s]}
rules:
  - {name: blok, source: "t 1", action: block, categories: [lijst, eigen]}
default: allow
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("faß.de", "xn--fa-hia.de"),                 # IDNA 2003 would say fass.de
    ("FAß.DE", "xn--fa-hia.de"),
    ("xn--fa-hia.de", "xn--fa-hia.de"),
    ("fass.de", "fass.de"),
    ("ＥＸＡＭＰＬＥ．ｃｏｍ", "example.com"),      # fullwidth forms, ideographic dot: UTS-46 maps them
    ("xn--zz.de", None),                         # not canonical punycode: no request can ever be this name
    ("fa\u00df@evil.de", None),                  # authority syntax is not a list entry
    ("faß.de:8080", None),
])
def test_list_entries_are_spelled_as_requests_are(text: str, expected: str | None) -> None:
    assert normalise_name(text) == expected
    if expected is not None and not text.isascii():
        assert normalise_name(text) == normalize_host(text)


def test_url_entries_use_the_same_spelling() -> None:
    assert url_entry_key("www.faß.de/pad") == "xn--fa-hia.de/pad"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> CategoryIndex:
    root = tmp_path_factory.mktemp("idn")
    ut1 = root / "ut1"
    (ut1 / "idn-domains").mkdir(parents=True)
    (ut1 / "idn-domains" / "domains").write_text("faß.de\n", encoding="utf-8")
    (ut1 / "idn-urls").mkdir()
    (ut1 / "idn-urls" / "urls").write_text("straße.example/verboden\n", encoding="utf-8")
    hosts = root / "hosts"
    hosts.write_text("0.0.0.0 bücher-faß.example\n", encoding="utf-8")
    data_dir = root / "data"
    run_update(UpdateRequest(source=str(ut1), hosts=(NamedFile("idn-hosts", hosts),)), data_dir)
    return CategoryIndex.load(lists_dir(data_dir))


def verdict(policy: CompiledPolicy, index: CategoryIndex, raw_host: str, path: str | None = None) -> str:
    ctx = Context(policy, Categorizer(policy, index))
    return decide(Request(PUPIL, normalize_host(raw_host), path), ctx, MONDAY).action


def test_a_listed_idn_blocks_both_spellings_of_itself_and_not_its_ascii_lookalike(index: CategoryIndex) -> None:
    policy = CompiledPolicy(parse_policy(POLICY % {"site": "eigen.example"}, "p.yaml"))
    for host in ("faß.de", "FAß.de", "xn--fa-hia.de", "www.faß.de"):
        assert verdict(policy, index, host) == "block", host
    assert verdict(policy, index, "fass.de") == "allow"
    for host in ("bücher-faß.example", "xn--bcher-fa-xya6z.example"):
        assert normalize_host(host) == "xn--bcher-fa-xya6z.example"
        assert verdict(policy, index, host) == "block", host
    assert verdict(policy, index, "bucher-fass.example") == "allow"
    assert verdict(policy, index, "www.straße.example", "/verboden") == "block"
    assert verdict(policy, index, "strasse.example", "/verboden") == "allow"


def test_a_policy_site_with_an_idn_blocks_both_spellings_and_not_its_ascii_lookalike(index: CategoryIndex) -> None:
    for written in ("faß.nl", "xn--fa-hia.nl"):
        model = parse_policy(POLICY % {"site": written}, "p.yaml")
        assert model.categories["eigen"].sites == ["xn--fa-hia.nl"]
        policy = CompiledPolicy(model)
        for host in ("faß.nl", "www.faß.nl", "xn--fa-hia.nl"):
            assert verdict(policy, index, host) == "block", (written, host)
        assert verdict(policy, index, "fass.nl") == "allow"
    with_path = CompiledPolicy(parse_policy(POLICY % {"site": "faß.nl/les"}, "p.yaml"))
    assert with_path.policy.categories["eigen"].sites == ["xn--fa-hia.nl/les"]
    assert verdict(with_path, index, "faß.nl", "/les/1") == "block"
    assert verdict(with_path, index, "fass.nl", "/les/1") == "allow"


@pytest.mark.parametrize("site", ["Faß.nl", "xn--zz.nl", "faß.nl:443", "user@faß.nl", "fa ß.nl"])
def test_a_policy_site_is_refused_when_it_is_no_canonical_host(site: str) -> None:
    with pytest.raises(PolicyError, match="is not a site"):
        parse_policy(POLICY % {"site": json.dumps(site)}, "p.yaml")


def test_an_index_of_the_previous_format_is_not_loaded(tmp_path: Path) -> None:
    """Indexes built before this spelling hold IDNA 2003 keys ("fass.de"): the format number
    says so, and such a build is refused rather than matched wrongly."""
    ut1 = tmp_path / "ut1" / "idn-domains"
    ut1.mkdir(parents=True)
    (ut1 / "domains").write_text("faß.de\n", encoding="utf-8")
    data_dir = tmp_path / "data"
    manifest = run_update(UpdateRequest(source=str(ut1.parent)), data_dir)
    assert manifest["format"] == FORMAT >= 2
    build = lists_dir(data_dir).resolve()
    old = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    old["format"] = 1
    (build / MANIFEST).write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(IndexLoadError, match="format"):
        CategoryIndex.load(lists_dir(data_dir))


def test_lists_ensure_rebuilds_an_old_index_from_its_own_sources(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`make run` after an upgrade: the old build is rebuilt from the sources its manifest names,
    the school's own hosts list included (a plain UT1 download would lose it)."""
    from poortwachter.cli import main

    ut1 = tmp_path / "ut1" / "idn-domains"
    ut1.mkdir(parents=True)
    (ut1 / "domains").write_text("faß.de\n", encoding="utf-8")
    hosts = tmp_path / "school-hosts"
    hosts.write_text("0.0.0.0 www.straße.example\n", encoding="utf-8")
    data_dir = tmp_path / "data"
    run_update(UpdateRequest(source=str(ut1.parent), hosts=(NamedFile("idn-hosts", hosts),)), data_dir)
    build = lists_dir(data_dir).resolve()
    old = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    old["format"] = 1
    (build / MANIFEST).write_text(json.dumps(old), encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("idn-urls", "idn-domains") % {"site": "eigen.example"}, encoding="utf-8")

    assert main(["--data-dir", str(data_dir), "lists", "show"]) == 1
    assert "oud formaat (1)" in capsys.readouterr().err
    assert main(["--data-dir", str(data_dir), "lists", "ensure", "--policy", str(policy),
                 "--from", "http://127.0.0.1:9/none.tar.gz"]) == 0
    assert "opnieuw opgebouwd uit dezelfde bronnen" in capsys.readouterr().err
    index = CategoryIndex.load(lists_dir(data_dir))
    assert index.manifest["format"] == FORMAT
    assert index.host_categories("xn--fa-hia.de") == {"idn-domains"}
    assert index.host_categories("xn--strae-oqa.example") == {"idn-hosts"}
    assert [s["kind"] for s in index.manifest["sources"]] == ["ut1", "hosts"]
