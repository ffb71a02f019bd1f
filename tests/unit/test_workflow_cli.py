"""`poortwachter user|grant|ban|requests` end to end: real subprocesses on a temporary data
directory (SQLite there by default, or PostgreSQL via --db), checked against the store.

The commands run as `python -m poortwachter.workflow.cli` (the same `register` the main CLI
wires in), with the hidden `--at` so times are fixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from poortwachter.store import default_url, load_state, open_store
from poortwachter.store.models import ChangeRow, UserRow
from poortwachter.workflow import authenticate, create_user
from poortwachter.workflow.cli import _login

from .test_store import db_url  # noqa: F401  (fixture: both backends, schema per test)
from .test_workflow import HOUR, NOW, cheap_hashes  # noqa: F401  (fixture: cheap argon2 in this process)

AT = "2025-03-10T10:00"          # Amsterdam wall time = NOW (09:00 UTC)
POLICY = Path(__file__).resolve().parents[2] / "policy" / "default.yaml"


class Cli:
    def __init__(self, data_dir: Path, url: str) -> None:
        self.data_dir = data_dir
        self.url = url
        # SQLite: rely on the default (the data directory); PostgreSQL: pass --db.
        self.db = [] if url == default_url(data_dir) else ["--db", url]

    def __call__(self, *args: str, stdin: str = "", at: str | None = AT) -> subprocess.CompletedProcess[str]:
        command, sub, *rest = args
        extra = self.db + (["--at", at] if at else [])
        argv = [sys.executable, "-m", "poortwachter.workflow.cli", "--data-dir", str(self.data_dir),
                command, sub, *extra, *rest]
        # a new session has no controlling terminal, so getpass reads stdin
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120,
                              start_new_session=True, cwd=self.data_dir.parent)


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data", db_url)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    """For what does not depend on the store's backend (reading a password, pipes, the policy)."""
    return Cli(tmp_path / "data", default_url(tmp_path / "data"))


def _refused(result: subprocess.CompletedProcess[str], status: int, *absent: str) -> str:
    assert result.returncode == status, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert " / " in message
    for text in absent:
        assert text not in message
    return message


def test_user_add_makes_the_first_ict_account(cli: Cli) -> None:
    done = cli("user", "add", "Jan", "--role", "ict", "--name", "Jan de Vries", "--password-stdin",
               "--actor", "beheer", stdin="een lang wachtwoord\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Account 1 aangemaakt / Account 1 created"
    store = open_store(cli.url)
    try:
        with store.write() as s:
            user = authenticate(s, username="jan", password="een lang wachtwoord", source="cli", now=NOW)
            assert user is not None and (user.role, user.display_name) == ("ict", "Jan de Vries")
            row = s.get(UserRow, user.id)
            assert row is not None and row.password_hash.startswith("$argon2id$") and row.created_by == "ict:beheer"
    finally:
        store.close()
    listed = cli("user", "list", at=None)
    assert listed.returncode == 0 and listed.stdout.split("\t")[:3] == ["1", "jan", "ict"]

    _refused(cli("user", "add", "JAN", "--role", "docent", "--name", "X", "--password-stdin",
                 stdin="nog een wachtwoord\n"), 1)
    _refused(cli("user", "add", "kim", "--role", "docent", "--name", "Kim", "--password-stdin",
                 stdin="Zq8!x\n"), 2, "Zq8!x")
    # from a pipe without --password-stdin: the first line is the password, asked nothing
    piped = cli("user", "add", "kim", "--role", "docent", "--name", "Kim", "--zones", "klaslokalen,examenlokaal",
                "--policy", str(POLICY), "--email", "Kim@School.example", stdin="een lang wachtwoord\n")
    assert piped.returncode == 0, piped.stderr
    assert "Wachtwoord" not in piped.stderr and "Warning" not in piped.stderr
    assert "\tklaslokalen,examenlokaal\tKim\tactief/active\tKim@school.example" in cli("user", "list").stdout
    bad_role = cli("user", "add", "x", "--role", "admin", "--name", "X", "--password-stdin", stdin="x" * 10)
    assert bad_role.returncode == 2


def test_user_add_without_a_password_says_so(sqlite_cli: Cli) -> None:
    for extra in ((), ("--password-stdin",)):
        done = sqlite_cli("user", "add", "kim", "--role", "docent", "--name", "Kim", *extra, stdin="")
        message = _refused(done, 2)
        assert message.startswith("Geen wachtwoord") and "No password" in message
        assert "Traceback" not in done.stderr
    assert sqlite_cli("user", "list").stdout == ""


def test_user_add_on_a_terminal_asks_twice(sqlite_cli: Cli) -> None:
    """A real pseudo-terminal: the password is asked twice, without echo; two different answers
    are refused."""
    import os
    import pty
    import select
    import time

    def on_terminal(username: str, *answers: str) -> tuple[int, str]:
        primary, secondary = pty.openpty()
        argv = [sys.executable, "-m", "poortwachter.workflow.cli", "--data-dir", str(sqlite_cli.data_dir),
                "user", "add", username, "--role", "docent", "--name", "Kim", "--at", AT]
        proc = subprocess.Popen(argv, stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, cwd=sqlite_cli.data_dir.parent)
        os.close(secondary)
        seen, deadline = b"", time.monotonic() + 60
        try:
            for prompt, answer in zip((b"Wachtwoord / Password: ", b"Nogmaals / Again: "), answers, strict=True):
                while seen.count(prompt) == 0:   # answer only once the prompt (echo off) is there
                    assert time.monotonic() < deadline, seen
                    ready, _, _ = select.select([proc.stderr], [], [], 0.1)
                    if ready:
                        seen += os.read(proc.stderr.fileno(), 1024)  # type: ignore[union-attr]
                os.write(primary, answer.encode() + b"\n")
            out, err = proc.communicate(timeout=60)
        finally:
            os.close(primary)
            if proc.poll() is None:
                proc.kill()
        return proc.returncode, (seen + err).decode() + out.decode()

    status, output = on_terminal("kim", "een lang wachtwoord", "maar anders")
    assert status == 2 and "Wachtwoorden verschillen / Passwords differ" in output
    status, output = on_terminal("kim", "een lang wachtwoord", "een lang wachtwoord")
    assert status == 0 and "Account 1 aangemaakt" in output, output
    assert "een lang wachtwoord" not in output                     # never echoed


def test_user_add_refuses_unknown_zones(sqlite_cli: Cli) -> None:
    done = sqlite_cli("user", "add", "kim", "--role", "docent", "--name", "Kim", "--zones",
                      "klaslokalen,doesnotexist", "--policy", str(POLICY), stdin="een lang wachtwoord\n")
    message = _refused(done, 2, "doesnotexist")
    assert message == ("Onbekende zone; het beleid kent: examenlokaal, gasten, klaslokalen, medewerkers, "
                       "openbare-ruimte / Unknown zone; the policy has: examenlokaal, gasten, klaslokalen, "
                       "medewerkers, openbare-ruimte")
    # without --policy the default, policy/default.yaml, is not in this directory: said plainly
    done = sqlite_cli("user", "add", "kim", "--role", "docent", "--name", "Kim", "--zones", "klaslokalen",
                      stdin="een lang wachtwoord\n")
    assert done.returncode == 2 and "het beleid is niet te lezen (--policy)" in done.stderr
    assert "Traceback" not in done.stderr
    assert sqlite_cli("user", "list", "--all").stdout == ""


def test_user_disable_enable_reset_and_set(cli: Cli) -> None:
    from poortwachter.workflow import redeem_reset_link

    for name, role in (("jan", "ict"), ("kim", "docent")):
        assert cli("user", "add", name, "--role", role, "--name", name.title(), stdin="een lang wachtwoord\n"
                   ).returncode == 0

    def login(password: str) -> object:
        store = open_store(cli.url)
        try:
            with store.write() as s:
                return authenticate(s, username="kim", password=password, source="cli", now=NOW)
        finally:
            store.close()

    link = cli("user", "reset", "kim", "--url", "https://console.school.example/", "--reason", "vergeten",
               "--actor", "beheer")
    assert link.returncode == 0, link.stderr
    assert "geldig tot 2025-03-10 11:00, werkt één keer" in link.stderr
    (url,) = link.stdout.split()
    assert url.startswith("https://console.school.example/wachtwoord-instellen?t=")
    store = open_store(cli.url)
    try:
        with store.write() as s:
            redeem_reset_link(s, url.split("?t=", 1)[1], "gekozen via de link", now=NOW)
    finally:
        store.close()
    assert login("gekozen via de link") is not None
    set_by_ict = cli("user", "reset", "KIM", "--password-stdin", "--reason", "in persoon", stdin="van ict gekregen\n")
    assert set_by_ict.returncode == 0, set_by_ict.stderr
    assert login("van ict gekregen") is not None and login("gekozen via de link") is None
    _refused(cli("user", "reset", "kim", "--url", "ftp://console", "--reason", "x"), 2)
    _refused(cli("user", "reset", "niemand", "--url", "https://console.school.example", "--reason", "x"), 2, "niemand")

    assert cli("user", "disable", "kim", "--reason", "uit dienst").returncode == 0
    assert login("van ict gekregen") is None
    assert "kim" not in cli("user", "list").stdout
    assert "\tkim\tdocent\t-\tKim\tuit/disabled\t-" in cli("user", "list", "--all").stdout
    assert cli("user", "enable", "kim", "--reason", "terug").returncode == 0
    assert login("van ict gekregen") is not None
    _refused(cli("user", "disable", "jan", "--reason", "x"), 1)        # the last active ICT account

    changed = cli("user", "set", "kim", "--role", "leidinggevende", "--zones", "klaslokalen", "--email",
                  "kim@school.example", "--reason", "teamleider", "--policy", str(POLICY), "--actor", "beheer")
    assert changed.returncode == 0, changed.stderr
    (kim,) = [a for a in json.loads(cli("user", "list", "--json").stdout) if a["username"] == "kim"]
    assert (kim["role"], kim["zones"], kim["email"]) == ("leidinggevende", ["klaslokalen"], "kim@school.example")
    _refused(cli("user", "set", "kim", "--zones", "doesnotexist", "--reason", "x", "--policy", str(POLICY)), 2,
             "doesnotexist")
    _refused(cli("user", "set", "kim", "--role", "docent", "--policy", str(POLICY)), 2)          # no reason
    _refused(cli("user", "set", "kim"), 2)
    store = open_store(cli.url)
    try:
        with store.read() as s:
            log = [(c.kind, c.actor) for c in s.scalars(select(ChangeRow).order_by(ChangeRow.id))]
    finally:
        store.close()
    assert log[2:] == [("reset-link", "ict:beheer"), ("password", "docent:kim"), ("password", f"ict:{_login()}"),
                       ("disable", f"ict:{_login()}"), ("enable", f"ict:{_login()}"), ("role", "ict:beheer"),
                       ("zones", "ict:beheer"), ("email", "ict:beheer")]


# --- output into a pipe that closes early ------------------------------------------------------------

@pytest.mark.parametrize("command", [("lists", "show"), ("user", "list"), ("user", "list", "--json")])
def test_output_piped_into_head_ends_without_a_traceback(sqlite_cli: Cli, command: tuple[str, ...]) -> None:
    _fill(sqlite_cli)
    argv = [sys.executable, "-m", "poortwachter.workflow.cli", "--data-dir", str(sqlite_cli.data_dir), *command]
    # `poortwachter ... | head -1`, as the shell runs it
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd=sqlite_cli.data_dir.parent)
    head = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # type: ignore[union-attr]
    first, _ = head.communicate(timeout=60)
    _, err = writer.communicate(timeout=60)
    assert len(first.splitlines()) == 1
    assert writer.returncode in (0, 141) and err == b"", err.decode()
    # the same with a reader that is gone before the first byte: always a broken pipe
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        gone = subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, timeout=60,
                              cwd=sqlite_cli.data_dir.parent)
    finally:
        os.close(write_end)
    assert gone.returncode == 141 and gone.stderr == b"", gone.stderr.decode()


def _fill(cli: Cli) -> None:
    """Installed lists and enough accounts for listings longer than one line."""
    lists = Path(__file__).resolve().parents[1] / "data" / "lists" / "ut1" / "blacklists"
    installed = subprocess.run([sys.executable, "-m", "poortwachter.cli", "--data-dir", str(cli.data_dir), "lists",
                                "update", "--from", str(lists)], capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    store = open_store(cli.url)
    try:
        with store.write() as s:
            for n in range(30):
                create_user(s, username=f"docent{n}", display_name=f"Docent {n}", role="docent",
                            password="een lang wachtwoord", actor="test", now=NOW)
    finally:
        store.close()


def test_grant_add_list_revoke(cli: Cli) -> None:
    added = cli("grant", "add", "--site", "www.YouTube.com.", "--site", "wikipedia.org/wiki", "--zone", "klaslokalen",
                "--role", "pupil", "--until", "+2h", "--reason", "verzoek per mail", "--actor", "jan",
                "--policy", str(POLICY))
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "Deblokkering 1 toegevoegd / Grant 1 added"
    store = open_store(cli.url)
    try:
        (grant,) = load_state(store, NOW).grants         # what the gateway will enforce
        assert grant.sites.domains == {"www.youtube.com"} and grant.sites.paths == (("wikipedia.org", "/wiki"),)
        assert (grant.zones, grant.roles, grant.start, grant.end) == ({"klaslokalen"}, {"pupil"}, NOW, NOW + 2 * HOUR)
    finally:
        store.close()

    (listed,) = json.loads(cli("grant", "list", "--json").stdout)
    assert (listed["id"], listed["sites"], listed["approved_by"]) == (1, ["www.youtube.com", "wikipedia.org/wiki"],
                                                                      "ict:jan")
    assert "actief/active" in cli("grant", "list").stdout

    revoked = cli("grant", "revoke", "1", "--reason", "klaar", "--actor", "els")
    assert revoked.returncode == 0 and "ingetrokken / Grant 1 revoked" in revoked.stdout
    assert json.loads(cli("grant", "list", "--json").stdout) == []
    assert len(json.loads(cli("grant", "list", "--all", "--json").stdout)) == 1
    _refused(cli("grant", "revoke", "1", "--reason", "nogmaals", "--actor", "els"), 1)
    _refused(cli("grant", "revoke", "99", "--reason", "bestaat niet", "--actor", "els"), 2)

    store = open_store(cli.url)
    try:
        with store.read() as s:
            log = [(c.kind, c.object, c.actor, c.reason) for c in s.scalars(select(ChangeRow).order_by(ChangeRow.id))]
    finally:
        store.close()
    assert log == [("add", "grant", "ict:jan", "verzoek per mail"), ("revoke", "grant", "ict:els", "klaar")]


def test_grant_add_refuses_not_overridable_sites_and_bad_input(cli: Cli, tmp_path: Path) -> None:
    listing = tmp_path / "phishing.txt"
    listing.write_text("evil.example\n")
    installed = subprocess.run(
        [sys.executable, "-m", "poortwachter.cli", "--data-dir", str(cli.data_dir), "lists", "update",
         "--from", "none", "--extra-domains", f"phishing={listing}"], capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr

    def add(*extra: str, site: str = "ok.example") -> subprocess.CompletedProcess[str]:
        return cli("grant", "add", "--site", site, "--until", "+1h", "--reason", "r", "--actor", "jan",
                   "--policy", str(POLICY), *extra)

    message = _refused(add(site="login.evil.example"), 2, "evil")
    assert "'malware'" in message                      # the policy's category for the phishing list
    _refused(add(site="bad host.example"), 2, "bad host")
    _refused(add("--until", "morgen"), 2)
    _refused(add("--from", "+3h"), 2)                   # ends before it starts
    missing = cli("grant", "add", "--site", "ok.example", "--until", "+1h", "--reason", "r", "--actor", "jan",
                  "--policy", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "missing.yaml:1: (top): cannot read (niet leesbaar)" in missing.stderr
    assert json.loads(cli("grant", "list", "--all", "--json").stdout) == []
    assert add().returncode == 0                       # the same command with an innocent site works


def test_ban_add_list_revoke(cli: Cli) -> None:
    added = cli("ban", "add", "10.20.3.4", "--until", "2025-03-11T10:00", "--reason", "art. 7 sanctie",
                "--actor", "piet")
    assert added.returncode == 0, added.stderr
    store = open_store(cli.url)
    try:
        (ban,) = load_state(store, NOW).bans
        assert (ban.subject, ban.until) == ("10.20.3.4", NOW + 24 * HOUR)
    finally:
        store.close()
    listing = cli("ban", "list").stdout
    assert listing.startswith("1\t10.20.3.4\ttot/until 2025-03-11 10:00\tict:piet\t")
    _refused(cli("ban", "add", "10.20.3.400", "--until", "+1h", "--reason", "r"), 2, "10.20.3.400")
    _refused(cli("ban", "add", "10.0.0.0/8", "--until", "+1h", "--reason", "r"), 2)
    lifted = cli("ban", "revoke", "1", "--reason", "bezwaar toegekend", "--actor", "piet")
    assert lifted.returncode == 0 and "opgeheven / Exclusion 1 lifted" in lifted.stdout
    assert json.loads(cli("ban", "list", "--json").stdout) == []
    _refused(cli("ban", "revoke", "1", "--reason", "nogmaals"), 1)


def test_requests_sweep_records_each_expiry_once(cli: Cli) -> None:
    assert cli("grant", "add", "--site", "a.example", "--until", "+1h", "--reason", "r", "--actor", "jan",
               "--policy", str(POLICY)).returncode == 0
    assert cli("ban", "add", "10.20.3.4", "--until", "+3h", "--reason", "r").returncode == 0
    first = cli("requests", "sweep", at="2025-03-10T12:00")
    assert first.returncode == 0 and first.stdout.strip() == "1 verlopen vastgelegd / 1 expiries recorded"
    assert cli("requests", "sweep", at="2025-03-10T12:00").stdout.startswith("0 ")
    assert cli("requests", "sweep", at="2025-03-10T14:00").stdout.startswith("1 ")
    store = open_store(cli.url)
    try:
        with store.read() as s:
            expiries = [(c.object, c.actor, c.at) for c in s.scalars(select(ChangeRow).where(ChangeRow.kind == "expire")
                                                                     .order_by(ChangeRow.id))]
    finally:
        store.close()
    assert expiries == [("grant", "systeem", NOW + HOUR), ("ban", "systeem", NOW + 3 * HOUR)]
    assert cli("requests", "list", "--json").stdout.strip() == "[]"


def test_an_unreachable_database_is_refused_without_its_password(tmp_path: Path) -> None:
    done = Cli(tmp_path / "data", "postgresql+psycopg://gw:geheim@127.0.0.1:1/poortwachter")("ban", "list")
    message = _refused(done, 1, "geheim")
    assert message.startswith("Database niet bereikbaar / Database unreachable")
    assert "geheim" not in done.stderr and "Traceback" not in done.stderr
