"""Audit crypto: sealing, pseudonyms, escrow shares, Merkle tree and signed checkpoints.

Pure domain code: imports only the standard library and `cryptography` (no mitmproxy, no
SQLAlchemy, no web framework), so it can be tested and reasoned about on its own.

- seal        encrypt an event's subject and details to the escrow public key
- pseudonym   per-period keyed pseudonyms that let a case find one subject's events
- shares      Shamir k-of-n shares of the escrow private key, passphrase-protected at rest
- merkle      RFC 6962 tree hashing, inclusion and consistency proofs
- checkpoint  Ed25519-signed checkpoints (signed-note text) that leave the box
"""

from .seal import SealError, seal, unseal

__all__ = ["SealError", "seal", "unseal"]
