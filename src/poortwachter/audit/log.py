"""An append-only log seen through its leaf hashes: size, roots, proofs, and the check against
signed checkpoints.

Pure (stdlib only, plus merkle.py and checkpoint.py): the store reads rows and recomputes their
leaf hashes, this module says whether those leaves are the log the checkpoints vouched for.

Two ways to get a root:
- `Frontier`: the compact range of a log (one subtree root per set bit of its size), so a
  checkpointer appends new leaves in O(log n) and never rereads the old ones;
- `roots_at(leaves, sizes)`: the roots at many sizes in ONE pass over the leaves, so `audit verify`
  checks every exported checkpoint in O(n + c log n) instead of O(c * n).

The check (`check`) compares the log with every signed checkpoint of it. A verifier that holds
all the leaves needs no consistency proof: "checkpoint (s, r) is a prefix of this log" is exactly
`root(leaves[:s]) == r`, which it computes directly. Sizes come only from the checkpoints (never
from the database), so a log that lost leaves at its end cannot pass for a smaller, honest one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from . import merkle
from .checkpoint import Checkpoint

# Each gateway's events are one log, in seq order: a gateway commits its own events strictly in
# seq order (one store job at a time, spool replayed first), so its log only ever grows at the
# end. One log over all gateways in id order would not: on PostgreSQL two gateways' batches can
# commit out of id order, and a checkpoint taken in between would later look like an insertion.
EVENTS_PREFIX = "poortwachter/events/"
LEDGER_LOG = "poortwachter/ledger"   # auditlog/ledger.py appends under the writer lock: ids follow commits


def events_log(gateway: str) -> str:
    """The log name of one gateway's events (a signed-note name: no spaces, no "+")."""
    return EVENTS_PREFIX + quote(gateway, safe="-._~@:")


def gateway_of(log: str) -> str | None:
    """The gateway of an events log name, or None for any other log."""
    if not log.startswith(EVENTS_PREFIX) or len(log) == len(EVENTS_PREFIX):
        return None
    return unquote(log[len(EVENTS_PREFIX):])


class Frontier:
    """The right edge of an RFC 6962 tree: the roots of its perfect subtrees, largest first.

    Tree of size n = the perfect subtrees given by the binary digits of n; appending a leaf merges
    the trailing subtrees of equal height, like a binary counter."""

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        if len(leaf) != merkle.HASH_LEN:
            raise ValueError("a leaf hash is 32 bytes")
        node, size = leaf, self.size
        while size & 1:
            node = merkle.node_hash(self._nodes.pop(), node)
            size >>= 1
        self._nodes.append(node)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves appended so far (RFC 6962: split at the largest power of two below n,
        which is exactly the first perfect subtree, so the root folds the edge from the right)."""
        if not self._nodes:
            return merkle.EMPTY_ROOT
        node = self._nodes[-1]
        for left in reversed(self._nodes[:-1]):
            node = merkle.node_hash(left, node)
        return node

    def copy(self) -> Frontier:
        other = Frontier()
        other._nodes = list(self._nodes)
        other.size = self.size
        return other

    @classmethod
    def of(cls, leaves: Iterable[bytes]) -> Frontier:
        frontier = cls()
        frontier.extend(leaves)
        return frontier


def roots_at(leaves: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The root at each of `sizes` that the leaves reach, in one pass (sizes beyond the end are
    left out of the answer)."""
    wanted = sorted(set(sizes))
    out: dict[int, bytes] = {}
    frontier = Frontier()
    pending = iter(wanted)
    target = next(pending, None)
    while target is not None and target <= 0:
        if target == 0:
            out[0] = merkle.EMPTY_ROOT
        target = next(pending, None)
    if target is None:
        return out
    for leaf in leaves:
        frontier.append(leaf)
        while target is not None and frontier.size == target:
            out[target] = frontier.root()
            target = next(pending, None)
        if target is None:
            break
    return out


@dataclass(frozen=True)
class LogView:
    """A log's leaves in log order (index 0 first)."""

    name: str
    leaves: Sequence[bytes]

    @property
    def size(self) -> int:
        return len(self.leaves)

    def root(self, size: int | None = None) -> bytes:
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"size {n} outside 0..{self.size}")
        return Frontier.of(self.leaves[:n]).root()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        n = self.size if size is None else size
        return merkle.inclusion_proof(index, self.leaves[:n])

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        n = self.size if new_size is None else new_size
        if not 0 <= n <= self.size:
            raise ValueError(f"size {n} outside 0..{self.size}")
        return merkle.consistency_proof(old_size, self.leaves[:n])

    def proves(self, checkpoint: Checkpoint) -> bool:
        """Is the (already signature-checked) checkpoint a prefix of this log, shown with an
        RFC 6962 consistency proof from its size to this log's size? (For a party that has the
        checkpoint and this log's current root only; `check` is the verifier's direct form.)"""
        if checkpoint.size > self.size:
            return False
        proof = self.consistency_proof(checkpoint.size)
        return merkle.verify_consistency(checkpoint.size, self.size, checkpoint.root, self.root(), proof)


# --- the check against signed checkpoints ----------------------------------------------------

TAMPER = ("mismatch", "behind", "fork", "shrank")
INFO = ("uncovered", "unchecked")


@dataclass(frozen=True)
class Problem:
    """One finding about a log. `kind`:
    - mismatch: the log's first `size` leaves do not hash to the root a checkpoint signed; the
      change lies in leaves `since`..`size - 1` (`since`: the largest size that still matches;
      `count`: how many checkpoints disagree in all)
    - behind: the log holds `size` leaves, fewer than the `expected` of a signed checkpoint
      (deleted at the end, truncated, or an older copy of the database put back)
    - fork: two signed checkpoints of the same size with different roots
    - shrank: a checkpoint signed later than another covers fewer leaves (`size` < `expected`)
    - uncovered (info): `size - expected` leaves after the newest checkpoint are not covered yet
    - unchecked (info): no checkpoint of this log was found
    """

    kind: str
    log: str
    size: int = 0
    expected: int = 0
    since: int = 0
    count: int = 1                           # mismatch: how many checkpoints disagree
    at: dt.datetime | None = None

    @property
    def tamper(self) -> bool:
        return self.kind in TAMPER


@dataclass(frozen=True)
class LogCheck:
    log: str
    size: int
    checkpoints: int
    newest: int | None                       # the largest signed size, if any
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.tamper for p in self.problems)


def check(name: str, leaves: Iterable[bytes], checkpoints: Sequence[Checkpoint]) -> LogCheck:
    """Compare a log's leaves with the signed checkpoints of it (their signatures are the
    caller's job: pass only checkpoints that verified). One pass over `leaves`, which may be a
    stream: memory stays O(log n) however long the log is."""
    cps = [cp for cp in checkpoints if cp.log == name]
    problems: list[Problem] = []
    by_size: dict[int, bytes] = {}
    for cp in sorted(cps, key=lambda c: (c.size, c.at)):
        seen = by_size.setdefault(cp.size, cp.root)
        if seen != cp.root and not any(p.kind == "fork" and p.size == cp.size for p in problems):
            problems.append(Problem("fork", name, size=cp.size, at=cp.at))

    # A checkpoint signed later must never cover less than one signed earlier.
    largest: Checkpoint | None = None
    for cp in sorted(cps, key=lambda c: (c.at, c.size)):
        if largest is not None and cp.size < largest.size and cp.at > largest.at:
            problems.append(Problem("shrank", name, size=cp.size, expected=largest.size, at=cp.at))
        if largest is None or cp.size > largest.size:
            largest = cp

    roots: dict[int, bytes] = {}
    frontier = Frontier()
    if 0 in by_size:
        roots[0] = frontier.root()
    for leaf in leaves:
        frontier.append(leaf)
        if frontier.size in by_size:
            roots[frontier.size] = frontier.root()
    size = frontier.size
    if not cps:
        if size:
            problems.append(Problem("unchecked", name, size=size))
        return LogCheck(name, size, 0, None, problems)
    newest = max(by_size)

    matched, bad = 0, []
    for cp_size in sorted(by_size):
        if cp_size > size:
            break
        if roots[cp_size] == by_size[cp_size]:
            if not bad:
                matched = cp_size
        else:
            bad.append(cp_size)
    if bad:
        # One finding per log: where the change begins, and how many checkpoints it breaks.
        problems.append(Problem("mismatch", name, size=bad[0], since=matched, count=len(bad)))
    if size < newest:
        problems.append(Problem("behind", name, size=size, expected=newest))
    elif size > newest:
        problems.append(Problem("uncovered", name, size=size, expected=newest))
    return LogCheck(name, size, len(cps), newest, problems)
