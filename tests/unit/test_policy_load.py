"""check-policy: every problem as FILE:LINE: field.path: message, exit 2; a valid file exits 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poortwachter.cli import main
from poortwachter.policy.load import PolicyError, load_policy, parse_policy

REPO = Path(__file__).resolve().parents[2]
GOOD = (REPO / "policy" / "default.yaml").read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_default_policy_is_valid() -> None:
    policy = load_policy(REPO / "policy" / "default.yaml")
    assert policy.rules and policy.zones


def test_bad_network_names_file_line_and_index() -> None:
    text = GOOD.replace('cidrs: ["10.30.0.0/16", "fd00:30::/48"]', 'cidrs: ["10.30.0.0/16", "kantine"]')
    [msg] = problems(text)
    assert msg.startswith(f"p.yaml:{line_of(text, '"kantine"')}: zones.openbare-ruimte.cidrs[1]: ")
    assert "not a network" in msg


def test_unknown_field_is_an_error_not_ignored() -> None:
    text = GOOD.replace("    inspection: passthrough        # pupils'", "    inspektion: passthrough        # pupils'")
    [msg] = problems(text)
    assert msg.startswith(f"p.yaml:{line_of(text, 'inspektion')}: zones.openbare-ruimte.inspektion: ")


def test_unknown_category_in_rule_points_at_the_rule() -> None:
    text = GOOD.replace("categories: [porno, haat]", "categories: [porno, haatt]")
    [msg] = problems(text)
    assert msg == f"p.yaml:{line_of(text, 'haatt')}: rules[0].categories[1]: unknown category 'haatt'"


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = GOOD.replace("kind: public_area", "kind: kantine").replace("action: allowlist_only", "action: maybe")
    msgs = problems(text)
    assert len(msgs) == 2
    assert any("zones.openbare-ruimte.kind" in m for m in msgs)
    assert any(m.split(":")[2].strip() == "rules[4].action" for m in msgs)


def test_yaml_syntax_error_has_a_line() -> None:
    text = GOOD.replace("default: allow", "default: [allow")
    [msg] = problems(text)
    assert msg.startswith("p.yaml:") and "YAML syntax" in msg
    assert int(msg.split(":")[1]) >= line_of(GOOD, "default: allow")


def test_duplicate_key_is_an_error() -> None:
    text = GOOD + "\nrules: []\n"
    msgs = problems(text)
    assert any(m.startswith(f"p.yaml:{len(text.splitlines())}: rules: key 'rules' appears twice") for m in msgs)


def test_overlapping_periods_and_missing_schedule() -> None:
    text = GOOD.replace('{name: 2e-uur, start: "09:20"', '{name: 2e-uur, start: "09:10"', 1)
    text = text.replace("friday: normaal", "friday: vrijdag")
    msgs = problems(text)
    assert any("timetable.weekdays.friday: no schedule named 'vrijdag'" in m for m in msgs)
    assert any("timetable.schedules.normaal[1]: overlaps '1e-uur'" in m for m in msgs)


def test_safesearch_needs_intercept() -> None:
    text = GOOD.replace("    inspection: passthrough        # pupils'", "    safesearch: true\n    inspection: passthrough        # pupils'")
    [msg] = problems(text)
    assert "zones.openbare-ruimte" in msg and "safesearch needs inspection: intercept" in msg


def test_check_policy_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["check-policy", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("role: staff", "role: teacher"))
    capsys.readouterr()
    assert main(["check-policy", str(bad)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{bad}:{line_of(bad.read_text(), 'role: teacher')}: zones.medewerkers.role: "
                   "Input should be 'pupil', 'staff' or 'guest'"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "missing.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'missing.yaml'}:1: (top): cannot read")


def test_schema_file_is_current(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["policy-schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads((REPO / "policy" / "schema.json").read_text()), \
        "policy/schema.json is stale: run `poortwachter policy-schema -o policy/schema.json`"


def test_unknown_time_word_is_an_error() -> None:
    text = GOOD.replace("    zones: [classroom, exam_room]\n", "    zones: [classroom, exam_room]\n    when: [lesson, brek]\n")
    [msg] = problems(text)
    assert msg == f"p.yaml:{line_of(text, 'brek')}: rules[4].when[1]: no time tag, period or special day named 'brek'"


def test_check_policy_warns_when_a_teacher_can_open_a_forbidden_category(tmp_path: Path) -> None:
    """000, 004 art. 9/12: opening pornography is never the teacher's; a policy that lets a teacher
    open a category one of its rules blocks everywhere at all times is valid, but check-policy says so
    (with file and line) and still exits 0."""
    import subprocess
    import sys

    text = GOOD.replace('    title: "Pornografie / Pornography"\n    opened_by: []\n',
                        '    title: "Pornografie / Pornography"\n    opened_by: [docent, ict]\n')
    assert text != GOOD
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "poortwachter.cli", "check-policy", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    (warning,) = done.stdout.splitlines()
    line = text.splitlines().index("    opened_by: [docent, ict]") + 1
    assert warning.startswith(f"{path}:{line}: categories.porno.opened_by: waarschuwing: een docent kan")
    assert "verboden-categorieen" in warning
    shipped = subprocess.run([sys.executable, "-m", "poortwachter.cli", "check-policy", str(REPO / "policy" / "default.yaml")],
                             capture_output=True, text=True, timeout=60)
    assert shipped.returncode == 0 and shipped.stdout == ""       # the shipped policy has no such opening


def test_a_category_nobody_may_open_takes_no_opened_by(tmp_path: Path) -> None:
    text = GOOD.replace("    overridable: false\n", "    overridable: false\n    opened_by: [ict]\n", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "can be opened by nobody" in str(info.value)
