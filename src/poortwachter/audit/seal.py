"""Sealing: encrypt to the escrow public key so that nobody but the share holders can read it.

An HPKE-style base mode: X25519 ephemeral-static ECDH, HKDF-SHA256, ChaCha20-Poly1305.
Each seal makes a fresh ephemeral key pair, so the gateway that sealed an event cannot open it
again afterwards: it never keeps the ephemeral private key.

Sealed format (version 1), all lengths in bytes::

    version (1) = 0x01 | ephemeral public key (32) | nonce (12) | ciphertext + Poly1305 tag (len+16)

- key  = HKDF-SHA256(ikm = X25519(eph, recipient), salt = none,
                     info = b"poortwachter/seal/v1" | ephemeral public | recipient public)
- AEAD associated data = the 45-byte header (version | ephemeral public | nonce) | caller's aad

The caller's aad binds the event's clear fields (time, zone, verdict ...) to the sealed part, so a
sealed subject cannot be moved onto another event without unseal failing.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

VERSION = 1
KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
HEADER_LEN = 1 + KEY_LEN + NONCE_LEN
OVERHEAD = HEADER_LEN + TAG_LEN
_INFO = b"poortwachter/seal/v1"


class SealError(Exception):
    """A sealed blob could not be opened: wrong key, wrong aad, tampered or malformed bytes.

    Deliberately one error for all causes, so the message reveals nothing about which check failed.
    """


def generate_keypair() -> tuple[bytes, bytes]:
    """A new X25519 key pair as raw bytes: (private 32, public 32)."""
    private = X25519PrivateKey.generate()
    return _raw_private(private), _raw_public(private.public_key())


def public_key_of(private_key: bytes) -> bytes:
    """The raw 32-byte public key that belongs to a raw 32-byte private key."""
    return _raw_public(_load_private(private_key).public_key())


def seal(recipient_public: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt `plaintext` to `recipient_public` (raw 32-byte X25519), authenticating `aad` too."""
    recipient = _load_public(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw_public(ephemeral.public_key())
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError as exc:  # low-order recipient key: all-zero shared secret
        raise ValueError("recipient public key is not usable") from exc
    key = _derive(shared, ephemeral_public, recipient_public)
    nonce = os.urandom(NONCE_LEN)
    header = bytes([VERSION]) + ephemeral_public + nonce
    return header + ChaCha20Poly1305(key).encrypt(nonce, plaintext, header + aad)


class Sealer:
    """`seal` for a stream of events, in the same format: one ephemeral key exchange serves up to
    `uses` seals (each with its own random nonce) instead of one exchange per event, which costs
    most of a seal. The ephemeral private key is dropped at once; the derived key is kept in memory
    only until the next rotation, so at most that many recent events could be opened from a
    memory dump of the gateway (which sees that traffic live anyway)."""

    def __init__(self, recipient_public: bytes, uses: int = 256) -> None:
        self._recipient_public = recipient_public
        self._recipient = _load_public(recipient_public)
        self._uses = uses
        self._left = 0
        self._aead: ChaCha20Poly1305 | None = None
        self._ephemeral_public = b""

    def _rotate(self) -> None:
        ephemeral = X25519PrivateKey.generate()
        self._ephemeral_public = _raw_public(ephemeral.public_key())
        try:
            shared = ephemeral.exchange(self._recipient)
        except ValueError as exc:
            raise ValueError("recipient public key is not usable") from exc
        self._aead = ChaCha20Poly1305(_derive(shared, self._ephemeral_public, self._recipient_public))
        self._left = self._uses

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        if self._left <= 0:
            self._rotate()
        self._left -= 1
        assert self._aead is not None
        nonce = os.urandom(NONCE_LEN)
        header = bytes([VERSION]) + self._ephemeral_public + nonce
        return header + self._aead.encrypt(nonce, plaintext, header + aad)


def unseal(recipient_private: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Open a blob made by `seal`; raises SealError on any tampering, wrong key or wrong aad."""
    private = _load_private(recipient_private)
    if len(sealed) < OVERHEAD or sealed[0] != VERSION:
        raise SealError("sealed data malformed")
    header = sealed[:HEADER_LEN]
    ephemeral_public = sealed[1 : 1 + KEY_LEN]
    nonce = sealed[1 + KEY_LEN : HEADER_LEN]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError as exc:
        raise SealError("sealed data malformed") from exc
    key = _derive(shared, ephemeral_public, _raw_public(private.public_key()))
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, sealed[HEADER_LEN:], header + aad)
    except InvalidTag as exc:
        raise SealError("sealed data could not be opened") from exc


def _derive(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    # Binding both public keys in `info` ties the key to this exact exchange (as HPKE does).
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_INFO + ephemeral_public + recipient_public)
    return hkdf.derive(shared)


def _load_public(raw: bytes) -> X25519PublicKey:
    if len(raw) != KEY_LEN:
        raise ValueError(f"X25519 public key must be {KEY_LEN} bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


def _load_private(raw: bytes) -> X25519PrivateKey:
    if len(raw) != KEY_LEN:
        raise ValueError(f"X25519 private key must be {KEY_LEN} bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
