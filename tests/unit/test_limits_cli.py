"""`poortwachter limit list|revoke` end to end: real subprocesses on a temporary data directory
(SQLite there by default, or PostgreSQL via --db), on limits the sensor's service call imposed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poortwachter.store import load_state, open_store
from poortwachter.workflow.limits import impose_download_limit

from .test_store import db_url  # noqa: F401  (fixture: both backends, schema per test)
from .test_workflow import HOUR, NOW
from .test_workflow_cli import Cli, _refused


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data", db_url)


def _imposed(cli: Cli, address: str) -> int:
    store = open_store(cli.url)
    try:
        limit_id = impose_download_limit(store, address=address, zone="klaslokalen", max_bytes=50_000_000,
                                         until=NOW + 14 * HOUR, reason="overmatig downloaden", now=NOW)
    finally:
        store.close()
    assert limit_id is not None
    return limit_id


def test_limit_list_and_revoke(cli: Cli) -> None:
    assert cli("limit", "list").stdout == ""                 # also creates the store in the data directory
    limit_id = _imposed(cli, "10.20.3.4")
    listing = cli("limit", "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == (f"{limit_id}\t10.20.3.4\tklaslokalen\tmax. 50000000 bytes\t"   # midnight in Amsterdam
                              "tot/until 2025-03-11 00:00\tsystem:sensor\tovermatig downloaden\n")
    (shown,) = json.loads(cli("limit", "list", "--json").stdout)
    assert (shown["id"], shown["address"], shown["max_bytes"], shown["until"]) == (
        limit_id, "10.20.3.4", 50_000_000, "2025-03-10T23:00:00+00:00")

    lifted = cli("limit", "revoke", str(limit_id), "--reason", "leerling sprak ICT aan", "--actor", "jan")
    assert lifted.returncode == 0, lifted.stderr
    assert lifted.stdout.strip() == f"Downloadlimiet {limit_id} opgeheven / Download limit {limit_id} lifted"
    assert json.loads(cli("limit", "list", "--json").stdout) == []
    store = open_store(cli.url)
    try:
        assert load_state(store, NOW).download_limits == ()
    finally:
        store.close()
    _refused(cli("limit", "revoke", str(limit_id), "--reason", "nogmaals"), 1)   # already lifted
    _refused(cli("limit", "revoke", "99", "--reason", "r"), 2)                   # unknown: bad input
    _refused(cli("limit", "revoke", str(limit_id), "--reason", " ", "--actor", "jan"), 2)
