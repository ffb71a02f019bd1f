"""Concurrent decisions on SQLite and PostgreSQL: racing ICT members never make two grants for one
request, never lose one, and leave requests, grants and the change log consistent.

Each test starts its threads on a barrier so they really collide; on PostgreSQL each thread has
its own connection (READ COMMITTED writers queueing on the `meta` row).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from poortwachter.store import Store, state_revision
from poortwachter.store.models import ChangeRow, GrantRow, LoginThrottleRow, UnblockRequestRow
from poortwachter.workflow import (
    Conflict,
    NotFound,
    Throttled,
    User,
    approve_request,
    authenticate,
    create_grant,
    decline_request,
    endorse_request,
    list_grants,
    record_expiries,
    revoke_grant,
)

from poortwachter.workflow.throttle import ACCOUNT

from .test_store import db_url, store  # noqa: F401  (fixtures: both backends, schema per test)
from .test_workflow import HOUR, NOW, cheap_hashes, endorse, people, public_request  # noqa: F401

EXPECTED = (Conflict, NotFound, Throttled)


def race[T](threads: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Run work(0..threads-1) at once; expected refusals are returned, anything else fails the test."""
    start = threading.Barrier(threads)
    results: list[T | Exception] = [RuntimeError("not run")] * threads
    unexpected: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            results[n] = work(n)
        except EXPECTED as exc:
            results[n] = exc
        except BaseException as exc:  # noqa: BLE001 - reported below
            unexpected.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert unexpected == []
    return results


def endorsed(store: Store, people: dict[str, User], count: int) -> list[int]:
    with store.write() as s:
        ids = [public_request(s) for _ in range(count)]
        for request_id in ids:
            endorse(s, request_id, people["leidinggevende"])
    return ids


def count(store: Store, model: type, *where: object) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def assert_log_consistent(store: Store) -> None:
    """Every change has its own revision, the revision counts them, and the request table agrees
    with the grants and with the approve/decline rows of the log."""
    with store.read() as s:
        revisions = list(s.scalars(select(ChangeRow.revision).order_by(ChangeRow.revision)))
        kinds = Counter(tuple(row) for row in s.execute(select(ChangeRow.kind, ChangeRow.object)))
        requests = [(r.status, r.grant_id) for r in s.scalars(select(UnblockRequestRow))]
        grants = {g.id: g.revoked_at for g in s.scalars(select(GrantRow))}
    assert revisions == list(range(1, len(revisions) + 1)) == list(range(1, state_revision(store) + 1))
    approved = [grant_id for status, grant_id in requests if status == "approved"]
    assert kinds[("approve", "request")] == len(approved)
    assert kinds[("decline", "request")] == sum(status == "declined" for status, _ in requests)
    assert kinds[("add", "grant")] == len(grants)
    assert sorted(approved) == sorted(grants)                       # one grant per approval
    assert all(grant_id is None for status, grant_id in requests if status != "approved")
    assert kinds[("revoke", "grant")] == sum(revoked is not None for revoked in grants.values())

def test_eight_ict_members_approve_the_same_request(store: Store, people: dict[str, User]) -> None:
    (request_id,) = endorsed(store, people, 1)

    def approve(n: int) -> int:
        with store.write() as s:
            return approve_request(s, request_id, user=people["ict"], now=NOW, reason=f"ict {n}")

    results = race(8, approve)
    granted = [r for r in results if isinstance(r, int)]
    assert len(granted) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, int))
    assert count(store, GrantRow) == 1
    with store.read() as s:
        request = s.get(UnblockRequestRow, request_id)
        assert request is not None and request.grant_id == granted[0] and request.status == "approved"
    assert_log_consistent(store)


def test_twenty_requests_approved_by_four_threads(store: Store, people: dict[str, User]) -> None:
    ids = endorsed(store, people, 20)

    def approve_all(n: int) -> list[int]:
        order = ids[:]
        random.Random(n).shuffle(order)           # the threads collide on different requests
        done = []
        for request_id in order:
            try:
                with store.write() as s:
                    done.append(approve_request(s, request_id, user=people["ict"], now=NOW))
            except Conflict:
                pass
        return done

    results = race(4, approve_all)
    grants = [g for r in results if isinstance(r, list) for g in r]
    assert len(grants) == len(set(grants)) == 20
    assert count(store, GrantRow) == 20
    assert count(store, UnblockRequestRow, UnblockRequestRow.status == "approved") == 20
    assert_log_consistent(store)


def test_approve_decline_and_revoke_race(store: Store, people: dict[str, User]) -> None:
    ids = endorsed(store, people, 20)
    ict = people["ict"]
    approvers_done = threading.Event()
    finished = Counter[str]()
    lock = threading.Lock()

    def work(n: int) -> int:
        role = ("approve", "decline", "revoke")[n % 3]
        order = ids[:]
        random.Random(n).shuffle(order)
        ok = 0
        if role == "revoke":
            while True:
                last_round = approvers_done.is_set()
                with store.read() as s:
                    live = [g.id for g in list_grants(s, now=NOW)]
                for grant_id in live:
                    try:
                        with store.write() as s:
                            revoke_grant(s, grant_id, user=ict, reason=f"t{n}", now=NOW)
                        ok += 1
                    except (Conflict, NotFound):
                        pass
                if last_round:
                    return ok
        for request_id in order:
            try:
                with store.write() as s:
                    if role == "approve":
                        approve_request(s, request_id, user=ict, now=NOW)
                    else:
                        decline_request(s, request_id, user=ict, reason=f"t{n}", now=NOW)
                ok += 1
            except Conflict:
                pass
        with lock:
            finished[role] += 1
            if finished["approve"] == 2 and finished["decline"] == 2:
                approvers_done.set()
        return ok

    results = race(6, work)
    approved, declined, revoked = (sum(r for i, r in enumerate(results) if i % 3 == k and isinstance(r, int))
                                   for k in range(3))
    assert approved + declined == 20                         # every request decided exactly once
    assert count(store, GrantRow) == approved
    assert revoked == approved == count(store, GrantRow, GrantRow.revoked_at.is_not(None))
    assert count(store, UnblockRequestRow, UnblockRequestRow.status == "declined") == declined
    assert_log_consistent(store)


def test_racing_revocations_revoke_once(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        grant_id = create_grant(s, user=people["ict"], sites=["a.example"], end=NOW + HOUR, reason="r", now=NOW)

    def revoke(n: int) -> None:
        with store.write() as s:
            revoke_grant(s, grant_id, user=people["ict"], reason=f"t{n}", now=NOW)

    results = race(8, revoke)
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 7
    assert count(store, ChangeRow, ChangeRow.kind == "revoke") == 1


def test_racing_endorsements_endorse_once(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s)

    def work(n: int) -> None:
        with store.write() as s:
            endorse_request(s, request_id, user=people["leidinggevende"], ground="lesstof", sites=[f"s{n}.example"],
                            zones=[], roles=[], start=None, end=NOW + HOUR, motivation=f"t{n}", now=NOW)

    results = race(8, work)
    assert sum(r is None for r in results) == 1
    assert count(store, ChangeRow, ChangeRow.kind == "endorse") == 1


def test_concurrent_sweeps_record_each_expiry_once(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        for i in range(30):
            create_grant(s, user=people["ict"], sites=[f"s{i}.example"], end=NOW + HOUR, reason="r", now=NOW)

    def sweep(n: int) -> int:
        with store.write() as s:
            return record_expiries(s, now=NOW + 2 * HOUR)

    results = race(4, sweep)
    assert sorted(results) == [0, 0, 0, 30]  # type: ignore[type-var]
    assert count(store, ChangeRow, ChangeRow.kind == "expire") == 30


def test_parallel_password_guesses_get_the_free_tries_only(store: Store, people: dict[str, User]) -> None:
    """The username brake lets 10 failures through, then waits; 16 guesses at one instant (from
    as many addresses) must not all see "fewer than 10 so far"."""
    def guess(n: int) -> object:
        with store.write() as s:
            return authenticate(s, username="kim", password=f"guess-{n}", source="console", now=NOW)

    results = race(16, guess)
    assert sum(r is None for r in results) == ACCOUNT.free
    assert sum(isinstance(r, Throttled) for r in results) == 16 - ACCOUNT.free
    with store.read() as s:
        brake = s.get(LoginThrottleRow, "kim")
        assert brake is not None and brake.failures == ACCOUNT.free


def test_approvals_and_sweeps_interleave(store: Store, people: dict[str, User]) -> None:
    # A sweep and approvals take the same lock: approvals of requests whose window is still open
    # succeed, the sweep records only what has ended, and the log stays consistent.
    threads = 8
    ids = endorsed(store, people, threads)

    def work(n: int) -> object:
        with store.write() as s:
            if n % 2:
                return record_expiries(s, now=NOW)
            return approve_request(s, ids[n], user=people["ict"], now=NOW)

    results = race(threads, work)
    assert all(not isinstance(r, Exception) for r in results)
    assert count(store, ChangeRow, ChangeRow.kind == "expire") == 0
    assert_log_consistent(store)
