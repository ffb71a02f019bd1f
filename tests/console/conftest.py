"""Fixtures of the console tests: the real service layer on a SQLite store in tmp_path (one
PostgreSQL smoke test brings its own), a fixed clock, one account per role, and helpers that
log in and read CSRF tokens out of pages the way a browser would."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its TestClient; httpx (already a dependency) works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from poortwachter.console.app import create_app
from poortwachter.store import Store, default_url
from poortwachter.workflow import ROLES, accounts, create_user

POLICY = Path(__file__).with_name("policy.yaml")
AMS = ZoneInfo("Europe/Amsterdam")
# Monday 10 March 2025, 10:40 in Amsterdam: the 3rd lesson (10:30-11:20) is running.
NOW = dt.datetime(2025, 3, 10, 10, 40, tzinfo=AMS)
LESSON_END = dt.datetime(2025, 3, 10, 11, 20, tzinfo=AMS)
PASSWORD = "correct horse battery"
HOST = "testserver.local"   # the cookie domain http.cookiejar gives the TestClient's "testserver"
# username per role; the docent's account owns lokaal-101 only
USERS = {role: f"{role}1" for role in ROLES}

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Console:
    app: Starlette
    store: Store
    clock: Clock
    url: str

    def client(self, *, https: bool = False, address: str = "testclient") -> TestClient:
        """A browser; `address` is the client address the console sees (its login brake's key)."""
        return TestClient(self.app, base_url="https://testserver" if https else "http://testserver",
                          follow_redirects=False, client=(address, 50000))

    def login(self, role: str, *, https: bool = False) -> TestClient:
        client = self.client(https=https)
        response = login(client, USERS[role])
        assert response.status_code == 303, response.text
        return client


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> object:
    page = client.get("/inloggen")
    assert page.status_code == 200
    return client.post("/inloggen", data={"csrf": csrf_of(page.text), "gebruikersnaam": username,
                                          "wachtwoord": password, "volgende": "/"})


def make_users(store: Store) -> None:
    with store.write() as s:
        for role, username in USERS.items():
            zones = ("lokaal-101",) if role == "docent" else ()
            create_user(s, username=username, display_name=f"Test {role}", role=role, password=PASSWORD,
                        zones=zones, actor="test", now=NOW)


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, with the smallest cost: these tests are about the console, not hash cost
    (the accounts' own tests use the real parameters)."""
    monkeypatch.setattr(accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    accounts._dummy_hash.cache_clear()


@pytest.fixture
def make_console(tmp_path: Path) -> Iterator[Callable[..., Console]]:
    opened: list[TestClient] = []

    def make(url: str, **options: Any) -> Console:
        """`options`: further keyword arguments of create_app (e.g. mail settings)."""
        clock = Clock(NOW)
        app = create_app(url, POLICY, tmp_path / "data", clock=clock, expiry_every_s=3600, **options)
        store = app.state.console.store
        make_users(store)
        life = TestClient(app)
        life.__enter__()   # run the lifespan (expiry task) as uvicorn would
        opened.append(life)
        return Console(app, store, clock, url)

    yield make
    for life in opened:
        life.__exit__(None, None, None)


@pytest.fixture
def console(make_console: Callable[[str], Console], tmp_path: Path) -> Console:
    return make_console(default_url(tmp_path / "data"))
