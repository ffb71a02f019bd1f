"""Ed25519-signed checkpoints of the audit logs, as text that can leave the box.

The text is a C2SP "signed note" holding a tlog checkpoint body, so standard tooling
(golang.org/x/mod/sumdb/note, transparency-dev witnesses) can read and verify it::

    <log>\\n<size>\\n<base64 root>\\n<time, UTC ISO 8601>\\n
    \\n
    — <log> <base64(key id (4) || Ed25519 signature (64))>\\n

key id = SHA-256(<log> || "\\n" || 0x01 || public key)[:4], as in signed notes.
`Checkpoint.signature` holds the 68 bytes after the name: key id and signature.
A checkpoint kept elsewhere (printed, mailed to the FG, witnessed) pins the log: any later
rewrite of history needs either a new signature or a consistency proof that cannot exist.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ALG_ED25519 = 0x01
KEY_ID_LEN = 4
SIGNATURE_LEN = KEY_ID_LEN + 64
_DASH = "\u2014"  # signed notes start signature lines with an em dash
_NAME_RE = re.compile(r"^[^\s+]+$")  # no whitespace, no "+" (it separates vkey fields)
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*)$")


class CheckpointError(ValueError):
    """Checkpoint text that is not a well-formed signed checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    log: str  # the log's name (origin), also the signer's name
    size: int
    root: bytes  # 32-byte RFC 6962 root
    at: dt.datetime  # aware; written out in UTC
    signature: bytes  # key id (4) || Ed25519 signature (64) over the body text


def generate_signing_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as raw bytes: (private seed 32, public 32)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return seed, _raw_public(private.public_key())


def public_key_of(private_key: bytes) -> bytes:
    return _raw_public(Ed25519PrivateKey.from_private_bytes(private_key).public_key())


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hash a signed note puts in front of the signature."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[
        :KEY_ID_LEN
    ]


def verifier_key(name: str, public_key: bytes) -> str:
    """The signed-note verifier key string ("name+hexid+base64(0x01||key)") to publish."""
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def note_signature(private_key: bytes, name: str, text: str) -> bytes:
    """Key id || Ed25519 signature over a note's text (which must end in a newline)."""
    _check_name(name)
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    private = Ed25519PrivateKey.from_private_bytes(private_key)
    public = _raw_public(private.public_key())
    return key_id(name, public) + private.sign(text.encode("utf-8"))


def sign(private_key: bytes, log: str, size: int, root: bytes, at: dt.datetime) -> Checkpoint:
    """Sign the checkpoint (log, size, root, at) with a raw 32-byte Ed25519 private key."""
    _check_name(log)
    if size < 0:
        raise ValueError("size must not be negative")
    if len(root) != 32:
        raise ValueError("root must be 32 bytes")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("checkpoint time must be timezone-aware")
    signature = note_signature(private_key, log, _body(log, size, root, at))
    return Checkpoint(log=log, size=size, root=root, at=at, signature=signature)


def verify(public_key: bytes, cp: Checkpoint) -> bool:
    """True only if `cp` carries a valid signature by `public_key` over exactly its fields."""
    try:
        _check_name(cp.log)
        if cp.size < 0 or len(cp.root) != 32 or len(cp.signature) != SIGNATURE_LEN:
            return False
        if cp.at.tzinfo is None or cp.at.utcoffset() is None or len(public_key) != 32:
            return False
        if cp.signature[:KEY_ID_LEN] != key_id(cp.log, public_key):
            return False
        body = _body(cp.log, cp.size, cp.root, cp.at)
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            cp.signature[KEY_ID_LEN:], body.encode("utf-8")
        )
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def to_text(cp: Checkpoint) -> str:
    signature = base64.b64encode(cp.signature).decode("ascii")
    return f"{_body(cp.log, cp.size, cp.root, cp.at)}\n{_DASH} {cp.log} {signature}\n"


def from_text(text: str) -> Checkpoint:
    """Parse checkpoint text (does NOT verify the signature: call `verify`)."""
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise CheckpointError("not a signed note")
    body, signatures = text[: split + 1], text[split + 2 :]
    lines = body[:-1].split("\n")
    if len(lines) != 4:
        raise CheckpointError("checkpoint body must have 4 lines")
    log, size_text, root_text, at_text = lines
    try:
        _check_name(log)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    if not _SIZE_RE.match(size_text):
        raise CheckpointError("bad tree size")
    root = _b64decode(root_text, "bad root")
    if len(root) != 32:
        raise CheckpointError("root must be 32 bytes")
    try:
        at = dt.datetime.fromisoformat(at_text)
    except ValueError as exc:
        raise CheckpointError("bad time") from exc
    if at.tzinfo is None:
        raise CheckpointError("time must be UTC ISO 8601 ending in Z")
    size = int(size_text)
    # A note may carry cosignatures (witnesses); ours is the one named after the log.
    for line in signatures.split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise CheckpointError("bad signature line")
        if parts[1] == log:
            signature = _b64decode(parts[2], "bad signature")
            if len(signature) != SIGNATURE_LEN:
                raise CheckpointError("bad signature length")
            if _body(log, size, root, at) != body:
                # e.g. "042", "+01:00": the signature covers the exact text, so only the one
                # canonical spelling of each field can round-trip through `verify`.
                raise CheckpointError("checkpoint body is not canonical")
            return Checkpoint(log=log, size=size, root=root, at=at, signature=signature)
    raise CheckpointError("no signature by the log itself")


def _body(log: str, size: int, root: bytes, at: dt.datetime) -> str:
    return f"{log}\n{size}\n{base64.b64encode(root).decode('ascii')}\n{_format_time(at)}\n"


def _format_time(at: dt.datetime) -> str:
    utc = at.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError("log name must be non-empty without spaces or '+'")


def _b64decode(text: str, message: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(message) from exc


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
