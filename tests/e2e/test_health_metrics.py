"""Network health metrics of a real gateway: TLS failures by zone and side, upstream errors by kind,
and upstream response time. None of them carries an address or a host."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .clients import curl
from .pki import TestCA
from .proxy import PUBLIC, STAFF, Gateway, free_port, wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 10.0   # seconds for the gateway to count what a client saw happen (a busy CI machine)


def _value(text: str, name: str, **labels: str) -> float:
    return sum(float(s.value) for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        body = b"rogue\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def rogue_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An HTTPS server on loopback whose certificate comes from a CA the gateway does not trust."""
    rogue = TestCA(tmp_path_factory.mktemp("rogue-ca"))
    cert, key = rogue.leaf("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_client_refusing_the_school_ca_counts_as_a_client_tls_failure(gateway: Gateway) -> None:
    before = gateway.metrics()
    # A device without the school CA in an intercept zone: it rejects the gateway's certificate.
    result = curl(gateway, "https://www.example.com/", STAFF, cacert=gateway.ca.pem)
    assert result.returncode != 0

    def moved() -> float:
        return (_value(gateway.metrics(), "poortwachter_tls_failures_total", zone="personeel", side="client")
                - _value(before, "poortwachter_tls_failures_total", zone="personeel", side="client"))
    # curl is gone once it has sent its alert; the gateway counts the failure when it reads that alert
    wait_until(lambda: moved() >= 1, DEADLINE, "the client's TLS failure counted")
    assert moved() == 1


def test_refused_passthrough_handshake_is_a_decision_not_a_failure(gateway: Gateway) -> None:
    before = gateway.metrics()
    # CONNECT to an allowed name, SNI of a blocked one: the handshake is refused on the SNI
    result = curl(gateway, "https://www.pornhub.com/", PUBLIC, "--connect-to", "www.pornhub.com:443:www.example.com:443")
    assert result.connect_status == 200 and result.returncode != 0
    after = gateway.metrics()
    assert (_value(after, "poortwachter_tls_connections_total", zone="kantine", handling="refused")
            - _value(before, "poortwachter_tls_connections_total", zone="kantine", handling="refused")) == 1
    assert _value(after, "poortwachter_tls_failures_total") == _value(before, "poortwachter_tls_failures_total")


def test_upstream_refusing_connections_counts_as_connect_error(gateway: Gateway) -> None:
    closed = free_port()   # nothing listens here
    before = gateway.metrics()
    assert curl(gateway, f"http://127.0.0.1:{closed}/", STAFF).status == 502
    after = gateway.metrics()
    assert (_value(after, "poortwachter_upstream_errors_total", kind="connect")
            - _value(before, "poortwachter_upstream_errors_total", kind="connect")) == 1


def test_untrusted_upstream_certificate_counts_as_upstream_tls_failure(gateway: Gateway, rogue_https: int) -> None:
    before = gateway.metrics()
    assert curl(gateway, f"https://127.0.0.1:{rogue_https}/", STAFF).status == 502
    after = gateway.metrics()
    assert (_value(after, "poortwachter_tls_failures_total", zone="personeel", side="upstream")
            - _value(before, "poortwachter_tls_failures_total", zone="personeel", side="upstream")) >= 1
    assert (_value(after, "poortwachter_upstream_errors_total", kind="tls")
            - _value(before, "poortwachter_upstream_errors_total", kind="tls")) == 1


def test_response_time_counts_upstream_answers_only(gateway: Gateway) -> None:
    name = "poortwachter_response_seconds_count"
    before = _value(gateway.metrics(), name)
    assert curl(gateway, "http://www.example.com/", STAFF).status == 200
    middle = _value(gateway.metrics(), name)
    assert middle - before == 1
    assert curl(gateway, "http://www.pornhub.com/", STAFF).status == 403   # the block page never dials out
    assert _value(gateway.metrics(), name) == middle


def test_health_metrics_hold_no_addresses_or_hosts(gateway: Gateway, rogue_https: int) -> None:
    failures = _value(gateway.metrics(), "poortwachter_tls_failures_total", zone="personeel", side="client")
    curl(gateway, f"https://127.0.0.1:{rogue_https}/", STAFF)
    curl(gateway, "https://www.example.com/", STAFF, cacert=gateway.ca.pem)
    # the client's failed handshake is counted after curl has gone: wait for it, then look at every label
    wait_until(lambda: _value(gateway.metrics(), "poortwachter_tls_failures_total", zone="personeel",
                              side="client") > failures, DEADLINE, "the client's TLS failure counted")
    families = {f.name: f for f in text_string_to_metric_families(gateway.metrics())}
    for name in ("poortwachter_tls_failures", "poortwachter_upstream_errors", "poortwachter_errors"):
        for sample in families[name].samples:
            assert set(sample.labels) <= {"zone", "side", "kind"}
            assert not any("127.0.0" in v or "example" in v for v in sample.labels.values())

