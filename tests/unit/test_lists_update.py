"""`poortwachter lists update|show`: sources (directory, tarball, URL), atomic install, CLI."""

from __future__ import annotations

import argparse
import functools
import http.server
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from poortwachter.lists import CategoryIndex, lists_dir
from poortwachter.lists.cli import register
from poortwachter.lists.install import lists_root, update_lock
from poortwachter.lists.sources import Bar, SourceError
from poortwachter.lists.update import NamedFile, UpdateRequest, null_bar, run_update

DATA = Path(__file__).resolve().parents[1] / "data" / "lists"
UT1 = DATA / "ut1" / "blacklists"
REAL_UT1 = Path(__file__).resolve().parents[3] / "shared" / "ut1" / "blacklists"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """The main CLI's shape in miniature: --data-dir on the parent, `lists` registered."""
    parser = argparse.ArgumentParser(prog="poortwachter")
    parser.add_argument("--data-dir", type=Path, required=True)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def domains_file(path: Path, *names: str) -> Path:
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def make_tarball(path: Path) -> Path:
    """A UT1-style tarball of the fixture tree: top dir blacklists/, an alias directory symlink
    (porn -> adult, as UT1 ships them) and a list file stored as a symlink to another member."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(UT1, arcname="blacklists")
        alias = tarfile.TarInfo("blacklists/porn")
        alias.type, alias.linkname = tarfile.SYMTYPE, "adult"
        tar.addfile(alias)
        shared = tarfile.TarInfo("blacklists/strict_redirector/domains")
        shared.type, shared.linkname = tarfile.SYMTYPE, "../redirector/domains"
        tar.addfile(shared)
    return path


# --- sources -------------------------------------------------------------------------------


def test_update_from_directory_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "--data-dir", tmp_path, "lists", "update", "--from", UT1,
        "--hosts", f"porn-hosts={DATA / 'hosts' / 'porn-hosts'}",
        "--extra-domains", f"synthetic={DATA / 'plain-domains.txt'}",
    )
    assert code == 0, err
    index = CategoryIndex.load(lists_dir(tmp_path))
    assert index.host_categories("www.instagram.com") == {"social_networks"}
    assert index.host_categories("badporn.example") == {"porn-hosts"}
    assert index.host_categories("synthetic-2.example") == {"synthetic"}
    # summary table: per category counts with malformed lines broken down by file
    row = next(line for line in out.splitlines() if line.startswith("games "))
    assert row.split()[:6] == ["games", "black", "4", "5", "1", "4"]
    assert "(expressions 2, urls 2)" in row
    assert "CC BY-SA 4.0" in out
    assert "Lists installed: 8 categories" in out
    assert "15 malformed lines skipped" in out


def test_only_restricts_ut1_categories(tmp_path: Path) -> None:
    run_update(UpdateRequest(source=str(UT1), only=frozenset({"bank", "adult"})), tmp_path)
    assert CategoryIndex.load(lists_dir(tmp_path)).categories == {"bank", "adult"}


def test_only_with_unknown_category_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--data-dir", tmp_path, "lists", "update", "--from", UT1, "--only", "bank,nope")
    assert code == 1
    assert err.strip() == f"Bijwerken van lijsten mislukt / Updating lists failed: categories not in {UT1}: nope"


def test_update_from_tarball(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "blacklists.tar.gz")
    manifest = run_update(UpdateRequest(source=str(tarball)), tmp_path / "data")
    index = CategoryIndex.load(lists_dir(tmp_path / "data"))
    assert "porn" not in index.categories  # alias directory not installed twice
    assert index.host_categories("somebody.net") == {"redirector", "strict_redirector"}
    assert index.url_categories("178.128.25.172", "/watch") == {"adult"}
    assert manifest["categories"]["adult"]["name_nl"] == "18+ (X)"  # global_usage read from the tar
    assert manifest["sources"] == [{"kind": "ut1", "location": str(tarball), "only": None}]


def test_tarball_without_lists_is_an_error(tmp_path: Path) -> None:
    tarball = tmp_path / "other.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(DATA / "plain-domains.txt", arcname="x/readme")
    with pytest.raises(SourceError, match="no UT1 category lists"):
        run_update(UpdateRequest(source=str(tarball)), tmp_path / "data")


def test_truncated_tarball_is_an_error(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "blacklists.tar.gz")
    tarball.write_bytes(tarball.read_bytes()[:-200])
    with pytest.raises(SourceError, match="cannot read"):
        run_update(UpdateRequest(source=str(tarball)), tmp_path / "data")
    assert not lists_dir(tmp_path / "data").exists()


@pytest.fixture
def http_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving a directory; yields (base URL, directory)."""
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_update_from_url(tmp_path: Path, http_dir: tuple[str, Path]) -> None:
    base, root = http_dir
    make_tarball(root / "blacklists.tar.gz")
    seen: list[tuple[str, int | None]] = []

    def bar(desc: str, total: int | None, unit: str) -> Bar:
        seen.append((desc, total))
        return null_bar(desc, total, unit)

    run_update(UpdateRequest(source=f"{base}/blacklists.tar.gz"), tmp_path / "data", make_bar=bar)
    index = CategoryIndex.load(lists_dir(tmp_path / "data"))
    assert index.host_categories("amex.com") == {"bank"}
    assert ("download", (root / "blacklists.tar.gz").stat().st_size) in seen
    # the download is not left behind in the data directory
    assert not list((tmp_path / "data").rglob("*.tar.gz"))


def test_failed_download_keeps_installed_lists(
    tmp_path: Path, http_dir: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = http_dir
    run_update(UpdateRequest(source=str(UT1)), tmp_path)
    before = lists_dir(tmp_path).resolve()
    code, _, err = run_cli(capsys, "--data-dir", tmp_path, "lists", "update", "--from", f"{base}/missing.tar.gz")
    assert code == 1
    assert err.startswith("Bijwerken van lijsten mislukt / Updating lists failed: download of")
    assert err.endswith("failed: HTTP 404\n") and err.count("\n") == 1
    assert lists_dir(tmp_path).resolve() == before
    assert not list(lists_root(tmp_path).glob(".build-*"))


# --- atomic installation -------------------------------------------------------------------


def test_update_switches_builds_atomically(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def update(name: str, domain: str) -> CategoryIndex:
        run_update(
            UpdateRequest(source=None, extra_domains=(NamedFile(name, domains_file(tmp_path / name, domain)),)),
            data,
        )
        return CategoryIndex.load(lists_dir(data))

    first = update("one", "a.example")
    first_build = lists_dir(data).resolve()
    assert lists_dir(data).is_symlink()
    assert first.host_categories("x.a.example") == {"one"}

    # While the next build is being compiled, `current` still serves the previous build.
    generations_during_build: list[str] = []

    def watching_bar(desc: str, total: int | None, unit: str) -> Bar:
        generations_during_build.append(CategoryIndex.load(lists_dir(data)).generation)
        return null_bar(desc, total, unit)

    run_update(
        UpdateRequest(source=None, extra_domains=(NamedFile("two", domains_file(tmp_path / "two", "b.example")),)),
        data,
        make_bar=watching_bar,
    )
    assert generations_during_build and set(generations_during_build) == {first.generation}
    second = CategoryIndex.load(lists_dir(data))
    assert second.generation != first.generation
    assert second.host_categories("a.example") == frozenset()
    assert second.host_categories("b.example") == {"two"}

    third = update("three", "c.example")
    builds = sorted(p.name for p in (lists_root(data) / "builds").iterdir())
    assert builds == sorted([second.generation, third.generation])  # the one before is kept
    assert not first_build.exists()
    # An index loaded before the switch keeps answering from its mapping of the old files.
    assert first.host_categories("a.example") == {"one"}
    assert second.host_categories("b.example") == {"two"}


def test_failed_update_leaves_current_and_no_temp_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_update(UpdateRequest(source=str(UT1)), tmp_path)
    before = lists_dir(tmp_path).resolve()
    code, _, err = run_cli(
        capsys, "--data-dir", tmp_path, "lists", "update", "--from", UT1, "--hosts", f"x={tmp_path / 'missing'}"
    )
    assert code == 1
    assert "Updating lists failed: cannot read" in err
    assert lists_dir(tmp_path).resolve() == before
    assert CategoryIndex.load(lists_dir(tmp_path)).host_categories("amex.com") == {"bank"}
    assert not list(lists_root(tmp_path).glob(".build-*"))


def test_concurrent_update_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with update_lock(lists_root(tmp_path)):
        code, _, err = run_cli(capsys, "--data-dir", tmp_path, "lists", "update", "--from", UT1)
    assert code == 1
    assert "A lists update is already running" in err
    assert not lists_dir(tmp_path).exists()


def test_bad_category_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="invalid category name"):
        run_update(UpdateRequest(source=None, hosts=(NamedFile("../x", DATA / "plain-domains.txt"),)), tmp_path)


def test_named_file_argument_needs_name_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli(capsys, "--data-dir", tmp_path, "lists", "update", "--hosts", "no-equals-sign")
    assert "expected NAME=FILE" in capsys.readouterr().err


# --- show ----------------------------------------------------------------------------------


def test_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_update(UpdateRequest(source=str(UT1), only=frozenset({"bank", "social_networks"})), tmp_path)
    code, out, _ = run_cli(capsys, "--data-dir", tmp_path, "lists", "show")
    assert code == 0
    generation = CategoryIndex.load(lists_dir(tmp_path)).generation
    assert out.startswith(f"generation: {generation}")
    assert f"source: ut1: {UT1}" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("bank", "social"))}
    assert rows["bank"][:5] == ["white", "2", "0", "0", "3"]
    assert rows["social_networks"][:5] == ["black", "4", "2", "0", "0"]
    assert "Université Toulouse Capitole" in out


def test_show_without_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--data-dir", tmp_path, "lists", "show")
    assert code == 1
    assert out == ""
    assert err.startswith("Geen lijsten geïnstalleerd") and "/ No lists installed" in err


# --- the real UT1 snapshot -----------------------------------------------------------------


@pytest.mark.skipif(not REAL_UT1.is_dir(), reason="UT1 snapshot not present")
def test_real_ut1_entries(tmp_path: Path) -> None:
    only = frozenset({"social_networks", "doh", "games", "adult", "malware"})
    manifest = run_update(UpdateRequest(source=str(REAL_UT1), only=only), tmp_path)
    index = CategoryIndex.load(lists_dir(tmp_path))
    assert index.categories == only
    assert "social_networks" in index.host_categories("www.facebook.com")
    assert "social_networks" in index.host_categories("instagram.com")
    assert "social_networks" in index.host_categories("www.tiktok.com")
    assert "doh" in index.host_categories("dns.google")
    assert "doh" in index.host_categories("mozilla.cloudflare-dns.com")
    assert "doh" in index.host_categories("1.1.1.1")
    assert index.url_categories("nixnet.xyz", "/dns/query") >= {"doh"}
    assert index.url_categories("epicurious.com", "/community") >= {"social_networks"}
    assert index.host_categories("ut-capitole.fr") == frozenset()
    assert index.host_categories("wikipedia.org") == frozenset()
    assert manifest["categories"]["doh"]["domains"] == 3015
    assert manifest["categories"]["adult"]["urls"] > 1000
    assert manifest["categories"]["malware"]["expressions"] == 1
