"""Everything the gateway run needs on disk: installed lists, the benchmark policy, the store.

The policy is policy/default.yaml (what a new school starts with) with three benchmark edits:
- the benchmark client 127.0.0.2 is in the `klaslokalen` zone: a pupil in a classroom, intercept,
  SafeSearch on, and the allowlist-only classroom rule, so every request takes the full path;
- `localhost` (the local upstream) is part of the school environment, so that rule allows it;
- `localhost/verboden` is a forbidden category, for the mix with blocked requests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
UT1 = SHARED / "ut1" / "blacklists"
SINFONIETTA = SHARED / "lists" / "sinfonietta"

CLIENT = "127.0.0.2"          # source address of the load generator
UPSTREAM_HOST = "localhost"   # resolves to 127.0.0.1 everywhere, so neither proxy needs a redirect
BLOCKED_PREFIX = "/verboden"


def bench_policy(directory: Path, ports: tuple[int, ...] = ()) -> Path:
    """The default policy with the benchmark client in a classroom and the upstream in the school
    environment; `ports`: the upstream's ports, which an explicit-proxy request may go to."""
    policy = yaml.safe_load((REPO / "policy" / "default.yaml").read_text(encoding="utf-8"))
    if ports:
        settings = policy.setdefault("settings", {})
        settings["connect_ports"] = sorted({*settings.get("connect_ports", [443, 80]), *ports})
    policy["zones"]["klaslokalen"]["cidrs"].append(f"{CLIENT}/32")
    policy["categories"]["schoolomgeving"]["sites"].append(UPSTREAM_HOST)
    policy["categories"]["bench-verboden"] = {
        "title": "Verboden pagina (benchmark) / Forbidden page (benchmark)",
        "sites": [UPSTREAM_HOST + BLOCKED_PREFIX],
    }
    forbidden = next(r for r in policy["rules"] if r["name"] == "verboden-categorieen")
    forbidden["categories"].append("bench-verboden")
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def install_lists(data_dir: Path) -> str:
    """All UT1 lists and the Sinfonietta hosts lists, as production has them; a note for the report."""
    if not UT1.exists():
        return f"no lists installed ({UT1} not found)"
    cmd = [sys.executable, "-m", "poortwachter.cli", "--data-dir", str(data_dir), "lists", "update",
           "--from", str(UT1)]
    for name, file in (("sinfonietta-porn", "pornography-hosts"), ("sinfonietta-social", "social-hosts")):
        if (SINFONIETTA / file).exists():
            cmd += ["--hosts", f"{name}={SINFONIETTA / file}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "lists installed"


def create_store(data_dir: Path) -> None:
    """As `poortwachter run` does: create and migrate the store before the proxy starts."""
    from poortwachter.store.db import default_url, open_store

    open_store(default_url(data_dir)).close()


def install_escrow_key(data_dir: Path) -> str:
    """As after the key ceremony: an escrow public key, so the audit recorder seals every event
    (production's setting; without a key it records clear fields only). A note for the report."""
    try:
        from poortwachter.audit.keystore import audit_dir, write_escrow_public
        from poortwachter.audit.seal import generate_keypair
    except ImportError as exc:  # the audit package is young: say so rather than fail the benchmark
        return f"no escrow key installed ({exc})"
    _private, public = generate_keypair()  # the private half is dropped: nobody opens these events
    write_escrow_public(audit_dir(data_dir), public)
    return "escrow key installed: audit events sealed"


def explain(policy: Path, data_dir: Path, url: str) -> dict[str, object]:
    import json

    proc = subprocess.run([sys.executable, "-m", "poortwachter.cli", "--data-dir", str(data_dir), "explain",
                           "--policy", str(policy), "--client", CLIENT, url],
                          capture_output=True, text=True, check=True)
    return dict(json.loads(proc.stdout))
