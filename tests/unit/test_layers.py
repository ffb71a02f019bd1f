"""The one rule of the layers: core modules import no framework; services import the store, never a
shell; shells (addons, console, CLI) import services.

Each module is imported on its own in a fresh interpreter, so what it pulls in transitively counts
and nothing another test imported first can hide or add anything. Command-line modules are
shells wherever they sit (`cli.py`, `*_cli.py`), so they are left out of both checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "poortwachter"

FRAMEWORKS = ("mitmproxy", "sqlalchemy", "starlette", "uvicorn", "jinja2")
SHELLS = ("mitmproxy", "starlette", "uvicorn", "poortwachter.console", "poortwachter_addons")

# The README's "Design in brief": the domain, the gate's pure parts and the engine they share.
CORE_FILES = ("decide.py", "hosts.py", "state.py", "bindings.py", "ech.py", "dnsnames.py", "dnsforward.py",
              "firewall.py", "blockpage.py", "roles.py", "gateway.py")
CORE_PACKAGES = ("audit", "policy", "lists")
SERVICE_PACKAGES = ("workflow", "auditlog")

_PROBE = """\
import importlib, json, sys
importlib.import_module(sys.argv[1])
wanted = json.loads(sys.argv[2])
print(json.dumps(sorted(p for p in wanted if any(m == p or m.startswith(p + ".") for m in sys.modules))))
"""


def _is_cli(path: Path) -> bool:
    return path.stem == "cli" or path.stem.endswith("_cli")


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules_of(package: str) -> list[str]:
    return [_module(p) for p in sorted((PACKAGE / package).glob("*.py")) if not _is_cli(p)]


CORE = sorted([_module(PACKAGE / name) for name in CORE_FILES]
              + [m for package in CORE_PACKAGES for m in _modules_of(package)])
SERVICES = sorted(m for package in SERVICE_PACKAGES for m in _modules_of(package))


def imported(module: str, forbidden: Iterable[str]) -> list[str]:
    """Which of `forbidden` (top-level names or dotted packages) importing `module` pulls in."""
    out = subprocess.run([sys.executable, "-c", _PROBE, module, json.dumps(list(forbidden))],
                         capture_output=True, text=True, timeout=120, cwd=SRC.parent)
    assert out.returncode == 0, f"import {module} failed:\n{out.stderr[-2000:]}"
    return json.loads(out.stdout)


def violations(modules: list[str], forbidden: Iterable[str]) -> dict[str, list[str]]:
    forbidden = tuple(forbidden)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(modules, pool.map(lambda m: imported(m, forbidden), modules), strict=True))
    return {module: bad for module, bad in found.items() if bad}


def test_the_layers_are_found_where_the_readme_puts_them() -> None:
    assert {"poortwachter.audit.seal", "poortwachter.audit.notes", "poortwachter.audit.checkpoint",
            "poortwachter.decide", "poortwachter.policy.timetable", "poortwachter.lists.parse"} <= set(CORE)
    assert {"poortwachter.auditlog.writer", "poortwachter.auditlog.checkpointer",
            "poortwachter.workflow.requests"} <= set(SERVICES)
    assert not {m for m in CORE + SERVICES if m.endswith(".cli") or m.endswith("_cli")}


def test_the_probe_sees_a_framework_imported_on_the_way() -> None:
    # A check that cannot fail checks nothing: a service on the store does pull SQLAlchemy in.
    assert "sqlalchemy" in imported("poortwachter.auditlog.ledger", FRAMEWORKS)


def test_core_modules_import_no_framework() -> None:
    assert violations(CORE, FRAMEWORKS) == {}


def test_services_import_no_shell() -> None:
    assert violations(SERVICES, SHELLS) == {}
