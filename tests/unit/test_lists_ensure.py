"""`poortwachter lists ensure` (what `make run` does first): installs the policy's lists when none
are installed and the download answers; otherwise one line on stderr, exit 0, within seconds."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poortwachter.cli import main
from poortwachter.lists import CategoryIndex, lists_dir
from poortwachter.lists import ensure as ensure_module
from poortwachter.lists.ensure import endpoint, reachable
from tests.listdata import install_every_list

REPO = Path(__file__).resolve().parents[2]
UT1 = REPO / "tests" / "data" / "lists" / "ut1" / "blacklists"
DEFAULT_POLICY = REPO / "policy" / "default.yaml"
E2E_POLICY = REPO / "tests" / "e2e" / "data" / "policy.yaml"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
              "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def no_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


def small_policy(tmp_path: Path, missing_lists: str = "block") -> Path:
    """The e2e test policy with categories on lists that the mini UT1 tree holds."""
    text = E2E_POLICY.read_text(encoding="utf-8")
    text = text.replace("    sites: [pornhub.com]\n", "    lists: [adult]\n    sites: [pornhub.com]\n")
    text = text.replace("    sites: [tiktok.com, instagram.com]\n",
                        "    lists: [social_networks]\n    sites: [tiktok.com, instagram.com]\n")
    text = text.replace("settings:\n", f"settings:\n  missing_lists: {missing_lists}\n", 1)
    assert text.count("lists: [") == 2
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def ensure(capsys: pytest.CaptureFixture[str], data_dir: Path, policy: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), "lists", "ensure", "--policy", str(policy), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A local port where nothing listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server(http.server.ThreadingHTTPServer):
    """Serves one UT1 tarball and counts every connection made to it (a probe included)."""

    def __init__(self, tarball: Path) -> None:
        self.tarball = tarball
        self.connections = 0
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/blacklists.tar.gz"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path != "/blacklists.tar.gz":
            self.send_error(404)
            return
        body = self.server.tarball.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    tarball = tmp_path / "blacklists.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(UT1, arcname="blacklists")
    srv = Server(tarball)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


# --- the download cannot be reached ------------------------------------------------------------


def test_unreachable_download_is_one_line_and_exit_0_quickly(tmp_path: Path) -> None:
    """The real command, as `make run` starts it: nothing installed, nothing listening."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "poortwachter.cli", "--data-dir", str(data), "lists", "ensure",
         "--policy", str(DEFAULT_POLICY), "--from", f"http://127.0.0.1:{closed_port()}/blacklists.tar.gz"],
        capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("Lijsten niet te downloaden") and " / Lists could not be downloaded" in line
    assert line.index("de gateway start in de stand 'missing_lists: block'") < line.index(" / ")
    assert "the gateway starts in 'missing_lists: block' mode" in line
    assert "127.0.0.1" not in line     # no address in the line
    assert done.stdout == ""
    assert not lists_dir(data).exists()


def test_unreachable_in_allow_mode_says_the_lists_are_not_filtered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ensure(capsys, tmp_path / "data", small_policy(tmp_path, "allow"),
                            "--from", f"http://127.0.0.1:{closed_port()}/blacklists.tar.gz")
    assert code == 0 and out == ""
    assert err.count("\n") == 1
    assert "'missing_lists: allow'" in err and "NIET gefilterd" in err and "NOT filtered" in err


def test_a_name_lookup_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo has no timeout of its own: the probe bounds it anyway."""
    release = threading.Event()

    def hanging(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
        release.wait(30)
        raise OSError("never answered")

    monkeypatch.setattr(ensure_module.socket, "create_connection", hanging)
    try:
        started = time.monotonic()
        assert reachable("http://lijsten.school.test/blacklists.tar.gz", 0.3) is False
        assert time.monotonic() - started < 2
    finally:
        release.set()


def test_the_probe_goes_where_the_download_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert endpoint("http://dsi.example/blacklists.tar.gz") == ("dsi.example", 80)
    assert endpoint("https://dsi.example:8443/x.tar.gz") == ("dsi.example", 8443)
    monkeypatch.setenv("http_proxy", "http://proxy.school.test:3128")
    assert endpoint("http://dsi.example/blacklists.tar.gz") == ("proxy.school.test", 3128)
    monkeypatch.setenv("no_proxy", "dsi.example")
    assert endpoint("http://dsi.example/blacklists.tar.gz") == ("dsi.example", 80)


# --- lists installed: nothing to do -------------------------------------------------------------


def test_installed_lists_mean_no_download(tmp_path: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    install_every_list(DEFAULT_POLICY, data)
    before = lists_dir(data).resolve()
    code, out, err = ensure(capsys, data, DEFAULT_POLICY, "--from", server.url)
    assert (code, out, err) == (0, "", "")
    assert server.connections == 0 and server.requests == []
    assert lists_dir(data).resolve() == before


def test_an_incomplete_installation_is_left_alone(tmp_path: Path, server: Server,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`lists update` replaces every list; the school's own lists (hosts files) must not vanish."""
    data = tmp_path / "data"
    install_every_list(small_policy(tmp_path), data, {"adult": ["porno.example"], "eigen-lijst": ["x.example"]})
    policy = small_policy(tmp_path)
    policy.write_text(policy.read_text().replace("lists: [social_networks]", "lists: [social_networks, games]"))
    before = lists_dir(data).resolve()
    code, out, err = ensure(capsys, data, policy, "--from", server.url)
    assert code == 0 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("Lijsten ontbreken of zijn leeg: games") and "Lists missing or empty: games" in err
    assert server.connections == 0
    assert lists_dir(data).resolve() == before
    assert CategoryIndex.load(lists_dir(data)).sizes()["eigen-lijst"] == 1


# --- nothing installed, the download answers ----------------------------------------------------


def test_nothing_installed_and_a_reachable_download_installs_the_lists(
        tmp_path: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    code, out, err = ensure(capsys, data, small_policy(tmp_path), "--from", server.url)
    assert code == 0, err
    assert server.requests == ["/blacklists.tar.gz"]
    index = CategoryIndex.load(lists_dir(data))
    assert index.host_categories("www.instagram.com") == {"social_networks"}
    assert index.sizes()["adult"] > 0
    assert "Lists installed: 6 categories" in err and "CC BY-SA 4.0" in err
    assert "Not in the download" not in err
    # and once they are there, the next start does nothing
    code, out, err = ensure(capsys, data, small_policy(tmp_path), "--from", server.url)
    assert (code, out, err) == (0, "", "")
    assert server.requests == ["/blacklists.tar.gz"]


def test_lists_the_download_does_not_have_are_named(tmp_path: Path, server: Server,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ensure(capsys, tmp_path / "data", DEFAULT_POLICY, "--from", server.url)
    assert code == 0
    last = err.splitlines()[-1]
    # the mini UT1 tree lacks most of the default policy's lists
    assert last.startswith("Niet in de download: agressif, cryptojacking, ddos,")
    assert "Not in the download: agressif," in last and "'missing_lists: block'" in last
    assert "malware" not in last.split(";")[0] and "social_networks" not in last.split(";")[0]


def test_a_download_that_is_refused_is_one_line(tmp_path: Path, server: Server,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ensure(capsys, tmp_path / "data", small_policy(tmp_path), "--from", server.url + ".weg")
    assert code == 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("Lijsten niet geïnstalleerd (download of installatie mislukt")
    assert "Lists not installed" in err and "'missing_lists: block'" in err
    assert not lists_dir(tmp_path / "data").exists()


def test_a_broken_download_says_so_after_it_started(tmp_path: Path, server: Server,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    server.tarball.write_bytes(b"not a tarball")
    code, out, err = ensure(capsys, tmp_path / "data", small_policy(tmp_path), "--from", server.url)
    assert code == 0 and out == ""
    started, failed = err.splitlines()
    assert started.startswith("Geen lijsten geïnstalleerd") and failed.startswith("Lijsten niet geïnstalleerd")
    assert not lists_dir(tmp_path / "data").exists()


def test_an_invalid_policy_is_an_error(tmp_path: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("school: x\nzones: {}\n")
    code, _, err = ensure(capsys, tmp_path / "data", bad, "--from", server.url)
    assert code == 2 and "bad.yaml" in err
    assert server.connections == 0
