"""`explain` and `classify` give the verdict of the engine the gateway runs, on the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policy" / "default.yaml"
LESSON = "2026-11-23T10:00:00+01:00"
BREAK = "2026-11-23T10:15"


def run(args: list[str], stdin: str = "", data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POORTWACHTER_DATA_DIR=str(data_dir or REPO / "tests" / "no-such-dir"))
    return subprocess.run([sys.executable, "-m", "poortwachter.cli", *args], input=stdin, text=True,
                          capture_output=True, env=env, timeout=60)


def explain(client: str, url: str, at: str = LESSON) -> dict[str, object]:
    proc = run(["explain", "--policy", str(POLICY), "--client", client, "--at", at, url])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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
