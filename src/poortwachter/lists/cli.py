"""`poortwachter lists update|show`: install category lists and show what is installed."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from poortwachter.lists.index import CategoryIndex, IndexLoadError
from poortwachter.lists.install import UpdateBusy, lists_dir
from poortwachter.lists.sources import UT1_URL, Bar, SourceError
from poortwachter.lists.update import NamedFile, UpdateRequest, run_update


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lists update` and `lists show`; each sets `func(args) -> exit status`."""
    lists = subparsers.add_parser(
        "lists",
        help="category lists (UT1, hosts files)",
        description="Install and show the category lists the gateway blocks on.",
    )
    commands = lists.add_subparsers(dest="lists_command", metavar="{update,show}", required=True)

    update = commands.add_parser(
        "update",
        help="download/compile category lists and install them atomically",
        description=(
            "Install UT1 category lists (and optional hosts-format or plain domain lists) into "
            "the data directory, compiled for fast loading. The running gateway picks them up."
        ),
    )
    update.add_argument(
        "--from",
        dest="source",
        default=UT1_URL,
        metavar="SOURCE",
        help=f"UT1 tarball URL, local .tar.gz, or directory in UT1 layout; 'none' for no UT1 "
        f"lists (default: {UT1_URL})",
    )
    update.add_argument(
        "--only",
        type=_category_set,
        metavar="CAT1,CAT2",
        help="install only these UT1 categories",
    )
    update.add_argument(
        "--hosts",
        action="append",
        type=_named_file,
        default=[],
        metavar="NAME=FILE",
        help="add a hosts-format file as category NAME (repeatable); names match with subdomains",
    )
    update.add_argument(
        "--extra-domains",
        action="append",
        type=_named_file,
        default=[],
        metavar="NAME=FILE",
        help="add a one-domain-per-line file as category NAME (repeatable)",
    )
    update.set_defaults(func=cmd_update)

    show = commands.add_parser("show", help="show installed categories and their sizes")
    show.set_defaults(func=cmd_show)


def _named_file(text: str) -> NamedFile:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"verwacht NAAM=BESTAND / expected NAME=FILE, got {text!r}")
    return NamedFile(name.strip().lower(), Path(path))


def _category_set(text: str) -> frozenset[str]:
    names = frozenset(n.strip().lower() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("geen categorieën / no categories given")
    return names


def _tqdm_bar(desc: str, total: int | None, unit: str) -> Bar:
    # disable=None: no bar when stderr is not a terminal (cron, systemd); the summary still prints.
    bar: Bar = tqdm(
        desc=desc,
        total=total,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024 if unit == "B" else 1000,
        file=sys.stderr,
        disable=None,
        leave=False,
        dynamic_ncols=True,
    )
    return bar


def cmd_update(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    source: str | None = None if args.source.lower() == "none" else args.source
    request = UpdateRequest(
        source=source,
        hosts=tuple(args.hosts),
        extra_domains=tuple(args.extra_domains),
        only=args.only,
    )
    started = time.monotonic()
    try:
        manifest = run_update(request, Path(args.data_dir), make_bar=_tqdm_bar)
    except UpdateBusy:
        _fail("Er loopt al een update van de lijsten / A lists update is already running")
        return 1
    except (SourceError, OSError) as exc:
        _fail(f"Bijwerken van lijsten mislukt / Updating lists failed: {exc}")
        return 1
    _print_table(manifest, out)
    cats = manifest["categories"].values()
    malformed = sum(sum(c["malformed"].values()) for c in cats)
    print(
        f"Lijsten geïnstalleerd / Lists installed: {len(manifest['categories'])} categories, "
        f"{sum(c['domains'] for c in cats)} domains, {sum(c['urls'] for c in cats)} urls, "
        f"{sum(c['expressions'] for c in cats)} expressions, {malformed} malformed lines skipped, "
        f"generation {manifest['generation']}, {time.monotonic() - started:.1f} s",
        file=out,
    )
    return 0


def cmd_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        index = CategoryIndex.load(lists_dir(Path(args.data_dir)))
    except IndexLoadError:
        _fail(
            "Geen lijsten geïnstalleerd; gebruik 'poortwachter lists update' / "
            "No lists installed; run 'poortwachter lists update'"
        )
        return 1
    manifest = index.manifest
    print(f"generation: {manifest['generation']}  built: {manifest.get('built_at', '?')}", file=out)
    for src in manifest.get("sources", []):
        where = f"{src.get('category')} <- " if src.get("category") else ""
        print(f"source: {src['kind']}: {where}{src['location']}", file=out)
    _print_table(manifest, out)
    return 0


def _print_table(manifest: dict[str, Any], out: TextIO) -> None:
    cats: dict[str, dict[str, Any]] = manifest["categories"]
    width = max([len("category")] + [len(n) for n in cats])
    print(f"{'category':<{width}}  {'usage':<11}  {'domains':>9}  {'urls':>7}  {'expr':>4}  {'malformed':>9}", file=out)
    for name, c in cats.items():
        malformed = c["malformed"]
        detail = ", ".join(f"{kind} {n}" for kind, n in malformed.items())
        usage = ",".join(c.get("usage", [])) or "-"
        line = (
            f"{name:<{width}}  {usage:<11}  {c['domains']:>9}  {c['urls']:>7}  "
            f"{c['expressions']:>4}  {sum(malformed.values()):>9}"
        )
        print(line + (f"  ({detail})" if detail else ""), file=out)
    for attribution in manifest.get("attribution", []):
        print(attribution["notice"], file=out)


def _fail(message: str) -> None:
    # One line: errors from libraries (httpx, tarfile) may span several.
    print(" ".join(message.split()), file=sys.stderr)
