"""Read a policy file: YAML in, a validated Policy or a list of problems with file, line and path out.

The YAML is composed to a node tree first, so every problem pydantic or the cross-reference check
finds can be pointed at the line an admin has to fix: `policy.yaml:42: zones.klas.cidrs[1]: ...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import ValidationError

from .model import Path, Policy, cross_references, warnings


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path or '(top)'}: {self.message}"


class PolicyError(Exception):
    """A policy that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Lines:
    """Maps a value path to the 1-based line of the YAML node that holds it."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line(self, path: Path) -> int:
        node = self.root
        if node is None:
            return 1
        line = node.start_mark.line + 1
        for part in path:
            child = self._child(node, part)
            if child is None:
                break
            key_line, node = child
            line = key_line
            if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
                break
        return line

    @staticmethod
    def _child(node: yaml.Node, part: str | int) -> tuple[int, yaml.Node] | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    return key.start_mark.line + 1, value
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            item = node.value[part]
            return item.start_mark.line + 1, item
        return None


def _duplicate_keys(node: yaml.Node | None, path: Path, out: list[tuple[Path, int, str]]) -> None:
    # PyYAML keeps the last of two equal keys without a word; a second `rules:` would silently
    # drop the first block of rules, so it is an error here.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if name in seen:
                out.append((path + (name,), key.start_mark.line + 1, f"key {name!r} appears twice"))
            seen.add(name)
            _duplicate_keys(value, path + (name,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, path + (i,), out)


def _message(error: dict[str, Any]) -> str:
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def policy_warnings(file: FilePath | str) -> list[Problem]:
    """Warnings about a valid policy file (policy.model.warnings), with their lines."""
    file = FilePath(file)
    text = file.read_text(encoding="utf-8")
    lines = _Lines(yaml.compose(text, Loader=yaml.SafeLoader))
    policy = parse_policy(text, str(file))
    return [Problem(str(file), lines.line(path), format_path(path), msg) for path, msg in warnings(policy)]


def parse_policy(text: str, filename: str) -> Policy:
    """Validate policy text; raises PolicyError listing every problem with its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PolicyError([Problem(filename, line, "", f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(filename, 1, "", f"YAML: {exc}")]) from None
    lines = _Lines(root)
    dups: list[tuple[Path, int, str]] = []
    _duplicate_keys(root, (), dups)
    problems = [Problem(filename, line, format_path(path), msg) for path, line, msg in dups]
    if not isinstance(data, dict):
        raise PolicyError(problems + [Problem(filename, 1, "", "a policy is a mapping (school:, zones:, ...)")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path: Path = tuple(err["loc"])
            problems.append(Problem(filename, lines.line(path), format_path(path), _message(err)))
        raise PolicyError(problems) from None
    for path, msg in cross_references(policy):
        problems.append(Problem(filename, lines.line(path), format_path(path), msg))
    if problems:
        raise PolicyError(problems)
    return policy


def load_policy(file: FilePath | str) -> Policy:
    file = FilePath(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise PolicyError([Problem(str(file), 1, "", f"cannot read (niet leesbaar): {reason}")]) from None
    return parse_policy(text, str(file))
