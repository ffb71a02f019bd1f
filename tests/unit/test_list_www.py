"""A hosts-list entry "www.example.com" also blocks "example.com": a hosts file can only name
hosts, and a school that writes the www name means the site. UT1 `domains` and plain domain files
already match every subdomain of an entry and are written without "www." (UT1 holds no such entry),
so there an entry that starts with "www." means that host only, as in squidGuard (docs/lists.md)."""

from __future__ import annotations

import pytest

from poortwachter.lists import CategoryIndex, lists_dir
from poortwachter.lists.parse import Tally, iter_hosts
from poortwachter.lists.update import NamedFile, UpdateRequest, run_update

HOSTS = """\
# a school's own block list, hosts format
0.0.0.0 www.verboden.example
0.0.0.0 www.ook-kaal.example ook-kaal.example
127.0.0.1 www.faß.example
0.0.0.0 www2.genummerd.example
0.0.0.0 www.example
0.0.0.0 m.www.midden.example
"""


def test_the_parser_adds_the_bare_name_of_a_www_entry() -> None:
    tally = Tally()
    names = list(iter_hosts(HOSTS.splitlines(keepends=True), tally))
    assert names == [
        "www.verboden.example", "verboden.example",
        "www.ook-kaal.example", "ook-kaal.example", "ook-kaal.example",
        "www.xn--fa-hia.example", "xn--fa-hia.example",
        "www2.genummerd.example",            # only "www." itself is the site's own name
        "www.example",                       # "example" alone is one label: no name to add
        "m.www.midden.example",
    ]
    assert tally.count == 0


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> tuple[CategoryIndex, dict[str, object]]:
    root = tmp_path_factory.mktemp("www")
    hosts = root / "school-hosts"
    hosts.write_text(HOSTS, encoding="utf-8")
    plain = root / "plain"
    plain.write_text("www.alleen-www.example\n", encoding="utf-8")
    ut1 = root / "ut1" / "ut1-lijst"
    ut1.mkdir(parents=True)
    (ut1 / "domains").write_text("www.ut1-www.example\n", encoding="utf-8")
    data_dir = root / "data"
    manifest = run_update(UpdateRequest(source=str(ut1.parent), hosts=(NamedFile("school", hosts),),
                                        extra_domains=(NamedFile("plain", plain),)), data_dir)
    return CategoryIndex.load(lists_dir(data_dir)), manifest


def test_a_www_entry_of_a_hosts_list_blocks_the_bare_domain(index: tuple[CategoryIndex, dict[str, object]]) -> None:
    lists, _ = index
    for host in ("www.verboden.example", "verboden.example", "cdn.verboden.example",
                 "ook-kaal.example", "xn--fa-hia.example", "www.xn--fa-hia.example"):
        assert lists.host_categories(host) == {"school"}, host
    assert lists.host_categories("nietverboden.example") == frozenset()
    assert lists.host_categories("genummerd.example") == frozenset()
    assert lists.host_categories("midden.example") == frozenset()


def test_domain_lists_keep_their_www_entries_as_written(index: tuple[CategoryIndex, dict[str, object]]) -> None:
    lists, _ = index
    assert lists.host_categories("www.ut1-www.example") == {"ut1-lijst"}
    assert lists.host_categories("ut1-www.example") == frozenset()
    assert lists.host_categories("www.alleen-www.example") == {"plain"}
    assert lists.host_categories("alleen-www.example") == frozenset()


def test_the_manifest_counts_the_names_the_index_holds(index: tuple[CategoryIndex, dict[str, object]]) -> None:
    _, manifest = index
    school = manifest["categories"]["school"]  # type: ignore[index]
    # www.verboden, verboden, www.ook-kaal, ook-kaal, www.faß, faß, www2.genummerd, www.example,
    # m.www.midden
    assert school["domains"] == 9

