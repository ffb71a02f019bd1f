"""Policy reloads on the running gateway: a valid change takes effect within seconds without
dropping connections; an invalid one is refused with file:line:path and the old policy stays; a
file caught while it is being written is never read; a large policy compiles while the old one
keeps serving.

This module owns its gateway (it rewrites the policy); every test starts by putting its own
policy in force, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator

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


def _reloads(gw: Gateway) -> int:
    return gw.stderr().count("policy reloaded")


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


def test_a_policy_written_in_place_line_by_line_is_never_read_half_written(gateway: Gateway) -> None:
    """A tool writes the policy in place, a line every 50 ms (the whole file takes seconds, longer
    than the reload interval): the gateway reads none of the prefixes (no refusal, no reload) and
    reads the whole file once it has stayed the same for the settle time."""
    _apply(gateway, BASE, "http://www.example.net/", 200)
    refusals, reloads = _refusals(gateway), _reloads(gateway)
    target = _blocking("example.net")
    with open(gateway.policy, "w", encoding="utf-8") as out:
        for line in target.splitlines(keepends=True):
            out.write(line)
            out.flush()
            time.sleep(0.05)
            assert _status(gateway, "http://www.pornhub.com/") == 403
    wait_until(lambda: _status(gateway, "http://www.example.net/") == 403, RELOAD_DEADLINE,
               "the whole file is in force")
    assert _refusals(gateway) == refusals, gateway.stderr()
    assert _reloads(gateway) == reloads + 1


def _large(sites: int) -> str:
    """The test policy with `sites` more hosts in the porno category, example.net among them."""
    extra = [f"site{n}.voorbeeld.nl" for n in range(sites)]
    return _blocking("example.net", *extra)


def test_a_large_policy_compiles_while_the_old_one_keeps_serving(gateway: Gateway) -> None:
    """40,000 sites take seconds to compile: meanwhile the old policy answers (example.net still
    allowed after the gateway said it is reading the new file); then the new one takes over."""
    _apply(gateway, BASE, "http://www.example.net/", 200)
    reading = gateway.stderr().count("policy file changed, reading it")
    reloads = _reloads(gateway)
    gateway.write_policy(_large(40_000))
    wait_until(lambda: gateway.stderr().count("policy file changed, reading it") > reading, RELOAD_DEADLINE,
               "the gateway reads the new file")
    answered_during = 0
    deadline = time.monotonic() + 60
    while _reloads(gateway) == reloads:
        assert time.monotonic() < deadline, "the large policy was not loaded within 60 s"
        status = _status(gateway, "http://www.example.net/")
        if _reloads(gateway) == reloads:     # answered before the new policy took over
            assert status == 200
            answered_during += 1
    assert answered_during > 0, "no request was answered while the policy compiled"
    wait_until(lambda: _status(gateway, "http://www.example.net/") == 403, RELOAD_DEADLINE,
               "the large policy is in force")


@pytest.fixture(scope="module", autouse=True)
def _restore(gateway: Gateway) -> Iterator[None]:
    yield
    gateway.write_policy(BASE)
