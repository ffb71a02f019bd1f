"""`poortwachter console`: serve the web console with uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8090"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("console", help="serve the web console (unblock requests, classrooms, exams, exclusions)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--policy", required=True, help="the policy file the gateway uses")
    p.add_argument("--db", help="store URL (default: sqlite:///DATA_DIR/poortwachter.db)")
    p.add_argument("--proxy-headers", action="store_true",
                   help="trust X-Forwarded-Proto/-For from 127.0.0.1 (behind a TLS reverse proxy)")
    # Hidden, as `run --clock-file`: tests and drills move the console through the timetable
    # ("until the end of this lesson") in step with a gateway on the same clock file.
    p.add_argument("--clock-file", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_console)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--listen: HOST:PORT verwacht / HOST:PORT expected")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from ..clock import make_clock
    from ..policy.load import PolicyError
    from ..store.db import default_url
    from .app import create_app

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    try:
        app = create_app(args.db or default_url(data_dir), Path(args.policy), data_dir,
                         clock=make_clock(args.clock_file))
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(f"Console op / on http://{host}:{port}/", file=sys.stderr)
    # No access log: its lines carry client addresses and URLs with status-link tokens.
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False,
                proxy_headers=args.proxy_headers, forwarded_allow_ips="127.0.0.1", log_level="info")
    return 0
