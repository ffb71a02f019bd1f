"""Shamir secret sharing over GF(256): the escrow private key exists only as shares.

Default 2-of-2 (directie + ICT); k-of-n is possible. Each byte of the secret is the constant term
of its own random polynomial of degree k-1; share i holds the polynomials' values at x = i.
Fewer than k shares are consistent with every possible secret, so they reveal nothing.

Field: GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b). Coefficients come from
`secrets`. A share at rest is protected by its holder's passphrase (scrypt + ChaCha20-Poly1305).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

_POLY = 0x11B
FORMAT = "poortwachter-escrow-share"
FORMAT_VERSION = 1
# scrypt cost: N=2^15, r=8, p=1 takes ~32 MiB and a fraction of a second, once per unseal session.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_N_MAX = 2**20  # refuse blobs that would make us allocate gigabytes


class ShareError(ValueError):
    """Shares that cannot be combined (too few, mixed, duplicated, malformed)."""


class BadPassphrase(ValueError):
    """A protected share could not be opened: wrong passphrase, or the blob was altered."""


@dataclass(frozen=True)
class Share:
    index: int  # the x coordinate, 1..255 (never 0: that is where the secret lives)
    threshold: int  # k: how many shares recombine the secret
    data: bytes  # one field element per secret byte


def _build_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 510
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        # Multiply by the generator 0x03: x*2 (reduced by 0x11b) xor x.
        x2 = x << 1
        if x2 & 0x100:
            x2 ^= _POLY
        x = x2 ^ x
    for i in range(255, 510):
        exp[i] = exp[i - 255]  # doubled so mul needs no modulo
    return exp, log


_EXP, _LOG = _build_tables()


def gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[_LOG[a] + 255 - _LOG[b]]


def split(secret: bytes, k: int, n: int) -> list[Share]:
    """Split `secret` into n shares of which any k recombine it."""
    if not secret:
        raise ValueError("secret must not be empty")
    if not 2 <= k <= n <= 255:
        # k = 1 would make every share the secret itself, defeating the escrow.
        raise ValueError(f"need 2 <= k <= n <= 255, got k={k} n={n}")
    # coefficients[j] holds the degree-j coefficients for all bytes; degree 0 is the secret.
    coefficients = [secret] + [secrets.token_bytes(len(secret)) for _ in range(k - 1)]
    shares = []
    for x in range(1, n + 1):
        data = bytearray(len(secret))
        for pos in range(len(secret)):
            y = 0
            for coeff in reversed(coefficients):  # Horner
                y = gf_mul(y, x) ^ coeff[pos]
            data[pos] = y
        shares.append(Share(index=x, threshold=k, data=bytes(data)))
    return shares


def combine(shares: Sequence[Share]) -> bytes:
    """Recover the secret from at least `threshold` shares (Lagrange interpolation at x = 0)."""
    if not shares:
        raise ShareError("no shares given")
    threshold = shares[0].threshold
    length = len(shares[0].data)
    if any(s.threshold != threshold or len(s.data) != length for s in shares):
        raise ShareError("shares do not belong together")
    indexes = [s.index for s in shares]
    if len(set(indexes)) != len(indexes):
        raise ShareError("the same share was given twice")
    if any(not 1 <= i <= 255 for i in indexes):
        raise ShareError("share index out of range")
    if len(shares) < threshold:
        raise ShareError(f"{threshold} shares needed, {len(shares)} given")
    used = shares[:threshold]
    # Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is xor in GF(2^8).
    weights = []
    for s in used:
        num, den = 1, 1
        for t in used:
            if t.index != s.index:
                num = gf_mul(num, t.index)
                den = gf_mul(den, t.index ^ s.index)
        weights.append(gf_div(num, den))
    secret = bytearray(length)
    for s, w in zip(used, weights, strict=True):
        for pos, y in enumerate(s.data):
            secret[pos] ^= gf_mul(y, w)
    return bytes(secret)


def protect(share: Share, holder: str, passphrase: str) -> dict[str, Any]:
    """Encrypt a share under its holder's passphrase; the result is JSON-able.

    Everything in the clear (holder, index, threshold, scrypt parameters) is bound as associated
    data, so editing any of it makes `unprotect` fail.
    """
    if not passphrase:
        raise ValueError("passphrase must not be empty")
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    blob: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "holder": holder,
        "index": share.index,
        "threshold": share.threshold,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "nonce": _b64(nonce),
    }
    key = _kdf(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    blob["ciphertext"] = _b64(ChaCha20Poly1305(key).encrypt(nonce, share.data, _aad(blob)))
    return blob


def unprotect(blob: dict[str, Any], passphrase: str) -> Share:
    """Open a blob made by `protect`; raises BadPassphrase on a wrong passphrase or any edit."""
    try:
        if blob["format"] != FORMAT or blob["version"] != FORMAT_VERSION:
            raise BadPassphrase("unknown share format")
        kdf = blob["kdf"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if kdf["name"] != "scrypt" or not 2 <= n <= _SCRYPT_N_MAX or n & (n - 1) or r < 1 or p < 1:
            raise BadPassphrase("unsupported key derivation")
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(blob["nonce"], validate=True)
        ciphertext = base64.b64decode(blob["ciphertext"], validate=True)
        index, threshold = blob["index"], blob["threshold"]
        aad = _aad(blob)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BadPassphrase):
            raise
        raise BadPassphrase("share file malformed") from exc
    if len(nonce) != 12 or not isinstance(index, int) or not isinstance(threshold, int):
        raise BadPassphrase("share file malformed")
    key = _kdf(passphrase, salt, n, r, p)
    try:
        data = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise BadPassphrase("wrong passphrase or altered share") from exc
    return Share(index=index, threshold=threshold, data=data)


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _aad(blob: dict[str, Any]) -> bytes:
    # Canonical JSON of every field except the ciphertext itself.
    clear = {key: value for key, value in blob.items() if key != "ciphertext"}
    return json.dumps(clear, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
