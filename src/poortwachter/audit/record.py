"""An audit event built from a verdict: what is counted stays in the clear, who and what is sealed.

Pure: no I/O, no clock, no proxy, no database. The hot path hands over a `Seen` (a cheap tuple);
the recorder's background thread turns it into an `AuditEvent` with `build_event`.

- Clear (for counts, and to find a case's events): seq, time, gateway, kind of decision, zone,
  role, timetable slot, category, action, rule, reglement article, pseudonym period, pseudonym.
- Sealed to the escrow public key (audit/seal.py): the subject (client address) and the details
  (host names; the path only where the policy asks for URLs). The seal's associated data is the
  canonical clear part, so a sealed blob cannot be moved onto another event without unseal failing.
- Without an escrow key nothing personal is recorded: the event keeps its clear fields only
  (no pseudonym, no sealed part). Never plaintext.

`AuditEvent.canonical()` is the byte string the Merkle leaf hashes and the spool stores, rebuilt
exactly from a database row by a verifier (`AuditEvent.from_canonical` reads it back):

    <clear part: compact ASCII JSON, sorted keys, "v": 1> "\n" <sealed part: base64, or nothing>

The clear part is also the seal's associated data. Compact JSON never holds a raw newline, so the
first one separates the two parts.

A restart marker (`restart_event`) is the first event of every run of a gateway's recorder: kind
and action "restart", no zone, role or subject, nothing sealed. It says how the previous run ended
and the last sequence number that run had made durable, so `audit verify` can tell the gap a
restart leaves in the numbers from events that were lost. Being an event, it is a leaf of the
gateway's Merkle log and under its signed checkpoints like any other; retention keeps it. Its
clear fields carry it: `rule` is how the previous run ended (`Restart.previous`), `source` the
last durable number (empty when unknown).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from .merkle import leaf_hash
from .seal import Sealer, seal

FORMAT = 1
Kind = Literal["http", "connect", "tls", "stream", "dns", "restart"]
RESTART = "restart"
# How the previous run of a recorder ended, as its successor's marker says:
# - "stopped": cleanly; every event it numbered, up to `last`, was stored or spooled;
# - "crashed": without stopping, while every answered event was on disk before its answer (up to
#   `last`, the last one in the spool; None: the spool was empty, all of them were stored);
# - "crashed-fast": without stopping, while events were answered before they were on disk (the fast
#   option, or a disk that did not take them in time): the last moments' events may be lost;
# - "unknown": the previous run left no readable state (a recorder before markers existed);
# - "new": no previous run in this data directory (a new gateway, or a lost data directory).
ENDINGS = ("stopped", "crashed", "crashed-fast", "unknown", "new")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Seen(NamedTuple):
    """What the enforcing addon hands over for one final verdict (built on the hot path: keep cheap)."""

    at: float                # time.time() of the decision: wall-clock time, whatever the policy clock says
    kind: str                # "http", "connect" (a CONNECT refused: passthrough zone, closed port), "tls"
                             # (passthrough or refused), "stream" (not web traffic), "dns" (the resolver)
    verdict: Any             # poortwachter.decide.Verdict (Any: the hot path must not pay for a check)
    client: IPAddress
    names: list[str]         # the normalised host names that were judged, the first one is the host
    path: str | None         # the request path (HTTP only)


CLEAR = ("action", "at", "category", "gateway", "kind", "period", "pseudonym", "role", "rule", "seq", "slot",
         "source", "zone")   # the clear fields, in canonical (sorted) order; "sealed" and "v" complete it


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int                 # per gateway, strictly increasing; (gateway, seq) makes a replay idempotent
    at: dt.datetime          # aware UTC, microseconds
    gateway: str
    kind: str
    zone: str
    role: str
    slot: str | None         # the timetable block the verdict was taken in (e.g. "1e-blok")
    category: str | None
    action: str
    rule: str
    source: str              # the reglement article behind the rule
    period: str              # the pseudonym period (ISO week, audit/pseudonym.period_of)
    pseudonym: str | None    # None without an escrow key, or when the period's key is gone
    sealed: bytes | None     # subject + details sealed to the escrow key; None without an escrow key
    _canonical: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def clear(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in CLEAR}
        out["at"] = format_time(self.at)
        out["v"] = FORMAT
        return out

    def aad(self) -> bytes:
        """Associated data of the seal: the canonical clear part."""
        return _dumps(self.clear())

    def canonical(self) -> bytes:
        """The whole event as bytes: the Merkle leaf's data and the spool's record."""
        if self._canonical is None:
            self._set_canonical(self.aad())
        assert self._canonical is not None
        return self._canonical

    def _set_canonical(self, aad: bytes) -> None:
        # computed once: the spool, the row and the leaf hash share it
        sealed = base64.b64encode(self.sealed) if self.sealed is not None else b""
        object.__setattr__(self, "_canonical", aad + b"\n" + sealed)

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.canonical())

    @classmethod
    def from_canonical(cls, data: bytes) -> AuditEvent:
        clear, sep, sealed = data.partition(b"\n")
        raw = json.loads(clear)
        if not sep or raw.pop("v", None) != FORMAT:
            raise ValueError("unknown audit event format")
        raw["at"] = parse_time(raw["at"])
        event = cls(**raw, sealed=base64.b64decode(sealed, validate=True) if sealed else None)
        if event.canonical() != data:
            raise ValueError("audit event not in canonical form")
        return event

    def row(self) -> dict[str, Any]:
        """Column values for the store (audit_events), leaf hash included."""
        out = {name: getattr(self, name) for name in CLEAR}
        out["sealed"] = self.sealed
        out["leaf_hash"] = self.leaf_hash()
        return out


class Restart(NamedTuple):
    """What a restart marker says about the previous run (see ENDINGS)."""

    previous: str
    last: int | None


def restart_event(restart: Restart, *, seq: int, gateway: str, at: dt.datetime, period: str) -> AuditEvent:
    """The marker that opens a run (its first sequence number)."""
    if restart.previous not in ENDINGS:
        raise ValueError(f"not a way a run ends: {restart.previous!r}")
    event = AuditEvent(seq=seq, at=at, gateway=gateway, kind=RESTART, zone="", role="", slot=None, category=None,
                       action=RESTART, rule=restart.previous,
                       source="" if restart.last is None else str(restart.last),
                       period=period, pseudonym=None, sealed=None)
    event.canonical()
    return event


def restart_of(kind: str | None, rule: str | None, source: str | None) -> Restart | None:
    """The marker's content from an event's (or a row's) fields; None for any other event."""
    if kind != RESTART:
        return None
    previous = rule if rule in ENDINGS else "unknown"
    last = int(source) if source and source.lstrip("-").isdigit() else None
    return Restart(previous, last)


def build_event(seen: Seen, *, seq: int, gateway: str, at: dt.datetime, period: str,
                pseudonym: str | None, escrow_public: bytes | None, urls: bool,
                sealer: Sealer | None = None) -> AuditEvent:
    """The event of one verdict. `pseudonym` comes from the period key of `period` (None if there
    is none); without `escrow_public` the event keeps its clear fields only."""
    v = seen.verdict
    if escrow_public is None:
        pseudonym = None
    fields = {"seq": seq, "at": at, "gateway": gateway, "kind": seen.kind, "zone": v.zone, "role": v.role,
              "slot": v.period, "category": v.category, "action": v.action, "rule": v.rule,
              "source": v.source, "period": period, "pseudonym": pseudonym}
    aad = _dumps({**fields, "at": format_time(at), "v": FORMAT})
    sealed = None
    if escrow_public is not None:
        plain = details(seen, urls=urls)
        sealed = sealer.seal(plain, aad) if sealer is not None else seal(escrow_public, plain, aad)
    event = AuditEvent(**fields, sealed=sealed)
    event._set_canonical(aad)
    return event


def details(seen: Seen, *, urls: bool) -> bytes:
    """The plaintext that is sealed: the subject and what it asked for."""
    names = list(dict.fromkeys(seen.names))          # distinct, in the order judged
    out: dict[str, Any] = {"subject": {"client": str(seen.client)}, "details": {"host": names[0] if names else ""}}
    if len(names) > 1:
        out["details"]["names"] = names               # e.g. a Host header that differs from the SNI
    if urls and seen.path is not None:
        out["details"]["path"] = seen.path
    return _dumps(out)


def subject_of(seen: Seen) -> str:
    """The string the pseudonym is computed over (and a case computes it from)."""
    return str(seen.client)


def format_time(when: dt.datetime) -> str:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("audit times are timezone-aware")
    # isoformat, not strftime: several times cheaper, and the same digits
    return when.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
