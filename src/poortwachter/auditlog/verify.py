"""`poortwachter audit verify`: does the database still hold the logs the exported checkpoints
vouched for?

For every log (each gateway's events, the access ledger):
1. recompute each row's leaf hash from its stored content (events: audit/record.py's canonical
   form; ledger: auditlog/ledger.py's `ledger_canonical`) and compare it with the stored
   `leaf_hash`; a tombstone (an event erased by retention) contributes its stored leaf hash;
2. rebuild the Merkle tree from the recomputed leaves and compare it with EVERY exported, validly
   signed checkpoint: the root at each checkpoint's size must be the signed root. Sizes come only
   from the signed checkpoints, never from the database, so deleting, changing, inserting or
   reordering any row below the newest checkpoint shows, and so does a database that holds less
   than the newest checkpoint (a truncation, or an older copy put back: a rollback);
3. check each tombstone against the signed erasure record it names: count, digest (its seq, leaf
   hash, time and action) and the cut-off times. An event erased without such a record, or before
   its retention period ended, is reported;
4. check each gateway's sequence numbers for gaps (`_Continuity`): within a run they are
   consecutive, so a gap is lost events, unless the event after it is the restart marker of a new
   run (audit/record.py), which says how the previous run ended and the last number it had made
   durable: a clean stop or a crash while recording durably loses nothing that was answered (any
   number up to that last one missing is lost); a crash while recording fast may have lost the
   last moments' events, which nobody can count.

Checkpoint files whose signature does not verify with a trusted key are reported as forged.
Trusted keys: those given with --key, else the `*.pub` files exported next to the checkpoints,
else (said so in the report) the one in the database being checked.

Nothing here reads sealed content or prints personal data: findings name logs, sizes and
sequence numbers only.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import mailbox
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, literal, null, select, union_all
from sqlalchemy.orm import Session

from ..audit import checkpoint as cpmod
from ..audit.log import LEDGER_LOG, Problem, check, events_log, gateway_of
from ..audit.merkle import leaf_hash
from ..audit.notes import Erasure, NoteError, Tombstone, notes_in_text, parse_note, tombstone_line, verify_erasure
from ..audit.record import AuditEvent, Restart, restart_of
from ..store.db import Store
from ..store.models import (
    AuditErasureRow,
    AuditEventRow,
    AuditKeyRow,
    AuditTombstoneRow,
    LedgerRow,
)
from .checkpointer import YIELD, gateways
from .ledger import ledger_canonical_of

ROW_DETAILS = 20          # row findings listed one by one per log; the rest are counted


# --- findings and report --------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    code: str
    tamper: bool
    nl: str
    en: str
    log: str | None = None

    def text(self) -> str:
        return f"{self.nl} / {self.en}"


@dataclass(frozen=True)
class LogSummary:
    log: str
    size: int
    erased: int
    checkpoints: int
    newest: int | None
    ok: bool


@dataclass
class Report:
    keys: list[str] = field(default_factory=list)            # where the trusted keys came from
    checkpoints_valid: int = 0
    checkpoints_forged: int = 0
    erasures_valid: int = 0
    logs: list[LogSummary] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.tamper for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "keys": self.keys, "checkpoints": {"valid": self.checkpoints_valid,
                                                              "forged": self.checkpoints_forged},
            "erasure_records": self.erasures_valid,
            "logs": [vars(s) for s in self.logs],
            "findings": [{"code": f.code, "tamper": f.tamper, "log": f.log, "nl": f.nl, "en": f.en}
                         for f in self.findings],
        }


def render(report: Report) -> str:
    """The report for a terminal: Dutch first, English second."""
    lines = ["Auditlogs controleren / Checking the audit logs",
             f"Vertrouwde sleutels / Trusted keys: {', '.join(report.keys) or '-'}",
             f"Controlepunten / Checkpoints: {report.checkpoints_valid} geldig / valid, "
             f"{report.checkpoints_forged} ongeldig / invalid; wisverslagen / erasure records: "
             f"{report.erasures_valid}"]
    for s in report.logs:
        status = "OK  " if s.ok else "FOUT"
        newest = "-" if s.newest is None else str(s.newest)
        lines.append(f"{status} {s.log}: {s.size} (gewist / erased {s.erased}), "
                     f"nieuwste controlepunt / newest checkpoint {newest}")
    for f in report.findings:
        lines.append(("FOUT  / ERROR " if f.tamper else "LET OP / NOTE  ") + f.text())
    lines.append("Resultaat: in orde / Result: OK" if report.ok
                 else "Resultaat: GEKNOEID OF BESCHADIGD / Result: TAMPERING OR DAMAGE FOUND")
    return "\n".join(lines) + "\n"


def _problem(p: Problem) -> Finding:
    log_name = p.log
    if p.kind == "mismatch":
        return Finding("mismatch", True,
                       f"{log_name}: wijkt af van ondertekend controlepunt {p.size}: gewijzigd, verwijderd, "
                       f"ingevoegd of verplaatst tussen positie {p.since} en {p.size} ({p.count} controlepunten "
                       "kloppen niet)",
                       f"{log_name}: differs from signed checkpoint {p.size}: changed, deleted, inserted or "
                       f"reordered between position {p.since} and {p.size} ({p.count} checkpoints fail)", log_name)
    if p.kind == "behind":
        return Finding("behind", True,
                       f"{log_name}: de database heeft {p.size} regels, minder dan de {p.expected} van het "
                       "nieuwste controlepunt: verwijderd, afgekapt of een oudere kopie teruggezet",
                       f"{log_name}: the database holds {p.size} entries, fewer than the {p.expected} of the "
                       "newest checkpoint: deleted, truncated or an older copy restored", log_name)
    if p.kind == "fork":
        return Finding("fork", True,
                       f"{log_name}: twee ondertekende controlepunten van grootte {p.size} met verschillende wortels",
                       f"{log_name}: two signed checkpoints of size {p.size} with different roots", log_name)
    if p.kind == "shrank":
        return Finding("shrank", True,
                       f"{log_name}: een later controlepunt ({p.size}) dekt minder dan een eerder ({p.expected}): "
                       "de log is teruggedraaid",
                       f"{log_name}: a later checkpoint ({p.size}) covers less than an earlier one ({p.expected}): "
                       "the log was rolled back", log_name)
    if p.kind == "uncovered":
        n = p.size - p.expected
        return Finding("uncovered", False,
                       f"{log_name}: {n} regels na het nieuwste controlepunt ({p.expected}) zijn nog niet gedekt",
                       f"{log_name}: {n} entries after the newest checkpoint ({p.expected}) are not covered yet",
                       log_name)
    return Finding("unchecked", False,
                   f"{log_name}: geen controlepunt gevonden, niet te controleren",
                   f"{log_name}: no checkpoint found, cannot be checked", log_name)


# --- what was exported ------------------------------------------------------------------------------

@dataclass
class Exported:
    """The notes and keys found under a checkpoint directory."""

    checkpoints: list[tuple[str, cpmod.Checkpoint]] = field(default_factory=list)   # (source, note)
    erasures: list[tuple[str, Erasure]] = field(default_factory=list)
    keys: list[tuple[str, bytes]] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)


def parse_key(text: str) -> bytes:
    """A checkpoint public key: 64 hex characters, or a signed-note verifier key
    ("name+keyid+base64(0x01 || key)")."""
    value = text.strip()
    if "+" in value:
        parts = value.split("+", 2)        # the base64 part may itself hold "+"
        if len(parts) != 3:
            raise ValueError("not a verifier key")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not a verifier key") from exc
        if len(raw) != 33 or raw[0] != cpmod.ALG_ED25519:
            raise ValueError("not an Ed25519 verifier key")
        return raw[1:]
    key = bytes.fromhex(value)
    if len(key) != 32:
        raise ValueError("a public key is 32 bytes (64 hex characters)")
    return key


def read_exported(directory: Path) -> Exported:
    """Every note under `directory`: note files (*.checkpoint, *.erasure), saved mails (*.eml,
    *.mbox) and any other file with marker lines in it (a syslog file); keys from *.pub."""
    found = Exported()
    seen: set[str] = set()

    def take(source: str, text: str, strict: bool) -> None:
        if text in seen:
            return
        seen.add(text)
        try:
            note = parse_note(text)
        except NoteError:
            if strict:
                found.damaged.append(source)
            return
        if isinstance(note, Erasure):
            found.erasures.append((source, note))
        else:
            found.checkpoints.append((source, note))

    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        source = str(path.relative_to(directory))
        suffix = path.suffix.lower()
        try:
            if suffix == ".pub":
                try:
                    found.keys.append((source, parse_key(path.read_text(encoding="ascii"))))
                except (ValueError, UnicodeDecodeError):
                    found.damaged.append(source)
            elif suffix in (".checkpoint", ".erasure"):
                try:
                    take(source, path.read_text(encoding="utf-8"), strict=True)
                except UnicodeDecodeError:
                    found.damaged.append(source)
            elif suffix == ".eml":
                mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for text, strict in _mail_notes(mail):
                    take(source, text, strict)
            elif suffix == ".mbox":
                for message in mailbox.mbox(path):
                    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
                    for text, strict in _mail_notes(parsed):
                        take(source, text, strict)
            else:
                for text in notes_in_text(path.read_text(encoding="utf-8", errors="replace")):
                    take(source, text, strict=True)
        except OSError:
            found.damaged.append(source)
    return found


def _mail_notes(message: Any) -> Iterator[tuple[str, bool]]:
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        try:
            content = part.get_content()
        except (LookupError, ValueError):
            continue
        if isinstance(content, bytes):
            content = content.decode("utf-8", errors="replace")
        if not isinstance(content, str):
            continue
        content = content.replace("\r\n", "\n")      # mail transports lines with CRLF
        if name.endswith((".checkpoint", ".erasure")):
            yield content, True
        else:
            for text in notes_in_text(content):
                yield text, True


# --- checking ----------------------------------------------------------------------------------------

def trusted_keys(exported: Exported, given: Sequence[bytes], store: Store | None) -> tuple[list[bytes], list[str]]:
    """The keys to check signatures with, and where each came from."""
    if given:
        return list(given), [f"--key {k.hex()[:16]}" for k in given]
    if exported.keys:
        keys = list(dict.fromkeys(k for _, k in exported.keys))
        return keys, [src for src, _ in exported.keys]
    if store is not None:
        with store.read() as s:
            keys = list(dict.fromkeys(bytes(k) for k in s.scalars(select(AuditKeyRow.checkpoint_public))))
        return keys, [f"database {k.hex()[:16]} (niet onafhankelijk / not independent)" for k in keys]
    return [], []


def verify_store(store: Store, exported: Exported, keys: Sequence[bytes], *,
                 key_sources: Sequence[str] = ()) -> Report:
    report = Report(keys=list(key_sources))
    for source in exported.damaged:
        report.findings.append(Finding("damaged", True,
                                       f"{source}: onleesbaar controlepunt, wisverslag of sleutelbestand",
                                       f"{source}: unreadable checkpoint, erasure record or key file"))
    if not keys:
        report.findings.append(Finding("no-keys", True,
                                       "geen publieke sleutel om handtekeningen mee te controleren",
                                       "no public key to check signatures with"))
    checkpoints: list[cpmod.Checkpoint] = []
    for source, cp in exported.checkpoints:
        if any(cpmod.verify(k, cp) for k in keys):
            checkpoints.append(cp)
        else:
            report.checkpoints_forged += 1
            report.findings.append(Finding(
                "forged", True, f"{source}: controlepunt met ongeldige handtekening (vervalst of beschadigd)",
                f"{source}: checkpoint with an invalid signature (forged or damaged)", cp.log))
    erasures: dict[tuple[str, int], Erasure] = {}
    for source, e in exported.erasures:
        if any(verify_erasure(k, e) for k in keys):
            erasures[(e.log, e.id)] = e
        else:
            report.findings.append(Finding("forged", True,
                                           f"{source}: wisverslag met ongeldige handtekening (vervalst of beschadigd)",
                                           f"{source}: erasure record with an invalid signature (forged or damaged)",
                                           e.log))
    report.checkpoints_valid = len(checkpoints)
    report.erasures_valid = len(erasures)

    with store.read() as s:
        names = {events_log(g) for g in gateways(s)}
        if s.scalar(select(LedgerRow.id).limit(1)) is not None:
            names.add(LEDGER_LOG)
        names |= {cp.log for cp in checkpoints} | {log_name for log_name, _ in erasures}
        for name in sorted(names):
            gateway = gateway_of(name)
            if name == LEDGER_LOG:
                _check_log(report, name, _ledger_stream(s, name, report), checkpoints, erased=0)
            elif gateway is not None:
                unsigned = set(s.scalars(select(AuditErasureRow.id).where(AuditErasureRow.log == name,
                                                                          AuditErasureRow.note.is_(None))))
                audit = _ErasureAudit(name, erasures, unsigned)
                continuity = _Continuity(name)
                _check_log(report, name, _events_stream(s, gateway, name, report, audit, continuity), checkpoints,
                           erased_of=audit)
                report.findings.extend(audit.findings())
                report.findings.extend(continuity.findings())
            else:
                report.findings.append(Finding("unknown-log", False,
                                               f"{name}: onbekende log in de controlepunten",
                                               f"{name}: unknown log in the checkpoints", name))
    return report


def _check_log(report: Report, name: str, leaves: Iterable[bytes], checkpoints: Sequence[cpmod.Checkpoint], *,
               erased: int = 0, erased_of: _ErasureAudit | None = None) -> None:
    before = len(report.findings)
    result = check(name, leaves, checkpoints)
    report.findings.extend(_problem(p) for p in result.problems)
    bad = any(f.tamper for f in report.findings[before:])
    report.logs.append(LogSummary(name, result.size, erased_of.total if erased_of else erased, result.checkpoints,
                                  result.newest, result.ok and not bad))


class _RowFindings:
    def __init__(self, report: Report, name: str) -> None:
        self.report, self.name, self.count = report, name, 0

    def bad(self, key: int, position: int, what: str) -> None:
        self.count += 1
        if self.count <= ROW_DETAILS:
            nl, en = {"row": ("past niet bij zijn opgeslagen leaf-hash: inhoud gewijzigd",
                              "does not match its stored leaf hash: content changed"),
                      "unreadable": ("onleesbaar", "unreadable"),
                      "duplicate": ("komt twee keer voor", "occurs twice")}[what]
            self.report.findings.append(Finding(what if what != "unreadable" else "row", True,
                                                f"{self.name}: regel {key} (positie {position}) {nl}",
                                                f"{self.name}: entry {key} (position {position}) {en}", self.name))

    def close(self) -> None:
        if self.count > ROW_DETAILS:
            more = self.count - ROW_DETAILS
            self.report.findings.append(Finding("row", True, f"{self.name}: en nog {more} afwijkende regels",
                                                f"{self.name}: and {more} more entries that do not match", self.name))


def _ledger_stream(s: Session, name: str, report: Report) -> Iterator[bytes]:
    rows = _RowFindings(report, name)
    stmt = select(LedgerRow).order_by(LedgerRow.id).execution_options(yield_per=YIELD)
    for position, row in enumerate(s.scalars(stmt)):
        leaf = leaf_hash(ledger_canonical_of(row))
        if leaf != bytes(row.leaf_hash):
            rows.bad(row.id, position, "row")
        yield leaf
    rows.close()


_EVENT_COLUMNS = ("kind", "zone", "role", "slot", "category", "rule", "source", "period", "pseudonym")


def _events_stream(s: Session, gateway: str, name: str, report: Report, audit: _ErasureAudit,
                   continuity: _Continuity | None = None) -> Iterator[bytes]:
    """The gateway's log in seq order, live events and tombstones in ONE ordered query, with
    each live event's leaf recomputed from its columns."""
    e, t = AuditEventRow, AuditTombstoneRow
    live = select(e.seq.label("seq"), e.at.label("at"), e.action.label("action"), e.leaf_hash.label("leaf"),
                  literal(False).label("erased"), null().label("erasure"),
                  *(getattr(e, c).label(c) for c in _EVENT_COLUMNS), e.sealed.label("sealed")
                  ).where(e.gateway == gateway)
    dead = select(t.seq, t.at, t.action, t.leaf_hash, literal(True), t.erasure,
                  *(cast(null(), String()) for _ in _EVENT_COLUMNS), null()
                  ).where(t.gateway == gateway)
    both = union_all(live, dead).subquery()
    stmt = select(both).order_by(both.c.seq, both.c.erased).execution_options(yield_per=YIELD)
    rows = _RowFindings(report, name)
    previous: int | None = None
    for position, r in enumerate(s.execute(stmt)):
        seq = int(r.seq)
        if seq == previous:
            rows.bad(seq, position, "duplicate")
        previous = seq
        if continuity is not None:
            continuity.add(seq, None if r.erased else restart_of(r.kind, r.rule, r.source))
        stored = bytes(r.leaf)
        if r.erased:
            audit.add(r.erasure, Tombstone(seq, r.at, r.action, stored))
            yield stored
            continue
        try:
            event = AuditEvent(seq=seq, at=r.at, gateway=gateway, kind=r.kind, zone=r.zone, role=r.role,
                               slot=r.slot, category=r.category, action=r.action, rule=r.rule, source=r.source,
                               period=r.period, pseudonym=r.pseudonym,
                               sealed=bytes(r.sealed) if r.sealed is not None else None)
            leaf = event.leaf_hash()
        except (ValueError, TypeError):
            rows.bad(seq, position, "unreadable")
            leaf = hashlib.sha256(b"unreadable").digest()   # cannot match any signed tree
        if leaf != stored:
            rows.bad(seq, position, "row")
        yield leaf
    rows.close()


class _Continuity:
    """Gaps in a gateway's sequence numbers, read with its restart markers, while the log streams
    by. Gaps before a log's first marker (recorded before markers existed) cannot be told from
    restarts and are not reported."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.previous: int | None = None
        self.marked = False
        self.lost: list[tuple[int, int, bool]] = []      # (last present, count, lost across a restart)
        self.fast: list[int] = []                        # crashes while recording fast: seq before
        self.unknown: list[int] = []
        self.crashes: list[int] = []                     # crashes while recording durably, nothing lost

    def add(self, seq: int, restart: Restart | None) -> None:
        before, self.previous = self.previous, seq
        if before is None or seq == before:
            self.marked = self.marked or restart is not None
            return
        gap = seq - before - 1
        if restart is None:
            if gap and self.marked:
                self.lost.append((before, gap, False))
            return
        self.marked = True
        if restart.previous in ("stopped", "crashed"):
            if restart.last is not None and restart.last > before:
                self.lost.append((before, restart.last - before, True))    # on disk, then gone
            elif restart.previous == "crashed":
                self.crashes.append(before)
        elif restart.previous == "crashed-fast":
            self.fast.append(before)
        elif gap:
            self.unknown.append(before)

    def findings(self) -> list[Finding]:
        n = self.name
        out: list[Finding] = []
        for before, count, across in self.lost[:ROW_DETAILS]:
            if across:
                out.append(Finding("lost", True,
                                   f"{n}: {count} gebeurtenissen na volgnummer {before} ontbreken: ze stonden "
                                   "vóór de herstart op schijf, maar zijn verloren gegaan",
                                   f"{n}: {count} events after sequence number {before} are missing: they were "
                                   "on disk before the restart, but were lost", n))
            else:
                out.append(Finding("lost", True,
                                   f"{n}: {count} gebeurtenissen na volgnummer {before} ontbreken, zonder herstart "
                                   "ertussen: verloren (bij de gateway geteld als dropped) of verwijderd",
                                   f"{n}: {count} events after sequence number {before} are missing, with no restart "
                                   "in between: lost (counted by the gateway as dropped) or deleted", n))
        if len(self.lost) > ROW_DETAILS:
            more = sum(c for _, c, _ in self.lost[ROW_DETAILS:])
            out.append(Finding("lost", True, f"{n}: en nog {more} ontbrekende gebeurtenissen elders",
                               f"{n}: and {more} more missing events elsewhere", n))
        for before in self.fast[:ROW_DETAILS]:
            out.append(Finding("crash-fast", True,
                               f"{n}: herstart na een crash na volgnummer {before}, terwijl gebeurtenissen werden "
                               "beantwoord voordat ze op schijf stonden (poortwachter_audit_commit=fast, of een schijf "
                               "die niet op tijd bevestigde): die van de laatste ogenblikken kunnen verloren zijn, "
                               "hoeveel is niet te zeggen",
                               f"{n}: restart after a crash after sequence number {before}, while events were answered "
                               "before they were on disk (poortwachter_audit_commit=fast, or a disk that did not "
                               "confirm in time): those of the last moments may be lost, how many cannot be told", n))
        if len(self.fast) > ROW_DETAILS:
            more = len(self.fast) - ROW_DETAILS
            out.append(Finding("crash-fast", True, f"{n}: en nog {more} zulke herstarts",
                               f"{n}: and {more} more such restarts", n))
        for before in self.unknown[:ROW_DETAILS]:
            out.append(Finding("restart-unknown", False,
                               f"{n}: herstart na volgnummer {before} zonder bekende toestand van de vorige run "
                               "(nieuwe datamap of oudere versie): of er iets verloren ging is niet te zeggen",
                               f"{n}: restart after sequence number {before} with no known state of the previous run "
                               "(a new data directory or an older version): whether anything was lost cannot be "
                               "told", n))
        if self.crashes:
            shown = ", ".join(str(b) for b in self.crashes[:ROW_DETAILS])
            more = f" (+{len(self.crashes) - ROW_DETAILS})" if len(self.crashes) > ROW_DETAILS else ""
            out.append(Finding("crash", False,
                               f"{n}: {len(self.crashes)} herstart(s) na een crash (na volgnummer {shown}{more}): "
                               "niets wat beantwoord was ontbreekt (duurzame vastlegging)",
                               f"{n}: {len(self.crashes)} restart(s) after a crash (after sequence number "
                               f"{shown}{more}): nothing that was answered is missing (durable recording)", n))
        return out


class _ErasureAudit:
    """Checks a log's tombstones against the signed erasure records, while they stream by."""

    def __init__(self, name: str, erasures: dict[tuple[str, int], Erasure], unsigned: set[int]) -> None:
        self.name = name
        self.unsigned = unsigned          # ids the database says were never signed (no key at the time)
        self.records = {eid: e for (log_name, eid), e in erasures.items() if log_name == name}
        self.groups: dict[int | None, tuple[int, Any]] = {}
        self.early: list[int] = []
        self.total = 0

    def add(self, erasure: int | None, t: Tombstone) -> None:
        self.total += 1
        count, digest = self.groups.get(erasure, (0, hashlib.sha256()))
        digest.update(tombstone_line(t))
        self.groups[erasure] = (count + 1, digest)
        record = self.records.get(erasure) if erasure is not None else None
        if record is not None and not record.due(t.at, t.action):
            self.early.append(t.seq)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        n = self.name
        for erasure, (count, digest) in sorted(self.groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)):
            record = self.records.get(erasure) if erasure is not None else None
            if record is None and (erasure is None or erasure in self.unsigned):
                out.append(Finding("erasure-unsigned", True,
                                   f"{n}: {count} gebeurtenissen gewist zonder ondertekend wisverslag",
                                   f"{n}: {count} events erased without a signed erasure record", n))
            elif record is None:
                out.append(Finding("erasure-unexported", True,
                                   f"{n}: wisronde {erasure} ({count} gebeurtenissen) heeft geen geëxporteerd, "
                                   "ondertekend wisverslag",
                                   f"{n}: erasure {erasure} ({count} events) has no exported, signed erasure record",
                                   n))
            elif record.count != count or record.digest != digest.digest():
                out.append(Finding("erasure-mismatch", True,
                                   f"{n}: wisronde {erasure}: de grafstenen ({count}) kloppen niet met het "
                                   f"wisverslag ({record.count})",
                                   f"{n}: erasure {erasure}: the tombstones ({count}) do not match the erasure "
                                   f"record ({record.count})", n))
        for erasure, record in sorted(self.records.items()):
            if erasure not in self.groups and record.count:
                out.append(Finding("erasure-mismatch", True,
                                   f"{n}: wisverslag {erasure} noemt {record.count} grafstenen, de database geen",
                                   f"{n}: erasure record {erasure} names {record.count} tombstones, the database none",
                                   n))
        if self.early:
            out.append(Finding("erasure-early", True,
                               f"{n}: {len(self.early)} gebeurtenissen gewist voor hun bewaartermijn om was "
                               f"(eerste: regel {self.early[0]})",
                               f"{n}: {len(self.early)} events erased before their retention period ended "
                               f"(first: entry {self.early[0]})", n))
        return out


def verify(store: Store, directory: Path, keys: Sequence[bytes] = ()) -> Report:
    """Read the exported notes under `directory` and check the store against them."""
    exported = read_exported(directory)
    trusted, sources = trusted_keys(exported, keys, store)
    return verify_store(store, exported, trusted, key_sources=sources)
