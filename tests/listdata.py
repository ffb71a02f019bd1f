"""Category lists for tests: every list a policy names, installed with the real CLI, so that the
filter is ready (settings.missing_lists never comes into play unless a test wants it to)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from poortwachter.policy.load import load_policy


def install_every_list(policy: Path, data_dir: Path, entries: dict[str, list[str]] | None = None) -> None:
    """One list per list name of `policy`: the domains in `entries` for that name, else one made-up
    domain (`<name>.lijst.test`) so the list is not empty."""
    entries = entries or {}
    names = sorted({name for cat in load_policy(policy).categories.values() for name in cat.lists} | set(entries))
    source = data_dir / "list-sources"
    source.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "poortwachter.cli", "--data-dir", str(data_dir), "lists", "update", "--from", "none"]
    for name in names:
        path = source / f"{name}.txt"
        path.write_text("\n".join(entries.get(name) or [f"{name.replace('_', '-')}.lijst.test"]) + "\n")
        argv += ["--extra-domains", f"{name}={path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"lists update failed: {done.stderr}")
