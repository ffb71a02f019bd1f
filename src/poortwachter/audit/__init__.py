"""The audit log's pure parts: sealing, pseudonyms, escrow shares, Merkle tree, signed notes, records.

Pure domain code: imports only the standard library and `cryptography` (no mitmproxy, no
SQLAlchemy, no web framework), so it can be tested and reasoned about on its own. The services
that keep these in the store (the writer, cases and ledger, checkpointer, retention, key ceremony,
verify) are the package auditlog/.

- seal        encrypt an event's subject and details to the escrow public key
- pseudonym   per-period keyed pseudonyms that let a case find one subject's events
- shares      Shamir k-of-n shares of the escrow private key, passphrase-protected at rest
- merkle      RFC 6962 tree hashing, inclusion and consistency proofs
- log         an append-only log seen through its leaf hashes, checked against checkpoints
- checkpoint  Ed25519-signed checkpoints (signed-note text) that leave the box
- notes       signed notes as they leave the box: checkpoints and erasure records
- record      an audit event built from a verdict: clear part, sealed part, canonical bytes
- keystore    the recorder's key files (escrow public key, period pseudonym keys)
- spool       the append-only on-disk queue of records; sequence: the gateway's sequence numbers
"""

from .seal import SealError, seal, unseal

__all__ = ["SealError", "seal", "unseal"]
