"""Signed checkpoints of the audit logs, and the signed records of retention, that leave the box.

Logs (audit/log.py): one per gateway for its events (`poortwachter/events/<gateway>`, in seq
order, retention's tombstones included) and one for the access ledger (`poortwachter/ledger`, in
id order). The `Checkpointer` keeps each log's compact Merkle range in memory, reads only the
leaves added since its last round, signs a checkpoint (audit/checkpoint.py, Ed25519 signed note)
of every log that grew (and of every log once per `heartbeat`, as a sign of life), keeps it in
audit_checkpoints (the outbox) and hands it to the exporters:

- `DirectoryExporter`: one file per note, created with O_EXCL and fsynced, never overwritten
  (append-only: a mounted share, a USB disk, a directory rsynced away), in a folder per day;
- `SyslogExporter`: one syslog message per note (logging.handlers.SysLogHandler) to a collector
  that is not this box;
- `MailExporter`: the newest checkpoint of each log and every erasure record, at most once per
  `interval`, mailed to the privacy officer (FG) through smtplib.

What leaves the box is what `poortwachter audit verify --checkpoints DIR` checks the database
against: a rewrite of history needs the signing key AND every exported copy.

Notes are exported only after their database row committed, and retried until every exporter
took them. A round that finds a log differing from, or behind, the last checkpoint it signed
(database restored from an old backup, rows changed) refuses to sign that log again: signing
would only bless the change. It says so in the log (no personal data) and in `status`.

Erasure records: retention (audit/retention.py) erases old events but keeps a tombstone with
each one's leaf hash, time and action; one signed erasure note per run and log commits to the
tombstones (count and SHA-256 digest) and names the cut-off times, so `audit verify` can tell an
erasure the retention rules asked for from a deletion nobody signed for.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import logging.handlers
import os
import re
import smtplib
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from ..store.db import Store
from ..store.models import (
    AuditCheckpointRow,
    AuditErasureRow,
    AuditEventRow,
    AuditTombstoneRow,
    LedgerRow,
)
from . import checkpoint as cpmod
from .log import LEDGER_LOG, Frontier, events_log, gateway_of
from .record import format_time, parse_time

log = logging.getLogger("poortwachter")

Kind = Literal["checkpoint", "erasure"]
MARKER = "poortwachter-note"
_MARKER_RE = re.compile(MARKER + r" (checkpoint|erasure) (\S+) ([A-Za-z0-9+/]+={0,2})")
_DASH = "\u2014"
YIELD = 10_000


class NoteError(ValueError):
    """Text that is not a well-formed signed note of ours."""


class ExportError(RuntimeError):
    """An exporter could not deliver (the notes stay in the outbox and are tried again)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- notes ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """A signed note as it leaves the box."""

    kind: Kind
    log: str
    number: int            # checkpoint: the tree size; erasure: the erasure record's id
    at: dt.datetime
    text: str

    def filename(self) -> str:
        stamp = self.at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{quote(self.log, safe='-._~@')}.{self.number:012d}.{stamp}.{self.kind}"

    def marker(self) -> str:
        """One line that carries the whole note (syslog, mail bodies)."""
        encoded = base64.b64encode(self.text.encode("utf-8")).decode("ascii")
        return f"{MARKER} {self.kind} {self.log} {encoded}"


def checkpoint_note(cp: cpmod.Checkpoint) -> Note:
    return Note("checkpoint", cp.log, cp.size, cp.at, cpmod.to_text(cp))


@dataclass(frozen=True)
class Tombstone:
    """What retention keeps of an erased event (audit_tombstones)."""

    seq: int
    at: dt.datetime
    action: str
    leaf_hash: bytes


def tombstone_line(t: Tombstone) -> bytes:
    """A tombstone's line in the erasure digest."""
    return f"{t.seq} {base64.b64encode(t.leaf_hash).decode('ascii')} {format_time(t.at)} {t.action}\n".encode("utf-8")


def erasure_digest(tombstones: Iterable[Tombstone]) -> bytes:
    """SHA-256 over the tombstones' lines in seq order."""
    h = hashlib.sha256()
    for t in sorted(tombstones, key=lambda t: t.seq):
        h.update(tombstone_line(t))
    return h.digest()


@dataclass(frozen=True)
class Erasure:
    """A signed erasure record: run `id` over `log` erased `count` events, whose tombstones hash
    to `digest`; allowed events before `allowed_before`, all others before `blocked_before`."""

    log: str
    id: int
    count: int
    digest: bytes
    allowed_before: dt.datetime
    blocked_before: dt.datetime
    at: dt.datetime
    signature: bytes       # key id (4) || Ed25519 signature (64), as in checkpoint.py

    def due(self, at: dt.datetime, action: str) -> bool:
        """Was an event of this time and action due for erasure under this record's cut-offs?"""
        return at < (self.allowed_before if action == "allow" else self.blocked_before)


def _erasure_body(log_name: str, erasure_id: int, count: int, digest: bytes, allowed_before: dt.datetime,
                  blocked_before: dt.datetime, at: dt.datetime) -> str:
    return (f"{log_name}\nerasure {erasure_id} {count}\n{base64.b64encode(digest).decode('ascii')}\n"
            f"allowed-before {format_time(allowed_before)}\nblocked-before {format_time(blocked_before)}\n"
            f"{format_time(at)}\n")


def sign_erasure(private_key: bytes, log_name: str, erasure_id: int, count: int, digest: bytes,
                 allowed_before: dt.datetime, blocked_before: dt.datetime, at: dt.datetime) -> Erasure:
    if len(digest) != 32 or count < 0 or erasure_id < 0:
        raise ValueError("bad erasure record")
    body = _erasure_body(log_name, erasure_id, count, digest, allowed_before, blocked_before, at)
    return Erasure(log_name, erasure_id, count, digest, allowed_before, blocked_before, at,
                   cpmod.note_signature(private_key, log_name, body))


def verify_erasure(public_key: bytes, e: Erasure) -> bool:
    try:
        if len(public_key) != 32 or len(e.signature) != cpmod.SIGNATURE_LEN:
            return False
        if e.signature[:cpmod.KEY_ID_LEN] != cpmod.key_id(e.log, public_key):
            return False
        body = _erasure_body(e.log, e.id, e.count, e.digest, e.allowed_before, e.blocked_before, e.at)
        Ed25519PublicKey.from_public_bytes(public_key).verify(e.signature[cpmod.KEY_ID_LEN:], body.encode("utf-8"))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def erasure_to_text(e: Erasure) -> str:
    body = _erasure_body(e.log, e.id, e.count, e.digest, e.allowed_before, e.blocked_before, e.at)
    return f"{body}\n{_DASH} {e.log} {base64.b64encode(e.signature).decode('ascii')}\n"


def erasure_note(e: Erasure) -> Note:
    return Note("erasure", e.log, e.id, e.at, erasure_to_text(e))


_ERASURE_RE = re.compile(r"^erasure (0|[1-9][0-9]*) (0|[1-9][0-9]*)$")


def erasure_from_text(text: str) -> Erasure:
    """Parse an erasure note (does NOT verify the signature: `verify_erasure`)."""
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise NoteError("not a signed note")
    body, signatures = text[: split + 1], text[split + 2:]
    lines = body[:-1].split("\n")
    if len(lines) != 6:
        raise NoteError("an erasure record has 6 lines")
    name, head, digest_text, allowed, blocked, at_text = lines
    match = _ERASURE_RE.match(head)
    if match is None or not allowed.startswith("allowed-before ") or not blocked.startswith("blocked-before "):
        raise NoteError("not an erasure record")
    try:
        digest = base64.b64decode(digest_text, validate=True)
        allowed_before = parse_time(allowed.split(" ", 1)[1])
        blocked_before = parse_time(blocked.split(" ", 1)[1])
        at = parse_time(at_text)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("bad erasure record field") from exc
    erasure_id, count = int(match.group(1)), int(match.group(2))
    if len(digest) != 32 or _erasure_body(name, erasure_id, count, digest, allowed_before, blocked_before, at) != body:
        raise NoteError("erasure record is not canonical")
    for line in signatures.split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise NoteError("bad signature line")
        if parts[1] == name:
            try:
                signature = base64.b64decode(parts[2], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise NoteError("bad signature") from exc
            if len(signature) != cpmod.SIGNATURE_LEN:
                raise NoteError("bad signature length")
            return Erasure(name, erasure_id, count, digest, allowed_before, blocked_before, at, signature)
    raise NoteError("no signature by the log itself")


def parse_note(text: str) -> cpmod.Checkpoint | Erasure:
    """A checkpoint or an erasure record (signature not checked)."""
    lines = text.split("\n", 2)
    if len(lines) > 1 and lines[1].startswith("erasure "):
        return erasure_from_text(text)
    try:
        return cpmod.from_text(text)
    except cpmod.CheckpointError as exc:
        raise NoteError(str(exc)) from exc


def notes_in_text(text: str) -> Iterator[str]:
    """The note texts carried by marker lines (syslog files, mail bodies)."""
    for match in _MARKER_RE.finditer(text):
        try:
            yield base64.b64decode(match.group(3), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue


def key_file_name(public_key: bytes) -> str:
    return f"checkpoint-{hashlib.sha256(public_key).hexdigest()[:16]}.pub"


# --- exporters -----------------------------------------------------------------------------------

class Exporter:
    """Takes notes off the box. `deliver` raises on failure; delivering a note twice is harmless."""

    name = "exporter"

    def publish_key(self, public_key: bytes) -> None:
        """Make the public key available next to the notes (where that means anything)."""

    def deliver(self, notes: Sequence[Note], now: dt.datetime) -> None:
        raise NotImplementedError


class DirectoryExporter(Exporter):
    """One file per note under DIR/<YYYY-MM-DD>/, created exclusively and fsynced; an existing
    file is never overwritten (same content: already delivered; other content: refused)."""

    name = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def publish_key(self, public_key: bytes) -> None:
        self._write(self.directory / key_file_name(public_key), public_key.hex() + "\n")

    def deliver(self, notes: Sequence[Note], now: dt.datetime) -> None:
        for note in notes:
            day = note.at.astimezone(dt.UTC).strftime("%Y-%m-%d")
            self._write(self.directory / day / note.filename(), note.text)

    def latest(self, log_name: str) -> cpmod.Checkpoint | None:
        """The largest checkpoint of `log_name` in the directory (from the file names), parsed."""
        prefix = quote(log_name, safe="-._~@") + "."
        best: tuple[int, str, Path] | None = None
        for path in self.directory.glob(f"*/{glob_escape(prefix)}*.checkpoint"):
            parts = path.name[len(prefix):].split(".")
            if len(parts) != 3 or not parts[0].isdigit():
                continue
            key = (int(parts[0]), parts[1], path)
            if best is None or key[:2] > best[:2]:
                best = key
        if best is None:
            return None
        try:
            return cpmod.from_text(best[2].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, cpmod.CheckpointError):
            return None

    def _write(self, path: Path, text: str) -> None:
        data = text.encode("utf-8")
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            if path.read_bytes() != data:
                raise ExportError(f"{path.name}: exists with other content, not overwritten") from None
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)    # no half-written note left to be mistaken for a forgery
            raise
        os.close(fd)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


class _RaisingSysLogHandler(logging.handlers.SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        raise  # noqa: PLE0704 - emit() calls this inside its except block: re-raise to the exporter


def parse_syslog_address(text: str) -> tuple[str | tuple[str, int], int]:
    """"udp://host:514", "tcp://host:601", "host:514" (UDP) or a socket path "/dev/log" ->
    (address, socket type)."""
    value = text.strip()
    if value.startswith("/"):
        return value, socket.SOCK_DGRAM
    kind = socket.SOCK_DGRAM
    for scheme, sock in (("udp://", socket.SOCK_DGRAM), ("tcp://", socket.SOCK_STREAM)):
        if value.startswith(scheme):
            value, kind = value[len(scheme):], sock
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"syslog: expected udp://HOST:PORT, tcp://HOST:PORT or /path: {text!r}")
    return (host.strip("[]"), int(port)), kind


class SyslogExporter(Exporter):
    """One syslog message per note (facility authpriv: a collector keeps it apart)."""

    name = "syslog"

    def __init__(self, address: str, facility: int = logging.handlers.SysLogHandler.LOG_AUTHPRIV) -> None:
        self.address, self.socktype = parse_syslog_address(address)
        self.facility = facility
        self._handler: logging.handlers.SysLogHandler | None = None

    def deliver(self, notes: Sequence[Note], now: dt.datetime) -> None:
        try:
            if self._handler is None:
                self._handler = _RaisingSysLogHandler(self.address, self.facility, self.socktype)
                self._handler.ident = "poortwachter: "
            for note in notes:
                record = logging.LogRecord("poortwachter.checkpoints", logging.INFO, __file__, 0, note.marker(),
                                           None, None)
                self._handler.emit(record)
        except OSError as exc:
            self.close()
            raise ExportError(f"syslog: {type(exc).__name__}") from None

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
            self._handler = None


@dataclass
class MailExporter(Exporter):
    """Mails the privacy officer (FG) the newest checkpoint of each log and every erasure record,
    at most once per `interval` (the newest checkpoint pins everything before it)."""

    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    interval: dt.timedelta = dt.timedelta(hours=24)
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    name: str = "mail"
    # Waiting for the next mail (lost on a crash: the next checkpoint pins everything before it).
    _checkpoints: dict[str, Note] = field(default_factory=dict, init=False, repr=False)
    _erasures: dict[str, Note] = field(default_factory=dict, init=False, repr=False)
    _last_sent: dt.datetime | None = field(default=None, init=False, repr=False)

    def deliver(self, notes: Sequence[Note], now: dt.datetime) -> None:
        for note in notes:
            if note.kind == "erasure":
                self._erasures[note.text] = note
                continue
            held = self._checkpoints.get(note.log)
            if held is None or (note.number, note.at) >= (held.number, held.at):
                self._checkpoints[note.log] = note
        self.flush(now)

    def flush(self, now: dt.datetime, force: bool = False) -> bool:
        """Send what waits if the interval has passed (or `force`); True if a mail went out."""
        if not self._checkpoints and not self._erasures:
            return False
        if not force and self._last_sent is not None and now - self._last_sent < self.interval:
            return False
        notes = sorted(self._checkpoints.values(), key=lambda n: n.log) + list(self._erasures.values())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(notes, now))
        except (OSError, smtplib.SMTPException) as exc:
            raise ExportError(f"mail: {type(exc).__name__}") from None
        self._checkpoints.clear()
        self._erasures.clear()
        self._last_sent = now
        return True

    def message(self, notes: Sequence[Note], now: dt.datetime) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"Poortwachter: controlepunten van de auditlogs / audit log checkpoints ({len(notes)})"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = now.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        lines = [
            "Dit zijn ondertekende controlepunten van de auditlogs van Poortwachter. Bewaar dit bericht "
            "(of de bijlagen) buiten de gateway; `poortwachter audit verify --checkpoints MAP` controleert "
            "er de database mee.",
            "",
            "These are signed checkpoints of Poortwachter's audit logs. Keep this message (or its "
            "attachments) off the gateway; `poortwachter audit verify --checkpoints DIR` checks the "
            "database against them.",
            "",
        ]
        for note in notes:
            what = "grootte / size" if note.kind == "checkpoint" else "wisronde / erasure"
            lines.append(f"{note.kind} {note.log} {what} {note.number} {format_time(note.at)}")
        lines.append("")
        lines.extend(note.marker() for note in notes)
        msg.set_content("\n".join(lines) + "\n")
        for note in notes:
            msg.add_attachment(note.text, filename=note.filename())
        return msg


def exporters_from_options(*, directory: str | Path | None = None, syslog: str | None = None,
                           mail_host: str | None = None, mail_to: Sequence[str] = (),
                           mail_from: str = "poortwachter@localhost",
                           mail_interval: dt.timedelta = dt.timedelta(hours=24),
                           mail_starttls: bool = False) -> list[Exporter]:
    """The exporters a configuration asks for ("host" or "host:port" for mail)."""
    out: list[Exporter] = []
    if directory:
        out.append(DirectoryExporter(Path(directory)))
    if syslog:
        out.append(SyslogExporter(syslog))
    if mail_host:
        if not mail_to:
            raise ValueError("mail: no recipient (mail_to)")
        host, sep, port = mail_host.rpartition(":")
        if not sep or not port.isdigit():
            host, port = mail_host, "25"
        out.append(MailExporter(host, int(port), mail_from, list(mail_to), mail_interval, mail_starttls))
    return out


# --- reading the logs from the store ---------------------------------------------------------------

def event_leaves(s: Session, gateway: str, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(seq, stored leaf hash) of a gateway's log, events and tombstones together, in seq order."""
    ev = select(AuditEventRow.seq.label("seq"), AuditEventRow.leaf_hash.label("leaf")).where(
        AuditEventRow.gateway == gateway)
    tb = select(AuditTombstoneRow.seq.label("seq"), AuditTombstoneRow.leaf_hash.label("leaf")).where(
        AuditTombstoneRow.gateway == gateway)
    if after is not None:
        ev = ev.where(AuditEventRow.seq > after)
        tb = tb.where(AuditTombstoneRow.seq > after)
    both = union_all(ev, tb).subquery()
    stmt = select(both.c.seq, both.c.leaf).order_by(both.c.seq).execution_options(yield_per=YIELD)
    for seq, leaf in s.execute(stmt):
        yield int(seq), bytes(leaf)


def ledger_leaves(s: Session, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    stmt = select(LedgerRow.id, LedgerRow.leaf_hash)
    if after is not None:
        stmt = stmt.where(LedgerRow.id > after)
    for key, leaf in s.execute(stmt.order_by(LedgerRow.id).execution_options(yield_per=YIELD)):
        yield int(key), bytes(leaf)


def leaves_of(s: Session, log_name: str, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    if log_name == LEDGER_LOG:
        return ledger_leaves(s, after)
    gateway = gateway_of(log_name)
    if gateway is None:
        raise ValueError(f"unknown log {log_name!r}")
    return event_leaves(s, gateway, after)


def gateways(s: Session) -> list[str]:
    both = union_all(select(AuditEventRow.gateway.label("g")).distinct(),
                     select(AuditTombstoneRow.gateway.label("g")).distinct()).subquery()
    return sorted({g for (g,) in s.execute(select(both.c.g).distinct())})


# --- the checkpointer ------------------------------------------------------------------------------

@dataclass
class _LogState:
    frontier: Frontier
    last_key: int | None
    signed_size: int | None = None
    signed_at: dt.datetime | None = None
    broken: str | None = None


@dataclass(frozen=True)
class RoundResult:
    signed: list[cpmod.Checkpoint]
    exported: int
    broken: dict[str, str]


class Checkpointer:
    """Signs checkpoints of the logs and exports them. One round: `run_once()`."""

    def __init__(self, store: Store, signing_key: bytes, *, gateways: Sequence[str] | None = None,
                 ledger: bool = True, exporters: Sequence[Exporter] = (),
                 now: Callable[[], dt.datetime] = utcnow,
                 heartbeat: dt.timedelta | None = dt.timedelta(hours=24)) -> None:
        self.store = store
        self._key = signing_key
        self.public_key = cpmod.public_key_of(signing_key)
        self.gateways = list(gateways) if gateways is not None else None
        self.ledger = ledger
        self.exporters = list(exporters)
        self.now = now
        self.heartbeat = heartbeat
        self._states: dict[str, _LogState] = {}
        self._lock = threading.Lock()
        self._published = False

    @property
    def status(self) -> dict[str, str]:
        """Logs this checkpointer refuses to sign, and why (no personal data)."""
        return {name: st.broken for name, st in self._states.items() if st.broken}

    def logs(self, s: Session) -> list[str]:
        names = [events_log(g) for g in (self.gateways if self.gateways is not None else gateways(s))]
        return names + ([LEDGER_LOG] if self.ledger else [])

    def run_once(self) -> RoundResult:
        with self._lock:
            now = self.now()
            signed: list[tuple[_LogState, cpmod.Checkpoint, int | None]] = []
            with self.store.read() as s:
                for name in self.logs(s):
                    state = self._states.get(name)
                    if state is None:
                        state = self._states[name] = self._load(s, name)
                    if state.broken:
                        continue
                    for key, leaf in leaves_of(s, name, state.last_key):
                        state.frontier.append(leaf)
                        state.last_key = key
                    cp = self._maybe_sign(name, state, now)
                    if cp is not None:
                        signed.append((state, cp, state.last_key))
            if signed:
                with self.store.write() as s:
                    s.add_all([AuditCheckpointRow(log=cp.log, size=cp.size, root=cp.root, at=cp.at, last_key=key,
                                                  note=cpmod.to_text(cp)) for _, cp, key in signed])
                for state, cp, _ in signed:        # only once stored: a failed write signs again next round
                    state.signed_size, state.signed_at = cp.size, cp.at
            exported = self.export_pending()
            return RoundResult([cp for _, cp, _ in signed], exported, self.status)

    def _maybe_sign(self, name: str, state: _LogState, now: dt.datetime) -> cpmod.Checkpoint | None:
        size = state.frontier.size
        if size == 0:
            return None            # nothing to vouch for yet
        grown = state.signed_size is None or size > state.signed_size
        stale = (self.heartbeat is not None and state.signed_at is not None
                 and now - state.signed_at >= self.heartbeat)
        if not grown and not stale:
            return None
        at = now
        if state.signed_at is not None and at <= state.signed_at:
            # The clock stepped back: a later checkpoint must carry a later time, or verify would
            # read the order of two checkpoints the wrong way round.
            at = state.signed_at + dt.timedelta(microseconds=1)
        return cpmod.sign(self._key, name, size, state.frontier.root(), at)

    def _load(self, s: Session, name: str) -> _LogState:
        """Read a log from the start and compare it with the last checkpoint signed of it."""
        baselines = self._baselines(s, name)
        sizes = {cp.size for cp in baselines}
        roots: dict[int, bytes] = {}
        frontier, last_key = Frontier(), None
        if 0 in sizes:
            roots[0] = frontier.root()
        for key, leaf in leaves_of(s, name):
            frontier.append(leaf)
            last_key = key
            if frontier.size in sizes:
                roots[frontier.size] = frontier.root()
        state = _LogState(frontier, last_key)
        if not baselines:
            return state
        newest = max(baselines, key=lambda cp: (cp.size, cp.at))
        state.signed_size = newest.size
        state.signed_at = max(cp.at for cp in baselines)
        for cp in sorted(baselines, key=lambda c: c.size):
            if cp.size > frontier.size:
                state.broken = "behind"
            elif roots.get(cp.size) != cp.root:
                state.broken = "changed"
            if state.broken:
                log.error("audit log %s %s its checkpoint of size %d: not signing it again until this is "
                          "resolved; run `poortwachter audit verify` (auditlog wijkt af van zijn controlepunt)",
                          name, "is behind" if state.broken == "behind" else "differs from", cp.size)
                break
        return state

    def _baselines(self, s: Session, name: str) -> list[cpmod.Checkpoint]:
        """The newest checkpoint of `name` in the outbox and in each exported directory that we
        signed ourselves (a row or file signed by another key proves nothing)."""
        found: list[cpmod.Checkpoint] = []
        row = s.execute(select(AuditCheckpointRow.note).where(AuditCheckpointRow.log == name)
                        .order_by(AuditCheckpointRow.size.desc(), AuditCheckpointRow.at.desc()).limit(1)).first()
        candidates: list[cpmod.Checkpoint | None] = []
        if row is not None:
            try:
                candidates.append(cpmod.from_text(row[0]))
            except cpmod.CheckpointError:
                pass
        for exporter in self.exporters:
            if isinstance(exporter, DirectoryExporter):
                candidates.append(exporter.latest(name))
        for cp in candidates:
            if cp is not None and cp.log == name and cpmod.verify(self.public_key, cp):
                found.append(cp)
        return found

    def export_pending(self) -> int:
        """Deliver every note of our logs not yet exported (oldest first); they are marked
        exported only when every exporter took them. Returns how many were."""
        if not self.exporters:
            return 0
        with self.store.read() as s:
            names = set(self.logs(s))
            cps = s.execute(select(AuditCheckpointRow.id, AuditCheckpointRow.log, AuditCheckpointRow.size,
                                   AuditCheckpointRow.at, AuditCheckpointRow.note)
                            .where(AuditCheckpointRow.exported_at.is_(None)).order_by(AuditCheckpointRow.id)).all()
            ers = s.execute(select(AuditErasureRow.id, AuditErasureRow.log, AuditErasureRow.at, AuditErasureRow.note)
                            .where(AuditErasureRow.exported_at.is_(None), AuditErasureRow.note.is_not(None))
                            .order_by(AuditErasureRow.id)).all()
        cp_notes = [(i, Note("checkpoint", lg, size, at, note)) for i, lg, size, at, note in cps if lg in names]
        er_notes = [(i, Note("erasure", lg, i, at, note)) for i, lg, at, note in ers if lg in names]
        if not cp_notes and not er_notes:
            return 0
        return deliver_notes(self.store, self.exporters, cp_notes, er_notes, self.now(),
                             public_key=None if self._published else self.public_key,
                             published=self._mark_published)

    def _mark_published(self) -> None:
        self._published = True


def deliver_notes(store: Store, exporters: Sequence[Exporter], checkpoints: Sequence[tuple[int, Note]],
                  erasures: Sequence[tuple[int, Note]], now: dt.datetime, *, public_key: bytes | None = None,
                  published: Callable[[], None] | None = None) -> int:
    """Hand the notes to every exporter; mark them exported if all of them took them."""
    notes = [n for _, n in checkpoints] + [n for _, n in erasures]
    ok = True
    for exporter in exporters:
        try:
            if public_key is not None:
                exporter.publish_key(public_key)
            exporter.deliver(notes, now)
        except (ExportError, OSError) as exc:
            ok = False
            # Only the kind of failure: a driver's or server's message may carry addresses.
            log.warning("audit checkpoints not exported by %s, tried again next round "
                        "(controlepunten niet geëxporteerd): %s", exporter.name,
                        exc if isinstance(exc, ExportError) else type(exc).__name__)
    if not ok:
        return 0
    if public_key is not None and published is not None:
        published()
    with store.write() as s:
        if checkpoints:
            s.execute(AuditCheckpointRow.__table__.update()
                      .where(AuditCheckpointRow.id.in_([i for i, _ in checkpoints])).values(exported_at=now))
        if erasures:
            s.execute(AuditErasureRow.__table__.update()
                      .where(AuditErasureRow.id.in_([i for i, _ in erasures])).values(exported_at=now))
    return len(notes)


class CheckpointThread:
    """Runs a Checkpointer every `interval` seconds, and soon after `poke()` (e.g. after a batch
    was stored), but never more often than every `min_interval` seconds. `checkpointer` may be a
    factory, called in the thread (and again after a failure), so opening the store never holds
    up whoever starts the thread."""

    def __init__(self, checkpointer: Checkpointer | Callable[[], Checkpointer], interval: float = 60.0,
                 min_interval: float = 5.0) -> None:
        self.checkpointer = checkpointer if isinstance(checkpointer, Checkpointer) else None
        self._factory = None if isinstance(checkpointer, Checkpointer) else checkpointer
        self.interval = interval
        self.min_interval = min_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poortwachter-checkpoints", daemon=True)

    def start(self) -> CheckpointThread:
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._round()
            self._wake.wait(self.interval)
            if self._stop.wait(self.min_interval if self._wake.is_set() else 0):
                break
            self._wake.clear()
        self._round()      # a last checkpoint of what was stored before stopping

    def _round(self) -> None:
        try:
            if self.checkpointer is None and self._factory is not None:
                self.checkpointer = self._factory()
            if self.checkpointer is not None:
                self.checkpointer.run_once()
        except Exception as exc:   # noqa: BLE001 - the next round tries again
            log.error("audit checkpoint round failed (controlepunt mislukt): %s", type(exc).__name__)


def gateway_checkpoints(url: str, data_dir: Path, gateway: str, exporters: Sequence[Exporter], *,
                        ledger: bool = True, interval: float = 60.0) -> CheckpointThread | None:
    """The checkpoint thread a gateway runs next to its recorder: its own events log (and the
    ledger, unless another process signs that). None (and a warning) without a signing key:
    `poortwachter keys init` makes it."""
    from ..store.db import open_store
    from .keys import load_checkpoint_key

    try:
        key = load_checkpoint_key(Path(data_dir))
    except FileNotFoundError:
        log.warning("no checkpoint signing key: audit logs are not checkpointed; run the key ceremony "
                    "(poortwachter keys init) (geen ondertekensleutel)")
        return None
    return CheckpointThread(lambda: Checkpointer(open_store(url), key, gateways=[gateway], ledger=ledger,
                                                 exporters=exporters), interval=interval)
