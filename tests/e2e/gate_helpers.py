"""What the gate tests need besides the HTTP and HTTPS upstream: real servers that speak something
other than the web (an SSH-like banner and echo server, a TLS server that offers only a non-HTTP
ALPN, a WebSocket echo), a TLS ClientHello built byte by byte (Python's ssl cannot send the ECH
extension), a gateway that routes chosen destinations to those servers and may also be the
school's resolver, and readers for the metrics and the audit events the gateway leaves behind.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, RejectConnection, Request, TextMessage

from poortwachter.ech import ECH_EXTENSION
from poortwachter.store import default_url

from .pki import TestCA
from .proxy import Gateway, wait_until

SSH_BANNER = b"SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n"
# An OpenVPN-over-TCP opening: a 2-byte length, P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7, key 0),
# an 8-byte session id, an empty ack array and packet-id 0 (what `openvpn --proto tcp-client` sends).
OPENVPN_RESET = b"\x00\x0e\x38" + bytes.fromhex("5f1e0cc1a4d2b7e3") + b"\x00" + b"\x00\x00\x00\x00"


# --- servers that are not the web --------------------------------------------------------------
@dataclass
class _Conn:
    received: bytearray = field(default_factory=bytearray)


class EchoServer:
    """A TCP server on 127.0.0.1 that greets with `greeting` (an SSH server's banner) once the client
    has said something, then echoes every byte back. It records every connection and what came in,
    so a test can show that a refused stream never reached it. With `tls` each connection is
    wrapped first and the negotiated SNI and ALPN are recorded too."""

    def __init__(self, greeting: bytes = b"", tls: ssl.SSLContext | None = None) -> None:
        self.greeting = greeting
        self.tls = tls
        self.conns: list[_Conn] = []
        self.handshakes: list[tuple[str | None, str | None]] = []     # (SNI, ALPN) of completed ones
        if tls is not None:
            tls.sni_callback = lambda sock, name, _ctx: setattr(sock, "e2e_sni", name)  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name=f"echo-{self.port}").start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            conn = _Conn()
            with self._lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(sock, conn), daemon=True).start()

    def _serve(self, sock: socket.socket, conn: _Conn) -> None:
        sock.settimeout(10)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self.handshakes.append((getattr(sock, "e2e_sni", None), sock.selected_alpn_protocol()))
            greeted = False
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                with self._lock:
                    conn.received += data
                if not greeted and self.greeting:
                    sock.sendall(self.greeting)
                    greeted = True
                sock.sendall(data)
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.conns)

    def received(self) -> list[bytes]:
        with self._lock:
            return [bytes(c.received) for c in self.conns]

    def close(self) -> None:
        self._sock.close()


def server_context(ca: TestCA, name: str, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A TLS server context with the test CA's certificate for `name`, offering `alpn` if given."""
    cert, key = ca.leaf(name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class WebSocketEcho:
    """A WebSocket server (wsproto, the library mitmproxy itself uses) that echoes every message;
    with `tls` it is a wss:// server. `upgrades` counts the handshakes it accepted."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.upgrades = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name=f"ws-{self.port}").start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        ws = WSConnection(ConnectionType.SERVER)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        with self._lock:
                            self.upgrades += 1
                        sock.sendall(ws.send(AcceptConnection()))
                    elif isinstance(event, TextMessage):
                        sock.sendall(ws.send(TextMessage(data=f"echo: {event.data}")))
                    elif isinstance(event, BytesMessage):
                        sock.sendall(ws.send(BytesMessage(data=bytes(event.data))))
                    elif isinstance(event, CloseConnection):
                        sock.sendall(ws.send(event.response()))
                        return
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()

    def close(self) -> None:
        self._sock.close()


def websocket_roundtrip(sock: socket.socket | ssl.SSLSocket, host: str, message: str) -> tuple[int, str | None]:
    """Open a WebSocket on `sock` (a tunnel, TLS or not) and send one text message: (101, the
    answer), or (the status of the refusal, None) when the upgrade is refused."""
    ws = WSConnection(ConnectionType.CLIENT)
    sock.settimeout(10)
    sock.sendall(ws.send(Request(host=host, target="/chat")))
    deadline = time.monotonic() + 10
    while True:
        if time.monotonic() > deadline:
            raise AssertionError("no WebSocket answer within 10 s")
        data = sock.recv(65536)
        if not data:
            raise AssertionError("the connection closed before the WebSocket answered")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                sock.sendall(ws.send(TextMessage(data=message)))
            elif isinstance(event, TextMessage):
                sock.sendall(ws.send(CloseConnection(code=1000)))
                return 101, event.data
            elif isinstance(event, RejectConnection):
                return event.status_code, None


def read_until_closed(sock: socket.socket | ssl.SSLSocket, timeout: float = 10.0) -> bytes:
    """Everything the peer sends until it closes the connection; AssertionError if it is still open
    after `timeout` seconds."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"the connection was still open after {timeout:.0f} s")
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"the connection was still open after {timeout:.0f} s") from None
        if not chunk:
            return data
        data += chunk


def read_exactly(sock: socket.socket, size: int, timeout: float = 10.0) -> bytes:
    """`size` bytes, or AssertionError with what came before the peer closed or the deadline."""
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            raise AssertionError(f"got {len(data)} of {size} bytes: {data[:80]!r}")
        data += chunk
    return data


# --- a TLS ClientHello, byte by byte -------------------------------------------------------------
def _vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def ech_outer(config_id: int = 0x2A, payload_size: int = 208) -> bytes:
    """The body of an `encrypted_client_hello` extension of type outer (RFC 9849 section 5):
    HPKE suite HKDF-SHA256 / AES-128-GCM, a config id, a 32-byte X25519 `enc`, an encrypted inner
    ClientHello. Random bytes make a GREASE ECH extension look exactly like this (section 6.2)."""
    return (b"\x00" + struct.pack("!HH", 0x0001, 0x0001) + bytes([config_id])
            + _vec(os.urandom(32), 2) + _vec(os.urandom(payload_size), 2))


def client_hello(sni: str | None, alpn: tuple[str, ...] = ("h2", "http/1.1"), ech: bytes | None = None) -> bytes:
    """A TLS 1.3 ClientHello record as a current browser sends it (SNI, ALPN, X25519 key share),
    with an `encrypted_client_hello` extension carrying `ech` when given. Valid enough for a real
    OpenSSL server to answer with its ServerHello."""
    key_share = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    extensions = b""
    if sni is not None:
        name = sni.encode("ascii")
        extensions += _ext(0, _vec(b"\x00" + _vec(name, 2), 2))                   # server_name
    extensions += _ext(23, b"")                                                     # extended_master_secret
    extensions += _ext(65281, b"\x00")                                              # renegotiation_info
    extensions += _ext(10, _vec(struct.pack("!HH", 0x001D, 0x0017), 2))             # supported_groups
    extensions += _ext(11, _vec(b"\x00", 1))                                        # ec_point_formats
    if alpn:
        extensions += _ext(16, _vec(b"".join(_vec(p.encode(), 1) for p in alpn), 2))   # ALPN
    extensions += _ext(13, _vec(struct.pack("!HHHHH", 0x0403, 0x0804, 0x0401, 0x0503, 0x0805), 2))
    extensions += _ext(51, _vec(struct.pack("!HH", 0x001D, 32) + key_share, 2))    # key_share
    extensions += _ext(45, _vec(b"\x01", 1))                                        # psk_key_exchange_modes
    extensions += _ext(43, _vec(struct.pack("!HH", 0x0304, 0x0303), 1))            # supported_versions
    if ech is not None:
        extensions += _ext(ECH_EXTENSION, ech)
    body = (b"\x03\x03" + os.urandom(32) + _vec(os.urandom(32), 1)
            + _vec(struct.pack("!HHHHH", 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F), 2)
            + _vec(b"\x00", 1) + _vec(extensions, 2))
    handshake = b"\x01" + _vec(body, 3)
    return b"\x16\x03\x01" + _vec(handshake, 2)


def server_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """The first TLS record a server sends back (b"" if the connection closes without one)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def is_server_hello(record: bytes) -> bool:
    """A handshake record whose first message is a ServerHello: a TLS server read the ClientHello."""
    return len(record) > 5 and record[0] == 0x16 and record[5] == 0x02


# --- the gateway -------------------------------------------------------------------------------
class GateGateway(Gateway):
    """The e2e gateway plus: `routes` sends chosen destinations (HOST:PORT) to local servers
    (redirect_upstream's e2e_upstream_map); `dns_port` makes it the school's resolver too, as
    `poortwachter run --dns 127.0.0.1:PORT` does (the option poortwachter_dns)."""

    def __init__(self, *args: Any, routes: dict[str, int] | None = None, dns_port: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes = routes or {}
        self.dns_port = dns_port

    def argv(self) -> list[str]:
        extra = ["--set", "poortwachter_audit_interval=0.05"]
        if self.routes:
            spec = ",".join(f"{target}={port}" for target, port in self.routes.items())
            extra += ["--set", f"e2e_upstream_map={spec}"]
        if self.dns_port is not None:
            extra += ["--set", f"poortwachter_dns=127.0.0.1:{self.dns_port}"]
        return super().argv() + extra

    def audit_events(self) -> list[tuple[str, str, str, str]]:
        """(kind, zone, action, rule) of every audit event stored so far, oldest first."""
        engine = create_engine(default_url(self.data_dir))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(  # type: ignore[misc]
                    text("SELECT kind, zone, action, rule FROM audit_events ORDER BY id"))]
        except Exception:   # noqa: BLE001 - the table is created with the first batch
            return []
        finally:
            engine.dispose()

    def events_like(self, event: tuple[str, str, str, str]) -> int:
        return self.audit_events().count(event)

    def wait_for_events(self, event: tuple[str, str, str, str], count: int, timeout: float = 10.0) -> None:
        """Until at least `count` audit events (kind, zone, action, rule) like `event` are stored."""
        wait_until(lambda: self.events_like(event) >= count, timeout, f"{count} audit events {event}")

    def refusals(self, zone: str, rule: str) -> float:
        return metric(self.metrics(), "poortwachter_refusals_total", zone=zone, rule=rule)


def samples(text_: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), float(s.value)) for family in text_string_to_metric_families(text_)
            for s in family.samples if s.name == name]


def metric(text_: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for lab, v in samples(text_, name) if all(lab.get(k) == x for k, x in labels.items()))


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (a DNS server listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")
