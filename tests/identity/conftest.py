"""Fixtures of the identity tests: `oidc_provider_factory` (see oidc_provider.py)."""

from __future__ import annotations

from .oidc_provider import oidc_provider_factory  # noqa: F401  (fixture)
