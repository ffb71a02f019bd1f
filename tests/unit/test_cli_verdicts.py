"""`explain` and `classify` give the verdict of the engine the gateway runs, on the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.listdata import install_every_list

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policy" / "default.yaml"
LESSON = "2026-11-23T10:00:00+01:00"
BREAK = "2026-11-23T10:15"
LISTS: Path | None = None     # a data directory with every list of the default policy installed


@pytest.fixture(scope="module", autouse=True)
def lists_installed(tmp_path_factory: pytest.TempPathFactory) -> None:
    global LISTS
    LISTS = tmp_path_factory.mktemp("lists")
    install_every_list(POLICY, LISTS)


def run(args: list[str], stdin: str = "", data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POORTWACHTER_DATA_DIR=str(data_dir or LISTS))
    env["POORTWACHTER_TEST_CLOCK"] = "1"          # classify --at: refused outside tests
    return subprocess.run([sys.executable, "-m", "poortwachter.cli", *args], input=stdin, text=True,
                          capture_output=True, env=env, timeout=60)


def explain(client: str, url: str, at: str = LESSON, data_dir: Path | None = None) -> dict[str, object]:
    proc = run(["explain", "--policy", str(POLICY), "--client", client, "--at", at, url], data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_without_lists_only_the_school_environment_is_reachable(tmp_path: Path) -> None:
    """004 art. 12 (de firewall blokkeert): with no lists installed the default policy cannot tell a
    forbidden site from any other, so it does not pretend to: only the school environment works."""
    empty = tmp_path / "no-lists"
    blocked = explain("10.30.1.1", "https://www.example.com/", at=BREAK, data_dir=empty)
    assert (blocked["action"], blocked["rule"], blocked["source"]) == (
        "block", "filter-niet-gereed", "004 art. 12: de firewall blokkeert; het filter niet omzeilen")
    school = explain("10.30.1.1", "https://school.magister.net/", at=BREAK, data_dir=empty)
    assert (school["action"], school["rule"]) == ("allow", "standaard")


def test_explain_has_the_promised_keys() -> None:
    out = explain("10.20.1.5", "http://www.tiktok.com/@school")
    assert {"action", "rule", "source", "category", "zone", "role", "period"} <= out.keys()
    assert (out["action"], out["rule"], out["source"], out["category"], out["zone"], out["role"], out["period"]) == (
        "block", "klaslokaal-alleen-schoolomgeving", "004 art. 9", "sociale-media", "klaslokalen", "pupil", "2e-uur")


def test_explain_canteen_and_time_without_offset_is_amsterdam() -> None:
    out = explain("10.30.1.1", "https://www.tiktok.com/", at=BREAK)
    assert (out["action"], out["zone"], out["period"], out["decided_on"]) == ("allow", "openbare-ruimte", "pauze", "host")


def test_explain_bad_input_is_a_clear_error_without_crash() -> None:
    proc = run(["explain", "--policy", str(POLICY), "--client", "not-an-ip", "--at", LESSON, "http://x.nl/"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run(["explain", "--policy", str(POLICY), "--client", "10.0.0.1", "--at", "gisteren", "http://x.nl/"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_classify_one_line_per_input_line() -> None:
    lines = [
        "http://www.tiktok.com/ 10.20.1.5/- - GET",
        "www.tiktok.com:443 10.30.1.1/- - CONNECT",
        "garbage",
        "http://142.250.1.1/ 10.30.1.1/pc.school.nl - GET",
        "http://school.magister.net/ 10.20.1.5/- - GET",
    ]
    proc = run(["classify", "--policy", str(POLICY), "--at", LESSON], stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "block klaslokaal-alleen-schoolomgeving sociale-media",
        "allow standaard sociale-media",
        "ERR malformed",
        "block ip-adressen-leerlingen -",
        "allow klaslokaal-alleen-schoolomgeving schoolomgeving",
    ]
