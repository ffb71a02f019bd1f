"""Real clients through the gateway: curl (subprocess), httpx, and raw sockets for what no polite
client sends (a CONNECT target that differs from the SNI, garbage bytes)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx

from .pki import issuer_common_name
from .proxy import Gateway

CURL_TIMEOUT = 10


@dataclass
class CurlResult:
    returncode: int
    status: int                       # final HTTP status (0: none)
    connect_status: int               # status of the CONNECT answer (0: no CONNECT)
    headers: dict[str, str]           # of the final response, lower-case names
    body: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.body)


def _env() -> dict[str, str]:
    # curl honours *_proxy variables; the tests pass --proxy explicitly and nothing else.
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def _last_headers(raw: str) -> dict[str, str]:
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b.strip()]
    if not blocks:
        return {}
    headers: dict[str, str] = {}
    for line in blocks[-1].split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def curl(gw: Gateway, url: str, source: str, *args: str, cacert: Path | None = None) -> CurlResult:
    """curl through the gateway from `source` (the zone), trusting `cacert` (default: mitmproxy's CA)."""
    with tempfile.TemporaryDirectory() as tmp:
        head, body = Path(tmp) / "head", Path(tmp) / "body"
        argv = ["curl", "-sS", "--max-time", str(CURL_TIMEOUT), "--proxy", gw.proxy_url,
                "--interface", source, "--cacert", str(cacert or gw.mitm_ca),
                "-D", str(head), "-o", str(body), "-w", "%{http_code} %{http_connect}", *args, url]
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=CURL_TIMEOUT + 5)
        codes = proc.stdout.split()
        raw_head = head.read_text(errors="replace") if head.exists() else ""
        text = body.read_text(errors="replace") if body.exists() else ""
    return CurlResult(proc.returncode, int(codes[0]) if codes else 0, int(codes[1]) if len(codes) > 1 else 0,
                      _last_headers(raw_head), text, proc.stderr)


class _FromSource(httpcore.SyncBackend):
    """Binds every connection to the zone's source address."""

    def __init__(self, source: str) -> None:
        self.source = source

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return super().connect_tcp(host, port, timeout, self.source, socket_options)


class _ProxyFromSource(httpx.HTTPTransport):
    """httpx.HTTPTransport(local_address=...) does not reach the proxy connections: httpx 0.28 does
    not pass it to httpcore.HTTPProxy, which does not pass it on either, and Client(proxy=...)
    ignores a given transport. So the proxy pool is built here on a backend that binds."""

    def __init__(self, proxy_url: str, source: str, context: ssl.SSLContext) -> None:
        super().__init__(verify=context, retries=0)
        self._pool = httpcore.HTTPProxy(proxy_url=httpcore.URL(proxy_url), ssl_context=context,
                                        network_backend=_FromSource(source))


def httpx_client(gw: Gateway, source: str, cafile: Path | None = None) -> httpx.Client:
    """httpx through the gateway from `source`; keep-alive on, so one connection serves many requests."""
    context = ssl.create_default_context(cafile=str(cafile or gw.mitm_ca))
    return httpx.Client(transport=_ProxyFromSource(gw.proxy_url, source, context), timeout=10, trust_env=False)


# --- raw sockets -----------------------------------------------------------------------------
def raw_connect(gw: Gateway, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", gw.port))
    return sock


def read_head(sock: socket.socket | ssl.SSLSocket, limit: int = 65536) -> bytes:
    """Bytes up to the end of the response head (or whatever came before the peer closed)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def status_of(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def read_response(sock: socket.socket | ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with Content-Length (what the upstream and the block page send)."""
    data = read_head(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status_of(data), headers, body


@dataclass
class Tunnel:
    sock: socket.socket
    status: int                       # the gateway's answer to CONNECT


def connect_tunnel(gw: Gateway, source: str, target: str) -> Tunnel:
    """CONNECT `target` (host:port) through the gateway; returns the socket and the answer's status."""
    sock = raw_connect(gw, source)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = read_head(sock)
    return Tunnel(sock, status_of(head))


BROWSER_ALPN = ("http/1.1",)      # what a browser offers (HTTP/1.1 is enough for these raw requests)


def tls_in_tunnel(tunnel: Tunnel, server_hostname: str, cafile: Path,
                  alpn: tuple[str, ...] = BROWSER_ALPN) -> ssl.SSLSocket:
    """Start TLS inside the tunnel with this SNI, offering `alpn` like a browser (() offers none),
    trusting only `cafile`; raises on a refused handshake."""
    context = ssl.create_default_context(cafile=str(cafile))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context.wrap_socket(tunnel.sock, server_hostname=server_hostname)


def peer_issuer(sock: ssl.SSLSocket) -> str:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return issuer_common_name(der)


def get_over(sock: socket.socket | ssl.SSLSocket, host: str, path: str = "/",
             extra_headers: str = "") -> tuple[int, dict[str, str], bytes]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}\r\n".encode())
    return read_response(sock)
