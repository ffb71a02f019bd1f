"""Names bound to addresses (poortwachter.bindings): what the school's resolver told each client.

The property that matters is one-sided: a binding may be lost (memory is bounded), but `bound`
must never say yes to a name the resolver did not give this client for this address within its
time. Times are plain monotonic seconds, handed in by the test.
"""

from __future__ import annotations

import ipaddress
import random

from poortwachter.bindings import NameBindings

ip = ipaddress.ip_address
PUPIL, OTHER_PUPIL = ip("10.30.4.4"), ip("10.30.4.5")
PUPIL6 = ip("fd00:30::4")
OFFICE, ELSEWHERE = ip("52.96.1.1"), ip("203.0.113.9")
OFFICE6 = ip("2603:1063::1")


def test_bound_name_for_the_client_and_address_it_was_given() -> None:
    """004 art. 12 (het filter niet omzeilen): the claim of a transparent connection counts only
    for the address the resolver gave for that name."""
    table = NameBindings()
    table.learn(PUPIL, ["office.com"], [OFFICE], until=100.0, now=0.0)
    assert table.bound(PUPIL, OFFICE, "office.com", 50.0)
    assert not table.bound(PUPIL, ELSEWHERE, "office.com", 50.0)      # Host: office.com to any other address
    assert not table.bound(PUPIL, OFFICE, "pornhub.com", 50.0)        # another name on that address


def test_one_clients_binding_does_not_count_for_another() -> None:
    """A pupil who did not ask the school's resolver cannot borrow a classmate's answer."""
    table = NameBindings()
    table.learn(PUPIL, ["office.com"], [OFFICE], until=100.0, now=0.0)
    assert not table.bound(OTHER_PUPIL, OFFICE, "office.com", 50.0)
    assert not table.bound(PUPIL6, OFFICE, "office.com", 50.0)


def test_every_name_of_the_chain_is_bound_to_every_address() -> None:
    table = NameBindings()
    names = ["www.office.com", "www.office.com.cdn.example", "edge.cdn.example"]   # question and CNAME chain
    table.learn(PUPIL6, names, [OFFICE, OFFICE6], until=100.0, now=0.0)
    assert all(table.bound(PUPIL6, a, n, 1.0) for a in (OFFICE, OFFICE6) for n in names)
    assert len(table) == 6


def test_names_and_addresses_may_be_one_shot_iterables() -> None:
    """The resolver may hand generators: every address must get every name, not only the first."""
    table = NameBindings()
    table.learn(PUPIL, (n for n in ["a.example", "b.example"]), (a for a in [OFFICE, ELSEWHERE]), 100.0, 0.0)
    assert table.bound(PUPIL, ELSEWHERE, "b.example", 1.0)
    assert len(table) == 4


def test_binding_holds_until_its_time_and_not_after() -> None:
    table = NameBindings()
    table.learn(PUPIL, ["office.com"], [OFFICE], until=100.0, now=0.0)
    assert table.bound(PUPIL, OFFICE, "office.com", 100.0)
    assert not table.bound(PUPIL, OFFICE, "office.com", 100.001)


def test_a_shorter_answer_later_does_not_cut_a_longer_one_short() -> None:
    """The client may still hold the first, longer-lived answer in its cache and dial it."""
    table = NameBindings()
    table.learn(PUPIL, ["office.com"], [OFFICE], until=300.0, now=0.0)
    table.learn(PUPIL, ["office.com"], [OFFICE], until=20.0, now=10.0)
    assert table.bound(PUPIL, OFFICE, "office.com", 200.0)
    assert len(table) == 1                           # the same binding, not counted twice


def test_a_later_answer_extends_the_binding() -> None:
    table = NameBindings()
    table.learn(PUPIL, ["office.com"], [OFFICE], until=30.0, now=0.0)
    table.learn(PUPIL, ["office.com"], [OFFICE], until=90.0, now=25.0)
    assert table.bound(PUPIL, OFFICE, "office.com", 60.0)


def test_unknown_client_and_empty_table_say_no() -> None:
    table = NameBindings()
    assert not table.bound(PUPIL, OFFICE, "office.com", 0.0)
    table.learn(PUPIL, ["office.com"], [], until=100.0, now=0.0)        # an answer without addresses
    assert not table.bound(PUPIL, OFFICE, "office.com", 0.0) and len(table) == 0


def test_memory_stays_bounded_under_a_flood_and_never_raises() -> None:
    """A client that resolves a million random names cannot grow the table without bound."""
    table = NameBindings(max_entries=1000)
    for i in range(20_000):
        address = ipaddress.IPv4Address(0x0A000000 + i)
        table.learn(PUPIL, [f"n{i}.example", f"alias{i}.example"], [address], until=1e9, now=float(i))
        assert len(table) <= 1000
    # the freshest binding is kept: it is the one the client is about to use
    assert table.bound(PUPIL, ipaddress.IPv4Address(0x0A000000 + 19_999), "alias19999.example", 20_000.0)
    assert not table.bound(PUPIL, ipaddress.IPv4Address(0x0A000000), "n0.example", 20_000.0)


def test_one_huge_answer_does_not_break_the_bound() -> None:
    table = NameBindings(max_entries=100)
    addresses = [ipaddress.IPv4Address(0x0A000000 + i) for i in range(500)]
    table.learn(PUPIL, ["big.example"], addresses, until=1e9, now=0.0)
    assert len(table) <= 100
    assert table.bound(PUPIL, addresses[-1], "big.example", 0.0)


def test_expired_bindings_go_before_older_live_ones() -> None:
    table = NameBindings(max_entries=4)
    table.learn(PUPIL, ["long.example"], [ip("192.0.2.1")], until=1000.0, now=0.0)      # the oldest, still live
    for i in range(3):
        table.learn(PUPIL, [f"short{i}.example"], [ip(f"192.0.2.{10 + i}")], until=10.0, now=0.0)
    table.learn(PUPIL, ["new.example"], [ip("192.0.2.99")], until=1000.0, now=20.0)     # 5 > 4: shrink
    assert table.bound(PUPIL, ip("192.0.2.1"), "long.example", 20.0)
    assert table.bound(PUPIL, ip("192.0.2.99"), "new.example", 20.0)
    assert len(table) == 2


def test_an_address_asked_again_counts_as_fresh() -> None:
    table = NameBindings(max_entries=4)
    for i in range(4):
        table.learn(PUPIL, [f"n{i}.example"], [ip(f"192.0.2.{i}")], until=1000.0, now=0.0)
    table.learn(PUPIL, ["n0.example"], [ip("192.0.2.0")], until=1000.0, now=1.0)        # n0 again: now the freshest
    table.learn(PUPIL, ["n4.example"], [ip("192.0.2.4")], until=1000.0, now=2.0)        # 5 > 4: the oldest go
    assert table.bound(PUPIL, ip("192.0.2.0"), "n0.example", 2.0)
    assert not table.bound(PUPIL, ip("192.0.2.1"), "n1.example", 2.0)
    assert table.bound(PUPIL, ip("192.0.2.4"), "n4.example", 2.0)


def test_no_false_binding_ever_under_random_churn() -> None:
    """Against a reference of everything learnt: whatever eviction drops, `bound` never says yes to
    a (client, address, name) that was not learnt, or past its time."""
    rng = random.Random(20261203)
    table = NameBindings(max_entries=200)
    clients = [ip(f"10.30.0.{i}") for i in range(1, 6)] + [ip(f"fd00:30::{i}") for i in range(1, 4)]
    addresses = [ip(f"198.51.100.{i}") for i in range(1, 30)] + [ip(f"2001:db8::{i}") for i in range(1, 10)]
    names = [f"n{i}.example" for i in range(40)]
    truth: dict[tuple[object, object, str], float] = {}
    now = 0.0
    for _ in range(3000):
        now += rng.random()
        client = rng.choice(clients)
        chosen_names = rng.sample(names, rng.randint(1, 3))
        chosen_addresses = rng.sample(addresses, rng.randint(1, 4))
        until = now + rng.uniform(0, 60)
        table.learn(client, chosen_names, chosen_addresses, until, now)
        for a in chosen_addresses:
            for n in chosen_names:
                truth[(client, a, n)] = max(until, truth.get((client, a, n), 0.0))
        assert len(table) <= 200
        for probe in range(6):       # half near what was just learnt (any client), half anywhere
            c = rng.choice(clients)
            a, n = ((rng.choice(chosen_addresses), rng.choice(chosen_names)) if probe % 2
                    else (rng.choice(addresses), rng.choice(names)))
            at = now + rng.uniform(-1, 30)
            if table.bound(c, a, n, at):
                assert (c, a, n) in truth and truth[(c, a, n)] >= at


def test_learning_no_names_takes_no_memory() -> None:
    """"Memory is bounded" must hold for every call: an answer whose names are empty must not leave
    one uncounted table entry per address behind."""
    table = NameBindings(max_entries=10)
    for i in range(1000):
        table.learn(PUPIL, [], [ipaddress.IPv4Address(0x0A000000 + i)], until=1e9, now=0.0)
    assert len(table) == 0
    assert len(table._table) <= table.max_entries      # the dict the bound is meant to limit
