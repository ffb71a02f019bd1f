"""`poortwachter user|grant|ban|limit|requests ...`: the workflow from the command line.

user add USERNAME --role ROLE --name NAME [--zones a,b --policy FILE] [--email ADDR] [--password-stdin]
user list [--all] [--json]
user disable|enable USERNAME --reason TEXT
user reset USERNAME --reason TEXT (--url CONSOLE_URL | --password-stdin)   (a one-time link, or a new password)
user set USERNAME [--role ROLE] [--zones a,b] [--email ADDR] --reason TEXT [--policy FILE]
grant add --site S [--site ...] [--zone Z] [--role R] --until TIME [--from TIME] --reason TEXT
          --actor NAME --policy FILE
grant list [--all] [--json]        grant revoke ID --reason TEXT [--actor NAME]
ban add SUBJECT --until TIME --reason TEXT [--actor NAME]
ban list [--json]                  ban revoke ID --reason TEXT [--actor NAME]
limit list [--json]                limit revoke ID --reason TEXT [--actor NAME]   (download limits, 004 art. 13)
requests list [--status S] [--json]
requests sweep                     record every expiry that passed in the change log (cron/timer)

Whoever runs these commands has shell access to the gateway's data, so they act as ICT: the change
log names them "ict:NAME" (--actor, default the login name). Zones are checked against the policy
(--policy, default policy/default.yaml). A password comes from the first line of stdin when
stdin is not a terminal (or with --password-stdin), else from a prompt asked twice.
TIME is ISO-8601 ("2025-03-10T15:30", without offset: Europe/Amsterdam) or relative to now
("+45m", "+2h", "+3d").
Exit status: 0 done, 1 refused (not allowed, already decided, database unreachable), 2 bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..cliexit import EXIT_INVALID, EXIT_OK, EXIT_REFUSED, guarded
from ..cliexit import CliExit as _Exit
from ..roles import ROLES

LOCAL = ZoneInfo("Europe/Amsterdam")
_RELATIVE = re.compile(r"\+(\d+)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

Command = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `user`, `grant`, `ban`, `limit` and `requests`; each leaf sets `func(args) -> exit status` and
    reads args.data_dir (a Path) and --db."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="database URL (default: sqlite in the data directory)")
    common.add_argument("--at", help=argparse.SUPPRESS)   # act as if it were TIME (tests, drills)

    def leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, func: Command,
             help: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=guarded(func))
        return p

    def actor(p: argparse.ArgumentParser) -> None:
        p.add_argument("--actor", default=_login(), help="who does this (default: the login name)")

    def policy(p: argparse.ArgumentParser) -> None:
        p.add_argument("--policy", type=Path, default=Path("policy/default.yaml"),
                       help="policy file whose zones --zones may name (default: policy/default.yaml)")

    user = subparsers.add_parser("user", help="console accounts").add_subparsers(
        dest="user_command", metavar="{add,list,disable,enable,reset,set}", required=True)
    p = leaf(user, "add", cmd_user_add, "create a console account")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--zones", default="", help="comma-separated zones a docent controls")
    p.add_argument("--email", help="e-mail address for notifications")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin (also when stdin is not a terminal)")
    policy(p)
    actor(p)
    p = leaf(user, "list", cmd_user_list, "list console accounts")
    p.add_argument("--all", action="store_true", help="also disabled accounts")
    p.add_argument("--json", action="store_true")
    for name, func, text in (("disable", cmd_user_disable, "disable an account: no login, its sessions end"),
                             ("enable", cmd_user_enable, "enable a disabled account")):
        p = leaf(user, name, func, text)
        p.add_argument("username")
        p.add_argument("--reason", required=True)
        actor(p)
    p = leaf(user, "reset", cmd_user_reset, "a one-time link to choose a new password, or set a new password")
    p.add_argument("username")
    p.add_argument("--reason", required=True)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--url", help="the console's address, e.g. https://console.school.nl: print a one-time link")
    how.add_argument("--password-stdin", action="store_true", help="set the password on the first line of stdin")
    actor(p)
    p = leaf(user, "set", cmd_user_set, "change role, zones or e-mail address")
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES)
    p.add_argument("--zones", help="comma-separated zones a docent controls (empty: none)")
    p.add_argument("--email", help="e-mail address (empty: none)")
    p.add_argument("--reason", default="", help="why (required for --role and --zones)")
    policy(p)
    actor(p)

    grant = subparsers.add_parser("grant", help="unblocks (deblokkeringen, 004 art. 12)").add_subparsers(
        dest="grant_command", metavar="{add,list,revoke}", required=True)
    p = leaf(grant, "add", cmd_grant_add, "open sites for some zones/roles for a while")
    p.add_argument("--site", action="append", required=True, help="domain or domain/path (repeatable)")
    p.add_argument("--zone", action="append", default=[], help="zone name or kind (repeatable; none: all)")
    p.add_argument("--role", action="append", default=[], help="role, e.g. pupil (repeatable; none: all)")
    p.add_argument("--from", dest="start", help="start TIME (default: now)")
    p.add_argument("--until", required=True, help="end TIME")
    p.add_argument("--reason", required=True)
    p.add_argument("--policy", required=True, help="policy file (to refuse not-overridable categories)")
    actor(p)
    p = leaf(grant, "list", cmd_grant_list, "grants not yet ended")
    p.add_argument("--all", action="store_true", help="also revoked and ended grants")
    p.add_argument("--json", action="store_true")
    p = leaf(grant, "revoke", cmd_grant_revoke, "end a grant early")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    actor(p)

    ban = subparsers.add_parser("ban", help="network exclusions (uitsluiting)").add_subparsers(
        dest="ban_command", metavar="{add,list,revoke}", required=True)
    p = leaf(ban, "add", cmd_ban_add, "exclude an address or network until TIME")
    p.add_argument("subject", help="IP address or network, e.g. 10.20.3.4 or 10.20.3.0/28")
    p.add_argument("--until", required=True, help="end TIME")
    p.add_argument("--reason", required=True)
    actor(p)
    p = leaf(ban, "list", cmd_ban_list, "exclusions not yet ended")
    p.add_argument("--json", action="store_true")
    p = leaf(ban, "revoke", cmd_ban_revoke, "end an exclusion early")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    actor(p)

    limit = subparsers.add_parser("limit", help="download limits from the network sensor (004 art. 13)").add_subparsers(
        dest="limit_command", metavar="{list,revoke}", required=True)
    p = leaf(limit, "list", cmd_limit_list, "download limits not yet ended")
    p.add_argument("--json", action="store_true")
    p = leaf(limit, "revoke", cmd_limit_revoke, "lift a download limit early")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    actor(p)

    requests = subparsers.add_parser("requests", help="unblock requests").add_subparsers(
        dest="requests_command", metavar="{list,sweep}", required=True)
    p = leaf(requests, "list", cmd_requests_list, "list unblock requests")
    p.add_argument("--status", choices=("submitted", "endorsed", "approved", "declined", "withdrawn"))
    p.add_argument("--json", action="store_true")
    leaf(requests, "sweep", cmd_requests_sweep, "record expired grants, openings, exams and exclusions")


# --- commands --------------------------------------------------------------------------------

def cmd_user_add(args: argparse.Namespace) -> int:
    from .accounts import create_user

    zones = _zones(args.zones)
    zone_names = _zone_names(args.policy, zones) if zones else None   # refused before the password is asked
    password = _read_password(args.password_stdin)
    if password is None:
        return EXIT_INVALID
    with _unit(args) as (s, now):
        user_id = create_user(s, username=args.username, display_name=args.name, role=args.role,
                              password=password, zones=zones, zone_names=zone_names, email=args.email,
                              actor=f"ict:{args.actor}", now=now)
    print(f"Account {user_id} aangemaakt / Account {user_id} created")
    return EXIT_OK


def cmd_user_list(args: argparse.Namespace) -> int:
    from .useradmin import list_accounts

    with _unit(args, write=False) as (s, _now):
        accounts = list_accounts(s, user=_cli_user(_login()), include_disabled=args.all)
    return _show(args, accounts, lambda u: f"{u.id}\t{u.username}\t{u.role}\t{','.join(u.zones) or '-'}"
                                           f"\t{u.display_name}\t{'actief/active' if u.active else 'uit/disabled'}"
                                           f"\t{u.email or '-'}")


def cmd_user_disable(args: argparse.Namespace) -> int:
    from .useradmin import disable_user, find_account

    with _unit(args) as (s, now):
        user = _cli_user(args.actor)
        disable_user(s, find_account(s, args.username, user=user).id, user=user, reason=args.reason, now=now)
    print("Account uitgeschakeld / Account disabled")
    return EXIT_OK


def cmd_user_enable(args: argparse.Namespace) -> int:
    from .useradmin import enable_user, find_account

    with _unit(args) as (s, now):
        user = _cli_user(args.actor)
        enable_user(s, find_account(s, args.username, user=user).id, user=user, reason=args.reason, now=now)
    print("Account ingeschakeld / Account enabled")
    return EXIT_OK


def cmd_user_reset(args: argparse.Namespace) -> int:
    from .useradmin import RESET_VALID, create_reset_link, find_account, reset_link, set_password

    if args.url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", args.url):
        raise _Exit(EXIT_INVALID, "--url: het adres van de console, bijv. https://console.school.nl / "
                                  "--url: the console's address, e.g. https://console.school.nl")
    password = _read_password(True) if args.password_stdin else None
    with _unit(args) as (s, now):
        user = _cli_user(args.actor)
        user_id = find_account(s, args.username, user=user).id
        if password is not None:
            set_password(s, user_id, password, user=user, reason=args.reason, now=now)
        else:
            token = create_reset_link(s, user_id, user=user, reason=args.reason, now=now)
    if password is not None:
        print("Wachtwoord ingesteld; de sessies van het account zijn beëindigd / "
              "Password set; the account's sessions have ended")
        return EXIT_OK
    print(f"Eenmalige link, geldig tot {_local(now + RESET_VALID)}, werkt één keer / "
          f"One-time link, valid until {_local(now + RESET_VALID)}, works once:", file=sys.stderr)
    print(reset_link(args.url, token))
    return EXIT_OK


def cmd_user_set(args: argparse.Namespace) -> int:
    from .useradmin import find_account, set_email, set_role, set_zones

    if args.role is None and args.zones is None and args.email is None:
        raise _Exit(EXIT_INVALID, "Geef --role, --zones of --email / Give --role, --zones or --email")
    zone_names = _zone_names(args.policy, _zones(args.zones)) if args.zones is not None else ()
    with _unit(args) as (s, now):
        user = _cli_user(args.actor)
        user_id = find_account(s, args.username, user=user).id
        if args.role is not None:
            set_role(s, user_id, args.role, user=user, reason=args.reason, now=now)
        if args.zones is not None:
            set_zones(s, user_id, _zones(args.zones), zone_names=zone_names, user=user, reason=args.reason, now=now)
        if args.email is not None:
            set_email(s, user_id, args.email, user=user, now=now)
    print("Account gewijzigd / Account changed")
    return EXIT_OK


def cmd_grant_add(args: argparse.Namespace) -> int:
    from .requests import create_grant

    locked = _locked_check(Path(args.policy), args.data_dir)
    with _unit(args) as (s, now):
        start = _time(args.start, now) if args.start else None
        grant_id = create_grant(s, user=_cli_user(args.actor), sites=args.site, zones=args.zone,
                                roles=args.role, start=start, end=_time(args.until, now), reason=args.reason,
                                now=now, locked=locked)
    print(f"Deblokkering {grant_id} toegevoegd / Grant {grant_id} added")
    return EXIT_OK


def cmd_grant_list(args: argparse.Namespace) -> int:
    from .requests import list_grants

    with _unit(args, write=False) as (s, now):
        grants = list_grants(s, now=now, include_ended=args.all)

    def line(g: Any) -> str:
        state = "ingetrokken/revoked" if g.revoked_at else "verlopen/ended" if g.end <= now else "actief/active"
        return (f"{g.id}\t{','.join(g.sites)}\tzones={','.join(g.zones) or '*'}\troles={','.join(g.roles) or '*'}"
                f"\t{_local(g.start)} - {_local(g.end)}\t{state}\t{g.approved_by or g.created_by}")
    return _show(args, grants, line)


def cmd_grant_revoke(args: argparse.Namespace) -> int:
    from .requests import revoke_grant

    with _unit(args) as (s, now):
        revoke_grant(s, args.id, user=_cli_user(args.actor), reason=args.reason, now=now)
    print(f"Deblokkering {args.id} ingetrokken / Grant {args.id} revoked")
    return EXIT_OK


def cmd_ban_add(args: argparse.Namespace) -> int:
    from .classroom import exclude

    with _unit(args) as (s, now):
        ban_id = exclude(s, user=_cli_user(args.actor), subject=args.subject, until=_time(args.until, now),
                         reason=args.reason, now=now)
    print(f"Uitsluiting {ban_id} toegevoegd / Exclusion {ban_id} added")
    return EXIT_OK


def cmd_ban_list(args: argparse.Namespace) -> int:
    from .classroom import list_exclusions

    with _unit(args, write=False) as (s, now):
        bans = list_exclusions(s, now=now)
    return _show(args, bans, lambda b: f"{b.id}\t{b.subject}\ttot/until {_local(b.until)}\t{b.created_by}\t{b.reason}")


def cmd_ban_revoke(args: argparse.Namespace) -> int:
    from .classroom import end_exclusion

    with _unit(args) as (s, now):
        end_exclusion(s, args.id, user=_cli_user(args.actor), reason=args.reason, now=now)
    print(f"Uitsluiting {args.id} opgeheven / Exclusion {args.id} lifted")
    return EXIT_OK


def cmd_limit_list(args: argparse.Namespace) -> int:
    from .limits import list_download_limits

    with _unit(args, write=False) as (s, now):
        limits = list_download_limits(s, now=now)
    return _show(args, limits, lambda d: f"{d.id}\t{d.address}\t{d.zone}\tmax. {d.max_bytes} bytes"
                                         f"\ttot/until {_local(d.until)}\t{d.created_by}\t{d.reason}")


def cmd_limit_revoke(args: argparse.Namespace) -> int:
    from .limits import revoke_download_limit

    with _unit(args) as (s, now):
        revoke_download_limit(s, args.id, user=_cli_user(args.actor), reason=args.reason, now=now)
    print(f"Downloadlimiet {args.id} opgeheven / Download limit {args.id} lifted")
    return EXIT_OK


def cmd_requests_list(args: argparse.Namespace) -> int:
    from .requests import list_requests

    with _unit(args, write=False) as (s, _now):
        found = list_requests(s, status=args.status)
    return _show(args, found, lambda r: f"{r.id}\t{r.status}\t{','.join(r.sites)}\t{r.ground or '-'}"
                                       f"\t{_local(r.created_at)}")


def cmd_requests_sweep(args: argparse.Namespace) -> int:
    from .classroom import record_expiries

    with _unit(args) as (s, now):
        count = record_expiries(s, now=now)
    print(f"{count} verlopen vastgelegd / {count} expiries recorded")
    return EXIT_OK


# --- plumbing --------------------------------------------------------------------------------

@contextmanager
def _unit(args: argparse.Namespace, *, write: bool = True) -> Iterator[tuple[Any, dt.datetime]]:
    """Open the store (migrating it), run one unit of work, map refusals to exit codes."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..store import default_url, open_store
    from .errors import Conflict, Forbidden, Invalid

    try:
        now = _time(args.at, dt.datetime.now(dt.UTC)) if args.at else dt.datetime.now(dt.UTC)
        store = open_store(args.db or default_url(args.data_dir))
        try:
            with (store.write() if write else store.read()) as s:
                yield s, now
        finally:
            store.close()
    except Invalid as exc:
        raise _Exit(EXIT_INVALID, str(exc)) from None
    except (Forbidden, Conflict) as exc:
        raise _Exit(EXIT_REFUSED, str(exc)) from None
    except SQLAlchemyError as exc:   # the type only: the message may carry the URL
        raise _Exit(EXIT_REFUSED, f"Database niet bereikbaar / Database unreachable ({type(exc).__name__})") from None




def _time(value: str, now: dt.datetime) -> dt.datetime:
    from ..clock import parse_time
    from .errors import Invalid

    m = _RELATIVE.fullmatch(value.strip())
    if m:
        return now + dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        return parse_time(value).astimezone(dt.UTC)
    except ValueError:
        raise Invalid("Ongeldige tijd (ISO-8601 of +45m/+2h/+3d) / Invalid time (ISO-8601 or +45m/+2h/+3d)") from None


def _local(when: dt.datetime | None) -> str:
    return "-" if when is None else when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


def _show(args: argparse.Namespace, items: list[Any], line: Callable[[Any], str]) -> int:
    """A listing: one JSON array with --json, else one tab-separated line per item."""
    if args.json:
        print(json.dumps([_jsonable(i) for i in items], ensure_ascii=False))
    else:
        for item in items:
            print(line(item))
    return EXIT_OK


def _jsonable(obj: Any) -> dict[str, Any]:
    from dataclasses import asdict

    out = asdict(obj)
    for key, value in out.items():
        if isinstance(value, dt.datetime):
            out[key] = value.isoformat()
        elif isinstance(value, tuple):
            out[key] = list(value)
    return out


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


def _cli_user(name: str):  # type: ignore[no-untyped-def]
    """The CLI acts as ICT (see the module docstring); id 0 is no account."""
    from .common import User
    from .errors import Invalid

    name = name.strip()
    if not name:
        raise _Exit(EXIT_INVALID, str(Invalid("Wie ontbreekt / Actor missing")))
    return User(id=0, username=name, display_name=name, role="ict", zones=())


def _read_password(from_stdin: bool) -> str | None:
    """The first line of stdin when asked to or when stdin is no terminal (a pipe, a file, nothing
    at all); else a prompt, asked twice. None: the two prompts differed (said on stderr)."""
    if from_stdin or sys.stdin is None or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""
        if not password:
            raise _Exit(EXIT_INVALID, "Geen wachtwoord: geef het op de eerste regel van stdin, of start het "
                                      "commando in een terminal / No password: give it on the first line of "
                                      "stdin, or run the command in a terminal")
        return password
    password = getpass.getpass("Wachtwoord / Password: ")
    if getpass.getpass("Nogmaals / Again: ") != password:
        print("Wachtwoorden verschillen / Passwords differ", file=sys.stderr)
        return None
    return password


def _zones(text: str) -> list[str]:
    return [z.strip() for z in text.split(",") if z.strip()]


def _zone_names(policy_file: Path, zones: list[str]) -> frozenset[str]:
    """The zone names of the policy, after checking that `zones` are among them."""
    from ..policy.load import PolicyError, load_policy
    from .accounts import check_zones
    from .errors import Invalid

    try:
        names = frozenset(load_policy(policy_file).zones)
        check_zones(zones, names)
    except PolicyError as exc:
        raise _Exit(EXIT_INVALID, "Zones niet te controleren: het beleid is niet te lezen (--policy) / "
                                  f"Cannot check the zones: the policy cannot be read (--policy)\n{exc}") from None
    except Invalid as exc:
        raise _Exit(EXIT_INVALID, str(exc)) from None
    return names


def _locked_check(policy_file: Path, data_dir: Path) -> Callable[[str], str | None]:
    """site -> a category it falls in that ICT's grant may not open (the policy's opened_by; a
    not-overridable one among them), by the policy and the installed lists (the same categorizer
    the gateway uses)."""
    from ..gateway import Engine
    from ..policy.load import PolicyError

    try:
        engine = Engine(policy_file, data_dir)
    except PolicyError as exc:
        raise _Exit(EXIT_INVALID, str(exc)) from None
    except OSError:
        raise _Exit(EXIT_INVALID, "Beleid niet gevonden / Policy not found") from None
    categorizer, locked = engine.ctx.categorizer, engine.policy.closed_to["ict"]

    def check(host: str) -> str | None:
        return min(categorizer.host(host) & locked, default=None)
    return check


def main(argv: list[str] | None = None) -> int:
    """`python -m poortwachter.workflow.cli ...` is the same as `poortwachter ...`."""
    from ..cli import main as poortwachter

    return poortwachter(argv)


if __name__ == "__main__":
    sys.exit(main())
