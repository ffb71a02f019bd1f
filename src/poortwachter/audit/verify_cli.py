"""`poortwachter audit verify|checkpoint|retention`: check the audit logs against the checkpoints
that left the box, sign and export checkpoints now, apply retention.

audit verify --checkpoints DIR [--db URL] [--key KEY ...] [--json]
    Exit status: 0 the logs match every signed checkpoint, 1 tampering (or damage) found,
    2 could not check (no such directory, store unreachable, no key).
audit checkpoint [--db URL] [--gateway NAME ...] [EXPORT OPTIONS]
    Sign a checkpoint of every log that grew and export what is not exported yet.
audit retention [--db URL] [--allowed-days 30] [--blocked-days 180] [EXPORT OPTIONS]
    Checkpoint first, then erase due events that no case holds; export the erasure records.

EXPORT OPTIONS: --export-dir DIR, --syslog udp://HOST:PORT, --mail-host HOST[:PORT]
--mail-to ADDRESS (repeatable) [--mail-from ADDRESS]. The signing key is
<data dir>/audit/checkpoint.key, made by `poortwachter keys init`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

EXIT_OK, EXIT_TAMPER, EXIT_ERROR = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify`, `audit checkpoint` and `audit retention`; each sets
    `func(args) -> exit status` and reads args.data_dir (a Path) and --db."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="database URL (default: sqlite in the data directory)")

    export = argparse.ArgumentParser(add_help=False)
    export.add_argument("--export-dir", metavar="DIR", help="write each note as a file under DIR (append-only)")
    export.add_argument("--syslog", metavar="ADDRESS", help="send each note to syslog: udp://HOST:PORT, "
                                                            "tcp://HOST:PORT or /dev/log")
    export.add_argument("--mail-host", metavar="HOST[:PORT]", help="mail the newest checkpoints via this SMTP server")
    export.add_argument("--mail-to", action="append", default=[], metavar="ADDRESS",
                        help="recipient, e.g. the privacy officer (FG) (repeatable)")
    export.add_argument("--mail-from", default="poortwachter@localhost", metavar="ADDRESS")
    export.add_argument("--at", help=argparse.SUPPRESS)     # act as if it were this ISO time (tests, drills)

    audit = subparsers.add_parser("audit", help="tamper evidence and retention of the audit logs",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = audit.add_subparsers(dest="audit_command", metavar="{verify,checkpoint,retention}", required=True)

    p = commands.add_parser("verify", parents=[common], help="check the logs against exported checkpoints",
                            description="Controleer de auditlogs tegen de geëxporteerde controlepunten / "
                                        "Check the audit logs against the exported checkpoints.")
    p.add_argument("--checkpoints", required=True, metavar="DIR",
                   help="directory with exported checkpoints (files, saved mails, syslog files)")
    p.add_argument("--key", action="append", default=[], metavar="KEY",
                   help="trusted public key: 64 hex characters, a verifier key, or a file holding one "
                        "(default: the *.pub files in DIR)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser("checkpoint", parents=[common, export], help="sign and export checkpoints now")
    p.add_argument("--gateway", action="append", metavar="NAME", help="only this gateway's log (repeatable)")
    p.add_argument("--no-ledger", action="store_true", help="leave the access ledger out")
    p.set_defaults(func=cmd_checkpoint)

    p = commands.add_parser("retention", parents=[common, export], help="erase audit events past their period")
    p.add_argument("--allowed-days", type=_days, default=30, metavar="N",
                   help="keep allowed traffic N days (default 30)")
    p.add_argument("--blocked-days", type=_days, default=180, metavar="N", help="keep blocks N days (default 180)")
    p.set_defaults(func=cmd_retention)


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"een positief aantal dagen / a positive number of days: {text!r}")
    return value


def _url(args: argparse.Namespace) -> str:
    from poortwachter.store import default_url

    return args.db or default_url(Path(args.data_dir))


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")


def _now(args: argparse.Namespace) -> dt.datetime:
    if getattr(args, "at", None):
        at = dt.datetime.fromisoformat(args.at)
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def cmd_verify(args: argparse.Namespace) -> int:
    from poortwachter.store import open_store

    from ..auditlog.verify import parse_key, read_exported, render, trusted_keys, verify_store

    directory = Path(args.checkpoints)
    if not directory.is_dir():
        _err(f"Map met controlepunten niet gevonden / Checkpoint directory not found: {directory}")
        return EXIT_ERROR
    keys: list[bytes] = []
    for value in args.key:
        try:
            path = Path(value)
            keys.append(parse_key(path.read_text(encoding="ascii") if path.is_file() else value))
        except (ValueError, OSError, UnicodeDecodeError):
            _err("Ongeldige sleutel / Invalid key (64 hex characters, a verifier key, or a file holding one)")
            return EXIT_ERROR
    try:
        store = open_store(_url(args), upgrade=False)
    except SQLAlchemyError as exc:
        _err(f"Database niet te openen / Cannot open the database: {type(exc).__name__}")
        return EXIT_ERROR
    try:
        exported = read_exported(directory)
        trusted, sources = trusted_keys(exported, keys, store)
        if not trusted:
            _err("Geen publieke sleutel: geef --key / No public key: give --key")
            return EXIT_ERROR
        report = verify_store(store, exported, trusted, key_sources=sources)
    except SQLAlchemyError as exc:
        _err(f"Database niet te lezen / Cannot read the database: {type(exc).__name__}")
        return EXIT_ERROR
    finally:
        store.close()
    if args.json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(render(report))
    return EXIT_OK if report.ok else EXIT_TAMPER


def _exporters(args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    from ..auditlog.exporters import exporters_from_options

    return exporters_from_options(directory=args.export_dir, syslog=args.syslog, mail_host=args.mail_host,
                                  mail_to=args.mail_to, mail_from=args.mail_from,
                                  mail_interval=dt.timedelta(0))


def _signing_key(args: argparse.Namespace) -> bytes | None:
    from ..auditlog.keys import load_checkpoint_key

    try:
        return load_checkpoint_key(Path(args.data_dir))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        _err(f"Ondertekensleutel onbruikbaar / Signing key unusable: {exc}")
        raise SystemExit(EXIT_ERROR) from None


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from poortwachter.store import open_store

    from ..auditlog.checkpointer import Checkpointer

    key = _signing_key(args)
    if key is None:
        _err("Geen ondertekensleutel: eerst `poortwachter keys init` / No signing key: run `poortwachter keys init`")
        return EXIT_ERROR
    try:
        exporters = _exporters(args)
    except ValueError as exc:
        _err(f"Ongeldige exportinstelling / Invalid export setting: {exc}")
        return EXIT_ERROR
    now = _now(args)
    store = open_store(_url(args))
    try:
        result = Checkpointer(store, key, gateways=args.gateway, ledger=not args.no_ledger, exporters=exporters,
                              now=lambda: now).run_once()
    finally:
        store.close()
    for cp in result.signed:
        print(f"controlepunt / checkpoint {cp.log} {cp.size}")
    print(f"geëxporteerd / exported: {result.exported}")
    for name, why in result.broken.items():
        _err(f"NIET ondertekend / NOT signed: {name}: {why} (run `poortwachter audit verify`)")
    return EXIT_TAMPER if result.broken else EXIT_OK


def cmd_retention(args: argparse.Namespace) -> int:
    from poortwachter.store import open_store

    from ..auditlog.checkpointer import Checkpointer
    from ..auditlog.retention import RetentionPolicy, apply_retention

    key = _signing_key(args)
    try:
        exporters = _exporters(args)
    except ValueError as exc:
        _err(f"Ongeldige exportinstelling / Invalid export setting: {exc}")
        return EXIT_ERROR
    now = _now(args)
    policy = RetentionPolicy(dt.timedelta(days=args.allowed_days), dt.timedelta(days=args.blocked_days))
    store = open_store(_url(args))
    try:
        if key is not None:      # pin what is about to be erased under a checkpoint first
            Checkpointer(store, key, exporters=exporters, now=lambda: now).run_once()
        else:
            _err("Geen ondertekensleutel: wisverslagen worden niet ondertekend / "
                 "No signing key: erasure records are not signed")
        result = apply_retention(store, now=now, policy=policy, signing_key=key, exporters=exporters)
    finally:
        store.close()
    print(f"gewist / erased: {result.total}; vastgehouden voor een zaak / held for a case: {result.held}; "
          f"nog zonder controlepunt / not yet checkpointed: {result.uncovered}")
    if result.changed:
        _err(f"{result.changed} gebeurtenissen NIET gewist: inhoud wijkt af van de leaf-hash (run `poortwachter "
             f"audit verify`) / {result.changed} events NOT erased: content differs from the leaf hash")
        return EXIT_TAMPER
    return EXIT_OK
