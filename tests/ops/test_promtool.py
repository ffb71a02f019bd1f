"""deploy/prometheus/ passes Prometheus' own checks: the configuration, the rules, and the rule unit
tests (every alert firing and not firing); and the checks would catch a broken file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from .prometheus import PROMETHEUS_DIR, RULES, tool

TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_config_is_valid() -> None:
    done = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout   # rule_files resolves to the rules file


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests_pass() -> None:
    assert TESTS, "no promtool tests in deploy/prometheus/tests/"
    done = promtool("test", "rules", *TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_every_alert_has_severity_and_dutch_and_english_summary() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            for text in (rule["annotations"]["summary"], rule["annotations"]["description"]):
                assert " / " in text, f"{rule['alert']}: Dutch / English"


def _copy(tmp_path: Path) -> Path:
    """deploy/prometheus/ in tmp_path, the tests' relative rule_files path intact."""
    target = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, target)
    return target


def test_a_broken_rule_is_refused(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    rules = copy / "rules" / "poortwachter.yml"
    text = rules.read_text()
    broken = text.replace('expr: up{job="poortwachter-gateway"} == 0', 'expr: up{job="poortwachter-gateway" == 0')
    assert broken != text
    rules.write_text(broken)
    done = promtool("check", "rules", rules)
    assert done.returncode != 0
    assert '"GatewayDown": could not parse expression' in done.stdout + done.stderr
    assert promtool("check", "config", copy / "prometheus.yml").returncode != 0


def test_a_changed_alert_fails_its_unit_test(tmp_path: Path) -> None:
    # The alert still parses, but waits 10 minutes instead of 1: the unit tests must notice.
    copy = _copy(tmp_path)
    rules = copy / "rules" / "poortwachter.yml"
    text = rules.read_text()
    slower = text.replace('== 0\n        for: 1m', '== 0\n        for: 10m', 1)
    assert slower != text
    rules.write_text(slower)
    assert promtool("check", "rules", rules).returncode == 0
    done = promtool("test", "rules", *sorted((copy / "tests").glob("*.yml")))
    assert done.returncode != 0
    assert "GatewayDown" in done.stdout + done.stderr
