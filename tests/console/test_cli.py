"""`poortwachter console`: argument parsing, and a real uvicorn on 127.0.0.1 that serves the
console and writes no client addresses or URLs to its log."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from poortwachter.console.cli import parse_listen, register

from .conftest import POLICY

RUNNER = """
import argparse, sys
from poortwachter.console.cli import register
parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def test_register_adds_the_console_command() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["console", "--policy", "p.yaml"])
    assert args.listen == "127.0.0.1:8090" and args.db is None and callable(args.func)
    args = parser.parse_args(["console", "--policy", "p.yaml", "--listen", "0.0.0.0:9000", "--db", "sqlite:///x"])
    assert args.listen == "0.0.0.0:9000" and args.db == "sqlite:///x"


@pytest.mark.parametrize(("text", "expected"), [("127.0.0.1:8090", ("127.0.0.1", 8090)),
                                                ("[::1]:8090", ("::1", 8090)), (":8090", ("127.0.0.1", 8090))])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8090", "host:", "host:99999", "host:http"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_serves_the_console_without_personal_data_in_its_log(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--data-dir", str(tmp_path), "console", "--policy", str(POLICY),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"{base}/deblokkeren", params={"url": "https://geheim-site.example/pad"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)   # waiting for the server to listen
        assert response.status_code == 200
        assert "geheim-site.example" in response.text
        assert "server" not in response.headers
        assert response.headers["x-frame-options"] == "DENY"
        assert httpx.get(f"{base}/aanvragen").status_code == 303
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "geheim-site" not in output and "/deblokkeren" not in output and "/aanvragen" not in output
    assert f"127.0.0.1:{port}" in output          # it did log (its own address) ...
    assert "127.0.0.1:" not in output.replace(f"127.0.0.1:{port}", "")   # ... but no client address
