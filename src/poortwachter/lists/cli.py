"""`poortwachter lists update|show|ensure`: install category lists, show what is installed, and
install them once when a policy's lists are missing (what `make run` does before it starts)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from poortwachter.cliexit import EXIT_INVALID
from poortwachter.lists.ensure import installed_sizes, missing_lists, outdated_manifest, reachable, rebuild_request
from poortwachter.lists.index import CategoryIndex, IndexFormatError, IndexLoadError
from poortwachter.lists.install import UpdateBusy, lists_dir
from poortwachter.lists.sources import UT1_URL, Bar, BarFactory, SourceError, is_url
from poortwachter.lists.update import NamedFile, UpdateRequest, run_update

ENSURE_CONNECT_TIMEOUT = 5.0   # seconds: `make run` on a machine without internet goes on quickly


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lists update`, `lists show` and `lists ensure`; each sets `func(args) -> exit status`."""
    lists = subparsers.add_parser(
        "lists",
        help="category lists (UT1, hosts files)",
        description="Install and show the category lists the gateway blocks on.",
    )
    commands = lists.add_subparsers(dest="lists_command", metavar="{update,show,ensure}", required=True)

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

    ensure = commands.add_parser(
        "ensure",
        help="install the lists a policy names when none are installed, rebuild old ones (make run)",
        description=(
            "Nothing happens when every list the policy names is installed. Lists compiled in an older "
            "format are rebuilt from the sources they were installed from. When no lists are installed "
            "at all, the download is tried; when it cannot be reached within the connect timeout, or an "
            "installation exists that lacks some of the lists, one line on stderr says so and the exit "
            "status is still 0: the gateway then starts in the policy's settings.missing_lists mode."
        ),
    )
    ensure.add_argument("--policy", default="policy/default.yaml", help="the policy whose lists must be there")
    ensure.add_argument(
        "--from",
        dest="source",
        default=UT1_URL,
        metavar="SOURCE",
        help=f"UT1 tarball URL, local .tar.gz, or directory in UT1 layout (default: {UT1_URL})",
    )
    ensure.add_argument(
        "--connect-timeout",
        type=float,
        default=ENSURE_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on the download when it cannot be reached within this time, name lookup "
        f"included (default: {ENSURE_CONNECT_TIMEOUT:g})",
    )
    ensure.set_defaults(func=cmd_ensure)


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
    except IndexFormatError as exc:
        _fail(
            f"Lijsten in een oud formaat ({exc.found}); bouw ze opnieuw met 'poortwachter lists update' of "
            f"'poortwachter lists ensure' / Lists in an old format ({exc.found}); rebuild them with "
            f"'poortwachter lists update' or 'poortwachter lists ensure'"
        )
        return 1
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


def cmd_ensure(args: argparse.Namespace) -> int:
    """Install the lists `--policy` names when no lists are installed, if the download can be reached;
    otherwise say in one line why not and what the gateway does without them. Only an invalid
    policy is an error: the gateway would refuse it too."""
    from poortwachter.policy.compiled import CompiledPolicy
    from poortwachter.policy.load import PolicyError, load_policy

    try:
        policy = CompiledPolicy(load_policy(args.policy))
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    data_dir = Path(args.data_dir)
    mode_nl, mode_en = _missing_mode(policy.missing_lists)
    stale = outdated_manifest(data_dir)
    if stale is not None and not _rebuild(stale, data_dir, args.connect_timeout, mode_nl, mode_en):
        return 0
    sizes = installed_sizes(data_dir)
    missing = missing_lists(policy.list_to_categories, sizes)
    if not missing:
        return 0
    if sizes:
        # `lists update` replaces the whole installation; lists the school installed from other
        # sources (hosts files) would be gone. Installing what is missing is for ICT to do.
        _fail(
            f"Lijsten ontbreken of zijn leeg: {', '.join(missing)}; de geïnstalleerde lijsten blijven staan, "
            f"vul ze aan met 'poortwachter lists update'; {mode_nl} / Lists missing or empty: "
            f"{', '.join(missing)}; the installed lists stay, complete them with 'poortwachter lists update'; "
            f"{mode_en}"
        )
        return 0
    if is_url(args.source) and not reachable(args.source, args.connect_timeout):
        _fail(
            f"Lijsten niet te downloaden (geen verbinding binnen {args.connect_timeout:g} s); {mode_nl} tot "
            f"'poortwachter lists update' heeft gedraaid / Lists could not be downloaded (no connection "
            f"within {args.connect_timeout:g} s); {mode_en} until 'poortwachter lists update' has run"
        )
        return 0
    started = time.monotonic()
    announce = _announcing(
        "Geen lijsten geïnstalleerd: de categorielijsten worden opgehaald en geïnstalleerd / "
        "No lists installed: fetching and installing the category lists"
    )
    try:
        manifest = run_update(UpdateRequest(source=args.source), data_dir, make_bar=announce)
    except UpdateBusy:
        _fail("Er loopt al een update van de lijsten / A lists update is already running")
        return 0
    except (SourceError, OSError):
        _fail(
            f"Lijsten niet geïnstalleerd (download of installatie mislukt, 'poortwachter lists update' zegt "
            f"waarom); {mode_nl} / Lists not installed (download or installation failed, 'poortwachter lists "
            f"update' says why); {mode_en}"
        )
        return 0
    cats = manifest["categories"]
    print(
        f"Lijsten geïnstalleerd / Lists installed: {len(cats)} categories, generation {manifest['generation']}, "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    for attribution in manifest.get("attribution", []):
        print(attribution["notice"], file=sys.stderr)
    still = missing_lists(policy.list_to_categories, installed_sizes(data_dir))
    if still:
        _fail(f"Niet in de download: {', '.join(still)}; {mode_nl} / Not in the download: {', '.join(still)}; {mode_en}")
    return 0


def _rebuild(manifest: dict[str, Any], data_dir: Path, timeout: float, mode_nl: str, mode_en: str) -> bool:
    """Install again, in the format this version reads, what an installation compiled in an older
    format was built from (the gateway does not load that one). False, with one line on stderr,
    when that cannot be done now; the old installation then stays as it is."""
    request = rebuild_request(manifest)
    old = manifest.get("format")
    if request.source is not None and is_url(request.source) and not reachable(request.source, timeout):
        _fail(
            f"Lijsten in een oud formaat ({old}), hun bron is niet te downloaden (geen verbinding binnen "
            f"{timeout:g} s); {mode_nl} tot 'poortwachter lists update' heeft gedraaid / Lists in an old format "
            f"({old}), their source cannot be downloaded (no connection within {timeout:g} s); {mode_en} until "
            f"'poortwachter lists update' has run"
        )
        return False
    announce = _announcing(
        f"Lijsten in een oud formaat ({old}): ze worden opnieuw opgebouwd uit dezelfde bronnen / "
        f"Lists in an old format ({old}): rebuilding them from the same sources"
    )
    try:
        run_update(request, data_dir, make_bar=announce)
    except UpdateBusy:
        _fail("Er loopt al een update van de lijsten / A lists update is already running")
        return False
    except (SourceError, OSError):
        _fail(
            f"Lijsten in een oud formaat ({old}) niet opnieuw opgebouwd (een bron ontbreekt of is onleesbaar, "
            f"'poortwachter lists update' zegt waarom); {mode_nl} / Lists in an old format ({old}) not rebuilt "
            f"(a source is missing or unreadable, 'poortwachter lists update' says why); {mode_en}"
        )
        return False
    return True


def _announcing(message: str) -> BarFactory:
    """Progress bars that first print `message`, once: the first bar starts when the download has
    answered, so a download that fails before that leaves a single line."""
    announced: list[bool] = []

    def make_bar(desc: str, total: int | None, unit: str) -> Bar:
        if not announced:
            announced.append(True)
            print(message, file=sys.stderr)
        return _tqdm_bar(desc, total, unit)

    return make_bar


def _missing_mode(mode: str) -> tuple[str, str]:
    """What the gateway does while lists are missing, by settings.missing_lists (Dutch, English)."""
    if mode == "block":
        return ("de gateway start in de stand 'missing_lists: block': alleen de schoolomgeving en de "
                "no-decrypt-sites werken",
                "the gateway starts in 'missing_lists: block' mode: only the school environment and the "
                "no-decrypt sites work")
    return ("de gateway start in de stand 'missing_lists: allow': de categorieën van de ontbrekende lijsten "
            "worden NIET gefilterd",
            "the gateway starts in 'missing_lists: allow' mode: the categories of the missing lists are NOT "
            "filtered")


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
