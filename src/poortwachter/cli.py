"""`poortwachter ...`: the command line of the gateway.

run            start the gateway (mitmdump with the addons)
check-policy   validate a policy: FILE:LINE: field.path: message, exit 2 when invalid
explain        the verdict the running gateway would give for one URL, as JSON
classify       squid helper lines on stdin -> one verdict line each (side by side with squidGuard)
lists          install and show category lists
nftables       the firewall ruleset generated from the policy
policy-schema  write the JSON Schema of the policy format (policy/schema.json)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .paths import resolve_data_dir

EXIT_INVALID = 2
# Set to 1 by the test suite only: the options that fake "now" (run/console --clock-file, classify
# --at, the addon's poortwachter_clock_file) are refused without it.
TEST_CLOCK_ENV = "POORTWACHTER_TEST_CLOCK"


def _policy_error_lines(exc: Exception) -> str:
    return str(exc)


def clock_option_refused(option: str) -> str | None:
    """Why `option`, a clock of the test suite, may not be used here, or None in a test
    (POORTWACHTER_TEST_CLOCK=1). In production the gateway and the console keep the system clock:
    a faked "now" would move the timetable, openings, exams and grants for every pupil."""
    if os.environ.get(TEST_CLOCK_ENV) == "1":
        return None
    return (f"{option} is alleen voor tests ({TEST_CLOCK_ENV}=1); de gateway gebruikt de systeemklok / "
            f"{option} is only for tests ({TEST_CLOCK_ENV}=1); the gateway uses the system clock")


def _refuse_clock(option: str, given: object) -> bool:
    """Print why and return True when a clock option was given outside a test."""
    refusal = clock_option_refused(option) if given else None
    if refusal:
        print(refusal, file=sys.stderr)
    return refusal is not None


# --- check-policy -----------------------------------------------------------------------------
def cmd_check_policy(args: argparse.Namespace) -> int:
    """Problems make a policy invalid (exit 2); warnings are printed too but leave it valid."""
    from .policy.load import PolicyError, load_policy, policy_warnings

    status = 0
    for file in args.files:
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            for problem in exc.problems:
                print(problem)
            status = EXIT_INVALID
            continue
        for warning in policy_warnings(file):
            print(warning)
        print(f"{file}: in orde / valid ({len(policy.zones)} zones, {len(policy.rules)} rules)", file=sys.stderr)
    return status


# --- explain / classify share the engine the gateway uses ---------------------------------------------
def _engine(args: argparse.Namespace, at: str | None):  # type: ignore[no-untyped-def]
    from .clock import parse_time, system_clock
    from .gateway import Engine

    when = parse_time(at) if at else None
    clock = (lambda: when) if when is not None else system_clock
    engine = Engine(Path(args.policy), args.data_dir, clock)
    _load_state(engine, args.data_dir, clock())
    return engine


def _load_state(engine, data_dir: Path, now) -> None:  # type: ignore[no-untyped-def]
    """Bans, grants, openings and exams from the store, when there is one (else an empty state)."""
    if not (data_dir / "poortwachter.db").exists():
        return  # checked first: importing SQLAlchemy costs a third of a second
    from .store.db import default_url, open_store
    from .store.snapshot import load_state

    store = open_store(default_url(data_dir))
    try:
        engine.set_state(load_state(store, now))
    finally:
        store.close()


def _url_request(engine, client: str, url: str):  # type: ignore[no-untyped-def]
    """What the gateway sees of a URL: in passthrough zones only the host of an https URL."""
    from .gateway import client_address
    from .hosts import parse_url

    addr = client_address(client)
    parsed = parse_url(url)
    path: str | None = parsed.path or "/"
    if parsed.scheme == "https" or parsed.port == 443:
        zone = engine.policy.zone_of(addr) or engine.policy.guest
        if zone.inspection != "intercept" or engine.undecrypted(parsed.host):
            path = None
    return addr, parsed, path


def cmd_explain(args: argparse.Namespace) -> int:
    from .hosts import BadHost
    from .policy.load import PolicyError

    try:
        engine = _engine(args, args.at)
    except PolicyError as exc:
        print(_policy_error_lines(exc), file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:
        print(f"Ongeldige tijd / Invalid time: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        addr, parsed, path = _url_request(engine, args.client, args.url)
    except (BadHost, ValueError) as exc:
        print(f"Ongeldige URL of client / Invalid URL or client: {exc}", file=sys.stderr)
        return EXIT_INVALID
    verdict = engine.decide(addr, parsed.host, path)
    out = {"url": args.url, "host": parsed.host, "decided_on": "url" if path is not None else "host",
           "at": engine.clock().isoformat(), **verdict.as_dict()}
    print(json.dumps(out, ensure_ascii=False, indent=2 if args.pretty else None))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    """Reads `URL CLIENT_IP/FQDN IDENT METHOD` lines; writes `allow|block RULE CATEGORY` per line.

    The same URL from the same client in the same minute has the same verdict (policy, lists and
    state are fixed for the life of the process), so answers are memoised per minute: squid sends
    the same popular URLs over and over.
    """
    import time

    from .hosts import BadHost
    from .policy.load import PolicyError

    if _refuse_clock("--at", args.at):
        return EXIT_INVALID
    try:
        engine = _engine(args, args.at)
    except PolicyError as exc:
        print(_policy_error_lines(exc), file=sys.stderr)
        return EXIT_INVALID
    out = sys.stdout
    write = out.write
    fixed_time = args.at is not None
    minute = int(time.time()) // 60
    memo: dict[tuple[str, str], str] = {}
    for line in sys.stdin:
        fields = line.split()
        if len(fields) < 2:
            write("ERR malformed\n")
            continue
        if not fixed_time and int(time.time()) // 60 != minute:
            minute = int(time.time()) // 60
            memo.clear()
        key = (fields[0], fields[1])
        answer = memo.get(key)
        if answer is None:
            try:
                client = fields[1].split("/", 1)[0]
                addr, parsed, path = _url_request(engine, client, fields[0])
                verdict = engine.decide(addr, parsed.host, path)
                answer = f"{verdict.action} {verdict.rule} {verdict.category or '-'}\n"
            except (BadHost, ValueError):
                answer = "ERR malformed\n"
            if len(memo) >= 200_000:
                memo.clear()
            memo[key] = answer
        write(answer)
        if args.flush:
            out.flush()
    out.flush()
    return 0


# --- run --------------------------------------------------------------------------------------------
# Several workers on one machine (`run --worker NAME`, one systemd instance each) share the data
# directory's lists, CA, escrow public key, checkpoint key and store, but each needs files only one
# process may write: the audit spool (locked), sequence file, pseudonym keys and checkpoints, and
# the state snapshot. The addons keep those under the data directory they are given, so a worker
# gets <data dir>/workers/<NAME>/ as its own, with the shared parts linked into it.
WORKERS = "workers"
WORKER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")   # part of a path and of the audit gateway id
WORKER_SHARED = ("lists", "audit/escrow.pub", "audit/checkpoint.key")
WORKER_METRICS_STEP = 10   # worker n serves metrics on the --metrics port + 10*(n-1): 9108, 9118, ...


@dataclass(frozen=True)
class Worker:
    name: str
    gateway: str         # the gateway id in the audit log: <host name>-<worker>
    data_dir: Path       # the worker's own files; the shared ones are linked in
    listen: str
    metrics: str
    dns: str = ""


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"{option}: HOST:PORT verwacht / expected, not {value!r}")
    return host, int(port)


def _shifted(value: str, option: str, offset: int) -> str:
    if not value or not offset:
        return value
    host, port = _host_port(value, option)
    if port + offset > 65535:
        raise SystemExit(f"{option}: poort {port} + {offset} te hoog / port too high")
    return f"{host}:{port + offset}"


def run_worker(args: argparse.Namespace, hostname: str | None = None) -> Worker | None:
    """What `--worker NAME` means for this run, or None without it. A numeric NAME n shifts the
    ports, so one systemd template serves every worker: --listen port + (n-1), --metrics port +
    10*(n-1) (the sensor keeps 9109)."""
    name = args.worker
    if not name:
        return None
    if not WORKER_NAME.match(name):
        raise SystemExit(f"--worker: kleine letters, cijfers, - en _ / lower-case letters, digits, - and _; "
                         f"not {name!r}")
    n = int(name) if name.isdigit() else 1
    if n < 1:
        raise SystemExit("--worker: nummers beginnen bij 1 / numbers start at 1")
    host = (hostname or socket.gethostname()).split(".", 1)[0]
    return Worker(name=name, gateway=f"{host}-{name}", data_dir=args.data_dir / WORKERS / name,
                  listen=_shifted(args.listen, "--listen", n - 1),
                  metrics=_shifted(args.metrics, "--metrics", WORKER_METRICS_STEP * (n - 1)),
                  dns=_shifted(args.dns or "", "--dns", n - 1))


def link_shared(shared: Path, own: Path) -> None:
    """Link what workers share into a worker's directory (relative links, so the data directory
    can move). A link to a file the key ceremony has not made yet dangles until it does."""
    for part in WORKER_SHARED:
        link = own / part
        link.parent.mkdir(parents=True, exist_ok=True)
        target = Path(os.path.relpath(shared / part, link.parent))
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.exists() or link.is_symlink():
            raise SystemExit(f"--worker: {link} bestaat al en is geen link naar {shared / part} / "
                             "exists and is not a link to the shared one")
        link.symlink_to(target)


def mitmdump_args(args: argparse.Namespace) -> list[str]:
    import poortwachter_addons

    script = Path(poortwachter_addons.__file__).with_name("gateway.py")
    worker: Worker | None = getattr(args, "worker_layout", None)
    listen, metrics = (worker.listen, worker.metrics) if worker else (args.listen, args.metrics)
    dns = worker.dns if worker else (args.dns or "")
    host, port = _host_port(listen, "--listen")
    data_dir: Path = args.data_dir
    db = args.db
    if worker is not None and not db:
        from .store.db import default_url

        db = default_url(data_dir)    # the shared store, not one in the worker's directory
    argv = [
        "-s", str(script),
        "--mode", args.mode,
        # asyncio binds "::" IPv6-only; mitmproxy's "" opens one socket per family
        "--listen-host", _listen_host(host), "--listen-port", str(port),
        "--set", f"confdir={data_dir / 'ca'}",
        "--set", f"poortwachter_policy={Path(args.policy).resolve()}",
        "--set", f"poortwachter_data_dir={worker.data_dir if worker else data_dir}",
        "--set", f"poortwachter_metrics={metrics}",
        "--set", "connection_strategy=lazy",     # never contact a server for a request we block
        "--set", "termlog_verbosity=error",      # mitmproxy's own lines carry addresses and URLs
        "--set", "flow_detail=0",
    ]
    if dns:
        _host_port(dns, "--dns")
        argv += ["--set", f"poortwachter_dns={dns}"]     # the school's resolver
    if worker is not None:
        argv += ["--set", f"poortwachter_audit_gateway={worker.gateway}"]
    if args.clock_file:
        argv += ["--set", f"poortwachter_clock_file={args.clock_file}"]
    if db:
        argv += ["--set", f"poortwachter_db={db}"]
    extra = list(args.extra or [])
    return _without(argv, _set_names(extra)) + extra


def _listen_host(host: str) -> str:
    """--listen and --dns hosts as mitmproxy wants them: "" for every address of both families."""
    return "" if host in ("[::]", "::") else host.strip("[]")


def _set_names(argv: list[str]) -> set[str]:
    """Names of the options `--set NAME=VALUE` gives in argv."""
    return {value.partition("=")[0] for flag, value in zip(argv, argv[1:]) if flag == "--set"}


def _without(argv: list[str], names: set[str]) -> list[str]:
    """argv less its `--set` of these names: an option given twice stops mitmdump (for an addon's
    option, silently, before it listens), so one given after -- replaces ours."""
    out: list[str] = []
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word == "--set" and i + 1 < len(argv) and argv[i + 1].partition("=")[0] in names:
            skip = True
        else:
            out.append(word)
    return out


@contextmanager
def _setup_lock(data_dir: Path) -> Iterator[None]:
    """Workers started together must not make two CAs or migrate the store at the same time."""
    with open(data_dir / ".run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_ca(confdir: Path) -> None:
    """Make the school CA now, under the lock, rather than in each worker's mitmdump at once."""
    from mitmproxy.certs import CertStore
    from mitmproxy.options import CONF_BASENAME, KEY_SIZE

    CertStore.from_store(confdir, CONF_BASENAME, KEY_SIZE)


def cmd_run(args: argparse.Namespace) -> int:
    from .policy.load import PolicyError, load_policy

    if _refuse_clock("--clock-file", args.clock_file):
        return EXIT_INVALID
    try:
        load_policy(args.policy)
    except PolicyError as exc:
        print(_policy_error_lines(exc), file=sys.stderr)
        return EXIT_INVALID
    args.data_dir.mkdir(parents=True, exist_ok=True)
    worker = args.worker_layout = run_worker(args)
    from .store.db import default_url, open_store

    with _setup_lock(args.data_dir):
        if worker is not None:
            worker.data_dir.mkdir(parents=True, exist_ok=True)
            link_shared(args.data_dir, worker.data_dir)
        _ensure_ca(args.data_dir / "ca")
        try:  # create and migrate before the proxy starts; an unreachable shared database is not fatal
            open_store(args.db or default_url(args.data_dir)).close()
        except Exception as exc:
            print(f"Opslag niet bereikbaar, de gateway start zonder / Store unreachable, starting without: "
                  f"{type(exc).__name__}", file=sys.stderr)
    argv = mitmdump_args(args)
    listen, metrics = (worker.listen, worker.metrics) if worker else (args.listen, args.metrics)
    who = f"worker {worker.name} ({worker.gateway}), " if worker else ""
    dns = worker.dns if worker else args.dns
    print(f"Poortwachter {who}luistert op / listens on {listen} ({args.mode}); "
          f"DNS: {dns or 'uit / off'}; metrics: {metrics or 'uit / off'}; "
          f"data: {worker.data_dir if worker else args.data_dir}", file=sys.stderr)
    from mitmproxy.tools.main import mitmdump

    mitmdump(argv)
    return 0


def cmd_nftables(args: argparse.Namespace) -> int:
    from .firewall import ruleset
    from .policy.load import PolicyError, load_policy

    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(_policy_error_lines(exc), file=sys.stderr)
        return EXIT_INVALID
    text = ruleset(policy)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_policy_schema(args: argparse.Namespace) -> int:
    from .policy.model import Policy

    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Poortwachter policy"
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


CORE = frozenset({"check-policy", "explain", "classify", "run", "policy-schema", "lists", "nftables"})


def _extensions(only: str | None):  # type: ignore[no-untyped-def]
    """Subcommands of the workflow, console and audit packages. Importing them pulls in
    SQLAlchemy, Starlette and the crypto stack, so the gateway's own commands (classify is run by
    squid per helper process) skip them."""
    from .lists.cli import register as register_lists

    yield register_lists
    if only in CORE:
        return
    from .audit.cli import register as register_audit
    from .audit.verify_cli import register as register_audit_verify
    from .console.cli import register as register_console
    from .sensor.cli import register as register_sensor
    from .workflow.cli import register as register_workflow

    yield from (register_workflow, register_console, register_audit, register_audit_verify, register_sensor)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poortwachter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data directory (default: $POORTWACHTER_DATA_DIR or ~/.local/share/poortwachter)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-policy", help="validate policy files")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_check_policy)

    p = sub.add_parser("explain", help="the verdict for one URL, as JSON")
    p.add_argument("--policy", required=True)
    p.add_argument("--client", required=True, help="client IP address")
    p.add_argument("--at", help="the moment to ask about, ISO-8601 (default: now); without offset: "
                                "Europe/Amsterdam. A question only: the gateway keeps the system clock")
    p.add_argument("--pretty", action="store_true")
    p.add_argument("url")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("classify", help="squid helper lines on stdin, verdict lines on stdout")
    p.add_argument("--policy", required=True)
    p.add_argument("--at", help=argparse.SUPPRESS)   # tests only (POORTWACHTER_TEST_CLOCK=1): a fixed "now"
    p.add_argument("--flush", action="store_true", help="flush after every line (when squid drives it)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("run", help="start the gateway")
    p.add_argument("--policy", default="policy/default.yaml")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT")
    p.add_argument("--mode", default="regular", choices=["regular", "transparent"])
    p.add_argument("--metrics", default="127.0.0.1:9108", help="HOST:PORT for Prometheus, empty to switch off")
    p.add_argument("--dns", metavar="HOST:PORT",
                   help="also be the school's resolver here (UDP and TCP): every name decided by the policy, "
                        "forwarded to dns.upstream; the firewall sends the clients' DNS to it")
    p.add_argument("--db", help="store URL (SQLAlchemy), e.g. postgresql+psycopg://gw@db/poortwachter; "
                                "default: SQLite poortwachter.db in the data directory")
    p.add_argument("--worker", metavar="NAME",
                   help="one of several workers on this machine: audit gateway id <host name>-NAME, own files in "
                        "DATA_DIR/workers/NAME (audit spool, sequence, checkpoints, state snapshot), lists, CA and "
                        "store shared; a number n shifts the ports: --listen and --dns port + (n-1), --metrics "
                        "port + 10*(n-1) (worker 1: 8080 and 9108, worker 2: 8081 and 9118)")
    p.add_argument("--clock-file", help=argparse.SUPPRESS)   # tests only (POORTWACHTER_TEST_CLOCK=1)
    p.add_argument("extra", nargs="*", help="further mitmdump arguments after --")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("nftables", help="the firewall ruleset generated from the policy",
                       description="Print the nftables ruleset that goes with a policy: transparent "
                                   "interception, the school's resolver, and exactly the policy's services "
                                   "open for the client networks. site.nft includes it after its defines.")
    p.add_argument("--policy", required=True)
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_nftables)

    p = sub.add_parser("policy-schema", help="write the policy JSON Schema")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_policy_schema)

    for register in _extensions(only):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-") and a not in _option_values(argv)), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    args.data_dir = resolve_data_dir(args.data_dir)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()   # inside the try: a pipe closed early shows here, not in the exit's flush
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise
        return _end_after_broken_pipe()
    return status


# What the shell reports for a command stopped by SIGPIPE (`seq 100000 | head -1`): 128 + 13.
EXIT_BROKEN_PIPE = 141


def _stdout_reader_gone() -> bool:
    """Has the reader of standard output gone away (`poortwachter ... | head`)? For its writer, a
    pipe whose reader closed polls as an error; anything else is a real failure to report."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poll.poll(0))
    except (OSError, ValueError):
        return False


def _end_after_broken_pipe() -> int:
    """Nobody reads the rest: point standard output at /dev/null, so the interpreter's last flush
    has nowhere to fail (no traceback), and end as a command stopped by SIGPIPE does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _option_values(argv: list[str]) -> set[str]:
    """Values of the global options before the command (`--data-dir DIR`)."""
    return {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--data-dir"}


if __name__ == "__main__":
    sys.exit(main())
