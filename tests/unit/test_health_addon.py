"""The health addon's classification of mitmproxy's flow errors, and the enforcer counting its own
internal errors (the request is refused, the error is counted, the proxy goes on)."""

from __future__ import annotations

import pytest
from mitmproxy import flow as mflow
from mitmproxy.test import tflow

from poortwachter import metrics
from poortwachter.blockpage import DOWNLOAD_LIMIT
from poortwachter_addons.engine import EngineAddon
from poortwachter_addons.enforce import META, _fail_closed
from poortwachter_addons.health import Health, upstream_kind


@pytest.mark.parametrize(("message", "kind"), [
    ("[Errno 111] Connect call failed ('10.0.0.1', 80)", "connect"),
    ("Connection refused", "connect"),
    ("[Errno -2] Name or service not known", "connect"),
    ("TLS handshake failed: certificate verify failed", "tls"),
    ("Connection timed out", "timeout"),
    ("Server disconnected.", "protocol"),
    ("Client disconnected.", None),
    ("[Errno -3] Temporary failure in name resolution", "connect"),
])
def test_upstream_kind(message: str, kind: str | None) -> None:
    assert upstream_kind(message) == kind


class _Broken:
    _refuse: set[str] = set()

    @_fail_closed
    def request(self, flow) -> None:  # type: ignore[no-untyped-def]
        raise KeyError("a bug")


def test_internal_error_refuses_the_request_and_is_counted() -> None:
    counter = metrics.ERRORS.labels("internal")
    before = counter._value.get()
    flow = tflow.tflow()
    _Broken().request(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert counter._value.get() == before + 1


# What mitmproxy reports when the enforcer closes the upstream under a response (HTTP/1, h11's words)
CUT = ("HTTP/1 protocol error: peer closed connection without sending complete message body: "
       "received 65536 bytes, expected 64000000")


def _errors() -> float:
    return sum(c._value.get() for c in (metrics.ERRORS.labels("client"), *(
        metrics.UPSTREAM_ERRORS.labels(kind) for kind in ("timeout", "tls", "connect", "protocol"))))


def test_a_refused_or_cut_off_download_is_a_decision_not_an_error() -> None:
    health = Health(EngineAddon())
    chunked = "HTTP/1 protocol error: peer closed connection without sending complete message body: incomplete chunked read"
    for message in (CUT, chunked, "peer closed connection"):   # the last: HTTP/2
        flow = tflow.tflow(resp=True)
        flow.metadata[META] = {"action": "block", "rule": DOWNLOAD_LIMIT, "zone": "klas"}
        flow.error = mflow.Error(message)
        before = _errors()
        health.error(flow)
        assert _errors() == before, message
    other = tflow.tflow(resp=True)   # the same words on an ordinary flow: counted
    other.metadata[META] = {"action": "allow", "rule": "standaard", "zone": "klas"}
    other.error = mflow.Error(CUT)
    before = _errors()
    health.error(other)
    assert _errors() == before + 1
