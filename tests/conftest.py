"""Shared test helpers: paths to the repository and to the shared data next to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .dbfixtures import db_url, store  # noqa: F401  (fixtures: both store backends, schema per test)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def repo() -> Path:
    return REPO
