"""Verdicts of decisions taken by people (an exclusion, a grant, a classroom opening, an exam) name an
article: the decision's own, else the policy's `articles:`, else the policy model's default, which
is never empty and never another school's article number."""

from __future__ import annotations

import ast
import datetime as dt
import ipaddress
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter.decide import Categorizer, Context, Request, Verdict, decide
from poortwachter.policy.compiled import CompiledPolicy
from poortwachter.policy.load import PolicyError, parse_policy
from poortwachter.policy.model import Articles
from poortwachter.state import Ban, Exam, Grant, Opening, Sites, State

from .fakes import DictIndex

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
LATER = NOW + dt.timedelta(hours=1)
PUPIL = "10.1.2.3"
SEED_ARTICLE = re.compile(r"\b00[0-4]\b|\bart\. *\d")

POLICY = """\
school: "Zonder artikelen"
zones:
  klas: {kind: classroom, role: pupil, cidrs: ["10.1.0.0/16"]}
timetable:
  schedules: {dag: [{name: les, start: "08:00", end: "17:00", kind: lesson}]}
  weekdays: {monday: dag}
categories:
  spel: {title: "Spel", sites: [spel.example], opened_by: [docent, ict]}
rules:
  - {name: geen-spel, source: "reglement art. 1", action: block, categories: [spel]}
default: allow
"""


def compiled(extra: str = "") -> CompiledPolicy:
    return CompiledPolicy(parse_policy(POLICY + extra, "p.yaml"))


def verdict(policy: CompiledPolicy, state: State, host: str = "spel.example") -> Verdict:
    ctx = Context(policy, Categorizer(policy, DictIndex({})), state)
    return decide(Request(ipaddress.ip_address(PUPIL), host, "/"), ctx, NOW)


def test_the_model_defaults_are_articles_of_no_particular_school() -> None:
    for name, value in Articles().model_dump().items():
        assert value.strip(), name
        assert not SEED_ARTICLE.search(value), (name, value)


@pytest.mark.parametrize("source", ["", "   "])
def test_a_ban_without_an_article_cites_the_policys_default_exclusion_article(source: str) -> None:
    policy = compiled()
    assert "articles" not in POLICY
    v = verdict(policy, State(bans=(Ban(1, PUPIL, LATER, source=source),)), host="ok.example")
    assert (v.action, v.rule) == ("block", "uitsluiting")
    assert v.source == Articles().exclusion and v.source.strip()


def test_a_ban_cites_its_own_article_else_the_policys() -> None:
    policy = compiled('articles: {exclusion: "reglement art. 9: uitsluiting"}\n')
    assert verdict(policy, State(bans=(Ban(1, PUPIL, LATER),))).source == "reglement art. 9: uitsluiting"
    own = verdict(policy, State(bans=(Ban(1, PUPIL, LATER, source="besluit directie 12-3"),)))
    assert own.source == "besluit directie 12-3"


@pytest.mark.parametrize("value", ['""', '"   "'])
def test_an_empty_article_is_refused_when_the_policy_is_loaded(value: str) -> None:
    for field in Articles.model_fields:
        with pytest.raises(PolicyError, match=f"articles.{field}"):
            parse_policy(POLICY + f"articles: {{{field}: {value}}}\n", "p.yaml")


def test_an_article_is_stored_without_surrounding_white_space() -> None:
    policy = compiled('articles: {unblock: "  reglement art. 12  "}\n')
    assert policy.articles.unblock == "reglement art. 12"


def test_a_grant_cites_the_policys_unblock_article_never_a_fixed_one() -> None:
    grant = Grant(1, Sites.of(["spel.example"]), NOW, LATER)
    v = verdict(compiled(), State(grants=(grant,)))
    assert (v.action, v.rule, v.source) == ("allow", "deblokkering", Articles().unblock)
    school = compiled('articles: {unblock: "reglement art. 3: openstellen via ICT"}\n')
    assert verdict(school, State(grants=(grant,))).source == "reglement art. 3: openstellen via ICT"
    blank = Grant(2, Sites.of(["spel.example"]), NOW, LATER, source="  ")
    assert verdict(school, State(grants=(blank,))).source == "reglement art. 3: openstellen via ICT"


def test_openings_and_exams_without_an_article_cite_the_policys() -> None:
    policy = compiled('articles: {classroom: "reglement art. 4", exam: "reglement art. 5"}\n')
    opening = Opening(1, "klas", "open", Sites.of(["spel.example"]), LATER, source=" ")
    assert verdict(policy, State(openings=(opening,))).source == "reglement art. 4"
    exam = Exam(2, "klas", Sites.of(["toets.example"]), LATER, source="")
    assert verdict(policy, State(exams=(exam,)), host="ok.example").source == "reglement art. 5"


# The modules that make verdicts and the live state they read: no string in them (docstrings and
# comments aside) may carry one school's article number; those come from the policy.
VERDICT_PATH = [
    "src/poortwachter/decide.py",
    "src/poortwachter/state.py",
    "src/poortwachter/gateway.py",
    "src/poortwachter/policy/compiled.py",
    "src/poortwachter/store/snapshot.py",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "addons").glob("*.py")),
]
HARD_CODED = re.compile(r"\b00[0-4] (art\.|§|Afspraken|Regels|Algemeen|Protocol|\()")


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@pytest.mark.parametrize("path", VERDICT_PATH)
def test_no_article_of_one_school_is_hard_coded_on_the_verdict_path(path: str) -> None:
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    found = [(line, text) for line, text in _strings(tree) if HARD_CODED.search(text)]
    assert not found, f"{path}: {found}"
