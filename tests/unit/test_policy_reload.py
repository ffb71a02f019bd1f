"""Only whole policies are enforced: a policy file caught while it is being written is never read,
no line-boundary prefix of a shipped policy is ever a policy that opens what it forbids, and a
reload that would stop blocking a category nobody may open is refused (tests drive the engine's
clock; tests/e2e/test_reload.py shows the running gateway)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poortwachter.gateway import SETTLE, Engine
from poortwachter.policy.load import PolicyError, parse_policy

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted([REPO / "policy" / "default.yaml", *(REPO / "policy" / "examples").glob("*.yaml")])


def _prefixes(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return ["".join(lines[:n]) for n in range(len(lines))]


@pytest.mark.parametrize("shipped", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_policy_written_line_by_line_is_read_only_when_whole(tmp_path: Path, shipped: Path) -> None:
    """A tool writes the policy in place, one line at a time, faster than the settle time: the
    gateway never reads a prefix; once the file stays the same for SETTLE seconds it reads the
    whole file."""
    full = shipped.read_text(encoding="utf-8")
    path = tmp_path / "policy.yaml"
    path.write_text(full, encoding="utf-8")
    engine = Engine(path, None)
    before = engine.generation
    now = 1000.0
    for n, prefix in enumerate(_prefixes(full)[1:], start=1):
        path.write_text(prefix, encoding="utf-8")
        os.utime(path, ns=(n * 1_000_000_000, n * 1_000_000_000))    # every write is a new stamp
        now += 0.125                                                    # exact in binary: no rounding
        assert not engine.reload_due(now), f"a prefix of {n} lines would have been read"
    path.write_text(full + "# saved\n", encoding="utf-8")
    assert not engine.reload_due(now + 0.125)                           # changed just now: wait
    assert engine.reload_due(now + 0.125 + SETTLE)                      # stayed the same: read it
    result = engine.install(engine.prepare())
    assert result.ok and engine.generation == before + 1


@pytest.mark.parametrize("shipped", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_no_prefix_of_a_shipped_policy_opens_what_the_whole_one_forbids(shipped: Path) -> None:
    """A cut that still parses is refused as a reload when it would stop blocking a category nobody
    may open; and a policy always says its rules and default, so a cut before them is no policy."""
    from poortwachter.gateway import unlocked
    from poortwachter.policy.compiled import CompiledPolicy

    full = CompiledPolicy(parse_policy(shipped.read_text(encoding="utf-8"), str(shipped)))
    valid = 0
    for prefix in _prefixes(shipped.read_text(encoding="utf-8")):
        try:
            cut = CompiledPolicy(parse_policy(prefix, "cut.yaml"))
        except PolicyError:
            continue
        valid += 1
        assert cut.policy.rules == full.policy.rules and cut.default == full.default, \
            "a valid prefix has every rule and the default"
        if not full.locked <= cut.locked:       # it lost a category nobody may open: a reload refuses it
            assert "settings.unlock" in unlocked(full, cut, "cut.yaml")
    assert valid >= 1


def test_a_reload_that_would_unblock_malware_is_refused_unless_the_policy_says_so(tmp_path: Path) -> None:
    """004 art. 12 (virussen): a new version of the policy that makes malware overridable (or drops
    the category) stays out, with the reason, while the policy in force keeps blocking; named in
    settings.unlock, the same change is taken."""
    text = (REPO / "policy" / "default.yaml").read_text(encoding="utf-8")
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    engine = Engine(path, None)
    assert "malware" in engine.policy.locked
    opened = text.replace("    overridable: false\n", "    overridable: true\n", 1)
    assert opened != text
    path.write_text(opened, encoding="utf-8")
    result = engine.install(engine.prepare())
    assert not result.ok and "settings.unlock" in result.error and "malware" in result.error
    assert "malware" in engine.policy.locked
    path.write_text(opened.replace("  missing_lists: block\n", "  missing_lists: block\n  unlock: [malware]\n"),
                    encoding="utf-8")
    assert engine.install(engine.prepare()).ok and "malware" not in engine.policy.locked


def test_a_policy_without_rules_or_default_is_no_policy() -> None:
    text = (REPO / "policy" / "default.yaml").read_text(encoding="utf-8")
    cut = text[:text.index("\nrules:")]
    with pytest.raises(PolicyError) as info:
        parse_policy(cut, "cut.yaml")
    problems = {p.path for p in info.value.problems}
    assert {"rules", "default"} <= problems
