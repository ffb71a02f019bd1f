"""Audit events (audit/record.py), the on-disk spool (audit/spool.py), the sequence numbers
(audit/sequence.py) and the recorder's keys (audit/keystore.py): pure parts and files, no proxy."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import ipaddress
import json
import struct
import zlib
from pathlib import Path

import pytest

from poortwachter.audit import merkle
from poortwachter.audit.keystore import EscrowKeyError, KeyStore, load_escrow_public, write_escrow_public
from poortwachter.audit.pseudonym import open_period_key, pseudonym
from poortwachter.audit.record import AuditEvent, Seen, build_event, details
from poortwachter.audit.seal import SealError, generate_keypair, unseal
from poortwachter.audit.sequence import SequenceFile
from poortwachter.audit.spool import HEADER, MAGIC, Spool, SpoolLocked, read_records
from poortwachter.decide import Verdict

AT = dt.datetime(2026, 11, 24, 8, 0, 0, 123456, tzinfo=dt.UTC)   # Tuesday, 09:00 in Amsterdam: week 48
CLIENT = "10.20.30.44"
HOST = "www.pornhub.com"
BLOCK = Verdict("block", "verboden-categorieen", "004 art. 11a", "porno", "klas", "pupil", "1e-blok")
ALLOW = Verdict("allow", "standaard", "", None, "kantine", "pupil", "pauze")


def _seen(verdict: Verdict = BLOCK, client: str = CLIENT, names: list[str] | None = None,
          path: str | None = "/video/123?q=geheim") -> Seen:
    return Seen(AT.timestamp(), "http", verdict, ipaddress.ip_address(client), names or [HOST], path)


def _event(seq: int = 1, escrow: bytes | None = None, urls: bool = False, **kw: object) -> AuditEvent:
    return build_event(_seen(**kw), seq=seq, gateway="gw-1", at=AT, period="2026-W48",  # type: ignore[arg-type]
                       pseudonym="p" * 32, escrow_public=escrow, urls=urls)


@pytest.fixture(scope="module")
def escrow() -> tuple[bytes, bytes]:
    return generate_keypair()


# --- events --------------------------------------------------------------------------------

def test_event_keeps_counts_clear_and_seals_who_and_what(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    event = _event(escrow=public)
    assert (event.zone, event.role, event.slot, event.category, event.action, event.rule, event.source) == \
        ("klas", "pupil", "1e-blok", "porno", "block", "verboden-categorieen", "004 art. 11a")
    assert (event.seq, event.gateway, event.kind, event.period, event.at) == (1, "gw-1", "http", "2026-W48", AT)
    assert event.pseudonym == "p" * 32 and event.sealed is not None
    opened = json.loads(unseal(private, event.sealed, event.aad()))
    assert opened == {"subject": {"client": CLIENT}, "details": {"host": HOST}}   # no path: urls off


def test_path_is_sealed_only_when_urls_are_asked_for(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    event = _event(escrow=public, urls=True)
    assert event.sealed is not None
    assert json.loads(unseal(private, event.sealed, event.aad()))["details"] == \
        {"host": HOST, "path": "/video/123?q=geheim"}
    # a Host header that differed from the SNI is kept too, the first name judged is the host
    both = json.loads(details(_seen(names=["a.example", "b.example", "a.example"]), urls=False))
    assert both["details"] == {"host": "a.example", "names": ["a.example", "b.example"]}


def test_sealed_part_cannot_be_moved_to_another_event(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    event = _event(escrow=public)
    assert event.sealed is not None
    for change in ({"rule": "standaard"}, {"seq": 2}, {"at": AT + dt.timedelta(seconds=1)}, {"pseudonym": "q" * 32}):
        moved = dataclasses.replace(event, **change)  # type: ignore[arg-type]
        with pytest.raises(SealError):
            unseal(private, event.sealed, moved.aad())


def test_nothing_personal_without_an_escrow_key() -> None:
    event = _event(escrow=None, urls=True)
    assert event.sealed is None and event.pseudonym is None
    data = event.canonical()
    assert CLIENT.encode() not in data and b"pornhub" not in data and b"geheim" not in data
    assert event.action == "block" and event.category == "porno"        # the counts survive


def test_canonical_bytes_hold_no_plaintext_and_round_trip(escrow: tuple[bytes, bytes]) -> None:
    event = _event(escrow=escrow[1], urls=True)
    data = event.canonical()
    assert CLIENT.encode() not in data and b"pornhub" not in data and b"geheim" not in data
    # the clear part (sorted, compact JSON: rebuildable) is the seal's aad; then the sealed part
    clear, sealed = data.split(b"\n")
    assert clear == event.aad() == json.dumps(json.loads(clear), sort_keys=True, separators=(",", ":")).encode()
    assert base64.b64decode(sealed) == event.sealed
    again = AuditEvent.from_canonical(data)
    assert again == event and again.canonical() == data
    assert event.leaf_hash() == merkle.leaf_hash(data)
    assert event.row()["leaf_hash"] == merkle.leaf_hash(data)
    # a different event hashes differently; a non-canonical spelling of the same one is refused
    assert _event(seq=2, escrow=escrow[1]).leaf_hash() != event.leaf_hash()
    with pytest.raises(ValueError):
        AuditEvent.from_canonical(json.dumps(json.loads(clear), indent=1).replace("\n", "").encode()
                                  + b"\n" + sealed)
    # without a sealed part the line after the newline is empty
    bare = _event(escrow=None)
    assert bare.canonical().endswith(b"\n") and AuditEvent.from_canonical(bare.canonical()) == bare


def test_times_are_utc_with_microseconds() -> None:
    amsterdam = AT.astimezone(dt.timezone(dt.timedelta(hours=1)))
    event = build_event(_seen(), seq=1, gateway="g", at=amsterdam, period="2026-W48", pseudonym=None,
                        escrow_public=None, urls=False)
    assert json.loads(event.aad())["at"] == "2026-11-24T08:00:00.123456Z"
    with pytest.raises(ValueError):
        dataclasses.replace(event, at=AT.replace(tzinfo=None)).canonical()


# --- the spool ------------------------------------------------------------------------------

def _records(n: int, start: int = 0) -> list[bytes]:
    return [f"record {i:06d} ".encode() * 3 for i in range(start, start + n)]


def _drain(spool: Spool) -> list[bytes]:
    out = []
    while (segment := spool.oldest()) is not None:
        out += segment.records
        spool.ack(segment)
    return out


def test_spool_replays_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1024)
    for start in range(0, 80, 5):
        spool.append(_records(5, start))                      # a batch is never split over segments
    assert len(list(tmp_path.glob("*.spool"))) > 2
    spool.close()
    spool = Spool(tmp_path, segment_bytes=1024)               # a restart
    spool.append(_records(5, 80))
    assert spool.size_bytes == sum(p.stat().st_size for p in tmp_path.glob("*.spool"))
    assert _drain(spool) == _records(85)
    assert spool.empty and spool.size_bytes == 0 and not list(tmp_path.glob("*.spool"))
    spool.close()


def test_acked_segment_is_never_handed_out_again(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(_records(3))
        first = spool.oldest()
        assert first is not None
        spool.append(_records(2, 3))          # written while the first is being replayed: a new segment
        spool.ack(first)
        second = spool.oldest()
        assert second is not None and second.records == _records(2, 3)
        spool.ack(second)
        assert spool.oldest() is None
    with Spool(tmp_path) as spool:
        assert spool.empty


def test_crash_between_store_and_ack_replays_the_segment_again(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(_records(3))
        segment = spool.oldest()
        assert segment is not None            # ... written to the store, then the process dies
    with Spool(tmp_path) as spool:
        again = spool.oldest()
        assert again is not None and again.records == _records(3)   # at least once; the store dedups


def _torn(data: bytes, how: str) -> bytes:
    """The newest segment's bytes as a crash in the middle of appending one more record leaves them."""
    payload = b"the record being written " * 4
    whole = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    return {
        "half-header": data + whole[:5],
        "half-payload": data + whole[:HEADER.size + 30],
        "bad-crc": data + HEADER.pack(len(payload), zlib.crc32(payload) ^ 1) + payload,
        "zero-filled": data + b"\0" * 4096,
        "garbage-length": data + struct.pack(">II", 0x7FFFFFFF, 0) + b"xx",
    }[how]


@pytest.mark.parametrize("how", ["half-header", "half-payload", "bad-crc", "zero-filled", "garbage-length"])
def test_torn_tail_is_dropped_never_replayed_and_does_not_hide_later_records(tmp_path: Path, how: str) -> None:
    with Spool(tmp_path) as spool:
        spool.append(_records(4))
    (segment,) = tmp_path.glob("*.spool")
    segment.write_bytes(_torn(segment.read_bytes(), how))

    with Spool(tmp_path) as spool:
        assert spool.dropped_bytes > 0
        spool.append(_records(2, 4))          # after the restart
    with Spool(tmp_path) as spool:
        assert spool.dropped_bytes == 0       # the tail was cut off for good
        assert _drain(spool) == _records(6)


def test_segment_torn_in_its_magic_is_removed(tmp_path: Path) -> None:
    (tmp_path / "000000000001.spool").write_bytes(MAGIC[:3])
    with Spool(tmp_path) as spool:
        assert spool.empty and spool.dropped_bytes == 3
        spool.append(_records(1))
        assert _drain(spool) == _records(1)


def test_read_records_inspects_without_changing(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(_records(3))
    (segment,) = tmp_path.glob("*.spool")
    torn = _torn(segment.read_bytes(), "half-payload")
    segment.write_bytes(torn)
    assert list(read_records(tmp_path)) == _records(3)
    assert segment.read_bytes() == torn


def test_one_process_at_a_time(tmp_path: Path) -> None:
    with Spool(tmp_path):
        with pytest.raises(SpoolLocked):
            Spool(tmp_path)
    Spool(tmp_path).close()                   # free again once closed


def test_spool_refuses_empty_or_huge_records(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        with pytest.raises(ValueError):
            spool.append([b"ok", b""])
        assert spool.empty                    # nothing of the batch was written


# --- sequence numbers -------------------------------------------------------------------------

def test_sequence_numbers_are_never_reused_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    first = SequenceFile(path, block=10, now=lambda: 1.0)
    used = [first.next() for _ in range(15)]
    assert used == list(range(1_000_000, 1_000_015))          # a fresh file starts at the time in µs
    second = SequenceFile(path, block=10, now=lambda: 0.0)     # a crash, a restart (clock even went back)
    more = [second.next() for _ in range(3)]
    assert min(more) > max(used) and more == sorted(more)
    third = SequenceFile(path, block=10, now=lambda: 0.0)
    assert third.next() > max(more)


# --- keys ----------------------------------------------------------------------------------------

def test_escrow_key_file(tmp_path: Path) -> None:
    assert load_escrow_public(tmp_path) is None
    _, public = generate_keypair()
    write_escrow_public(tmp_path, public)
    assert load_escrow_public(tmp_path) == public
    (tmp_path / "escrow.pub").write_text("abcd\n")
    with pytest.raises(EscrowKeyError):
        load_escrow_public(tmp_path)


def test_keystore_pseudonyms_and_sealed_period_keys(tmp_path: Path, escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    assert KeyStore(tmp_path).pseudonym(CLIENT, AT) == ("2026-W48", None)     # no escrow key: none

    write_escrow_public(tmp_path, public)
    keys = KeyStore(tmp_path)
    period, name = keys.pseudonym(CLIENT, AT)
    assert period == "2026-W48" and name is not None
    assert keys.pseudonym(CLIENT, AT + dt.timedelta(days=1)) == (period, name)    # joinable within the week
    assert keys.pseudonym("10.20.30.45", AT)[1] != name
    # the sealed copy waits on disk for the store, and the escrow key opens it to the same pseudonym
    assert keys.unstored_periods() == ["2026-W48"]
    sealed = keys.sealed_copy(period)
    assert sealed is not None and pseudonym(open_period_key(private, period, sealed), CLIENT) == name

    restarted = KeyStore(tmp_path)
    assert restarted.pseudonym(CLIENT, AT) == (period, name)
    restarted.stored(period)
    assert restarted.unstored_periods() == []

    # next week: a new key, another pseudonym; the old week's key is gone from the gateway
    later = AT + dt.timedelta(days=7)
    new_period, new_name = restarted.pseudonym(CLIENT, later)
    assert new_period == "2026-W49" and new_name != name
    assert restarted.pseudonym(CLIENT, AT) == ("2026-W48", None)
    assert not list(tmp_path.glob("pseudonym-key-2026-W48*"))
    assert restarted.unstored_periods() == ["2026-W49"]
