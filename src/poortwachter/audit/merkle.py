"""RFC 6962 section 2.1 Merkle tree hashing, audit paths and consistency proofs.

The audit event log and the access ledger are append-only lists; their Merkle root, signed in a
checkpoint that leaves the box, makes any later edit, deletion, insertion or reordering visible.

- leaf_hash(d)      = SHA-256(0x00 || d)
- node_hash(l, r)   = SHA-256(0x01 || l || r)
- MTH of the empty list = SHA-256("")

Proofs are built with PATH and SUBPROOF (RFC 6962 2.1.1, 2.1.2) and checked with the iterative
algorithms of RFC 9162 2.1.3.2 and 2.1.4.2, which never need the leaves themselves.
Verifiers return False for anything malformed (wrong sizes, wrong hash lengths, wrong proof
length) instead of raising: a tampered input is an expected outcome, not a bug.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already hashed leaves; the empty tree is SHA-256 of the empty string."""
    if not leaf_hashes:
        return EMPTY_ROOT
    # Pairing level by level and promoting a lone last node unchanged gives exactly the MTH of
    # RFC 6962 (split at the largest power of two below n), without recursion or slicing.
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 2.1.1: the audit path of one leaf, bottom first."""
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of size {size}")
    return _path(index, leaf_hashes, 0, size)


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 6962 2.1.2; empty when old_size is 0 or equals n."""
    size = len(leaf_hashes)
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} outside 0..{size}")
    if old_size in (0, size):
        return []
    return _subproof(old_size, leaf_hashes, 0, size, True)


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` show leaf `index` of a tree of `size` has `leaf_hash`?"""
    if not (0 <= index < size) or not _hashes_ok(leaf_hash, root, *proof):
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False  # proof longer than the path
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # A right-edge node with no sibling at this level: climb until it has one.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree (old_size, old_root) a prefix of (new_size, new_root)?"""
    if not 0 <= old_size <= new_size or not _hashes_ok(old_root, new_root, *proof):
        return False
    if old_size == 0:
        # Every tree extends the empty one; still insist the old root is the empty root so a
        # forged "size 0" checkpoint cannot carry an arbitrary hash.
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False  # proof longer than needed
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def _hashes_ok(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_LEN for h in hashes)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    return root(hashes[lo:hi])


def _path(m: int, hashes: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _path(m, hashes, lo, lo + k) + [_mth(hashes, lo + k, hi)]
    return _path(m - k, hashes, lo + k, hi) + [_mth(hashes, lo, lo + k)]


def _subproof(m: int, hashes: Sequence[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        # `whole`: this subtree is the old tree itself, whose root the verifier already has.
        return [] if whole else [_mth(hashes, lo, hi)]
    k = _split(n)
    if m <= k:
        return _subproof(m, hashes, lo, lo + k, whole) + [_mth(hashes, lo + k, hi)]
    return _subproof(m - k, hashes, lo + k, hi, False) + [_mth(hashes, lo, lo + k)]
