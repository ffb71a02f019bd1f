"""RFC 6962 Merkle tree: known answers from the Certificate Transparency / transparency-dev
test suites, and every way a log can be tampered with."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

import pytest

from poortwachter.audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# --- Known-answer vectors -----------------------------------------------------------------------
# Leaves, node hashes and roots copied from transparency-dev/merkle testonly/constants.go
# (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1, LeafInputs/NodeHashes/RootHashes); the same
# vectors appear in google/certificate-transparency. Proofs from proof/verify_test.go
# (commit 02194e9afb6c1d95b5381350007963aa70fff472, inclusionProofs with 1-based leaf numbers,
# consistencyProofs) and testonly/reference_test.go (TestRefInclusionProof, 0-based).
LEAVES = [
    bytes.fromhex(""),
    bytes.fromhex("00"),
    bytes.fromhex("10"),
    bytes.fromhex("2021"),
    bytes.fromhex("3031"),
    bytes.fromhex("40414243"),
    bytes.fromhex("5051525354555657"),
    bytes.fromhex("606162636465666768696a6b6c6d6e6f"),
]
ROOTS = [  # index = tree size
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAF_HASHES = [  # NodeHashes()[0]
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
LEVEL1 = [  # NodeHashes()[1]
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
]
INCLUSION = [  # (0-based index, tree size, expected audit path)
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
    (0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
]
CONSISTENCY = [  # (old size, new size, expected proof)
    (1, 1, []),
    (1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
    (6, 7, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
]
# Arbitrary well-formed hash, as sha256SomeHash in verify_test.go.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

H = [leaf_hash(leaf) for leaf in LEAVES]


def hx(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def R(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size])


# --- Hashing ------------------------------------------------------------------------------------


def test_leaf_and_node_hash_use_rfc6962_domain_prefixes() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    # A leaf can never collide with an inner node of the same bytes (second-preimage defence).
    assert leaf_hash(H[0] + H[1]) != node_hash(H[0], H[1])


def test_leaf_hashes_match_known_answers() -> None:
    assert [h.hex() for h in H] == LEAF_HASHES


def test_level_one_nodes_match_known_answers() -> None:
    assert [node_hash(H[i], H[i + 1]).hex() for i in range(0, 8, 2)] == LEVEL1


@pytest.mark.parametrize("size", range(9))
def test_root_matches_known_answer(size: int) -> None:
    assert root(H[:size]).hex() == ROOTS[size]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


# --- Inclusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_proof_matches_known_answer(index: int, size: int, expected: list[str]) -> None:
    assert inclusion_proof(index, H[:size]) == hx(expected)
    assert verify_inclusion(index, size, H[index], hx(expected), R(size))


@pytest.mark.parametrize("size", range(1, 9))
def test_every_leaf_proves_inclusion_against_known_roots(size: int) -> None:
    for index in range(size):
        proof = inclusion_proof(index, H[:size])
        assert verify_inclusion(index, size, H[index], proof, R(size)), (index, size)


Probe = tuple[str, tuple[int, int, bytes, list[bytes], bytes]]


def _corrupt_inclusion(index: int, size: int, proof: list[bytes], root_: bytes,
                       leaf: bytes) -> Iterator[Probe]:
    """The probes of corruptInclusionProof in transparency-dev/merkle proof/verify_test.go."""
    yield "index - 1", (index - 1, size, leaf, proof, root_)
    yield "index + 1", (index + 1, size, leaf, proof, root_)
    yield "index ^ 2", (index ^ 2, size, leaf, proof, root_)
    yield "size * 2", (index, size * 2, leaf, proof, root_)
    yield "size // 2", (index, size // 2, leaf, proof, root_)
    yield "wrong leaf", (index, size, b"WrongLeaf", proof, root_)
    yield "wrong leaf, right length", (index, size, SOME_HASH, proof, root_)
    yield "empty root", (index, size, leaf, proof, EMPTY_ROOT)
    yield "random root", (index, size, leaf, proof, SOME_HASH)
    yield "trailing garbage", (index, size, leaf, [*proof, b""], root_)
    yield "trailing root", (index, size, leaf, [*proof, root_], root_)
    yield "preceding garbage", (index, size, leaf, [b"", *proof], root_)
    yield "preceding root", (index, size, leaf, [root_, *proof], root_)
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        yield f"flipped bit in proof[{i}]", (index, size, leaf, flipped, root_)
    if proof:
        yield "removed component", (index, size, leaf, proof[:-1], root_)
    if len(proof) > 1:
        yield "inserted component", (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root_)


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, expected: list[str]) -> None:
    proof = hx(expected)
    assert verify_inclusion(index, size, H[index], proof, R(size))
    accepted = [
        desc for desc, args in _corrupt_inclusion(index, size, proof, R(size), H[index])
        if verify_inclusion(*args)
    ]
    assert accepted == []


def test_single_entry_tree_inclusion() -> None:
    # TestVerifyInclusionSingleEntry: root and leaf hash coincide, the proof is empty.
    h = leaf_hash(b"data")
    assert verify_inclusion(0, 1, h, [], h)
    assert not verify_inclusion(0, 1, b"", [], h)
    assert not verify_inclusion(0, 1, h, [], b"")
    assert not verify_inclusion(0, 1, h, [], SOME_HASH)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 1), (8, 8)])
def test_inclusion_with_impossible_index_or_size_fails(index: int, size: int) -> None:
    assert not verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)
    assert not verify_inclusion(index, size, SOME_HASH, [], SOME_HASH)


def test_inclusion_proof_rejects_index_outside_tree() -> None:
    for index in (-1, 3):
        with pytest.raises(ValueError):
            inclusion_proof(index, H[:3])
    with pytest.raises(ValueError):
        inclusion_proof(0, [])


# --- Consistency --------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_consistency_proof_matches_known_answer(old: int, new: int, expected: list[str]) -> None:
    assert consistency_proof(old, H[:new]) == hx(expected)
    assert verify_consistency(old, new, R(old), R(new), hx(expected))


def test_every_prefix_is_consistent_with_every_later_tree() -> None:
    for old, new in itertools.combinations_with_replacement(range(1, 9), 2):
        proof = consistency_proof(old, H[:new])
        assert verify_consistency(old, new, R(old), R(new), proof), (old, new)


def _corrupt_consistency(old: int, new: int, r1: bytes, r2: bytes,
                         proof: list[bytes]) -> Iterator[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    """The probes of corruptConsistencyProof in transparency-dev/merkle proof/verify_test.go."""
    yield "old - 1", (old - 1, new, r1, r2, proof)
    yield "old + 1", (old + 1, new, r1, r2, proof)
    yield "old ^ 2", (old ^ 2, new, r1, r2, proof)
    yield "new * 2", (old, new * 2, r1, r2, proof)
    yield "new // 2", (old, new // 2, r1, r2, proof)
    yield "wrong old root", (old, new, b"WrongRoot", r2, proof)
    yield "wrong new root", (old, new, r1, b"WrongRoot", proof)
    yield "random old root", (old, new, SOME_HASH, r2, proof)
    yield "random new root", (old, new, r1, SOME_HASH, proof)
    yield "swapped roots", (old, new, r2, r1, proof)
    yield "empty proof", (old, new, r1, r2, [])
    yield "trailing garbage", (old, new, r1, r2, [*proof, b""])
    yield "trailing old root", (old, new, r1, r2, [*proof, r1])
    yield "trailing new root", (old, new, r1, r2, [*proof, r2])
    yield "preceding garbage", (old, new, r1, r2, [b"", *proof])
    yield "preceding old root", (old, new, r1, r2, [r1, *proof])
    yield "preceding new root", (old, new, r1, r2, [r2, *proof])
    yield "preceding proof[0]", (old, new, r1, r2, [proof[0], *proof])
    yield "truncated proof", (old, new, r1, r2, proof[:-1])
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        yield f"flipped bit in proof[{i}]", (old, new, r1, r2, flipped)


@pytest.mark.parametrize(("old", "new", "expected"), [c for c in CONSISTENCY if c[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, expected: list[str]) -> None:
    proof = hx(expected)
    accepted = [
        desc for desc, args in _corrupt_consistency(old, new, R(old), R(new), proof)
        if verify_consistency(*args)
    ]
    assert accepted == []


def test_consistency_edge_cases() -> None:
    # Adapted from TestVerifyConsistency; we are stricter than the Go library about size 0:
    # the old root of an empty tree must be the empty root.
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, R(5), [])
    assert not verify_consistency(0, 5, SOME_HASH, R(5), [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, R(1), [EMPTY_ROOT])  # proof must be empty
    assert verify_consistency(1, 1, R(1), R(1), [])
    assert not verify_consistency(1, 1, R(1), R(2), [])  # same size, different roots: a fork
    assert not verify_consistency(1, 1, R(1), R(1), [EMPTY_ROOT])
    assert not verify_consistency(1, 0, R(1), EMPTY_ROOT, [])  # time travel to the past
    assert not verify_consistency(2, 1, R(2), R(1), [])
    assert not verify_consistency(1, 2, R(1), R(2), [])  # a real extension needs a proof
    assert not verify_consistency(-1, 2, R(1), R(2), [])


def test_consistency_proof_rejects_impossible_sizes() -> None:
    assert consistency_proof(0, H) == []
    assert consistency_proof(8, H) == []
    for old in (-1, 9):
        with pytest.raises(ValueError):
            consistency_proof(old, H)


# --- A tampered log -----------------------------------------------------------------------------
# The audit log as the verifier sees it: it holds a checkpoint (size, root) of an earlier state
# and gets a "newer" state plus proofs from the database.


def _log(n: int) -> list[bytes]:
    return [f"event {i}: zone=klaslokaal verdict=block".encode() for i in range(n)]


def _state(entries: list[bytes]) -> tuple[int, bytes, list[bytes]]:
    hashes = [leaf_hash(e) for e in entries]
    return len(hashes), root(hashes), hashes


OLD = _log(13)
OLD_SIZE, OLD_ROOT, _ = _state(OLD)
HONEST = _log(21)


def test_honest_append_is_consistent_and_every_event_included() -> None:
    size, new_root, hashes = _state(HONEST)
    assert verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, consistency_proof(OLD_SIZE, hashes))
    for i, entry in enumerate(HONEST):
        assert verify_inclusion(i, size, leaf_hash(entry), inclusion_proof(i, hashes), new_root)


def _tampered(kind: str) -> list[bytes]:
    entries = list(HONEST)
    if kind == "flipped bit":
        entries[5] = bytes([entries[5][0] ^ 1]) + entries[5][1:]
    elif kind == "deleted":
        del entries[7]
    elif kind == "inserted":
        entries.insert(3, b"event forged")
    elif kind == "reordered":
        entries[2], entries[9] = entries[9], entries[2]
    elif kind == "replaced old, appended more":
        entries[12] = b"event 12: rewritten"
    return entries


@pytest.mark.parametrize("kind", ["flipped bit", "deleted", "inserted", "reordered",
                                  "replaced old, appended more"])
def test_tampering_with_old_events_breaks_consistency(kind: str) -> None:
    size, new_root, hashes = _state(_tampered(kind))
    assert new_root != _state(HONEST)[1]
    # The database can compute a proof from what it holds, but it cannot make it verify.
    proof = consistency_proof(OLD_SIZE, hashes)
    assert not verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, proof)
    # Nor can the honest proof be reused for the tampered tree.
    honest_size, _, honest_hashes = _state(HONEST)
    honest_proof = consistency_proof(OLD_SIZE, honest_hashes)
    assert not verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, honest_proof)


def test_flipped_bit_in_a_leaf_fails_its_inclusion_proof() -> None:
    size, good_root, hashes = _state(HONEST)
    forged = bytes([HONEST[5][0] ^ 1]) + HONEST[5][1:]
    proof = inclusion_proof(5, hashes)
    assert verify_inclusion(5, size, leaf_hash(HONEST[5]), proof, good_root)
    assert not verify_inclusion(5, size, leaf_hash(forged), proof, good_root)


def test_reordered_leaf_does_not_prove_at_the_other_position() -> None:
    size, good_root, hashes = _state(HONEST)
    assert not verify_inclusion(9, size, leaf_hash(HONEST[2]), inclusion_proof(9, hashes), good_root)
    assert not verify_inclusion(9, size, leaf_hash(HONEST[2]), inclusion_proof(2, hashes), good_root)


def test_truncated_log_cannot_pass_as_newer() -> None:
    truncated = HONEST[:10]  # shorter than the checkpointed 13
    size, new_root, hashes = _state(truncated)
    assert not verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, [])
    # Claiming the checkpointed size for the truncated tree does not help either.
    assert not verify_consistency(OLD_SIZE, OLD_SIZE, OLD_ROOT, new_root, [])


def test_older_tree_presented_as_newer_fails() -> None:
    new_size, new_root, new_hashes = _state(HONEST)
    # The verifier already holds the size-21 checkpoint; the database offers the size-13 one.
    assert not verify_consistency(new_size, OLD_SIZE, new_root, OLD_ROOT, [])
    assert not verify_consistency(new_size, OLD_SIZE, new_root, OLD_ROOT,
                                  consistency_proof(OLD_SIZE, new_hashes))
    # Nor may the old root be passed off under the new size.
    assert not verify_consistency(OLD_SIZE, new_size, OLD_ROOT, OLD_ROOT,
                                  consistency_proof(OLD_SIZE, new_hashes))


def test_wrong_sizes_fail() -> None:
    # A proof pins the tree's shape; sizes with the same shape (here 17..32 for the new tree)
    # are told apart by the signed checkpoint, which binds size and root together. So probe
    # sizes that change the shape: an off-by-one old size, a new size across a power of two.
    size, new_root, hashes = _state(HONEST)
    proof = consistency_proof(OLD_SIZE, hashes)
    for old, new in [(OLD_SIZE - 1, size), (OLD_SIZE + 1, size), (OLD_SIZE, 16),
                     (OLD_SIZE, 33), (OLD_SIZE, 2 * size), (OLD_SIZE, OLD_SIZE - 3)]:
        assert not verify_consistency(old, new, OLD_ROOT, new_root, proof), (old, new)
    leaf_proof = inclusion_proof(4, hashes)
    for claimed in (4, 16, 33, 2 * size):
        assert not verify_inclusion(4, claimed, hashes[4], leaf_proof, new_root), claimed


def test_proofs_of_wrong_length_fail() -> None:
    size, new_root, hashes = _state(HONEST)
    proof = inclusion_proof(4, hashes)
    assert not verify_inclusion(4, size, hashes[4], proof[:-1], new_root)
    assert not verify_inclusion(4, size, hashes[4], [*proof, proof[-1]], new_root)
    assert not verify_inclusion(4, size, hashes[4], [], new_root)
    assert not verify_inclusion(4, size, hashes[4], [p[:31] for p in proof], new_root)
    cproof = consistency_proof(OLD_SIZE, hashes)
    assert not verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, cproof[:-1])
    assert not verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, [*cproof, cproof[-1]])
    assert not verify_consistency(OLD_SIZE, size, OLD_ROOT, new_root, cproof[1:])


def test_many_tree_shapes_self_consistent() -> None:
    # Beyond the 8-leaf vectors: every index and every old size of trees up to 40 leaves.
    hashes = [leaf_hash(i.to_bytes(2, "big")) for i in range(40)]
    roots = [root(hashes[:n]) for n in range(41)]
    for n in range(1, 41):
        for i in range(n):
            assert verify_inclusion(i, n, hashes[i], inclusion_proof(i, hashes[:n]), roots[n])
        for m in range(0, n + 1):
            assert verify_consistency(m, n, roots[m], roots[n], consistency_proof(m, hashes[:n]))
            if 0 < m < n:
                assert not verify_consistency(m, n, roots[m - 1], roots[n],
                                              consistency_proof(m, hashes[:n]))
