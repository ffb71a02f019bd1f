"""Signed notes as they leave the box: checkpoints and the signed records of retention.

A checkpoint note is audit/checkpoint.py's signed note of a log. An erasure record says that one
retention run erased `count` events of a log, whose tombstones (each erased event's seq, leaf
hash, time and action) hash to `digest`, under which cut-off times; it is signed like a checkpoint
(same key, same key id), so `poortwachter audit verify` can tell an erasure the retention rules
asked for from a deletion nobody signed for.

A note travels as a file (`Note.filename`), or as one marker line where only lines travel
(syslog, mail bodies: `Note.marker`, read back by `notes_in_text`). The exporters that take notes
off the box are auditlog/exporters.py.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import checkpoint as cpmod
from .record import format_time, parse_time

Kind = Literal["checkpoint", "erasure"]
MARKER = "poortwachter-note"
_MARKER_RE = re.compile(MARKER + r" (checkpoint|erasure) (\S+) ([A-Za-z0-9+/]+={0,2})")
_DASH = "\u2014"


class NoteError(ValueError):
    """Text that is not a well-formed signed note of ours."""


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

