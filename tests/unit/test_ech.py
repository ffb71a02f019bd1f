"""Hostile tests for the ECH configuration reader and the set of ECH fronts (poortwachter.ech).

An ECHConfigList comes from DNS answers, so from whoever controls a zone: every length may lie.
The configurations here are built by hand from the draft's wire format (not with
`build_config_list`, which is tested on its own), so a fault in the builder cannot hide one in the
reader. The hypothesis property checks that nothing but a short list of clean names ever comes out.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from poortwachter.ech import ECH_EXTENSION, MAX_FRONTS_PER_LIST, EchFronts, build_config_list, public_names

CLEAN = re.compile(r"^[a-z0-9.-]+$")


# ---- the wire format, by hand -----------------------------------------------------------------

def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def contents(name: bytes, public_key: bytes = b"\x11" * 32, suites: bytes = u16(1) + u16(1),
             extensions: bytes = b"") -> bytes:
    """ECHConfigContents: config_id kem_id public_key<2> cipher_suites<2> maximum_name_length
    public_name<1> extensions<2>."""
    return (b"\x07" + u16(0x0020) + u16(len(public_key)) + public_key + u16(len(suites)) + suites
            + b"\x00" + bytes([len(name)]) + name + u16(len(extensions)) + extensions)


def config(body: bytes, version: int = ECH_EXTENSION, length: int | None = None) -> bytes:
    return u16(version) + u16(len(body) if length is None else length) + body


def config_list(*configs: bytes, total: int | None = None) -> bytes:
    joined = b"".join(configs)
    return u16(len(joined) if total is None else total) + joined


def named(name: str) -> bytes:
    return config(contents(name.encode("ascii")))


# ---- public_names -----------------------------------------------------------------------------

def test_one_configuration_gives_its_public_name() -> None:
    assert public_names(config_list(named("cloudflare-ech.com"))) == ["cloudflare-ech.com"]


def test_names_come_in_order_lower_case_without_trailing_dot() -> None:
    """The outer SNI is compared with normalised host names: the list must give the same form."""
    data = config_list(named("Front.Example.COM."), named("second.example"))
    assert public_names(data) == ["front.example.com", "second.example"]


def test_unknown_versions_are_skipped_and_reading_goes_on() -> None:
    """A client skips a configuration of a version it does not know; so does the reader, and it
    still finds the configurations after it (an older draft's 0xfe0a, a GREASE-like 0x1a1a)."""
    data = config_list(config(contents(b"old-draft.example"), version=0xFE0A),
                       config(contents(b"grease.example"), version=0x1A1A),
                       named("real-front.example"))
    assert public_names(data) == ["real-front.example"]


def test_opaque_junk_of_an_unknown_version_is_skipped_by_its_length() -> None:
    junk = config(bytes(range(256)) * 3, version=0xFF00)
    assert public_names(config_list(junk, named("after.example"))) == ["after.example"]


def test_too_short_input_gives_nothing() -> None:
    for data in (b"", b"\x00", b"\x00\x00", b"\x00\x05\xfe\x0d", b"\xff\xff"):
        assert public_names(data) == []


def test_list_length_larger_than_the_data_reads_what_is_there() -> None:
    data = config_list(named("a.example"), named("b.example"), total=60000)
    assert public_names(data) == ["a.example", "b.example"]


def test_list_length_smaller_than_the_data_ignores_what_lies_beyond_it() -> None:
    """Bytes after the declared list are not part of it: a second configuration smuggled behind
    the list is not read."""
    first = named("a.example")
    data = config_list(first, named("smuggled.example"), total=len(first))
    assert public_names(data) == ["a.example"]


def test_configuration_length_past_the_end_keeps_the_names_read_before() -> None:
    body = contents(b"cut.example")
    data = config_list(named("before.example"), config(body, length=len(body) + 1000))
    assert public_names(data) == ["before.example"]


def test_configuration_length_is_the_boundary_even_when_it_swallows_the_next() -> None:
    """A configuration that claims the bytes of the next one owns them: the swallowed one is not a
    configuration of its own (its name is not read), the reader stays in step after it."""
    body = contents(b"outer.example")
    swallowed = named("swallowed.example")
    data = config_list(config(body + swallowed, length=len(body) + len(swallowed)), named("after.example"))
    assert public_names(data) == ["outer.example", "after.example"]


def test_configuration_length_zero_or_too_short_for_its_fields_is_skipped() -> None:
    body = contents(b"inner.example")
    data = config_list(config(b"", length=0), config(body[:5]), named("after.example"))
    assert public_names(data) == ["after.example"]


def test_inner_lengths_that_lie_give_no_name() -> None:
    """public_key, cipher_suites and public_name each carry a length; one that runs past the end
    of the configuration must not make the reader take other bytes for a name."""
    key_lies = b"\x07" + u16(0x0020) + u16(500) + b"\x11" * 32
    suites_lie = b"\x07" + u16(0x0020) + u16(0) + u16(300) + u16(1)
    name_lies = b"\x07" + u16(0x0020) + u16(0) + u16(0) + b"\x00" + bytes([200]) + b"short.example"
    no_name_byte = b"\x07" + u16(0x0020) + u16(0) + u16(0) + b"\x00"
    data = config_list(config(key_lies), config(suites_lie), config(name_lies), config(no_name_byte),
                       named("ok.example"))
    assert public_names(data) == ["ok.example"]


def test_zero_length_name_is_skipped() -> None:
    assert public_names(config_list(config(contents(b"")), named("ok.example"))) == ["ok.example"]


def test_non_ascii_and_forbidden_characters_are_skipped() -> None:
    """A public name lands in metrics and logs and is compared with host names: only letters,
    digits, '-' and '.' pass."""
    bad = [
        "bücher.example".encode(),                  # UTF-8, not an A-label
        b"\xff\xfe.example",
        b"evil\x00.example",                         # NUL: C-string truncation games
        b"a b.example",
        b"evil.example/path",
        b"*.example",
        b"under_score.example",
        b"evil.example\r\nX-Injected: 1",
        b".",                                        # nothing left after the trailing dot
        b"...",
    ]
    data = config_list(*(config(contents(name)) for name in bad), named("ok.example"))
    assert public_names(data) == ["ok.example"]


def test_name_of_255_bytes_is_read_whole() -> None:
    name = ".".join(["a" * 63] * 4)                 # 255 bytes: the most the one-byte length holds
    assert public_names(config_list(named(name))) == [name]


def test_extensions_do_not_change_the_name() -> None:
    body = contents(b"ext.example", extensions=u16(0xFA00) + u16(4) + b"\x01\x02\x03\x04")
    assert public_names(config_list(config(body))) == ["ext.example"]


def test_a_thousand_configurations_give_a_bounded_answer() -> None:
    """A hostile zone cannot make one answer teach the gateway a thousand fronts: the first
    MAX_FRONTS_PER_LIST names count, in order."""
    names = [f"f{i}.example" for i in range(1000)]
    data = config_list(*(named(n) for n in names))
    assert public_names(data) == names[:MAX_FRONTS_PER_LIST]


def test_skipped_configurations_do_not_use_up_the_bound() -> None:
    junk = [config(contents(f"g{i}.example".encode()), version=0x0A0A) for i in range(100)]
    unnamed = [config(contents(b"")) for _ in range(100)]
    data = config_list(*junk, *unnamed, named("late.example"))
    assert public_names(data) == ["late.example"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_and_give_only_clean_names(data: bytes) -> None:
    names = public_names(data)
    assert len(names) <= MAX_FRONTS_PER_LIST
    assert all(CLEAN.match(n) and not n.endswith(".") for n in names)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.binary(max_size=8))
def test_mangled_real_lists_never_raise(names: list[bytes], tail: bytes) -> None:
    """Valid framing around arbitrary name bytes, with junk appended and cut at every length."""
    data = config_list(*(config(contents(n)) for n in names)) + tail
    for cut in range(0, len(data) + 1, 7):
        assert all(CLEAN.match(n) for n in public_names(data[:cut]))


# ---- build_config_list ------------------------------------------------------------------------

def test_built_list_has_the_draft_framing() -> None:
    data = build_config_list("a.example", "b.example")
    assert int.from_bytes(data[:2], "big") == len(data) - 2
    assert int.from_bytes(data[2:4], "big") == ECH_EXTENSION
    first_length = int.from_bytes(data[4:6], "big")
    assert int.from_bytes(data[6 + first_length:8 + first_length], "big") == ECH_EXTENSION
    assert b"a.example" in data[6:6 + first_length] and b"b.example" not in data[6:6 + first_length]


def test_built_list_reads_back_with_any_key_size() -> None:
    for key in (b"", b"\x01" * 32, b"\x02" * 97):
        assert public_names(build_config_list("x.example", "y.example", public_key=key)) == ["x.example", "y.example"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
                max_size=30))
def test_built_list_round_trip(names: list[str]) -> None:
    assert public_names(build_config_list(*names)) == names[:MAX_FRONTS_PER_LIST]


# ---- EchFronts --------------------------------------------------------------------------------

CONFIGURED = frozenset({"cloudflare-ech.com"})


def test_configured_fronts_are_always_known() -> None:
    fronts = EchFronts()
    assert fronts.known("cloudflare-ech.com", CONFIGURED, now=1e9)
    assert not fronts.known("other.example", CONFIGURED, now=0.0)
    assert fronts.learnt(0.0) == []                 # configured fronts are not "learnt"


def test_learnt_front_is_known_for_keep_seconds_then_forgotten() -> None:
    fronts = EchFronts(keep=100.0)
    fronts.learn(["front.example"], now=1000.0)
    assert fronts.known("front.example", frozenset(), 1000.0)
    assert fronts.known("front.example", frozenset(), 1100.0)          # the last second still counts
    assert not fronts.known("front.example", frozenset(), 1100.5)
    assert fronts.learnt(1050.0) == ["front.example"] and fronts.learnt(1101.0) == []


def test_seeing_a_front_again_extends_it() -> None:
    fronts = EchFronts(keep=100.0)
    fronts.learn(["front.example"], now=0.0)
    fronts.learn(["front.example"], now=90.0)
    assert fronts.known("front.example", frozenset(), 150.0)


def test_known_is_exact_not_a_suffix_match() -> None:
    """The outer name is one host; a subdomain of a front is not itself a front."""
    fronts = EchFronts()
    fronts.learn(["front.example"], now=0.0)
    assert not fronts.known("www.front.example", frozenset(), 0.0)
    assert not fronts.known("x.cloudflare-ech.com", CONFIGURED, 0.0)


def test_learnt_lists_only_live_fronts_sorted() -> None:
    fronts = EchFronts(keep=10.0)
    fronts.learn(["z.example", "a.example"], now=0.0)
    fronts.learn(["m.example"], now=5.0)
    assert fronts.learnt(5.0) == ["a.example", "m.example", "z.example"]
    assert fronts.learnt(12.0) == ["m.example"]


def test_a_hostile_zone_cannot_grow_the_set_beyond_its_bound() -> None:
    fronts = EchFronts(keep=3600.0, max_learnt=50)
    for i in range(5000):
        fronts.learn([f"f{i}-{j}.example" for j in range(MAX_FRONTS_PER_LIST)], now=float(i))
        assert len(fronts.learnt(float(i))) <= 50
    # the newest survive: what a client just resolved is what it will dial next
    assert fronts.known(f"f4999-{MAX_FRONTS_PER_LIST - 1}.example", frozenset(), 4999.0)
    assert not fronts.known("f0-0.example", frozenset(), 4999.0)


def test_eviction_keeps_a_front_seen_again_over_older_ones() -> None:
    fronts = EchFronts(keep=3600.0, max_learnt=3)
    fronts.learn(["a.example", "b.example", "c.example"], now=0.0)
    fronts.learn(["a.example"], now=1.0)            # seen again: now the freshest
    fronts.learn(["d.example"], now=2.0)
    assert fronts.learnt(2.0) == ["a.example", "c.example", "d.example"]


def test_eviction_drops_expired_fronts_first() -> None:
    fronts = EchFronts(keep=10.0, max_learnt=3)
    fronts.learn(["old1.example", "old2.example"], now=0.0)
    fronts.learn(["mid.example"], now=5.0)
    fronts.learn(["new1.example", "new2.example"], now=12.0)    # old1, old2 expired at 10
    assert fronts.learnt(12.0) == ["mid.example", "new1.example", "new2.example"]
    assert fronts.known("mid.example", frozenset(), 12.0)
