"""What `poortwachter lists ensure` needs to decide whether to install lists: which named lists are
missing, whether the download can be reached at all, and what to rebuild an installation from
that was compiled in an older format (the gateway does not load it).

`make run` calls it on every start, on machines that may have no route to the internet: the probe
gives up within its timeout, name lookup included (getaddrinfo has no timeout of its own, so it
runs in a daemon thread that is abandoned when it does not answer in time).
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from poortwachter.lists.build import FORMAT
from poortwachter.lists.index import CategoryIndex, IndexLoadError
from poortwachter.lists.install import lists_dir, read_manifest

if TYPE_CHECKING:   # the gateway imports this module; the update machinery (httpx) only rebuilds
    from poortwachter.lists.update import UpdateRequest


def installed_sizes(data_dir: Path) -> dict[str, int]:
    """Entries per installed list; empty when nothing (loadable) is installed."""
    try:
        return CategoryIndex.load(lists_dir(data_dir)).sizes()
    except IndexLoadError:
        return {}


def outdated_manifest(data_dir: Path) -> dict[str, Any] | None:
    """The manifest of the installed build when it was compiled in another format than this
    version reads (build.FORMAT), else None (nothing installed, or the current format)."""
    try:
        manifest = read_manifest(lists_dir(data_dir).resolve(strict=True))
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") != FORMAT else None


def rebuild_request(manifest: dict[str, Any]) -> UpdateRequest:
    """The `lists update` that installs again what `manifest` was built from: the same UT1 source
    and categories, the same hosts and plain files under the same names."""
    from poortwachter.lists.update import NamedFile, UpdateRequest

    source: str | None = None
    only: frozenset[str] | None = None
    hosts: list[NamedFile] = []
    domains: list[NamedFile] = []
    for entry in manifest.get("sources", []):
        kind = entry.get("kind")
        if kind == "ut1":
            source = str(entry["location"])
            only = frozenset(entry["only"]) if entry.get("only") else None
        elif kind == "hosts":
            hosts.append(NamedFile(str(entry["category"]), Path(entry["location"])))
        elif kind == "domains":
            domains.append(NamedFile(str(entry["category"]), Path(entry["location"])))
    return UpdateRequest(source=source, hosts=tuple(hosts), extra_domains=tuple(domains), only=only)


def missing_lists(names: Iterable[str], sizes: dict[str, int]) -> list[str]:
    """The names that are not installed, or installed without an entry (as the gateway counts them)."""
    return sorted(name for name in set(names) if not sizes.get(name))


def endpoint(url: str) -> tuple[str, int]:
    """Host and port a download of `url` connects to: the proxy the environment names for its
    scheme (as httpx uses it), unless no_proxy exempts the host; otherwise the URL's own."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(host, proxies):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def reachable(url: str, timeout: float) -> bool:
    """Whether a TCP connection to where a download of `url` goes opens within `timeout` seconds."""
    host, port = endpoint(url)
    if not host:
        return False
    opened: list[bool] = []
    done = threading.Event()

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                opened.append(True)
        except (OSError, UnicodeError):
            pass
        finally:
            done.set()

    threading.Thread(target=attempt, name="lists-probe", daemon=True).start()
    done.wait(timeout)
    return bool(opened)
