"""The keys the gateway needs to record audit events, and nothing that opens them.

Files in <data dir>/audit/:
- `escrow.pub`: the escrow PUBLIC key, 32 raw X25519 bytes as 64 hex characters (written by the
  key ceremony, `poortwachter keys init`). Without it the gateway records nothing personal:
  events keep their clear fields only (no pseudonym, no sealed part), and the recorder says so
  once in its log. It is looked for again now and then, so a ceremony held while the gateway
  runs takes effect without a restart.
- `pseudonym-key-<period>.key`: the running period's pseudonym key (audit/pseudonym.PeriodKeys:
  made when the period begins, erased when the next one begins).
- `sealed-period-key-<period>.bin`: that key sealed to the escrow key, made together with it and
  kept until the store has confirmed its copy in audit_period_keys. A period can end while the
  database is away; without this file its key would then be gone before the store had it, and
  its events' pseudonyms could never be matched by a case.

Thread-safe enough for its one user: the recorder's background thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path

from .pseudonym import PeriodClosed, PeriodKeys, period_of, pseudonym

log = logging.getLogger("poortwachter")

ESCROW_FILE = "escrow.pub"
_SEALED_PREFIX = "sealed-period-key-"
_SEALED_SUFFIX = ".bin"
_PERIOD = re.compile(r"^\d{4}-W\d{2}$")


class EscrowKeyError(ValueError):
    """escrow.pub exists but is not a 32-byte key in hex."""


def audit_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "audit"


def load_escrow_public(directory: Path) -> bytes | None:
    """The escrow public key in `directory`, or None if there is none."""
    path = Path(directory) / ESCROW_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise EscrowKeyError(f"{path}: unreadable ({type(exc).__name__})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise EscrowKeyError(f"{path}: not a 32-byte key in hex (64 characters)")
    return key


def write_escrow_public(directory: Path, key: bytes) -> Path:
    """Install an escrow public key (for the key ceremony and tests)."""
    if len(key) != 32:
        raise ValueError("escrow public key must be 32 bytes")
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / ESCROW_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(key.hex() + "\n", encoding="ascii")
    os.replace(tmp, path)
    return path


class KeyStore:
    def __init__(self, directory: Path, *, load: bool = True) -> None:
        """load=False: look for the escrow key only when `load()` is called (which may raise)."""
        self.directory = Path(directory)
        self.escrow_public: bytes | None = None
        self._keys: PeriodKeys | None = None
        self._current: tuple[str, bytes] | None = None     # (period, key): the per-event fast path
        if load:
            self.load()

    def load(self) -> bool:
        """Look for the escrow key (again); True if recording became sealed by this call.
        Raises EscrowKeyError if escrow.pub is there but unusable."""
        if self.escrow_public is not None:
            return False
        escrow = load_escrow_public(self.directory)
        if escrow is None:
            return False
        self.escrow_public = escrow
        self._keys = PeriodKeys(escrow, self.directory)
        for period in self._keys.periods:      # held since before a restart: make sure of its copy
            self._keep_sealed(period)
        return True

    # --- recording ---------------------------------------------------------------------------
    def pseudonym(self, subject: str, when: dt.datetime) -> tuple[str, str | None]:
        """(period, pseudonym of `subject`); the pseudonym is None without an escrow key, or for
        a period that has already ended (its key is gone)."""
        period = period_of(when)
        current = self._current
        if current is not None and current[0] == period:
            return period, pseudonym(current[1], subject)
        if self._keys is None:
            return period, None
        try:
            key = self._keys.key(period)
        except PeriodClosed:
            return period, None
        self._keep_sealed(period)
        self._current = (period, key)
        return period, pseudonym(key, subject)

    # --- the sealed copies for the store ------------------------------------------------------
    def sealed_copy(self, period: str) -> bytes | None:
        """The sealed key of `period` for audit_period_keys, while the gateway has one."""
        path = self._sealed_path(period)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        if self._keys is not None and period in self._keys.periods:
            return self._keys.sealed_period_key(period)
        return None

    def stored(self, period: str) -> None:
        """The store has the sealed key of `period`: the local copy is no longer needed."""
        self._sealed_path(period).unlink(missing_ok=True)

    def unstored_periods(self) -> list[str]:
        """Periods whose sealed key still waits for the store."""
        out = []
        for path in self.directory.glob(f"{_SEALED_PREFIX}*{_SEALED_SUFFIX}"):
            period = path.name[len(_SEALED_PREFIX):-len(_SEALED_SUFFIX)]
            if _PERIOD.match(period):
                out.append(period)
        return sorted(out)

    def _keep_sealed(self, period: str) -> None:
        path = self._sealed_path(period)
        if path.exists() or self._keys is None:
            return
        sealed = self._keys.sealed_period_key(period)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, sealed)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _sealed_path(self, period: str) -> Path:
        if not _PERIOD.match(period):
            raise ValueError(f"not a period: {period!r}")
        return self.directory / f"{_SEALED_PREFIX}{period}{_SEALED_SUFFIX}"
