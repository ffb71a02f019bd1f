"""The options that fake "now" are for tests only: `run --clock-file`, `console --clock-file`,
`classify --at` and the addon's `poortwachter_clock_file` are refused unless
POORTWACHTER_TEST_CLOCK=1 says the process is a test; in production the gateway keeps the system
clock. `explain --at` is a question about a moment, not a clock, and stays for everyone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons
from poortwachter_addons.engine import EngineAddon

from poortwachter.cli import TEST_CLOCK_ENV, build_parser, main

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policy" / "default.yaml"
LESSON = "2026-11-23T10:00"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEST_CLOCK_ENV, raising=False)


def refused(err: str, option: str) -> None:
    assert f"{option} is alleen voor tests" in err and f"{option} is only for tests" in err
    assert err.index("alleen voor tests") < err.index(" / ") < err.index("only for tests")


@pytest.mark.parametrize("argv", [
    ["run", "--policy", str(POLICY), "--clock-file", "/tmp/klok"],
    ["console", "--policy", str(POLICY), "--clock-file", "/tmp/klok"],
])
def test_a_clock_file_is_refused_outside_tests(argv: list[str], tmp_path: Path, production: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path / "data"), *argv]) == 2
    refused(capsys.readouterr().err, "--clock-file")
    assert not (tmp_path / "data").exists()          # refused before anything is set up


def test_classify_at_is_refused_outside_tests(production: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--policy", str(POLICY), "--at", LESSON]) == 2
    refused(capsys.readouterr().err, "--at")


def test_explain_at_is_a_question_not_a_clock(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != TEST_CLOCK_ENV}
    env["POORTWACHTER_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "poortwachter.cli", "explain", "--policy", str(POLICY),
                           "--client", "10.20.1.5", "--at", LESSON, "https://www.tiktok.com/"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["at"].startswith(LESSON)


def test_the_real_command_refuses_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != TEST_CLOCK_ENV}
    done = subprocess.run([sys.executable, "-m", "poortwachter.cli", "--data-dir", str(tmp_path), "classify",
                           "--policy", str(POLICY), "--at", LESSON], input="", capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2
    refused(done.stderr, "--at")
    env[TEST_CLOCK_ENV] = "1"
    done = subprocess.run([sys.executable, "-m", "poortwachter.cli", "--data-dir", str(tmp_path), "classify",
                           "--policy", str(POLICY), "--at", LESSON],
                          input="http://www.tiktok.com/ 10.20.1.5/- - GET\n", capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("block ")     # TikTok in a classroom during a lesson


def test_the_clock_options_are_not_in_the_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices   # type: ignore[attr-defined]
    for command, option in (("run", "--clock-file"), ("console", "--clock-file"), ("classify", "--at")):
        assert option not in sub[command].format_help(), command
    assert "--at" in sub["explain"].format_help()


def test_the_addon_refuses_a_clock_file_outside_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = tmp_path / "klok"
    clock.write_text(LESSON)
    options = {"poortwachter_policy": str(POLICY), "poortwachter_data_dir": str(tmp_path),
               "poortwachter_clock_file": str(clock)}

    def configure() -> EngineAddon:
        addon = EngineAddon()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, **options)
        return addon

    async def both() -> None:      # one running loop for both masters: mitmproxy logs through it
        monkeypatch.delenv(TEST_CLOCK_ENV, raising=False)
        with pytest.raises(exceptions.OptionsError, match="only for tests"):
            configure()
        monkeypatch.setenv(TEST_CLOCK_ENV, "1")
        assert configure().current().clock().isoformat().startswith(LESSON)

    asyncio.run(both())
