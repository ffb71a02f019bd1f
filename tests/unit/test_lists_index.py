"""Matching semantics of the compiled index, built from the fixtures in tests/data/lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from poortwachter.lists import CategoryIndex, IndexLoadError, lists_dir
from poortwachter.lists.update import NamedFile, UpdateRequest, run_update

DATA = Path(__file__).resolve().parents[1] / "data" / "lists"
UT1 = DATA / "ut1" / "blacklists"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[CategoryIndex, dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("data")
    manifest = run_update(
        UpdateRequest(
            source=str(UT1),
            hosts=(NamedFile("porn-hosts", DATA / "hosts" / "porn-hosts"),),
            extra_domains=(NamedFile("synthetic", DATA / "plain-domains.txt"),),
        ),
        data_dir,
    )
    return CategoryIndex.load(lists_dir(data_dir)), manifest


@pytest.fixture(scope="module")
def index(built: tuple[CategoryIndex, dict[str, Any]]) -> CategoryIndex:
    return built[0]


# --- domains -------------------------------------------------------------------------------


def test_domain_matches_itself_and_subdomains_on_label_boundary(index: CategoryIndex) -> None:
    assert index.host_categories("amex.com") == {"bank", "synthetic"}
    assert index.host_categories("www.amex.com") == {"bank", "synthetic"}
    assert index.host_categories("a.b.c.amex.com") == {"bank", "synthetic"}
    assert index.host_categories("aamex.com") == frozenset()
    assert index.host_categories("amex.com.evil.example") == frozenset()
    assert index.host_categories("com") == frozenset()


def test_key_in_several_categories(index: CategoryIndex) -> None:
    assert index.host_categories("facebook.com") == {"social_networks", "games"}
    assert index.host_categories("m.facebook.com") == {"social_networks", "games"}


def test_parent_and_child_in_different_categories_are_united(index: CategoryIndex) -> None:
    assert index.host_categories("games.com") == {"games"}
    assert index.host_categories("x.chat.games.com") == {"games", "social_networks"}


def test_results_are_shared_frozensets(index: CategoryIndex) -> None:
    assert index.host_categories("a.amex.com") is index.host_categories("b.amex.com")
    # two keys with the same categories (badporn.example, www.badporn.example): no union built
    assert index.host_categories("www.badporn.example") is index.host_categories("badporn.example")
    assert index.host_categories("miss-1.example") is index.host_categories("miss-2.example")
    assert isinstance(index.host_categories("miss-1.example"), frozenset)


def test_ipv4_entry_matches_the_literal_only(index: CategoryIndex) -> None:
    assert index.host_categories("157.240.1.35") == {"social_networks"}
    assert index.host_categories("57.240.1.35") == frozenset()
    assert index.host_categories("157.240.1.3") == frozenset()


def test_hosts_file_entries_also_match_subdomains(index: CategoryIndex) -> None:
    assert index.host_categories("badporn.example") == {"porn-hosts"}
    assert index.host_categories("cdn.badporn.example") == {"porn-hosts"}
    assert index.host_categories("mixedcase.example") == {"porn-hosts"}
    assert index.host_categories("trailing-dot.example") == {"porn-hosts"}
    assert index.host_categories("three.example") == {"porn-hosts"}
    assert index.host_categories("xxxhindi.example") == {"porn-hosts"}  # kept from a bad line
    assert index.host_categories("85.17.187.83") == {"porn-hosts"}


def test_run_together_names_are_dropped_and_never_split(index: CategoryIndex) -> None:
    assert index.host_categories("code.jquery.comembed.tube.example") == frozenset()
    assert index.host_categories("code.jquery.com") == frozenset()
    assert index.host_categories("keepitsecret.comsomebody.net") == frozenset()
    assert index.host_categories("keepitsecret.com") == frozenset()
    # real names that merely look glued stay
    assert index.host_categories("hotgirl.comunidades.example") == {"porn-hosts"}
    assert index.host_categories("games.computerlunch.com") == {"games"}
    assert index.host_categories("proxy.netsolbd.com") == {"redirector"}


def test_domains_do_not_answer_url_queries(index: CategoryIndex) -> None:
    assert index.url_categories("facebook.com", "/") == frozenset()
    assert index.host_categories("epicurious.com") == frozenset()


# --- urls ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("epicurious.com", "/community", {"social_networks"}),
        ("epicurious.com", "/community/recipes", {"social_networks"}),
        ("epicurious.com", "/community?page=2", {"social_networks"}),
        ("epicurious.com", "/COMMUNITY", {"social_networks"}),
        ("www.epicurious.com", "/community", {"social_networks"}),
        ("www2.epicurious.com", "/community", {"social_networks"}),
        ("epicurious.com:443", "/community", {"social_networks"}),
        ("epicurious.com", "/communityx", set()),
        ("epicurious.com", "/", set()),
        ("m.epicurious.com", "/community", set()),
        # entry "www.example.org/games": www stripped on both sides
        ("example.org", "/games", {"games"}),
        ("web.example.org", "/games/flash", {"games"}),
        # entry ending in "/" matches anything below it
        ("example.net", "/play/", {"games"}),
        ("example.net", "/play/x", {"games"}),
        ("example.net", "/play", set()),
        # entry with a port and one with a scheme
        ("example.com", "/arcade", {"games"}),
        ("scheme.example", "/play", {"games"}),
        # upper-case entry
        ("adultcontent.quora.com", "/How-do-x", set()),  # "/how-do-x": no boundary after how-do
        ("adultcontent.quora.com", "/How-do", {"games"}),
        # host-only url entry: every path on that host, not its subdomains
        ("10tune.example", "/", {"social_networks"}),
        ("10tune.example", "/a/b", {"social_networks"}),
        ("x.10tune.example", "/", set()),
        # IPv4 url entry, boundary before "?" and "&"
        ("178.128.25.172", "/watch", {"adult"}),
        ("178.128.25.172", "/watch?v=1", {"adult"}),
        ("178.128.25.172", "/watchlist", set()),
    ],
)
def test_url_prefix_semantics(index: CategoryIndex, host: str, path: str, expected: set[str]) -> None:
    assert index.url_categories(host, path) == expected


def test_url_boundary_at_ampersand(tmp_path: Path) -> None:
    ut1 = tmp_path / "blacklists" / "x"
    ut1.mkdir(parents=True)
    (ut1 / "urls").write_text("site.example/page?a=1\n")
    run_update(UpdateRequest(source=str(tmp_path)), tmp_path / "data")
    index = CategoryIndex.load(lists_dir(tmp_path / "data"))
    assert index.url_categories("site.example", "/page?a=1&b=2") == {"x"}
    assert index.url_categories("site.example", "/page?a=1") == {"x"}
    assert index.url_categories("site.example", "/page?a=10") == frozenset()


# --- expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("example.com", "/free-porn-videos", {"adult"}),
        ("example.com", "/Free-PORN", {"adult"}),  # the URL is lower-cased before matching
        ("example.com", "/x?q=xxx", {"adult"}),
        ("example.com", "/pornography", set()),
        ("porn.example.com", "/", {"adult"}),  # "^porn." : the host starts the URL
        ("myporn.example.com", "/", set()),
        ("example.com", "/flash-games/", {"games"}),
        ("example.com", "/flashgame/", {"games"}),
        ("1.2.3.4", "/search?q=12", {"malware"}),  # anchored at the start of host+path
        ("1.2.3.4", "/search?q=12x", set()),
        ("example.com", "/1.2.3.4/search?q=12", set()),
    ],
)
def test_expressions(index: CategoryIndex, host: str, path: str, expected: set[str]) -> None:
    assert index.url_categories(host, path) == expected


def test_expression_with_backreference_keeps_its_meaning(tmp_path: Path) -> None:
    cat = tmp_path / "blacklists" / "x"
    cat.mkdir(parents=True)
    (cat / "expressions").write_text("/(ab)c/\n/([a-z])\\1\\1/\n")  # second: a letter three times
    run_update(UpdateRequest(source=str(tmp_path)), tmp_path / "data")
    index = CategoryIndex.load(lists_dir(tmp_path / "data"))
    assert index.url_categories("example.com", "/zzz/") == {"x"}
    assert index.url_categories("example.com", "/abc/") == {"x"}
    assert index.url_categories("example.com", "/aba/") == frozenset()


def test_urls_and_expressions_combine(index: CategoryIndex) -> None:
    assert index.url_categories("178.128.25.172", "/watch/porn") == {"adult"}
    assert index.url_categories("example.org", "/games/porn") == {"games", "adult"}


# --- metadata ------------------------------------------------------------------------------


def test_categories_sizes_generation(built: tuple[CategoryIndex, dict[str, Any]]) -> None:
    index, manifest = built
    assert index.categories == {
        "adult", "bank", "games", "malware", "redirector", "social_networks", "porn-hosts", "synthetic",
    }
    sizes = index.sizes()
    assert sizes["bank"] == 2
    assert sizes["games"] == 4 + 5 + 1
    assert sizes["adult"] == 0 + 1 + 1
    assert sizes["porn-hosts"] == 11
    assert index.generation == manifest["generation"] != "empty"


def test_manifest_counts_malformed_lines_per_category(built: tuple[CategoryIndex, dict[str, Any]]) -> None:
    cats = built[1]["categories"]
    assert cats["bank"]["malformed"] == {"domains": 3}
    assert cats["games"]["malformed"] == {"urls": 2, "expressions": 2}
    assert cats["redirector"]["malformed"] == {"domains": 1}
    assert cats["porn-hosts"]["malformed"] == {"domains": 6}
    assert cats["synthetic"]["malformed"] == {"domains": 1}
    assert cats["social_networks"]["malformed"] == {}
    examples = cats["porn-hosts"]["malformed_examples"]["domains"]
    assert {"text": "0.0.0.0 short.t", "reason": "not a host name: short.t", "line": 18} in examples


def test_manifest_metadata(built: tuple[CategoryIndex, dict[str, Any]]) -> None:
    manifest = built[1]
    assert manifest["attribution"][0]["license"] == "CC BY-SA 4.0"
    assert "Université Toulouse Capitole" in manifest["attribution"][0]["author"]
    cats = manifest["categories"]
    assert cats["bank"]["usage"] == ["white"]
    assert cats["adult"]["usage"] == ["black"]
    assert cats["adult"]["name_nl"] == "18+ (X)"
    assert cats["porn-hosts"]["origins"] == ["hosts"]
    assert [s["kind"] for s in manifest["sources"]] == ["ut1", "hosts", "domains"]


def test_empty_index() -> None:
    index = CategoryIndex.empty()
    assert index.host_categories("example.com") == frozenset()
    assert index.url_categories("example.com", "/porn") == frozenset()
    assert index.categories == frozenset()
    assert index.sizes() == {}
    assert index.generation == "empty"


def test_load_without_lists_raises(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError):
        CategoryIndex.load(lists_dir(tmp_path))


def test_load_rejects_inconsistent_files(tmp_path: Path) -> None:
    run_update(UpdateRequest(source=str(UT1)), tmp_path)
    cid = lists_dir(tmp_path) / "domains.cid"
    cid.write_bytes(cid.read_bytes()[:-4])
    with pytest.raises(IndexLoadError):
        CategoryIndex.load(lists_dir(tmp_path))
