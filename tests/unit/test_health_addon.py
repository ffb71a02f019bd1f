"""The health addon's classification of mitmproxy's flow errors, and the enforcer counting its own
internal errors (the request is refused, the error is counted, the proxy goes on)."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow

from poortwachter import metrics
from poortwachter_addons.enforce import _fail_closed
from poortwachter_addons.health import upstream_kind


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
