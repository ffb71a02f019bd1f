"""Audit crypto: sealing, escrow shares, pseudonyms and signed checkpoints."""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from poortwachter.audit import checkpoint, shares
from poortwachter.audit.checkpoint import Checkpoint, CheckpointError
from poortwachter.audit.pseudonym import (
    PeriodClosed,
    PeriodKeys,
    open_period_key,
    period_of,
    period_start,
    periods_between,
    pseudonym,
)
from poortwachter.audit.seal import SealError, generate_keypair, public_key_of, seal, unseal
from poortwachter.audit.shares import BadPassphrase, Share, ShareError, combine, protect, split, unprotect

AMS = ZoneInfo("Europe/Amsterdam")
UTC = dt.UTC
AAD = b"2026-11-23T10:15:00+01:00|gw1|klaslokaal|leerling|social|block"
PLAINTEXT = b'{"client":"10.20.3.4","host":"example.org"}'


@pytest.fixture(scope="module")
def escrow() -> tuple[bytes, bytes]:
    return generate_keypair()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- seal ---------------------------------------------------------------------------------------


def test_seal_round_trip(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    for plaintext in (b"", b"x", PLAINTEXT, os.urandom(70_000)):
        assert unseal(private, seal(public, plaintext, AAD), AAD) == plaintext


def test_sealed_layout_is_version_ephemeral_key_nonce_ciphertext(escrow: tuple[bytes, bytes]) -> None:
    # Re-derive the key from the documented format with the primitives alone, as an independent
    # reader (e.g. a recovery tool written later) would.
    private, public = escrow
    sealed = seal(public, PLAINTEXT, AAD)
    assert len(sealed) == 1 + 32 + 12 + len(PLAINTEXT) + 16
    assert sealed[0] == 1
    ephemeral, nonce, body = sealed[1:33], sealed[33:45], sealed[45:]
    shared = X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(ephemeral))
    key = HKDF(hashes.SHA256(), 32, None, b"poortwachter/seal/v1" + ephemeral + public).derive(shared)
    assert ChaCha20Poly1305(key).decrypt(nonce, body, sealed[:45] + AAD) == PLAINTEXT
    assert PLAINTEXT not in sealed


def test_every_bit_flip_in_sealed_bytes_is_detected(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    sealed = seal(public, b"10.0.0.7", AAD)
    for bit in range(len(sealed) * 8):
        with pytest.raises(SealError):
            unseal(private, _flip(sealed, bit), AAD)


def test_every_bit_flip_in_aad_is_detected(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    sealed = seal(public, PLAINTEXT, AAD)
    for bit in range(len(AAD) * 8):
        with pytest.raises(SealError):
            unseal(private, sealed, _flip(AAD, bit))
    for other in (b"", AAD[:-1], AAD + b"|", AAD.replace(b"block", b"allow")):
        with pytest.raises(SealError):
            unseal(private, sealed, other)


def test_truncated_or_extended_sealed_bytes_are_rejected(escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    sealed = seal(public, PLAINTEXT, AAD)
    for broken in (b"", sealed[:1], sealed[:45], sealed[:60], sealed[:-1], sealed + b"\x00"):
        with pytest.raises(SealError):
            unseal(private, broken, AAD)


def test_swapped_sealed_parts_between_events_are_rejected(escrow: tuple[bytes, bytes]) -> None:
    # Moving one event's sealed subject onto another event (other clear fields) must fail.
    private, public = escrow
    sealed = seal(public, PLAINTEXT, AAD)
    with pytest.raises(SealError):
        unseal(private, sealed, b"2026-11-23T10:16:00+01:00|gw1|klaslokaal|leerling|social|block")


def test_wrong_private_key_is_rejected(escrow: tuple[bytes, bytes]) -> None:
    _, public = escrow
    other_private, _ = generate_keypair()
    with pytest.raises(SealError):
        unseal(other_private, seal(public, PLAINTEXT, AAD), AAD)


def test_two_seals_of_the_same_plaintext_differ(escrow: tuple[bytes, bytes]) -> None:
    _, public = escrow
    a, b = seal(public, PLAINTEXT, AAD), seal(public, PLAINTEXT, AAD)
    assert a != b
    assert a[1:33] != b[1:33]  # fresh ephemeral key each time
    assert a[33:45] != b[33:45]  # and a fresh random nonce, as the format documents
    assert a[45:] != b[45:]


def test_seal_rejects_unusable_recipient_keys() -> None:
    with pytest.raises(ValueError):
        seal(b"\x00" * 31, b"x", b"")
    with pytest.raises(ValueError):  # the all-zero point has low order: no shared secret
        seal(b"\x00" * 32, b"x", b"")


def test_public_key_of_matches_generated_pair() -> None:
    private, public = generate_keypair()
    assert public_key_of(private) == public


# --- shares: the field --------------------------------------------------------------------------


def test_gf256_multiplication_known_answers() -> None:
    # FIPS-197 section 4.2 and 4.2.1: {57} * {83} = {c1}, {57} * {13} = {fe}.
    assert shares.gf_mul(0x57, 0x83) == 0xC1
    assert shares.gf_mul(0x57, 0x13) == 0xFE
    assert shares.gf_mul(0x57, 0x02) == 0xAE  # xtime({57})
    assert all(shares.gf_mul(a, 1) == a and shares.gf_mul(a, 0) == 0 for a in range(256))


def test_gf256_every_nonzero_element_has_an_inverse() -> None:
    for a in range(1, 256):
        assert shares.gf_mul(a, shares.gf_div(1, a)) == 1


# --- shares: split and combine ------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(2, 2), (2, 3), (3, 5), (4, 6)])
def test_any_k_of_n_shares_recombine(k: int, n: int) -> None:
    secret = os.urandom(32)
    parts = split(secret, k, n)
    assert sorted(s.index for s in parts) == list(range(1, n + 1))
    assert all(s.threshold == k and len(s.data) == 32 for s in parts)
    for size in range(k, n + 1):
        for subset in itertools.permutations(parts, size) if size == k else itertools.combinations(parts, size):
            assert combine(list(subset)) == secret


@pytest.mark.parametrize(("k", "n"), [(2, 2), (3, 5)])
def test_fewer_than_k_shares_refuse_to_combine(k: int, n: int) -> None:
    parts = split(os.urandom(32), k, n)
    for subset in itertools.combinations(parts, k - 1):
        with pytest.raises(ShareError):
            combine(list(subset))


def test_no_share_is_the_secret() -> None:
    secret = os.urandom(32)
    assert all(s.data != secret for s in split(secret, 2, 2))


def test_single_share_of_2_of_2_is_uniform_and_independent_of_the_secret() -> None:
    # For a 1-byte secret, share 1 must take every value equally often whatever the secret is;
    # a missing or constant coefficient would make it equal to (or a function of) the secret.
    rounds = 256 * 40
    for secret in (b"\x00", b"\xff"):
        counts = collections.Counter(split(secret, 2, 2)[0].data[0] for _ in range(rounds))
        assert len(counts) == 256
        expected = rounds / 256
        chi2 = sum((counts[v] - expected) ** 2 / expected for v in range(256))
        assert chi2 < 400, chi2  # 255 degrees of freedom: mean 255, sd 22.6


def test_k_minus_one_shares_are_consistent_with_every_secret() -> None:
    # Two shares of a 3-of-5 split: as the third share ranges over all 256 values, the combined
    # "secret" takes every one of the 256 values exactly once, so two shares rule nothing out.
    first, second, *_ = split(b"\x5a", 3, 5)
    recovered = {combine([first, second, Share(3, 3, bytes([y]))]) for y in range(256)}
    assert len(recovered) == 256


def test_mixed_or_duplicated_shares_are_rejected() -> None:
    a = split(b"secret", 2, 3)
    b = split(b"secret", 3, 3)
    with pytest.raises(ShareError):
        combine([a[0], b[1]])  # different thresholds
    with pytest.raises(ShareError):
        combine([a[0], a[0]])
    with pytest.raises(ShareError):
        combine([a[0], Share(2, 2, b"longer secret")])
    with pytest.raises(ShareError):
        combine([])


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 3), (3, 2), (0, 2), (2, 256)])
def test_split_rejects_bad_parameters(k: int, n: int) -> None:
    with pytest.raises(ValueError):
        split(b"secret", k, n)


def test_split_rejects_empty_secret() -> None:
    with pytest.raises(ValueError):
        split(b"", 2, 2)


# --- shares: passphrase protection --------------------------------------------------------------


@pytest.fixture(scope="module")
def protected() -> tuple[Share, dict]:
    share = split(os.urandom(32), 2, 2)[0]
    return share, protect(share, "directie: J. de Vries", "correct paard batterij nietje")


def test_protect_round_trip_through_json(protected: tuple[Share, dict]) -> None:
    share, blob = protected
    text = json.dumps(blob)
    assert base64.b64encode(share.data).decode() not in text
    assert share.data.hex() not in text
    assert unprotect(json.loads(text), "correct paard batterij nietje") == share


def test_unprotect_with_wrong_passphrase_fails(protected: tuple[Share, dict]) -> None:
    _, blob = protected
    for wrong in ("correct paard batterij nietjE", "", "correct paard batterij nietje "):
        with pytest.raises(BadPassphrase):
            unprotect(blob, wrong)


def _edit(blob: dict, path: tuple[str, ...], value: object) -> dict:
    edited = json.loads(json.dumps(blob))
    target = edited
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return edited


@pytest.mark.parametrize(("path", "mutate"), [
    (("ciphertext",), lambda v: base64.b64encode(_flip(base64.b64decode(v), 3)).decode()),
    (("nonce",), lambda v: base64.b64encode(_flip(base64.b64decode(v), 0)).decode()),
    (("kdf", "salt"), lambda v: base64.b64encode(_flip(base64.b64decode(v), 9)).decode()),
    (("kdf", "n"), lambda v: v // 2),
    (("holder",), lambda v: "ICT: P. Jansen"),
    (("index",), lambda v: v + 1),
    (("threshold",), lambda v: v + 1),
    (("version",), lambda v: 2),
    (("format",), lambda v: "something-else"),
    (("ciphertext",), lambda v: "not base64!"),
])
def test_tampered_blob_fails(protected: tuple[Share, dict], path: tuple[str, ...],
                             mutate: Callable[[Any], Any]) -> None:
    _, blob = protected
    value: Any = blob
    for key in path:
        value = value[key]
    with pytest.raises(BadPassphrase):
        unprotect(_edit(blob, path, mutate(value)), "correct paard batterij nietje")


def test_blob_with_missing_or_extra_fields_fails(protected: tuple[Share, dict]) -> None:
    _, blob = protected
    missing = {k: v for k, v in blob.items() if k != "nonce"}
    with pytest.raises(BadPassphrase):
        unprotect(missing, "correct paard batterij nietje")
    with pytest.raises(BadPassphrase):
        unprotect({**blob, "note": "added later"}, "correct paard batterij nietje")


def test_escrow_key_recovered_from_protected_2_of_2_shares_opens_a_sealed_event() -> None:
    private, public = generate_keypair()
    sealed = seal(public, PLAINTEXT, AAD)
    directie, ict = split(private, 2, 2)
    blobs = [protect(directie, "directie", "eerste wachtwoord"), protect(ict, "ICT", "tweede wachtwoord")]
    recovered = combine([unprotect(blobs[0], "eerste wachtwoord"), unprotect(blobs[1], "tweede wachtwoord")])
    assert unseal(recovered, sealed, AAD) == PLAINTEXT


# --- pseudonym: periods -------------------------------------------------------------------------


def test_period_is_iso_week_in_amsterdam() -> None:
    assert period_of(dt.datetime(2026, 11, 23, 10, 0, tzinfo=AMS)) == "2026-W48"
    assert period_of(dt.datetime(2026, 1, 5, 9, 0, tzinfo=AMS)) == "2026-W02"


def test_period_of_rejects_naive_time() -> None:
    with pytest.raises(ValueError):
        period_of(dt.datetime(2026, 11, 23, 10, 0))


def test_2026_has_an_iso_week_53() -> None:
    # 2026 starts on a Thursday, so it has 53 ISO weeks (checked against the stdlib calendar).
    assert dt.date(2026, 12, 31).isocalendar()[:2] == (2026, 53)
    assert period_of(dt.datetime(2026, 12, 31, 12, tzinfo=AMS)) == "2026-W53"
    assert period_of(dt.datetime(2027, 1, 1, 0, 30, tzinfo=AMS)) == "2026-W53"
    assert period_of(dt.datetime(2027, 1, 3, 23, 59, tzinfo=AMS)) == "2026-W53"
    assert period_of(dt.datetime(2027, 1, 4, 0, 0, tzinfo=AMS)) == "2027-W01"
    # And the other way around: the last days of December 2024 are in 2025-W01.
    assert dt.date(2024, 12, 30).isocalendar()[:2] == (2025, 1)
    assert period_of(dt.datetime(2024, 12, 30, 8, tzinfo=AMS)) == "2025-W01"


def test_period_uses_amsterdam_wall_clock_not_utc_at_year_end() -> None:
    # Sunday 27 Dec 2026 23:30 UTC is already Monday 28 Dec 00:30 in Amsterdam: week 53.
    assert dt.date(2026, 12, 27).isocalendar()[:2] == (2026, 52)
    assert period_of(dt.datetime(2026, 12, 27, 23, 30, tzinfo=UTC)) == "2026-W53"
    # Sunday 3 Jan 2027 23:30 UTC is Monday 4 Jan 00:30 in Amsterdam: 2027-W01.
    assert period_of(dt.datetime(2027, 1, 3, 23, 30, tzinfo=UTC)) == "2027-W01"


def test_period_at_dst_changes() -> None:
    # Spring: DST starts Sunday 29 March 2026. 22:30 UTC that day is Monday 00:30 CEST (+2):
    # the new week, although a fixed +1 offset would still say Sunday.
    assert period_of(dt.datetime(2026, 3, 29, 21, 30, tzinfo=UTC)) == "2026-W13"
    assert period_of(dt.datetime(2026, 3, 29, 22, 30, tzinfo=UTC)) == "2026-W14"
    # Autumn: DST ends Sunday 25 October 2026. 22:30 UTC is Sunday 23:30 CET (+1): still the
    # old week, although a fixed +2 offset would already say Monday.
    assert period_of(dt.datetime(2026, 10, 25, 22, 30, tzinfo=UTC)) == "2026-W43"
    assert period_of(dt.datetime(2026, 10, 25, 23, 30, tzinfo=UTC)) == "2026-W44"
    # The repeated hour 02:00-03:00 on the autumn Sunday stays in the same week on both folds.
    assert period_of(dt.datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=AMS)) == "2026-W43"
    assert period_of(dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=AMS)) == "2026-W43"


def test_period_start_and_periods_between() -> None:
    assert period_start("2026-W53") == dt.datetime(2026, 12, 28, tzinfo=AMS)
    assert period_start("2026-W14").utcoffset() == dt.timedelta(hours=2)
    assert periods_between(dt.datetime(2026, 12, 20, tzinfo=AMS), dt.datetime(2027, 1, 5, tzinfo=AMS)) == [
        "2026-W51", "2026-W52", "2026-W53", "2027-W01"]
    one = dt.datetime(2026, 11, 25, 10, tzinfo=AMS)
    assert periods_between(one, one) == ["2026-W48"]
    with pytest.raises(ValueError):
        period_start("2025-W53")  # 2025 has 52 weeks
    with pytest.raises(ValueError):
        periods_between(one, one - dt.timedelta(seconds=1))


# --- pseudonym: keys ----------------------------------------------------------------------------


def test_pseudonym_is_truncated_hmac_sha256() -> None:
    key = bytes(range(32))
    expected = hmac.new(key, b"10.20.3.4", hashlib.sha256).hexdigest()[:32]
    assert pseudonym(key, "10.20.3.4") == expected
    assert len(expected) == 32


def test_pseudonym_stable_per_key_and_distinct_across_subjects_and_keys() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    assert pseudonym(k1, "10.20.3.4") == pseudonym(k1, "10.20.3.4")
    assert pseudonym(k1, "10.20.3.4") != pseudonym(k1, "10.20.3.5")
    assert pseudonym(k1, "10.20.3.4") != pseudonym(k2, "10.20.3.4")
    with pytest.raises(ValueError):
        pseudonym(b"short", "10.20.3.4")


def test_period_keys_stable_within_period_and_differ_across(tmp_path: Path,
                                                            escrow: tuple[bytes, bytes]) -> None:
    keys = PeriodKeys(escrow[1], tmp_path)
    monday = dt.datetime(2026, 11, 23, 8, tzinfo=AMS)
    sunday = dt.datetime(2026, 11, 29, 23, 59, tzinfo=AMS)
    next_monday = dt.datetime(2026, 11, 30, 0, 0, tzinfo=AMS)
    p1, a = keys.pseudonym("10.20.3.4", monday)
    p2, b = keys.pseudonym("10.20.3.4", sunday)
    p3, c = keys.pseudonym("10.20.3.4", next_monday)
    assert (p1, p2, p3) == ("2026-W48", "2026-W48", "2026-W49")
    assert a == b != c
    assert keys.pseudonym("10.20.3.5", next_monday)[1] != c


def test_period_key_survives_restart_within_the_period(tmp_path: Path,
                                                      escrow: tuple[bytes, bytes]) -> None:
    when = dt.datetime(2026, 11, 24, 9, tzinfo=AMS)
    before = PeriodKeys(escrow[1], tmp_path).pseudonym("laptop-17", when)
    after = PeriodKeys(escrow[1], tmp_path).pseudonym("laptop-17", when)
    assert before == after
    key_file = tmp_path / "pseudonym-key-2026-W48.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_ended_period_key_is_erased_from_memory_and_disk(tmp_path: Path,
                                                        escrow: tuple[bytes, bytes]) -> None:
    keys = PeriodKeys(escrow[1], tmp_path)
    keys.key("2026-W48")
    keys.key("2026-W49")
    assert keys.periods == ["2026-W49"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudonym-key-2026-W49.key"]
    with pytest.raises(PeriodClosed):
        keys.key("2026-W48")  # a fresh key for an ended week would split its pseudonyms
    with pytest.raises(PeriodClosed):
        keys.sealed_period_key("2026-W48")


def test_stale_key_files_are_erased_on_start(tmp_path: Path, escrow: tuple[bytes, bytes]) -> None:
    (tmp_path / "pseudonym-key-2026-W47.key").write_bytes(os.urandom(32))
    (tmp_path / "pseudonym-key-2026-W48.key").write_bytes(os.urandom(32))
    keys = PeriodKeys(escrow[1], tmp_path)
    assert keys.periods == ["2026-W48"]
    assert not (tmp_path / "pseudonym-key-2026-W47.key").exists()


def test_sealed_period_key_opens_only_with_escrow_key_and_only_as_its_period(
        escrow: tuple[bytes, bytes]) -> None:
    private, public = escrow
    keys = PeriodKeys(public)  # no directory: memory only
    key = keys.key("2026-W48")
    sealed = keys.sealed_period_key("2026-W48")
    assert key not in sealed
    assert open_period_key(private, "2026-W48", sealed) == key
    # A case can now recompute the subject's pseudonym for that week.
    when = dt.datetime(2026, 11, 25, 11, tzinfo=AMS)
    assert pseudonym(open_period_key(private, "2026-W48", sealed), "10.20.3.4") == \
        keys.pseudonym("10.20.3.4", when)[1]
    with pytest.raises(SealError):
        open_period_key(private, "2026-W49", sealed)
    with pytest.raises(SealError):
        open_period_key(generate_keypair()[0], "2026-W48", sealed)


def test_period_keys_reject_bad_period_labels(escrow: tuple[bytes, bytes]) -> None:
    keys = PeriodKeys(escrow[1])
    for bad in ("2026-48", "2026-W5", "2025-W53", "../../etc/passwd"):
        with pytest.raises(ValueError):
            keys.key(bad)


# --- checkpoint ---------------------------------------------------------------------------------
# Known answer from golang.org/x/mod/sumdb/note (package documentation of note.go): the signer
# key "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", its
# verifier key, the two-line text and the resulting signature line. Ed25519 is deterministic, so
# our signed-note signing must reproduce it exactly.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="

LOG = "poortwachter.school.example/audit"
ROOT = hashlib.sha256(b"some root").digest()
AT = dt.datetime(2026, 11, 23, 10, 15, 30, tzinfo=AMS)


@pytest.fixture(scope="module")
def signer() -> tuple[bytes, bytes]:
    return checkpoint.generate_signing_key()


def test_signed_note_signature_matches_go_known_answer() -> None:
    assert base64.b64encode(checkpoint.note_signature(GO_SEED, "PeterNeumann", GO_TEXT)).decode() == GO_SIG
    public = checkpoint.public_key_of(GO_SEED)
    assert checkpoint.verifier_key("PeterNeumann", public) == GO_VKEY
    assert checkpoint.key_id("PeterNeumann", public).hex() == "c74f20a3"


def test_checkpoint_sign_and_verify(signer: tuple[bytes, bytes]) -> None:
    private, public = signer
    cp = checkpoint.sign(private, LOG, 42, ROOT, AT)
    assert checkpoint.verify(public, cp)
    assert not checkpoint.verify(checkpoint.generate_signing_key()[1], cp)


def test_checkpoint_text_round_trip_and_layout(signer: tuple[bytes, bytes]) -> None:
    private, public = signer
    cp = checkpoint.sign(private, LOG, 42, ROOT, AT)
    text = checkpoint.to_text(cp)
    body, sig_line = text.split("\n\n")
    assert body.split("\n") == [LOG, "42", base64.b64encode(ROOT).decode(), "2026-11-23T09:15:30Z"]
    assert sig_line.startswith(f"\u2014 {LOG} ") and sig_line.endswith("\n")
    parsed = checkpoint.from_text(text)
    assert parsed == cp
    assert checkpoint.to_text(parsed) == text
    assert checkpoint.verify(public, parsed)


def test_checkpoint_signature_is_a_valid_signed_note(signer: tuple[bytes, bytes]) -> None:
    # The note signature over the body equals the checkpoint's: any signed-note verifier accepts it.
    private, _ = signer
    cp = checkpoint.sign(private, LOG, 7, ROOT, AT)
    body = checkpoint.to_text(cp).split("\n\n")[0] + "\n"
    assert checkpoint.note_signature(private, LOG, body) == cp.signature


@pytest.mark.parametrize("change", [
    {"size": 43},
    {"size": 41},
    {"root": bytes([ROOT[0] ^ 1]) + ROOT[1:]},
    {"at": AT + dt.timedelta(seconds=1)},
    {"at": AT - dt.timedelta(microseconds=1)},
    {"log": LOG + "2"},
])
def test_tampered_checkpoint_fails_verification(signer: tuple[bytes, bytes], change: dict) -> None:
    private, public = signer
    cp = checkpoint.sign(private, LOG, 42, ROOT, AT)
    assert not checkpoint.verify(public, dataclasses.replace(cp, **change))


def test_every_bit_flip_in_signature_fails(signer: tuple[bytes, bytes]) -> None:
    private, public = signer
    cp = checkpoint.sign(private, LOG, 42, ROOT, AT)
    for bit in range(len(cp.signature) * 8):
        assert not checkpoint.verify(public, dataclasses.replace(cp, signature=_flip(cp.signature, bit)))
    assert not checkpoint.verify(public, dataclasses.replace(cp, signature=cp.signature[:-1]))


def test_tampered_checkpoint_text_fails(signer: tuple[bytes, bytes]) -> None:
    private, public = signer
    text = checkpoint.to_text(checkpoint.sign(private, LOG, 42, ROOT, AT))
    edits = [
        text.replace("\n42\n", "\n43\n"),
        text.replace("2026-11-23T09:15:30Z", "2026-11-23T09:15:31Z"),
        text.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode()),
    ]
    for edited in edits:
        assert edited != text
        assert not checkpoint.verify(public, checkpoint.from_text(edited))


@pytest.mark.parametrize(("old", "new"), [
    ("\n42\n", "\n042\n"),  # non-canonical size
    ("\n42\n", "\n-1\n"),
    ("\n42\n", "\n4 2\n"),
    (base64.b64encode(ROOT).decode(), "not-base64"),
    (base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[:31]).decode()),
    ("2026-11-23T09:15:30Z", "2026-11-23T10:15:30+01:00"),  # same instant, other spelling
    ("2026-11-23T09:15:30Z", "2026-11-23T09:15:30"),  # no zone
    ("2026-11-23T09:15:30Z", "yesterday"),
    ("2026-11-23T09:15:30Z\n", "2026-11-23T09:15:30Z\nextra line\n"),
    ("2026-11-23T09:15:30Z\n\n", "2026-11-23T09:15:30Z\n"),  # no blank line
    (f"\u2014 {LOG} ", f"\u2014 someone.else "),  # no signature by the log itself
    (f"\u2014 {LOG} ", f"- {LOG} "),
    (f"{LOG}\n", "two words\n"),
])
def test_malformed_checkpoint_text_is_rejected(signer: tuple[bytes, bytes], old: str, new: str) -> None:
    # Each case breaks exactly one thing in an otherwise valid, correctly signed text.
    text = checkpoint.to_text(checkpoint.sign(signer[0], LOG, 42, ROOT, AT))
    assert old in text
    with pytest.raises(CheckpointError):
        checkpoint.from_text(text.replace(old, new, 1))


def test_malformed_signature_blob_is_rejected(signer: tuple[bytes, bytes]) -> None:
    text = checkpoint.to_text(checkpoint.sign(signer[0], LOG, 42, ROOT, AT))
    signature = text.rsplit(" ", 1)[1].strip()
    for bad in ("AAAA", signature[:-4], signature + "AAAA", "!!" + signature[2:]):
        with pytest.raises(CheckpointError):
            checkpoint.from_text(text.replace(signature, bad))
    for bad_text in ("", "no blank line\n", text.rstrip("\n")):
        with pytest.raises(CheckpointError):
            checkpoint.from_text(bad_text)


def test_checkpoint_time_keeps_microseconds(signer: tuple[bytes, bytes]) -> None:
    private, public = signer
    at = dt.datetime(2026, 11, 23, 9, 15, 30, 123456, tzinfo=UTC)
    text = checkpoint.to_text(checkpoint.sign(private, LOG, 1, ROOT, at))
    assert "\n2026-11-23T09:15:30.123456Z\n" in text
    parsed = checkpoint.from_text(text)
    assert parsed.at == at and checkpoint.verify(public, parsed)


def test_cosignature_lines_are_tolerated(signer: tuple[bytes, bytes]) -> None:
    private, public = signer
    text = checkpoint.to_text(checkpoint.sign(private, LOG, 42, ROOT, AT))
    cosigned = text + "\u2014 witness.example AAAAAAAA\n"
    assert checkpoint.verify(public, checkpoint.from_text(cosigned))


def test_sign_rejects_bad_input(signer: tuple[bytes, bytes]) -> None:
    private, _ = signer
    with pytest.raises(ValueError):
        checkpoint.sign(private, "has space", 1, ROOT, AT)
    with pytest.raises(ValueError):
        checkpoint.sign(private, LOG, -1, ROOT, AT)
    with pytest.raises(ValueError):
        checkpoint.sign(private, LOG, 1, ROOT[:31], AT)
    with pytest.raises(ValueError):
        checkpoint.sign(private, LOG, 1, ROOT, AT.replace(tzinfo=None))


def test_audit_package_imports_no_framework() -> None:
    # The domain rule: audit crypto must not pull in mitmproxy, SQLAlchemy or a web framework.
    import subprocess
    import sys

    code = ("import sys, poortwachter.audit.seal, poortwachter.audit.pseudonym, "
            "poortwachter.audit.shares, poortwachter.audit.merkle, poortwachter.audit.checkpoint\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('mitmproxy', 'sqlalchemy', 'starlette', 'jinja2', 'uvicorn')]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_sealer_stream_opens_with_unseal_and_rotates_its_exchange() -> None:
    from poortwachter.audit.seal import Sealer, SealError, generate_keypair, unseal

    private, public = generate_keypair()
    sealer = Sealer(public, uses=3)
    blobs = [sealer.seal(f"event {i}".encode(), b"aad%d" % i) for i in range(7)]
    assert [unseal(private, b, b"aad%d" % i) for i, b in enumerate(blobs)] == [f"event {i}".encode() for i in range(7)]
    ephemerals = [b[1:33] for b in blobs]
    assert ephemerals[0] == ephemerals[2] != ephemerals[3] == ephemerals[5] != ephemerals[6]
    assert len({b[33:45] for b in blobs}) == 7          # a fresh nonce for every seal
    with pytest.raises(SealError):
        unseal(private, blobs[0], b"aad1")               # aad still bound per event
