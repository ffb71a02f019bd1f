"""The exporters that take signed notes (audit/notes.py) off the box.

- `DirectoryExporter`: one file per note, created with O_EXCL and fsynced, never overwritten
  (append-only: a mounted share, a USB disk, a directory rsynced away), in a folder per day;
- `SyslogExporter`: one syslog message per note (logging.handlers.SysLogHandler) to a collector
  that is not this box;
- `MailExporter`: the newest checkpoint of each log and every erasure record, at most once per
  `interval`, mailed to the privacy officer (FG) through smtplib.

What leaves the box is what `poortwachter audit verify --checkpoints DIR` checks the database
against. The checkpointer (auditlog/checkpointer.py) hands notes over only after their database
row committed, and again until every exporter took them: delivering a note twice is harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import logging.handlers
import os
import re
import smtplib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from ..audit import checkpoint as cpmod
from ..audit.notes import Note
from ..audit.record import format_time


class ExportError(RuntimeError):
    """An exporter could not deliver (the notes stay in the outbox and are tried again)."""


def key_file_name(public_key: bytes) -> str:
    return f"checkpoint-{hashlib.sha256(public_key).hexdigest()[:16]}.pub"



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

