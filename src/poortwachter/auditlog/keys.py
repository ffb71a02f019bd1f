"""The key ceremony (`poortwachter keys init`): the escrow key pair, its shares, and the checkpoint
signing key.

- Escrow: a new X25519 key pair. The PUBLIC key goes to <data dir>/audit/escrow.pub (where the
  recorder's keystore looks for it) and to the store (audit_keys). The PRIVATE key is split into
  k-of-n Shamir shares (default 2-of-2: directie + ICT), each protected by its holder's
  passphrase and written to <data dir>/audit/shares/<holder>.json, to be handed to its holder
  and removed from the box. The private key itself is never written anywhere: it exists in this
  process only, until the shares have been checked (each opened with its passphrase, k of them
  recombined to the same key).
- Checkpoints: a new Ed25519 key pair. The private key (seed) goes to
  <data dir>/audit/checkpoint.key (64 hex characters, mode 0600: the box signs its own
  checkpoints); the public key to the store (audit_keys), to verify them anywhere.
- The store also gets who holds which share (escrow_holders) and a "keys" entry in the access
  ledger.

Refuses when any of those keys already exists (a file here, or a key in the store): a second
ceremony would silently orphan the events sealed to the first key. Key rotation is not built yet.
Files are written first and removed again if the store refuses, so a failed ceremony leaves
nothing half-made behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..audit import checkpoint
from ..audit.keystore import ESCROW_FILE, audit_dir, write_escrow_public
from ..audit.seal import generate_keypair, public_key_of
from ..audit.shares import combine, protect, split, unprotect
from ..store import repo
from ..store.db import Store
from ..store.models import NAME, AuditKeyRow, EscrowHolderRow
from ..workflow.errors import Conflict, Invalid
from .ledger import append_ledger

CHECKPOINT_FILE = "checkpoint.key"
SHARES_DIR = "shares"
MIN_PASSPHRASE = 12
DEFAULT_HOLDERS = "directie,ict"
_LABEL = re.compile(r"[a-z][a-z0-9-]{0,31}")


class KeysExist(Conflict):
    """A key of an earlier ceremony is still there."""


@dataclass(frozen=True)
class Holder:
    label: str     # directie, ict, fg, ...: names the share file
    name: str      # who holds it


@dataclass(frozen=True)
class Ceremony:
    key_id: int
    escrow_public: bytes
    checkpoint_public: bytes
    threshold: int
    holders: tuple[Holder, ...]
    share_files: tuple[Path, ...]
    escrow_file: Path
    checkpoint_file: Path


def parse_holders(value: str) -> list[Holder]:
    """"directie:Anna de Vries,ict:Jan" -> holders; a label without a name is its own name."""
    holders = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        label, _, name = item.partition(":")
        label, name = label.strip().lower(), name.strip() or label.strip()
        if not _LABEL.fullmatch(label):
            raise Invalid("Houder: label a-z, 0-9, - (bijv. directie) / Holder: label a-z, 0-9, - (e.g. directie)")
        if len(name) > NAME:
            raise Invalid("Naam van de houder te lang / Holder's name too long")
        holders.append(Holder(label, name))
    if len({h.label for h in holders}) != len(holders):
        raise Invalid("Elke houder een eigen label / Each holder needs its own label")
    return holders


def check_passphrase(passphrase: str) -> str:
    if len(passphrase) < MIN_PASSPHRASE:
        raise Invalid(f"Wachtzin te kort (min. {MIN_PASSPHRASE} tekens) / "
                      f"Passphrase too short (min. {MIN_PASSPHRASE} characters)")
    return passphrase


def share_file(data_dir: Path, label: str) -> Path:
    return audit_dir(data_dir) / SHARES_DIR / f"{label}.json"


def checkpoint_key_file(data_dir: Path) -> Path:
    return audit_dir(data_dir) / CHECKPOINT_FILE


def load_checkpoint_key(data_dir: Path) -> bytes:
    """The checkpoint signing key (Ed25519 seed) written by the ceremony."""
    path = checkpoint_key_file(data_dir)
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != 32:
        raise ValueError(f"{path}: not a 32-byte key in hex")
    return key


def read_share_file(path: Path) -> dict[str, Any]:
    value = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a share file")
    return value


def existing_keys(store: Store, data_dir: Path, holders: Sequence[Holder] = ()) -> list[str]:
    """What an earlier ceremony left (paths and "store"), empty if there is nothing."""
    found = [str(p) for p in (audit_dir(data_dir) / ESCROW_FILE, checkpoint_key_file(data_dir),
                              *(share_file(data_dir, h.label) for h in holders)) if p.exists()]
    with store.read() as s:
        if s.scalar(select(AuditKeyRow.id).limit(1)) is not None:
            found.append("store (audit_keys)")
    return found


def init_keys(store: Store, data_dir: Path, *, holders: Sequence[Holder], threshold: int,
              passphrases: Mapping[str, str], actor: str, now: dt.datetime) -> Ceremony:
    """Hold the ceremony; `passphrases` maps each holder's label to their passphrase."""
    holders = tuple(holders)
    if not 2 <= threshold <= len(holders):
        raise Invalid("Nodig: 2 <= drempel <= aantal houders / Needed: 2 <= threshold <= number of holders")
    phrases = [check_passphrase(passphrases.get(h.label, "")) for h in holders]
    if len(set(phrases)) != len(phrases):
        raise Invalid("Elke houder een eigen wachtzin / Each holder needs their own passphrase")
    existing = existing_keys(store, data_dir, holders)
    if existing:
        raise KeysExist("Er zijn al sleutels / Keys already exist: " + ", ".join(existing))

    escrow_private, escrow_public = generate_keypair()
    signing_private, signing_public = checkpoint.generate_signing_key()
    shares = split(escrow_private, threshold, len(holders))
    blobs = [protect(share, h.label, phrase) for share, h, phrase in zip(shares, holders, phrases, strict=True)]
    # Every file must open with its passphrase, and k of them must give back the key, before the
    # only copy of the key is dropped.
    opened = [unprotect(blob, phrase) for blob, phrase in zip(blobs, phrases, strict=True)]
    if combine(opened[:threshold]) != escrow_private or public_key_of(escrow_private) != escrow_public:
        raise RuntimeError("escrow shares do not recombine")
    del escrow_private, shares, opened

    written: list[Path] = []
    try:
        files = []
        for holder, blob in zip(holders, blobs, strict=True):
            path = share_file(data_dir, holder.label)
            _write_new(path, (json.dumps(blob, indent=2) + "\n").encode("ascii"), written)
            files.append(path)
        cp_file = checkpoint_key_file(data_dir)
        _write_new(cp_file, (signing_private.hex() + "\n").encode("ascii"), written)
        del signing_private
        escrow_file = write_escrow_public(audit_dir(data_dir), escrow_public)   # last: recording starts sealing
        written.append(escrow_file)
        with store.write() as s:
            repo.lock_revision(s)
            if s.scalar(select(AuditKeyRow.id).limit(1)) is not None:
                raise KeysExist("Er zijn al sleutels / Keys already exist: store (audit_keys)")
            key = AuditKeyRow(escrow_public=escrow_public, checkpoint_public=signing_public, created_at=now)
            s.add(key)
            s.flush()
            for blob, holder in zip(blobs, holders, strict=True):
                s.add(EscrowHolderRow(key_id=key.id, holder=holder.label, name=holder.name, share_index=blob["index"],
                                      threshold=threshold, created_at=now))
            append_ledger(s, at=now, actor=actor, action="keys", case_id=None,
                          note=f"{threshold}-of-{len(holders)}")
            key_id = key.id
    except BaseException:
        for path in reversed(written):
            path.unlink(missing_ok=True)
        raise
    return Ceremony(key_id=key_id, escrow_public=escrow_public, checkpoint_public=signing_public,
                    threshold=threshold, holders=holders, share_files=tuple(files), escrow_file=escrow_file,
                    checkpoint_file=cp_file)


def _write_new(path: Path, data: bytes, written: list[Path]) -> None:
    """Create `path` (mode 0600, never over an existing file) durably."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    written.append(path)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
