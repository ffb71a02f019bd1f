"""Fixtures of the end-to-end tests: a test CA, local upstream servers, and one real mitmdump per
test module (tests that rewrite the policy or the clock restore it, or own their module)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from .pki import TestCA
from .proxy import LESSON, MITMDUMP, TEST_POLICY, Gateway
from .upstream import Upstream


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture(scope="session")
def upstream(test_ca: TestCA) -> Iterator[Upstream]:
    servers = Upstream(test_ca)
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def policy_text() -> str:
    """The policy the module's gateway starts with; a module may override this fixture."""
    return TEST_POLICY.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reload_interval() -> str:
    """Seconds between the gateway's checks for a changed policy or lists (production: 1.0)."""
    return "0.2"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA,
            policy_text: str, reload_interval: str) -> Iterator[Gateway]:
    if not MITMDUMP.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump (make venv) and curl")
    gw = Gateway(tmp_path_factory.mktemp("gateway"), upstream, test_ca, policy_text, LESSON,
                 reload_interval).start()
    yield gw
    crashed = not gw.alive()
    gw.stop()
    if crashed:
        pytest.fail(f"mitmdump died during the tests:\n{gw.output()}")


@pytest.fixture
def lesson(gateway: Gateway) -> Iterator[Gateway]:
    """The module's gateway with its clock in a lesson (restored after tests that move it)."""
    gateway.set_clock(LESSON)
    yield gateway
    gateway.set_clock(LESSON)
