"""`poortwachter sensor`: bad input ends with a Dutch / English message and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from poortwachter.cli import main

from .helpers import POLICY


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().err


def test_an_unknown_interface(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    status, err = run(capsys, "sensor", "--interface", "pw-nonexistent", "--policy", str(tmp_path / "p.yaml"))
    assert status == 2
    assert "Interface bestaat niet / Interface does not exist: pw-nonexistent" in err


def test_an_invalid_policy_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY + "sensor:\n  scans: {ports: many}\n")
    status, err = run(capsys, "--data-dir", str(tmp_path), "sensor", "--interface", "lo", "--policy", str(policy))
    assert status == 2
    assert f"{policy}:{len(POLICY.splitlines()) + 2}: sensor.scans.ports: " in err


def test_a_bad_metrics_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    status, err = run(capsys, "sensor", "--interface", "lo", "--policy", str(tmp_path / "p.yaml"),
                      "--metrics-listen", "9109", "--data-dir", str(tmp_path))
    assert status == 2
    assert "HOST:PORT verwacht / HOST:PORT expected" in err
