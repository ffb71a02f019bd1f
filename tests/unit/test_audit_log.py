"""audit/log.py: the append-only log view over leaf hashes and its check against signed checkpoints."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poortwachter.audit import checkpoint, merkle
from poortwachter.audit.log import Frontier, LogView, check, roots_at

T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
KEY, PUBLIC = checkpoint.generate_signing_key()
LOG = "poortwachter/events/gw1"


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


def cp(size: int, hashes: list[bytes], minutes: int = 0, log: str = LOG) -> checkpoint.Checkpoint:
    return checkpoint.sign(KEY, log, size, merkle.root(hashes[:size]), T0 + dt.timedelta(minutes=minutes))


# --- Frontier and roots_at --------------------------------------------------------------------

def test_frontier_root_equals_the_rfc6962_root_at_every_size() -> None:
    hashes = leaves(70)
    frontier = Frontier()
    assert frontier.root() == merkle.EMPTY_ROOT
    for n, leaf in enumerate(hashes, 1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == merkle.root(hashes[:n]), n


def test_frontier_copy_is_independent() -> None:
    frontier = Frontier.of(leaves(5))
    other = frontier.copy()
    other.append(leaves(6)[5])
    assert frontier.size == 5 and other.size == 6
    assert frontier.root() == merkle.root(leaves(5))


def test_frontier_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(ValueError):
        Frontier().append(b"short")


@given(st.integers(0, 80), st.sets(st.integers(-1, 90), max_size=12))
def test_roots_at_matches_merkle_root(n: int, sizes: set[int]) -> None:
    hashes = leaves(n)
    got = roots_at(hashes, sizes)
    assert got == {s: merkle.root(hashes[:s]) for s in sizes if 0 <= s <= n}


def test_log_view_proofs_verify() -> None:
    hashes = leaves(13)
    view = LogView(LOG, hashes)
    assert view.root() == merkle.root(hashes)
    proof = view.inclusion_proof(4, 9)
    assert merkle.verify_inclusion(4, 9, hashes[4], proof, view.root(9))
    assert view.proves(cp(7, hashes))
    assert not view.proves(cp(7, leaves(13, b"other")))
    assert not view.proves(cp(14, leaves(14)))


# --- check -------------------------------------------------------------------------------------

def kinds(result) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.kind for p in result.problems)


def test_an_untouched_log_passes_every_checkpoint() -> None:
    hashes = leaves(20)
    result = check(LOG, hashes, [cp(s, hashes, s) for s in (1, 5, 8, 20)])
    assert result.ok and result.problems == [] and result.newest == 20 and result.checkpoints == 4


def test_leaves_after_the_newest_checkpoint_are_reported_not_condemned() -> None:
    hashes = leaves(20)
    result = check(LOG, hashes, [cp(12, hashes)])
    assert result.ok and kinds(result) == ["uncovered"]
    assert (result.problems[0].size, result.problems[0].expected) == (20, 12)


def test_a_log_without_checkpoints_is_unchecked_not_ok_by_default() -> None:
    result = check(LOG, leaves(3), [cp(3, leaves(3), log="poortwachter/events/other")])
    assert kinds(result) == ["unchecked"] and result.ok   # information: nothing to compare with


def test_a_changed_leaf_breaks_every_checkpoint_from_there_on() -> None:
    hashes = leaves(20)
    cps = [cp(s, hashes, s) for s in (4, 8, 12, 16, 20)]
    changed = list(hashes)
    changed[9] = merkle.leaf_hash(b"changed")
    result = check(LOG, changed, cps)
    assert not result.ok and kinds(result) == ["mismatch"]
    problem = result.problems[0]
    assert (problem.since, problem.size, problem.count) == (8, 12, 3)   # the change is in leaves 8..11


def test_a_deleted_leaf_is_a_mismatch_and_leaves_the_log_behind() -> None:
    hashes = leaves(20)
    cps = [cp(10, hashes), cp(20, hashes, 1)]
    result = check(LOG, hashes[:3] + hashes[4:], cps)
    assert kinds(result) == ["behind", "mismatch"]


def test_a_truncated_or_rolled_back_log_is_behind() -> None:
    hashes = leaves(20)
    result = check(LOG, hashes[:15], [cp(10, hashes), cp(20, hashes, 1)])
    assert kinds(result) == ["behind"] and not result.ok
    assert (result.problems[0].size, result.problems[0].expected) == (15, 20)


def test_an_empty_log_with_checkpoints_is_behind() -> None:
    result = check(LOG, [], [cp(3, leaves(3))])
    assert kinds(result) == ["behind"]


def test_reordered_leaves_do_not_match() -> None:
    hashes = leaves(8)
    swapped = list(hashes)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    assert kinds(check(LOG, swapped, [cp(8, hashes)])) == ["mismatch"]


def test_two_signed_roots_for_one_size_are_a_fork() -> None:
    hashes, other = leaves(8), leaves(8, b"x")
    result = check(LOG, hashes, [cp(8, hashes), cp(8, other, 1)])
    assert "fork" in kinds(result) and not result.ok


def test_a_later_checkpoint_that_covers_less_is_a_rollback() -> None:
    hashes = leaves(10)
    result = check(LOG, hashes, [cp(10, hashes, 0), cp(6, hashes, 5)])
    assert kinds(result) == ["shrank"]
    assert (result.problems[0].size, result.problems[0].expected) == (6, 10)


def test_only_checkpoints_of_this_log_count() -> None:
    hashes = leaves(6)
    result = check(LOG, hashes, [cp(6, hashes), cp(9, leaves(9), log="poortwachter/ledger")])
    assert result.ok and result.checkpoints == 1
