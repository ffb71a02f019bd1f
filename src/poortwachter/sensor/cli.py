"""`poortwachter sensor`: the network sensor on a client VLAN (mirror port or the gateway's VLAN).

    poortwachter sensor --interface IF --policy FILE [--metrics-listen 127.0.0.1:9109] [--db URL]
                        [--data-dir DIR]

Runs until SIGTERM or SIGINT. Exit status: 0 stopped, 1 capture failed or stopped by itself
(no permission, interface gone), 2 bad input (policy, interface name, listen address).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..cliexit import EXIT_INVALID, EXIT_OK, EXIT_REFUSED

DEFAULT_LISTEN = "127.0.0.1:9109"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("sensor", help="the network sensor: ARP spoofing, rogue DHCP, scans, volume per zone")
    p.add_argument("--interface", required=True, help="the client VLAN interface or mirror (SPAN) port to sniff")
    p.add_argument("--policy", required=True, help="the policy file (zones and the sensor: section)")
    p.add_argument("--metrics-listen", default=DEFAULT_LISTEN, help=f"HOST:PORT for Prometheus (default {DEFAULT_LISTEN})")
    p.add_argument("--db", help="store URL for download limits (default: sqlite:///DATA_DIR/poortwachter.db)")
    # also accepted after the command; SUPPRESS keeps a --data-dir given before it
    p.add_argument("--data-dir", default=argparse.SUPPRESS, help="data directory (the store of download limits)")
    p.set_defaults(func=cmd_sensor)


def cmd_sensor(args: argparse.Namespace) -> int:
    from ..paths import resolve_data_dir
    from ..policy.load import PolicyError
    from .metrics import SensorMetrics, parse_listen

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)   # the store's migrations, when a limit opens it
    try:
        parse_listen(args.metrics_listen)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    if not Path(f"/sys/class/net/{args.interface}").exists() or "/" in args.interface:
        print(f"Interface bestaat niet / Interface does not exist: {args.interface}", file=sys.stderr)
        return EXIT_INVALID
    data_dir = resolve_data_dir(args.data_dir)
    db = args.db

    def open_store():  # type: ignore[no-untyped-def]
        from ..store.db import default_url, open_store

        return open_store(db or default_url(data_dir))

    from .service import SensorService

    try:
        service = SensorService(Path(args.policy), SensorMetrics(), limits_store=open_store)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        status = service.run(args.interface, args.metrics_listen, stop)
    except PermissionError:
        print("Geen rechten om te sniffen (root of CAP_NET_RAW nodig) / "
              "No permission to capture (needs root or CAP_NET_RAW)", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"Sensor kan niet starten / Sensor cannot start: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EXIT_REFUSED
    print("Sensor gestopt / Sensor stopped" if status == EXIT_OK else
          "Sensor gestopt: opname mislukt / Sensor stopped: capture failed", file=sys.stderr)
    return status
