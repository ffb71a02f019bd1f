"""The systemd units of deploy/systemd: systemd's own checks, the hardening each must have, command
lines the real `poortwachter` CLI accepts, and MemoryDenyWriteExecute only where the program runs
under it (the kernel's PR_SET_MDWE, the switch systemd's directive stands for)."""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from poortwachter.cli import build_parser, mitmdump_args, run_worker

from ..e2e.proxy import POORTWACHTER, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
ENV_FILE = UNITS / "poortwachter.env"
INSTALLED_BIN = "/opt/poortwachter/bin/poortwachter"
INSTANCE = {"poortwachter-gateway@.service": "2", "poortwachter-sensor@.service": "lo"}
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
LONG_RUNNING = ("poortwachter-gateway@.service", "poortwachter-console.service", "poortwachter-sensor@.service")
START_TIMEOUT = 30.0

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """A unit file as systemd reads it: sections, repeatable keys, `\\` continuation lines."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, f"not a key=value line in a section: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def unit(name: str) -> Unit:
    return parse_unit((UNITS / name).read_text(encoding="utf-8"))


def one(u: Unit, key: str) -> str:
    values = u["Service"].get(key, [])
    assert len(values) == 1, f"{key}: expected once, found {values}"
    return values[0]


def env_file() -> dict[str, str]:
    out = {}
    for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def exec_argv(name: str) -> list[str]:
    """ExecStart as systemd expands it: %i, ${VAR} as one word, $VAR split on white space; the
    unit's Environment= first, then the EnvironmentFile (deploy/systemd/poortwachter.env)."""
    u = unit(name)
    env: dict[str, str] = {}
    for assignment in u["Service"].get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    env.update(env_file())
    instance = INSTANCE.get(name, "")
    words = shlex.split(one(u, "ExecStart").replace("%i", instance).replace("%I", instance))
    argv: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$\{(\w+)\}", word)
        split = re.fullmatch(r"\$(\w+)", word)
        if whole:
            argv.append(env.get(whole.group(1), ""))
        elif split:
            argv.extend(env.get(split.group(1), "").split())
        else:
            assert "$" not in word, f"{name}: a variable inside a word is not expanded the same way: {word}"
            argv.append(word)
    return argv


# --- what every unit must say ---------------------------------------------------------------------
@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_hardened(name: str) -> None:
    s = unit(name)["Service"]
    expected = {"User": "poortwachter", "Group": "poortwachter", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
                "SystemCallArchitectures": "native", "StateDirectory": "poortwachter",
                "EnvironmentFile": "/etc/poortwachter/poortwachter.env"}
    assert {k: s.get(k, [None])[-1] for k in expected} == expected
    assert "@system-service" in s["SystemCallFilter"]
    families = set(s["RestrictAddressFamilies"][-1].split())
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= families
    assert "ReadWritePaths" not in s     # the state directory is the only writable place
    assert one(unit(name), "ExecStart").startswith(INSTALLED_BIN + " ")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_on_failure(name: str) -> None:
    assert one(unit(name), "Restart") == "on-failure"
    assert one(unit(name), "RestartSec")


@pytest.mark.parametrize("name", ["poortwachter-gateway@.service", "poortwachter-console.service",
                                  "poortwachter-lists-update.service", "poortwachter-audit-retention.service"])
def test_no_capabilities_outside_the_sensor(name: str) -> None:
    s = unit(name)["Service"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s.get("AmbientCapabilities", [""]) == [""]
    assert set(s["RestrictAddressFamilies"][-1].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_sensor_gets_raw_capture_and_nothing_more() -> None:
    s = unit("poortwachter-sensor@.service")["Service"]
    assert set(one(unit("poortwachter-sensor@.service"), "CapabilityBoundingSet").split()) == {"CAP_NET_RAW",
                                                                                               "CAP_NET_ADMIN"}
    assert set(s["AmbientCapabilities"][-1].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert "AF_PACKET" in s["RestrictAddressFamilies"][-1].split()


# --- command lines the real CLI accepts ---------------------------------------------------------
@pytest.mark.parametrize("name", SERVICES)
def test_exec_start_parses_with_the_real_cli(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = exec_argv(name)[1:]
    command = argv[0]
    try:
        args = build_parser(command).parse_args(argv)
    except SystemExit:
        pytest.fail(f"{name}: `poortwachter {' '.join(argv)}` refused: {capsys.readouterr().err}")
    assert args.command == command


def test_gateway_instances_get_their_own_ports_and_audit_id() -> None:
    argv = exec_argv("poortwachter-gateway@.service")[1:]     # instance 2
    args = build_parser("run").parse_args(argv)
    args.data_dir = Path(env_file()["POORTWACHTER_DATA_DIR"])
    worker = run_worker(args, hostname="gw-lyceum.school.lan")
    assert worker is not None
    assert (worker.gateway, worker.listen, worker.metrics) == ("gw-lyceum-2", "0.0.0.0:8081", "127.0.0.1:9118")
    assert worker.data_dir == Path("/var/lib/poortwachter/workers/2")
    # its own resolver too, on the port the site's pw_worker_dns_ports map sends its clients' DNS to
    assert worker.dns == "0.0.0.0:5301"
    args.worker_layout = worker
    argv = mitmdump_args(args)
    assert "poortwachter_dns=0.0.0.0:5301" in [v for flag, v in zip(argv, argv[1:]) if flag == "--set"]


def test_named_instances_keep_the_ports_given_and_odd_names_are_refused() -> None:
    args = build_parser("run").parse_args(["run", "--worker", "lyceum", "--listen", "0.0.0.0:8090"])
    args.data_dir = Path("/var/lib/poortwachter")
    worker = run_worker(args, hostname="gw")
    assert worker is not None and (worker.gateway, worker.listen, worker.metrics) == (
        "gw-lyceum", "0.0.0.0:8090", "127.0.0.1:9108")
    for name in ("../x", "Lyceum", "0", "a b"):
        args.worker = name
        with pytest.raises(SystemExit):
            run_worker(args)


def test_run_options_after_the_separator_replace_the_ones_run_sets() -> None:
    """POORTWACHTER_RUN_OPTIONS may set what `run --worker` sets; mitmdump would stop on an option
    given twice, so the later one must be the only one."""
    args = build_parser("run").parse_args(["run", "--worker", "2", "--", "--set", "poortwachter_audit_gateway=gw-b",
                                           "--set", "flow_detail=1"])
    args.data_dir = Path("/var/lib/poortwachter")
    args.worker_layout = run_worker(args, hostname="gw")
    argv = mitmdump_args(args)
    sets = [v for flag, v in zip(argv, argv[1:]) if flag == "--set"]
    names = [v.partition("=")[0] for v in sets]
    assert len(names) == len(set(names)), names
    assert "poortwachter_audit_gateway=gw-b" in sets and "flow_detail=1" in sets
    assert "poortwachter_data_dir=/var/lib/poortwachter/workers/2" in sets
    assert "poortwachter_db=sqlite:////var/lib/poortwachter/poortwachter.db" in sets   # the shared store


# --- systemd's own checks -----------------------------------------------------------------------
@pytest.fixture
def installed_units(tmp_path: Path) -> Iterator[list[Path]]:
    """The units as installed, with the binary and env file at paths that exist here; templates
    instantiated (systemd-analyze verifies instances, not templates)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    env = tmp_path / "poortwachter.env"
    shutil.copy(ENV_FILE, env)
    out = []
    for path in sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer")) + sorted(UNITS.glob("*.target")):
        text = path.read_text(encoding="utf-8").replace(INSTALLED_BIN, str(POORTWACHTER))
        text = text.replace("/etc/poortwachter/poortwachter.env", str(env))
        name = path.name.replace("@.", f"@{INSTANCE.get(path.name, '')}.")
        (tmp_path / name).write_text(text, encoding="utf-8")
        out.append(tmp_path / name)
    yield out


def test_systemd_analyze_verify_is_silent(installed_units: list[Path]) -> None:
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, installed_units)],
                          capture_output=True, text=True, cwd=installed_units[0].parent)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


def test_systemd_analyze_security_rates_every_service_ok(installed_units: list[Path]) -> None:
    """systemd's exposure score (0 best, 10 worst): "OK" is below 2.0 ... at most 2.0 here."""
    for path in installed_units:
        if path.suffix != ".service":
            continue
        done = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", "--threshold=20",
                               str(path)], capture_output=True, text=True, cwd=path.parent)
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
        assert done.returncode == 0 and level, f"{path.name}: {done.stdout[-1500:]}{done.stderr}"


# --- MemoryDenyWriteExecute where Python allows it ------------------------------------------------
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def deny_write_execute() -> None:
    """In the child before exec: no memory both writable and executable (kept across exec)."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        os._exit(97)


def _mdwe_supported() -> bool:
    probe = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=deny_write_execute)
    return probe.returncode == 0


needs_mdwe = pytest.mark.skipif(sys.platform != "linux" or not _mdwe_supported(),
                                reason="PR_SET_MDWE needs Linux 6.3 or later")


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["POORTWACHTER_DATA_DIR"] = str(data_dir)
    return env


def _serve(argv: list[str], port: int, path: str, workdir: Path) -> int:
    """Start a long-running command under MDWE, GET `path` on `port`, stop it; the HTTP status."""
    log = workdir / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                                env=_env(workdir / "data"), start_new_session=True, preexec_fn=deny_write_execute)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(port):
            assert proc.poll() is None, f"exited with {proc.returncode}: {log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"not listening: {log.read_text(errors='replace')[-3000:]}"
            time.sleep(0.1)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@needs_mdwe
def test_console_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    assert "yes" in unit("poortwachter-console.service")["Service"]["MemoryDenyWriteExecute"]
    port = free_port()
    status = _serve([str(POORTWACHTER), "console", "--policy", str(REPO / "policy" / "default.yaml"),
                     "--listen", f"127.0.0.1:{port}"], port, "/inloggen", tmp_path)
    assert status == 200


@needs_mdwe
def test_sensor_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    assert "yes" in unit("poortwachter-sensor@.service")["Service"]["MemoryDenyWriteExecute"]
    port = free_port()
    status = _serve([str(POORTWACHTER), "sensor", "--interface", "lo", "--policy",
                     str(REPO / "policy" / "default.yaml"), "--metrics-listen", f"127.0.0.1:{port}"],
                    port, "/metrics", tmp_path)
    assert status == 200


@needs_mdwe
def test_lists_update_and_retention_run_under_memory_deny_write_execute(tmp_path: Path) -> None:
    for name in ("poortwachter-lists-update.service", "poortwachter-audit-retention.service"):
        assert "yes" in unit(name)["Service"]["MemoryDenyWriteExecute"]
    for argv in (["lists", "update", "--from", str(REPO / "tests" / "data" / "lists" / "ut1")],
                 ["audit", "retention"]):
        done = subprocess.run([str(POORTWACHTER), *argv], capture_output=True, text=True, env=_env(tmp_path / "data"),
                              preexec_fn=deny_write_execute, timeout=120)
        assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"


@needs_mdwe
def test_gateway_cannot_have_memory_deny_write_execute() -> None:
    """pyOpenSSL sets mitmproxy's ALPN callback as a cffi closure in write+execute memory. If this
    starts to pass, the gateway unit can get MemoryDenyWriteExecute=yes too."""
    assert "MemoryDenyWriteExecute" not in unit("poortwachter-gateway@.service")["Service"]
    probe = ("from OpenSSL import SSL\n"
             "SSL.Context(SSL.TLS_METHOD).set_alpn_select_callback(lambda conn, protos: protos[0])\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          preexec_fn=deny_write_execute)
    assert done.returncode != 0 and "write+execute memory" in done.stderr
