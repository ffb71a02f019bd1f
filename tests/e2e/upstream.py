"""The local "internet": one HTTP and one HTTPS server on 127.0.0.1, in threads of the test process.

Every answer is 200 and names the host and path it was asked for, so a test tells the real page
from the block page; /echo answers the request headers as JSON (to see SafeSearch and
YouTube-Restrict rewrites). The HTTPS server mints a certificate for whatever SNI it is offered,
signed by the test CA. Each request is also recorded, so a test can check that a blocked request
never reached the server.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .pki import TestCA


@dataclass(frozen=True)
class Seen:
    scheme: str
    host: str
    path: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep the test output clean

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        host = self.headers.get("Host", "")
        self.server.record(Seen(self.server.scheme, host, self.path))
        if self.path.split("?", 1)[0] == "/echo":
            body = json.dumps({"scheme": self.server.scheme, "host": host, "path": self.path,
                               "headers": dict(self.headers.items())}).encode()
            ctype = "application/json"
        else:
            body = f"upstream scheme={self.server.scheme} host={host} path={self.path}\n".encode()
            ctype = "text/plain; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, scheme: str, context: ssl.SSLContext | None,
                 handler: type[BaseHTTPRequestHandler] = _Handler) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.scheme = scheme
        self.context = context
        self.seen: list[Any] = []   # what the handler records: Seen here, other records in subclasses
        self._lock = threading.Lock()

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.context is not None:
            # The handshake runs in the handler thread (setup), so one stuck client cannot stall accept().
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def saw(self, host_prefix: str, path_prefix: str = "") -> bool:
        with self._lock:
            return any(s.host.split(":")[0] == host_prefix and s.path.startswith(path_prefix)
                       for s in self.seen)


def _tls_context(ca: TestCA) -> ssl.SSLContext:
    def context_for(name: str) -> ssl.SSLContext:
        cert, key = ca.leaf(name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    per_name: dict[str, ssl.SSLContext] = {}
    lock = threading.Lock()

    def sni_callback(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        name = name or "127.0.0.1"
        with lock:
            ctx = per_name.get(name)
            if ctx is None:
                ctx = per_name[name] = context_for(name)
        sock.context = ctx

    default = context_for("127.0.0.1")
    default.sni_callback = sni_callback
    return default


class Upstream:
    """Both servers; `http_port` and `https_port` are where the redirect addon sends traffic."""

    def __init__(self, ca: TestCA) -> None:
        self.http = _Server("http", None)
        self.https = _Server("https", _tls_context(ca))
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True, name=f"upstream-{s.scheme}")
                         for s in (self.http, self.https)]
        for t in self._threads:
            t.start()

    @property
    def http_port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def https_port(self) -> int:
        return int(self.https.server_address[1])

    def saw(self, host: str, path_prefix: str = "") -> bool:
        return self.http.saw(host, path_prefix) or self.https.saw(host, path_prefix)

    def close(self) -> None:
        for s in (self.http, self.https):
            s.shutdown()
            s.server_close()
