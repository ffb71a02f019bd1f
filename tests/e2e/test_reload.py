"""Policy reloads on the running gateway: a valid change takes effect within seconds without
dropping connections; an invalid one is refused with file:line:path and the old policy stays.

This module owns its gateway (it rewrites the policy); every test starts by putting its own
policy in force, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
import re


import pytest
from prometheus_client.parser import text_string_to_metric_families

from .clients import curl
from .proxy import CLASSROOM, TEST_POLICY, Gateway, wait_until

pytestmark = pytest.mark.e2e

BASE = TEST_POLICY.read_text(encoding="utf-8")
RELOAD_DEADLINE = 5.0   # "within a few seconds"


@pytest.fixture(scope="module")
def reload_interval() -> str:
    return "1.0"  # the production default: the deadline above holds for what schools run


def _blocking(*extra_sites: str) -> str:
    """The test policy with more sites in the porno category (blocked for everyone)."""
    sites = ", ".join(("pornhub.com",) + extra_sites)
    text = BASE.replace("sites: [pornhub.com]", f"sites: [{sites}]")
    assert text != BASE or not extra_sites
    return text


def _status(gw: Gateway, url: str) -> int:
    return curl(gw, url, CLASSROOM).status


def _apply(gw: Gateway, text: str, url: str, status: int) -> None:
    gw.write_policy(text)
    wait_until(lambda: _status(gw, url) == status, RELOAD_DEADLINE, f"policy in force: {url} -> {status}")


def _metric(gw: Gateway, name: str, labels: dict[str, str] | None = None) -> float:
    for family in text_string_to_metric_families(gw.metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return 0.0


def _refusals(gw: Gateway) -> int:
    return gw.stderr().count("policy refused")


def test_valid_change_takes_effect_and_metrics_move(gateway: Gateway) -> None:
    _apply(gateway, BASE, "http://www.example.net/", 200)
    generation = _metric(gateway, "poortwachter_policy_generation")
    successes = _metric(gateway, "poortwachter_policy_reloads_total", {"result": "success"})

    gateway.write_policy(_blocking("example.net"))
    wait_until(lambda: _status(gateway, "http://www.example.net/") == 403, RELOAD_DEADLINE,
               "the new rule blocks example.net")
    r = curl(gateway, "http://www.example.net/", CLASSROOM)
    assert r.headers["x-poortwachter-rule"] == "verboden-categorieen"
    assert _status(gateway, "http://www.example.com/") == 200
    assert _metric(gateway, "poortwachter_policy_generation") > generation
    assert _metric(gateway, "poortwachter_policy_reloads_total", {"result": "success"}) > successes
    assert "policy reloaded" in gateway.stderr()


def test_yaml_error_is_refused_and_old_policy_stays(gateway: Gateway) -> None:
    _apply(gateway, _blocking("example.net"), "http://www.example.net/", 403)
    failures = _metric(gateway, "poortwachter_policy_reloads_total", {"result": "failure"})
    generation = _metric(gateway, "poortwachter_policy_generation")
    refusals = _refusals(gateway)

    broken = _blocking().replace('cidrs: ["127.0.0.2/32"]', 'cidrs: ["127.0.0.2/32"\n    inspection: [')
    gateway.write_policy(broken)
    wait_until(lambda: _refusals(gateway) > refusals, RELOAD_DEADLINE, "the broken policy is refused")

    # names the file and the line of the unclosed bracket (or the next, where the parser notices)
    bad_line = broken.splitlines().index('    cidrs: ["127.0.0.2/32"') + 1
    found = re.search(rf"{re.escape(str(gateway.policy))}:(\d+): \(top\): YAML syntax", gateway.stderr())
    assert found, gateway.stderr()
    assert int(found.group(1)) in (bad_line, bad_line + 1)
    # the old policy (example.net blocked) is still in force, even though the new file would unblock it
    assert _status(gateway, "http://www.example.net/") == 403
    assert _status(gateway, "http://www.example.com/") == 200
    assert _metric(gateway, "poortwachter_policy_reloads_total", {"result": "failure"}) == failures + 1
    assert _metric(gateway, "poortwachter_policy_generation") == generation
    assert gateway.alive()

    # a fixed file is picked up again
    _apply(gateway, BASE, "http://www.example.net/", 200)


def test_schema_error_is_refused_with_file_line_and_path(gateway: Gateway) -> None:
    _apply(gateway, _blocking("example.net"), "http://www.example.net/", 403)
    refusals = _refusals(gateway)
    broken = BASE.replace('cidrs: ["127.0.0.3/32"]', 'cidrs: ["geen-netwerk"]')
    assert broken != BASE
    line = broken.splitlines().index('    cidrs: ["geen-netwerk"]') + 1
    gateway.write_policy(broken)
    wait_until(lambda: _refusals(gateway) > refusals, RELOAD_DEADLINE, "the invalid policy is refused")

    expected = f"{gateway.policy}:{line}: zones.kantine.cidrs[0]: 'geen-netwerk' is not a network"
    assert expected in gateway.stderr(), gateway.stderr()
    assert _status(gateway, "http://www.example.net/") == 403   # old policy still in force
    _apply(gateway, BASE, "http://www.example.net/", 200)


def test_keep_alive_connection_survives_reload(gateway: Gateway) -> None:
    _apply(gateway, BASE, "http://www.example.net/", 200)
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10, source_address=(CLASSROOM, 0))
    try:
        conn.request("GET", "http://www.example.net/voor", headers={"Host": "www.example.net"})
        before = conn.getresponse()
        assert before.status == 200 and b"path=/voor" in before.read()
        assert conn.sock is not None
        local = conn.sock.getsockname()

        gateway.write_policy(_blocking("example.net"))
        wait_until(lambda: _status(gateway, "http://www.example.net/") == 403, RELOAD_DEADLINE,
                   "the reload is in force (seen by another connection)")

        conn.request("GET", "http://www.example.net/na", headers={"Host": "www.example.net"})
        after = conn.getresponse()
        after.read()
        assert conn.sock is not None and conn.sock.getsockname() == local, "the connection was dropped"
        # the same connection now gets the new policy's verdict
        assert after.status == 403 and after.getheader("X-Poortwachter-Rule") == "verboden-categorieen"
    finally:
        conn.close()


@pytest.fixture(scope="module", autouse=True)
def _restore(gateway: Gateway) -> Iterator[None]:
    yield
    gateway.write_policy(BASE)
