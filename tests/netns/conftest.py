"""Fixtures for tests that build their own networks in namespaces (root, iproute2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .topology import Topology, usable


@pytest.fixture
def topology() -> Iterator[Topology]:
    reason = usable()
    if reason is not None:   # a failure, not a skip: these tests are part of the suite everywhere it runs
        pytest.fail(reason)
    topo = Topology()
    try:
        yield topo
    finally:
        topo.close()
